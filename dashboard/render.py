"""Rows → the HTML frame dashboards swap in. Live frames are rendered once per batch."""

import json
from typing import Any

from django.template.loader import render_to_string

from dashboard.events import PROCESS


def render_frame(
    rows: list[dict[str, Any]],
    counts: dict[str, int],
    dropped: int | None = None,
    rolled_back: list[str] | tuple[str, ...] = (),
    history_id: int | None = None,
) -> str:
    """One frame: `rows` newest first, plus counts of every event the frame stands for.

    Callers pass at most MAX_ROWS rows (more would be trimmed by the page at
    once); the counts still include the rest, so the page's counters stay exact.
    """
    return render_to_string(
        # A partial of the page's own template: rows render with no lookup per row.
        "dashboard/index.html#frame",
        {
            "rows": rows,
            "counts_json": json.dumps(counts),
            "total": sum(counts.values()),
            "dropped": dropped,
            "process": PROCESS,
            "rolled_back": ",".join(rolled_back),
            "history_id": history_id,
        },
    )
