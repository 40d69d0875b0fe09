"""One batch of captured events → the frame dashboards get, then → the history.

Runs on the publisher's worker threads (off the event loop). The frame goes
out first; storing follows, so the database never sits on the live path.
Pages resume by event key (process, seq), which needs no database round trip.
"""

import logging
from collections import Counter
from typing import Any

from django.db import DatabaseError, connection

from dashboard import conf, history
from dashboard.events import PROCESS, Event, RolledBack
from dashboard.models import StoredEvent
from dashboard.payload import describe_event
from dashboard.render import render_frame

logger = logging.getLogger("dashboard")

Batch = list[Event | RolledBack]


def row_of(event: Event) -> dict[str, Any]:
    """An event's row (what is shown and stored); then its snapshots can go."""
    row = describe_event(event)
    event.described()
    return row


def prepare(
    batch: Batch, dropped: int, unstored: int = 0
) -> tuple[dict[str, Any], list[dict[str, Any]], list[Event]]:
    """Describe each event once and render one frame: (group message, rows, rolled back).

    `dropped` and `unstored` are this process's running counts of events lost to
    a full queue and of sent events the history could not keep."""
    events = [item for item in batch if isinstance(item, Event)]
    marks = [item.event for item in batch if isinstance(item, RolledBack)]
    rows = [row_of(e) for e in events]
    html = render_frame(
        rows[::-1][: conf.get("MAX_ROWS")],
        counts=dict(Counter(e.signal for e in events)),
        dropped=dropped,
        unstored=unstored,
        rolled_back=[e.key for e in marks],
    )
    message = {"type": "events.batch", "html": html, "process": PROCESS}
    if events:
        message.update(first_seq=events[0].seq, last_seq=events[-1].seq)
    return message, rows, marks


_missing_table_reported = False


def store(items: list[dict[str, Any] | Event], marks: list[Event]) -> None:
    """Write sent rows to the history, describing the events nobody watched
    (publisher.py) first; a failure costs history, never the live view."""
    global _missing_table_reported
    try:
        rows = [row_of(item) if isinstance(item, Event) else item for item in items]
        history.store(rows, marks)
    except DatabaseError:
        if _table_missing():
            if not _missing_table_reported:  # e.g. events of the very first migrate
                logger.warning("dashboard: no history table yet (run migrate); not stored")
                _missing_table_reported = True
            return
        logger.exception("dashboard: could not store %d events", len(items))
    except Exception:
        logger.exception("dashboard: could not store %d events", len(items))


def _table_missing() -> bool:
    try:
        return StoredEvent._meta.db_table not in connection.introspection.table_names()
    except DatabaseError:
        return False
