"""The dashboard's one filter rule: parsed from the URL query, applied to stored
events here and to live rows by dashboard.js (`matches()`), alike:

- family, signal, sender and request id: exact;
- `q`: a case-insensitive substring of the row's search text, `search_text()`:
  its signal, sender, summary and payload JSON, as the row shows them (not its
  time, badge or links). The history stores it lower-cased; dashboard.js
  reads the same four texts from the row's cells;
- `mine`: "my project" — leave out the framework's plumbing (`is_plumbing()`),
  marked on each row when it is described.

tests/test_filters.py runs the same cases through both.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from urllib.parse import urlencode

from django.db.models import QuerySet

MAX_LENGTH = 200


@dataclass(frozen=True, slots=True)
class EventFilter:
    family: str = ""
    signal: str = ""
    sender: str = ""
    request: str = ""
    q: str = ""
    mine: str = ""

    @classmethod
    def from_query(cls, data: Mapping[str, object]) -> "EventFilter":
        def value(name: str) -> str:
            raw = data.get(name, "")
            return str(raw).strip()[:MAX_LENGTH] if raw is not None else ""

        return cls(**{name: value(name) for name in cls.__slots__})

    def apply(self, events: QuerySet) -> QuerySet:
        exact = {
            "family": self.family,
            "signal": self.signal,
            "sender": self.sender,
            "request_id": self.request,
        }
        events = events.filter(**{k: v for k, v in exact.items() if v})
        if self.q:
            events = events.filter(search_text__contains=self.q.lower())
        if self.mine:
            events = events.filter(plumbing=False)
        return events

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v}

    def as_query(self) -> str:
        return urlencode(self.as_dict())

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
