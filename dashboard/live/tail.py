"""Other processes' events, live, when no channel layer reaches them: from the history.

A shell, a management command or a cron job stores what it captures (its own
writer, history/writer.py) but has no socket and, in the embedded default
(the in-memory layer, or none), no way to reach this server's dashboards. So
while a dashboard is open here, this task reads the rows other processes
stored since it last looked, every TAIL_EVERY, and hands them to this
process's sockets as frames, one per process (the consumer's per-process
`seen` marks then apply as to any frame). With a layer that crosses
processes (channels-redis) their frames arrive through it, and this does not run.

History writes become visible in id order, whichever process stores them
(SQLite and PostgreSQL: history/store.py `_in_commit_order`), so each look
reads the ids above the newest the last look saw, whoever stored them: this
process's own rows move that mark too, and a look costs what was stored
since the last, however long the page has been open.

A look's last frame carries the newest id it covered (`covered`) as its history id,
which the page sends back as `after` when it resumes: every row up to it is on the
page, other processes' in these frames and this process's in its own live frames.
Otherwise a page's `after` moved only with what it read from the history, and on a
reconnect the backfill sent again the rows of every process that had fallen out of
the `seen` the page sends (its newest 64 processes). A row of this process whose
live frame has not been handed to the sockets yet (its sidecar stores after sending
it back, and the frame may still be on its way here) stops the covered id below it.

The looks run on a thread of their own, which keeps its database connection from
one look to the next: through `database_sync_to_async`, Django's default
CONN_MAX_AGE = 0 closed it after every look, and PostgreSQL's connect (about 4 ms
here) four times a second was most of what a look cost the server. It is closed
when a look fails (the database restarted: the next look connects anew) and when
the tail stops.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import connections

from dashboard import conf
from dashboard.core import keys
from dashboard.core.quiet import quiet
from dashboard.core.render import frame_of
from dashboard.core.rows import Row
from dashboard.core.workers import run_in
from dashboard.history.access import perms_of
from dashboard.models import StoredEvent

logger = logging.getLogger("dashboard")

TAIL_EVERY = 0.25  # seconds between looks at the history


class Tail:
    def __init__(self, relayed: Callable[[], int] = lambda: 0) -> None:
        self.newest_id: int | None = None  # None: not started; the newest id looked at
        # The newest seq of this process's frames handed to its sockets (live/fanout.py).
        self.relayed = relayed
        # The last look's: every row up to this id is on a page that took its frames.
        self.covered: int | None = None

    def read(self) -> list[Row]:
        """Rows other processes stored since the last look (in the worker thread)."""
        newest = StoredEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        if self.newest_id is None:  # start from now: pages get the past by resuming
            self.newest_id = newest
            return []
        limit, since, own = 10 * conf.get("MAX_ROWS"), self.newest_id, keys.process()
        relayed = self.relayed()  # before the read: a frame relayed meanwhile is not counted
        events = list(
            StoredEvent.objects.filter(id__gt=since, id__lte=newest)
            .exclude(process=own)
            .order_by("id")[:limit]
        )
        # More than a look takes: the rest next time, from where this one stopped.
        self.newest_id = events[-1].id if len(events) == limit else newest
        if not events:  # no frame to carry the covered id: nothing more to read
            self.covered = None
            return []
        # This process's rows whose frames have not reached the sockets: few, found by
        # the (process, seq) index.
        unrelayed = (
            StoredEvent.objects.filter(process=own, seq__gt=relayed, id__gt=since)
            .order_by("id")
            .values_list("id", flat=True)
            .first()
        )
        self.covered = self.newest_id if unrelayed is None else min(self.newest_id, unrelayed - 1)
        return [Row.from_stored(e) for e in events]

    def frames(self, rows: list[Row]) -> list[dict[str, Any]]:
        """One frame per process, its rows in seq order, the frames in the order their
        newest rows were stored (the page puts each on top); the last with the id the
        look covered (a page forwards frames in order: it then holds the others too)."""
        by_process: dict[str, list[Row]] = {}
        for row in sorted(rows, key=lambda r: (r.process, r.seq)):
            by_process.setdefault(row.process, []).append(row)
        in_order = sorted(by_process.items(), key=lambda item: item[1][-1].id or 0)
        messages = []
        for n, (process, found) in enumerate(in_order, 1):
            html = frame_of(found, history_id=self.covered if n == len(in_order) else None)
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
        self.newest_id = None
        looks = ThreadPoolExecutor(1, thread_name_prefix="dashboard-tail")
        try:
            while wanted():
                try:
                    for message in self.frames(await run_in(looks, self.read)):
                        await deliver(message)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("dashboard: could not read other processes' events")
                    looks.submit(connections.close_all)  # the next look connects anew
                await asyncio.sleep(TAIL_EVERY)
        finally:
            # Its connection, closed in its thread (connections are per thread); not
            # waited for: this may run on a loop that is stopping.
            with contextlib.suppress(RuntimeError):  # the interpreter is exiting
                looks.submit(connections.close_all)
            looks.shutdown(wait=False)
