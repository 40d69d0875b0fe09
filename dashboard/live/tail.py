"""Other processes' events, live, when no channel layer reaches them: from the history.

A shell, a management command or a cron job stores what it captures (its own
writer, history/writer.py) but has no socket and, in the embedded default
(the in-memory layer, or none), no way to reach this server's dashboards. So
while a dashboard is open here, this task reads the rows other processes
stored since it last looked, every TAIL_EVERY, and hands them to this
process's sockets as frames, one per process (the consumer's per-process
`seen` marks then apply as to any frame). With a layer that crosses
processes (channels-redis) their frames arrive through it, and this does not run.

A process stores its events in seq order (one writer), but two processes'
transactions may commit out of id order (PostgreSQL), so each look reads
again what was stored in the last LATE seconds, and what was sent already is
skipped by (process, seq). Each look reads from the table's newest id as of
LATE seconds ago, whoever stored it: this process's own rows move the mark
too, so a look scans the last second's rows however long the page has been
open (it once scanned every row since the page opened, while no other
process stored anything: a growing cost per look).
"""

import asyncio
import logging
import time
from collections import Counter, deque
from typing import Any

from channels.db import database_sync_to_async

from dashboard import conf
from dashboard.core import keys
from dashboard.core.quiet import quiet
from dashboard.core.render import render_frame
from dashboard.core.rows import Row
from dashboard.history.access import perms_of
from dashboard.models import StoredEvent

logger = logging.getLogger("dashboard")

TAIL_EVERY = 0.25  # seconds between looks at the history
LATE = 1.0  # seconds: rows committed this long after their ids were taken are still seen


class Tail:
    def __init__(self) -> None:
        # (when, newest id then) of recent looks: the oldest is where the next look
        # reads from. Empty: not started.
        self.marks: deque[tuple[float, int]] = deque()
        self.sent: dict[str, int] = {}  # per process, the newest seq handed on

    def read(self) -> list[Row]:
        """Rows other processes stored since the last look (in the worker thread)."""
        now = time.monotonic()
        newest = StoredEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        if not self.marks:  # start from now: pages get the past by resuming
            self.marks.append((now, newest))
            return []
        while len(self.marks) > 1 and self.marks[1][0] <= now - LATE:
            self.marks.popleft()
        since = self.marks[0][1]
        limit = 10 * conf.get("MAX_ROWS")
        events = list(
            StoredEvent.objects.filter(id__gt=since, id__lte=newest)
            .exclude(process=keys.process())
            .order_by("id")[:limit]
        )
        if len(events) == limit:  # more than a look takes: the rest next time, from here
            self.marks.clear()
            newest = events[-1].id
        self.marks.append((now, newest))
        rows = [Row.from_stored(e) for e in events]
        return [r for r in rows if r.seq > self.sent.get(r.process, 0)]

    def frames(self, rows: list[Row]) -> list[dict[str, Any]]:
        """One frame per process, its rows in seq order."""
        by_process: dict[str, list[Row]] = {}
        for row in sorted(rows, key=lambda r: (r.process, r.seq)):
            by_process.setdefault(row.process, []).append(row)
        messages = []
        for process, found in by_process.items():
            self.sent[process] = found[-1].seq
            html = render_frame(
                found[::-1][: conf.get("MAX_ROWS")],
                counts=dict(Counter(r.signal for r in found)),
                plumbing=sum(r.plumbing for r in found),
            )
            message = {"type": "events.batch", "html": html, "process": process,
                       "first_seq": found[0].seq, "last_seq": found[-1].seq}  # fmt: skip
            if perms := perms_of(found):
                message["perms"] = perms
            messages.append(message)
        return messages

    async def run(self, deliver: Any, wanted: Any) -> None:
        """Look every TAIL_EVERY and deliver what other processes stored, while
        `wanted()` (a dashboard is open here); then start afresh next time."""
        quiet.set(True)  # its queries are the dashboard's own
        self.marks, self.sent = deque(), {}
        while wanted():
            try:
                for message in self.frames(await database_sync_to_async(self.read)()):
                    await deliver(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("dashboard: could not read other processes' events")
            await asyncio.sleep(TAIL_EVERY)
