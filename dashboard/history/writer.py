"""The history's write-behind: what the live view sent, stored after it, off its path.

The pump hands each batch over with `keep()` once its frame is out: rows,
or events nobody watched (described here, on the store thread, when
stored), and rolled-back marks. They are stored together, one write at most
every STORE_INTERVAL, on a thread of their own, so a busy pump makes few
transactions and the database never holds up a frame. Past STORE_BACKLOG
unstored rows (a database stuck for a long while) the oldest are not
stored, and counted (`unstored`): history loses them, the live view does
not wait; frames carry the count and the log says so at most once a minute.
"""

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from dashboard.core.events import Event
from dashboard.core.payload import describe_each
from dashboard.core.quiet import quiet_block
from dashboard.core.rows import Row
from dashboard.core.workers import run_in
from dashboard.history import store

logger = logging.getLogger("dashboard")

# Seconds between history writes, at the least. What is kept but unstored when a burst
# ends is stored then (a command's exit, a benchmark's settling, waits for it): at 50 ms,
# 230-265 rows after 300 creates in autocommit, 5-7 ms; at 20 ms, 3 ms, and the creates
# 1.25x the bare time against 1.285x (two alternated scratch A/Bs of 7 rounds). In one
# transaction the same within the noise at 50, 20 and 10 ms (1.25-1.26x): a write's
# own cost is mostly per row (at the history's cap, 0.2 ms and 14 µs a row).
STORE_INTERVAL = 0.02
STORE_BACKLOG = 50_000  # kept rows awaiting the store; past it the oldest are not stored
WARN_EVERY = 60.0  # seconds between warnings that the history is losing events
RETRY_AFTER = 0.5  # seconds before storing again after the database could not; doubling
RETRY_AT_MOST = 10.0

Pending = tuple[list[Row | Event], list[Event], int]  # rows or events, marks, newest seq


class Writer:
    def __init__(self) -> None:
        self.kept_seq = self.stored_seq = 0  # the newest event kept, and stored
        self.unstored = 0  # events kept but never stored: the backlog overflowed, or refused
        self.unavailable = False  # the database could not take the last write
        self.retry_after = 0.0  # seconds before the next try, after a failed one
        self._warned = -WARN_EVERY  # when that was last logged (monotonic)
        self._pending: list[Pending] = []
        self._pending_rows = 0
        self._lock = threading.Lock()  # guards the pending backlog; never held across I/O
        self._write_lock = threading.Lock()  # one writer at a time: history in order
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="dashboard-store")
        self._storing: asyncio.Future[None] | None = None
        self._last_store = 0.0
        self._flushing: threading.Thread | None = None
        # Called on the store thread after each store, done or not (the sidecar
        # tells the capturing process what is stored: sidecar/main.py).
        self.on_stored: Callable[[], None] | None = None

    def keep(self, items: list[Row | Event], marks: list[Event]) -> None:
        """On the pump's loop: store these after the frame that showed them."""
        if items:
            self.kept_seq = items[-1].seq
        with self._lock:
            self._pending.append((items, marks, self.kept_seq))
            self._pending_rows += len(items)
            lost = 0
            while self._pending_rows > STORE_BACKLOG and len(self._pending) > 1:
                rows_lost = len(self._pending.pop(0)[0])
                self._pending_rows -= rows_lost
                lost += rows_lost
            self.unstored += lost
        if lost and time.monotonic() >= self._warned + WARN_EVERY:
            self._warned = time.monotonic()
            logger.warning(
                "dashboard: the history store fell %d events behind; %d sent events will "
                "not be in the history (%d so far)", STORE_BACKLOG, lost, self.unstored
            )
        self._keep_storing()

    def _keep_storing(self) -> None:
        """On a running loop: a store task on it, if none runs there yet."""
        storing = self._storing
        if (
            storing is None
            or storing.done()
            or storing.get_loop() is not asyncio.get_running_loop()
        ):
            self._storing = asyncio.ensure_future(self._store_pending())

    def _retry_later(self) -> None:
        """After flush() could not store: the store task tries again. It may have ended
        meanwhile, having found nothing pending while flush() held the rows, and the rows
        would wait for the next event: started again on its loop."""
        storing = self._storing
        if storing is None or not self._pending:
            return
        loop = storing.get_loop()
        with contextlib.suppress(RuntimeError):  # its loop closed: the next keep() starts one
            loop.call_soon_threadsafe(self._keep_storing)

    async def _store_pending(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            wait = max(STORE_INTERVAL, self.retry_after)
            await asyncio.sleep(max(0.0, self._last_store + wait - loop.time()))
            self._last_store = loop.time()
            try:
                await run_in(self._thread, self.store_now)
            except RuntimeError:  # the store thread is gone (exit): flush() stores them
                return

    def store_now(self) -> None:
        """Store everything kept so far (on a thread that may touch the database)."""
        try:
            self._store_now()
        finally:
            if self.on_stored is not None:
                self.on_stored()

    def _store_now(self) -> None:
        with self._write_lock:
            with self._lock:
                pending, self._pending, self._pending_rows = self._pending, [], 0
            if not pending:
                return
            rows, failed = describe_each(item for items, _, _ in pending for item in items)
            self.count_unstored(failed)
            marks = [mark for _, marks, _ in pending for mark in marks]
            try:
                lost = store.write(rows, marks)
            except store.Unavailable as exc:
                # Locked or unreachable: keep them (described), first in line, and try
                # again; STORE_BACKLOG still bounds what waits.
                with self._lock:
                    self._pending.insert(0, (rows, marks, pending[-1][2]))
                    self._pending_rows += len(rows)
                self.retry_after = min(max(self.retry_after * 2, RETRY_AFTER), RETRY_AT_MOST)
                if not self.unavailable:
                    self.unavailable = True
                    logger.warning(
                        "dashboard: the history store is unavailable (%s); %d events wait "
                        "and are tried again", exc, len(rows)
                    )
                return
            if self.unavailable:
                self.unavailable = False
                logger.warning("dashboard: the history store is back")
            self.retry_after = 0.0
            self.count_unstored(lost)
            self.stored_seq = pending[-1][2]

    def count_unstored(self, n: int) -> None:
        """Events that will never be stored (any thread): the page shows how many."""
        if n:
            with self._lock:
                self.unstored += n

    @property
    def idle(self) -> bool:
        storing = self._storing
        return (
            not self._pending
            and (storing is None or storing.done())
            and not (self._flushing and self._flushing.is_alive())
        )

    def flush(self, timeout: float = 2.0, final: bool = False) -> None:
        """Store what is kept but unstored, now (atexit; tests). On a thread of its
        own: the caller's thread may be inside a transaction, which must not
        carry (or roll back) the history; at exit the store thread is gone."""

        if self.idle:  # nothing kept, nothing being stored: no thread to start
            return

        def store_quietly() -> None:
            with quiet_block():
                self.store_now()
            if not final:
                self._retry_later()
                return
            with self._lock:  # still unavailable at exit: these are lost with the process
                left, self._pending, self._pending_rows = self._pending_rows, [], 0
            if left:
                self.unstored += left
                logger.warning("dashboard: %d events could not be stored before exit", left)

        try:
            self._flushing = threading.Thread(target=store_quietly, name="dashboard-flush")
            self._flushing.start()
            self._flushing.join(timeout)
        except RuntimeError:  # no new threads this late in shutdown
            store_quietly()

    def stop_on(self, loop: asyncio.AbstractEventLoop) -> None:
        """Cancel the store task if it runs on `loop` (the pump leaves it): what it
        holds stays pending, for the next loop or flush()."""
        storing = self._storing
        if storing is not None and not storing.done() and storing.get_loop() is loop:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(storing.cancel)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """No write starts meanwhile, and none is under way (tests: while a test's
        database goes away, a write cut off half-way would leave its transaction open,
        and on SQLite the write lock taken, for good)."""
        with self._write_lock:
            yield

    def reset(self) -> None:
        """Forget what is pending and the counters (tests)."""
        with self._lock:
            self._pending, self._pending_rows = [], 0
        self.kept_seq = self.stored_seq = self.unstored = 0
        self.unavailable, self.retry_after = False, 0.0
        self._warned = -WARN_EVERY
        self._storing = None

    def _after_fork(self) -> None:
        """In a forked child: the parent's thread is not here, nor its backlog."""
        self.reset()
        self._lock, self._write_lock = threading.Lock(), threading.Lock()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="dashboard-store")
        self._flushing = None


writer = Writer()
os.register_at_fork(after_in_child=writer._after_fork)
