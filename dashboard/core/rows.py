"""A row: one event as shown, stored and exported. The one definition of its fields.

Live frames and the history table render it (core/render.py), the history
stores it (history/store.py takes its columns from the model and each value
from the row attribute of the same name; tests check they match), the
detail and the exports read it back (`from_stored`, `record`).
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from dashboard.core.filters import search_text
from dashboard.core.keys import format_key

if TYPE_CHECKING:
    from dashboard.models import StoredEvent


# One encoder each: json.dumps() with options builds a new encoder on every call.
_compact = json.JSONEncoder(ensure_ascii=False, default=str).encode
_pretty = json.JSONEncoder(ensure_ascii=False, default=str, indent=2).encode


def to_json(payload: Any, pretty: bool = False) -> str:
    """Compact for rows and search (cheap), indented for the detail panel."""
    return _pretty(payload) if pretty else _compact(payload)


def moment(seconds: float) -> datetime:
    """Seconds since the epoch as the project's DateTimeFields hold a time: aware in UTC
    with USE_TZ, else naive in TIME_ZONE (SQLite refuses an aware one then, and a naive
    one beside an aware one neither compares nor sorts)."""
    aware = datetime.fromtimestamp(seconds, UTC)
    return aware if settings.USE_TZ else timezone.make_naive(aware, timezone.get_default_timezone())


def in_time_zone(t: datetime) -> datetime:
    """A time as every page of the dashboard shows it: in TIME_ZONE, as the admin does
    (the live rows are rendered where no request's zone is active; a naive time is in
    TIME_ZONE already)."""
    return t if t.tzinfo is None else t.astimezone(timezone.get_default_timezone())


def shown_zone() -> str:
    """The zone every page of the dashboard shows times in (in_time_zone)."""
    return timezone.get_default_timezone_name()


INSTANCE_KEYS = ("model", "pk", "str", "fields")  # an object as core/payload.py describes it


def in_described_order(value: Any) -> Any:
    """A payload read back from PostgreSQL, whose jsonb keeps an object's keys shortest
    first ("pk", "str", "model", "fields"; "id", "name", "price", ...): each object as it
    was described, its fields in its model's order. Other keys keep the order read."""
    if isinstance(value, list):
        return [in_described_order(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "model" in value and "pk" in value and value.keys() <= set(INSTANCE_KEYS):
        fields = value.get("fields")
        if isinstance(fields, dict):
            rank = _field_rank(str(value["model"]))
            fields = dict(sorted(fields.items(), key=lambda item: rank.get(item[0], len(rank))))
        return {key: fields if key == "fields" else value[key]
                for key in INSTANCE_KEYS if key in value}  # fmt: skip
    return {key: in_described_order(v) for key, v in value.items()}


@lru_cache(maxsize=1024)
def _field_rank(label: str) -> dict[str, int]:
    """A model's attribute names (name and attname) in its fields' order; {} if unknown."""
    try:
        fields = apps.get_model(label)._meta.concrete_fields
    except (LookupError, ValueError):
        return {}
    rank: dict[str, int] = {}
    for i, field in enumerate(fields):
        rank.setdefault(field.attname, i)
        rank.setdefault(field.name, i)
    return rank


@cache
def _detail_url_template() -> str:
    return reverse("dashboard:event", args=["KEY"])


@dataclass(slots=True, eq=False)
class Row:
    process: str
    seq: int
    time: datetime
    signal: str
    family: str
    sender: str
    summary: str
    payload: dict[str, Any]
    payload_json: str  # compact JSON of payload: made once, shown, searched and stored as is
    detail: dict[str, Any]  # origin, field diff, receivers with timings (core/payload.py)
    request_id: str = ""
    rolled_back: bool = False
    plumbing: bool = False  # the framework's bookkeeping: "my project" hides it (core/filters.py)
    id: int | None = None  # the history's id, once stored

    @property
    def key(self) -> str:
        return format_key(self.process, self.seq)

    @property
    def url(self) -> str:
        return _detail_url_template().replace("KEY", self.key)

    @property
    def time_iso(self) -> str:
        return self.time.isoformat()

    @property
    def time_text(self) -> str:
        """Hours to milliseconds in TIME_ZONE (the table's header names the zone)."""
        t = in_time_zone(self.time)
        # strftime() is twice as slow as formatting the parts
        return f"{t.hour:02}:{t.minute:02}:{t.second:02}.{t.microsecond // 1000:03}"

    @property
    def search_text(self) -> str:
        return search_text(self.signal, self.sender, self.summary, self.payload_json)

    @classmethod
    def from_stored(cls, obj: "StoredEvent") -> "Row":
        return cls(
            process=obj.process,
            seq=obj.seq,
            time=obj.time,
            signal=obj.signal,
            family=obj.family,
            sender=obj.sender,
            summary=obj.summary,
            payload=(payload := in_described_order(obj.payload)),
            payload_json=to_json(payload),
            detail=obj.detail,
            request_id=obj.request_id,
            rolled_back=obj.rolled_back,
            plumbing=obj.plumbing,
            id=obj.pk,
        )

    def record(self) -> dict[str, Any]:
        """What the exports write, in this order (CSV leaves out `detail`)."""
        return {name: getter(self) for name, getter in RECORD.items()}


RECORD = {
    "id": lambda r: r.id,
    "time": lambda r: r.time_iso,
    "signal": lambda r: r.signal,
    "family": lambda r: r.family,
    "sender": lambda r: r.sender,
    "summary": lambda r: r.summary,
    "request_id": lambda r: r.request_id,
    "rolled_back": lambda r: r.rolled_back,
    "payload": lambda r: r.payload,
    "detail": lambda r: r.detail,
}
