"""What one signal becomes: an event, captured cheaply and described later.

`Event.raw` holds snapshots taken when the signal fired (see capture.py);
turning them into the safe, readable payload (see payload.py) is left to the
publisher, off the sender's path.
"""

import itertools
import os
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any

# Identifies this process in events and in URLs, so several can be told apart.
PROCESS = re.sub(r"[^A-Za-z0-9_.-]", "-", f"{socket.gethostname()}-{os.getpid()}")

# Numbered by the publisher as it dequeues (one pump per process): so sequence
# order is the order frames leave in, which resuming relies on. A receiver's
# event can be enqueued after a later one (it waits for its dispatch to end).
next_seq = itertools.count(1).__next__
_NOTHING: dict[str, Any] = {}  # what a described event's raw is (never written to)


@dataclass(slots=True, eq=False)
class Event:
    signal: str
    family: str
    sender: str
    raw: dict[str, Any]
    request_id: str | None = None
    seq: int = 0  # set by the publisher
    time: float = field(default_factory=time.time)
    # Where the project's own code sent it from ("blog/admin.py:42 in save_model").
    origin: str | None = None
    # The stored values before an update (pre_save), for post_save's field diff.
    before: dict[str, Any] | None = None
    # (receiver, seconds) for every receiver of this dispatch, ours included.
    timings: list[tuple[Any, float]] = field(default_factory=list)
    # Set when the transaction it was sent in rolls back (transactions.py).
    rolled_back: bool = False

    def described(self) -> None:
        """Drop the snapshots once described: an event stays referenced until its
        transaction ends (transactions.py), and a long one holds thousands."""
        self.raw, self.before, self.timings = _NOTHING, None, []

    @property
    def key(self) -> str:
        """Unique across processes; what rows, URLs and resuming use."""
        return f"{PROCESS}.{self.seq}"


@dataclass(slots=True, eq=False)
class RolledBack:
    """Queued after an event whose transaction rolled back, to mark it everywhere."""

    event: Event
