"""What one signal becomes: an event, captured cheaply and described later.

`Event.raw` holds snapshots taken when the signal fired (see capture.py);
turning them into the safe, readable payload (see payload.py) is left to the
publisher, off the sender's path.
"""

import itertools
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

# Identifies this process in events, so several can be told apart.
PROCESS = f"{socket.gethostname()}:{os.getpid()}"

# itertools.count is atomic under the GIL: receivers in any thread may call it.
_sequence = itertools.count(1)


@dataclass(slots=True, eq=False)
class Event:
    signal: str
    family: str
    sender: str
    raw: dict[str, Any]
    request_id: str | None = None
    seq: int = field(default_factory=lambda: next(_sequence))
    time: float = field(default_factory=time.time)
    # Where the project's own code sent it from ("blog/admin.py:42 in save_model").
    origin: str | None = None
    # The stored values before an update (pre_save), for post_save's field diff.
    before: dict[str, Any] | None = None
    # (receiver, seconds) for every receiver of this dispatch, ours included.
    timings: list[tuple[Any, float]] = field(default_factory=list)
    # Set when the transaction it was sent in rolls back (transactions.py).
    rolled_back: bool = False
    # The StoredEvent id once stored (history.py).
    db_id: int | None = None


@dataclass(slots=True, eq=False)
class RolledBack:
    """Queued after an event whose transaction rolled back, to mark it everywhere."""

    event: Event
