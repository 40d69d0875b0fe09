"""What one signal becomes: an event, captured cheaply and described later.

`Event.raw` holds snapshots taken when the signal fired (dashboard/capture/);
turning them into the safe, readable row (core/payload.py) happens later,
off the sender's path. The snapshot types live here, beside the event, so
that describing needs nothing of the capture.
"""

import time
from dataclasses import dataclass, field
from typing import Any

from dashboard.core.keys import format_key

# Writes that send no model signal, each an event of its own (capture/writes.py): their
# names, which the page lists beside the signals' to filter by.
WRITE_EVENTS = ("QuerySet.update", "QuerySet.bulk_create", "QuerySet.bulk_update",
                "QuerySet.delete", "Model.delete", "cursor.execute", "cursor.executemany")
_NOTHING: dict[str, Any] = {}  # what a described event's raw is (never written to)
SENDER_MAX_LENGTH = 200  # a sender's label, at most (the history's column: models.py)


# Plain slots dataclasses, not frozen ones: a frozen __init__ goes through
# object.__setattr__ per field, and one is made per instance per signal.
@dataclass(slots=True)
class InstanceSnapshot:
    label: str
    pk: Any
    text: str
    fields: dict[str, Any]


@dataclass(slots=True)
class RequestSnapshot:
    method: str
    path: str


@dataclass(slots=True)
class ReceiverTiming:
    """One receiver of a dispatch: the function, its seconds, whether it raised, and
    its own SQL (queries it ran itself, not those of dispatches it set off)."""

    receiver: Any
    seconds: float
    raised: bool = False
    queries: int = 0
    sql_seconds: float = 0.0


@dataclass(slots=True, eq=False)
class Event:
    signal: str
    family: str
    sender: str
    raw: dict[str, Any]
    request_id: str | None = None
    # Set as the queue is drained (live/handoff.py, core/keys.py): the event's key.
    process: str = ""
    seq: int = 0
    time: float = field(default_factory=time.time)
    # Where the project's own code sent it from ("blog/admin.py:42 in save_model").
    origin: str | None = None
    # The stored values before an update (pre_save), for post_save's field diff.
    before: dict[str, Any] | None = None
    # Every receiver of this dispatch, ours included (capture/timing.py).
    timings: list[ReceiverTiming] = field(default_factory=list)
    # Set when the transaction it was sent in rolls back (capture/transactions.py).
    rolled_back: bool = False
    # Numbered as captured (core/keys.py), so an event sent from another's dispatch (a
    # receiver that saves, sends or deletes) can name it: its cause.
    cid: int = 0
    cause: int | None = None
    # Which receiver of its cause sent it (its index among the cause's receivers).
    cause_receiver: int | None = None
    # How long the whole send took (its receivers, ours included), in seconds.
    duration: float | None = None
    # The signal's receivers when it was sent, and id(sender): so describing can say
    # which did not run, and why.
    receivers_then: list[Any] | None = None
    sender_id: int = 0
    # The ids of the senders the signal was sent with so far (capture/seen.py's set,
    # not a copy): a receiver connected for one never among them has never run.
    sent_with: set[int] | None = None
    # The receivers named ({"timed": [...], "not_run": [...]}, core/payload.py) where
    # the functions live, before the event crosses to the sidecar process (sidecar/wire.py).
    named: dict[str, Any] | None = None

    def described(self) -> None:
        """Drop the snapshots once described: an event stays referenced until its
        transaction ends (capture/transactions.py), and a long one holds thousands."""
        self.raw, self.before, self.timings, self.receivers_then = _NOTHING, None, [], None
        self.named = self.sent_with = None

    @property
    def key(self) -> str:
        return format_key(self.process, self.seq)


@dataclass(slots=True, eq=False)
class RolledBack:
    """Queued after an event whose transaction rolled back, to mark it everywhere."""

    event: Event
