"""The dashboard's one filter rule: parsed from the URL query, applied to stored
events here and to live rows by dashboard.js (`matches()`), alike:

- family and signal: any of the chosen ones (`?family=model&family=auth`; a value
  may also list several, comma-separated: `?family=model,auth`);
- sender: a case-insensitive part of the row's sender (`post` finds `blog.Post`).
  Case is folded by the database (SQLite folds ASCII letters only) and by
  JavaScript's toLowerCase(): senders are model labels and class names;
- request id: exact;
- `q`: a case-insensitive substring of the row's search text, `search_text()`:
  its signal, sender, summary and payload JSON, as the row shows them (not its
  time, badge or links). The history stores it lower-cased; dashboard.js
  reads the same four texts from the row's cells;
- `mine`: "my project" — leave out the framework's plumbing (`is_plumbing()`),
  marked on each row when it is described.

Every filter given must hold (AND); within family and signal, any value (OR).
tests/test_filters.py runs the same cases through both.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import ClassVar
from urllib.parse import urlencode

from django.db.models import QuerySet

MAX_LENGTH = 200  # of each value; the page's inputs take no more (maxlength)
MAX_VALUES = 50  # families or signals in one filter
MULTI = ("family", "signal")
OFF = frozenset({"", "0", "false", "off", "no"})  # `mine` not asked for


def _text(raw: object) -> str:
    """A value as filtered: no NUL (SQLite's LIKE stops at one, so "\x00zzz" matched every
    stored row, and no live one), trimmed, at most MAX_LENGTH."""
    return str(raw).replace("\x00", "").strip()[:MAX_LENGTH]


def _values(raw: object) -> tuple[str, ...]:
    """A multi-valued filter: a list of values, each of which may hold several
    comma-separated; stripped, empty ones and repeats left out, in order."""
    items: Iterable[object] = raw if isinstance(raw, (list, tuple)) else (raw,)
    out: list[str] = []
    for item in items:
        if item is None:
            continue
        for part in str(item).split(","):
            part = _text(part)
            if part and part not in out:
                out.append(part)
                if len(out) == MAX_VALUES:  # and no more: bounded work for any input
                    return tuple(out)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class EventFilter:
    family: tuple[str, ...] = ()
    signal: tuple[str, ...] = ()
    sender: str = ""
    request: str = ""
    q: str = ""
    mine: str = ""
    MAX_LENGTH: ClassVar[int] = MAX_LENGTH  # for the page's inputs

    @classmethod
    def from_query(cls, data: Mapping[str, object]) -> "EventFilter":
        """From a QueryDict (repeated parameters) or a plain mapping (the
        page's resume message: lists or strings)."""
        getlist = getattr(data, "getlist", None)

        def value(name: str) -> str:
            raw = data.get(name, "")
            if isinstance(raw, (list, tuple)):
                raw = raw[-1] if raw else ""
            return _text(raw) if raw is not None else ""

        def values(name: str) -> tuple[str, ...]:
            return _values(getlist(name) if getlist else data.get(name))

        found = {f.name: values(f.name) if f.name in MULTI else value(f.name)
                 for f in fields(cls)}  # fmt: skip
        found["mine"] = "" if found["mine"].lower() in OFF else "1"  # ?mine=0: not asked
        return cls(**found)

    def apply(self, events: QuerySet) -> QuerySet:
        if self.family:
            events = events.filter(family__in=self.family)
        if self.signal:
            events = events.filter(signal__in=self.signal)
        if self.sender:
            events = events.filter(sender__icontains=self.sender)
        if self.request:
            events = events.filter(request_id=self.request)
        if self.q:
            events = events.filter(search_text__contains=self.q.lower())
        if self.mine:
            events = events.filter(plumbing=False)
        return events

    def as_dict(self) -> dict[str, str | list[str]]:
        """The filters that are set: lists for family and signal (the page's
        resume message, and its chips)."""
        out: dict[str, str | list[str]] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v:
                out[f.name] = list(v) if f.name in MULTI else v
        return out

    def as_query(self) -> str:
        """A bookmarkable query: `family=model&family=auth&sender=post`."""
        return urlencode(self.as_dict(), doseq=True)

    def __bool__(self) -> bool:
        return bool(self.as_dict())


def search_text(signal: str, sender: str, summary: str, payload_json: str) -> str:
    """What `q` searches, lower-cased: the row's four texts, space-separated."""
    return f"{signal} {sender} {summary} {payload_json}".lower()


# "My project" hides the framework's plumbing: what every request, login or
# migration sends whatever the project does, and which made four rows in five
# of an admin session. Requests stay, one row each: request_finished carries
# the method, path, status and duration; request_started adds nothing to it.
PLUMBING_SIGNALS = frozenset({
    "request_started",  # its request_finished row says it all
    "connection_created",  # a new database connection: per request under conn_max_age=0
    "pre_init", "post_init",  # every row a query loads, if recorded at all
    "class_prepared", "pre_migrate", "post_migrate",  # start-up and migrations
})  # fmt: skip
PLUMBING_SENDERS = frozenset({
    "sessions.Session",  # a login, a logout, every session write
    "admin.LogEntry",  # the admin's record of each change (the change itself shows)
    "contenttypes.ContentType", "auth.Permission",  # made by migrate
})  # fmt: skip


def is_plumbing(signal: str, sender: str, payload: dict[str, object]) -> bool:
    """Whether a row is the framework's bookkeeping rather than the project's doing."""
    if signal in PLUMBING_SIGNALS or sender in PLUMBING_SENDERS:
        return True
    # A login's own save of the user: update_fields=["last_login"].
    return payload.get("update_fields") == ["last_login"]
