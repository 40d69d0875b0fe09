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

# Identifies this process in events, so the page can tell several apart.
PROCESS = f"{socket.gethostname()}:{os.getpid()}"

# itertools.count is atomic under the GIL: receivers in any thread may call it.
_sequence = itertools.count(1)


@dataclass(slots=True)
class Event:
    signal: str
    family: str
    sender: str
    raw: dict[str, Any]
    request_id: str | None = None
    seq: int = field(default_factory=lambda: next(_sequence))
    time: float = field(default_factory=time.time)

    @property
    def id(self) -> str:
        return f"{PROCESS}-{self.seq}"
