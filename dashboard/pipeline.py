"""One batch of captured events → the group message every dashboard gets.

Runs on the publisher's worker thread (off the event loop): describe each event
once, store the batch (so each row carries the id pages resume from), render
one frame.
"""

import logging
from collections import Counter
from typing import Any

from dashboard import conf, history
from dashboard.events import Event, RolledBack
from dashboard.payload import describe_event
from dashboard.render import render_frame

logger = logging.getLogger("dashboard")


def prepare(batch: list[Event | RolledBack], dropped: int) -> dict[str, Any]:
    events = [item for item in batch if isinstance(item, Event)]
    marks = [item.event for item in batch if isinstance(item, RolledBack)]
    rows = [describe_event(e) for e in events]
    try:
        history.store(rows, marks)
    except Exception:
        # Shown live all the same; only resuming and the history miss them.
        logger.exception("dashboard: could not store %d events", len(rows))
    ids = [row["id"] for row in rows if row["id"] is not None]
    html = render_frame(
        rows[::-1][: conf.get("MAX_ROWS")],
        counts=dict(Counter(e.signal for e in events)),
        dropped=dropped,
        rolled_back=[e.db_id for e in marks if e.db_id is not None],
    )
    return {
        "type": "events.batch",
        "html": html,
        "first_id": min(ids, default=None),
        "last_id": max(ids, default=None),
    }
