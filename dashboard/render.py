"""Events → the HTML fragment every dashboard swaps in: rendered once per batch."""

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from django.template.loader import render_to_string

from dashboard import conf
from dashboard.events import PROCESS, Event
from dashboard.payload import describe, summarize


def row(event: Event) -> dict[str, Any]:
    """What the row template needs of one event."""
    payload = describe(event.raw)
    return {
        "id": event.id,
        "seq": event.seq,
        "time": datetime.fromtimestamp(event.time, UTC),
        "signal": event.signal,
        "family": event.family,
        "sender": event.sender,
        "summary": summarize(payload),
        "payload": json.dumps(payload, indent=2, ensure_ascii=False, default=str),
        "request_id": event.request_id,
    }


def render_batch(events: list[Event], dropped: int = 0) -> str:
    """One frame: the newest rows on top, and counts for every event in the batch.

    Rows beyond MAX_ROWS would be trimmed by the page at once, so they are not
    rendered; the counts still include them, so the page's counters stay exact.
    """
    newest = events[::-1][: conf.get("MAX_ROWS")]
    counts = Counter(e.signal for e in events)
    return render_to_string(
        "dashboard/batch.html",
        {
            "rows": [row(e) for e in newest],
            "counts": json.dumps(counts),
            "total": len(events),
            "dropped": dropped,
            "process": PROCESS,
        },
    )
