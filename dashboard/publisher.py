"""The hand-off between receivers and the dashboards: one publisher per process.

Receivers call `publish()`, which appends to a bounded deque and, only when
the pump is idle, wakes it with one `call_soon_threadsafe`. The pump runs on
one long-lived event loop: the server's own under daphne (bound by the ASGI
middleware and the consumer), otherwise a daemon thread started on demand
(management commands, the shell, tests).

Adaptive batching (pacing.py): an idle pump sends the first event at once; it
then pauses at least as long as that frame cost, and under load longer and
longer (up to LOAD_PAUSE; never past the window, BATCH_WINDOW), so
everything that arrived meanwhile goes out as one frame, rendered once,
which the fanout (fanout.py) hands to this process's sockets and to the
layer.
"""

import asyncio
import atexit
import contextlib
import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from dashboard import conf, context
from dashboard.events import Event, next_seq
from dashboard.fanout import fanout
from dashboard.pacing import Pacer

if TYPE_CHECKING:
    from dashboard.events import RolledBack

logger = logging.getLogger("dashboard")


class Publisher:
    def __init__(self) -> None:
        self.queue: deque[Event | RolledBack] = deque()
        self.dropped = 0
        self.sent_batches = 0
        self.sent_seq = self.stored_seq = 0  # the newest event sent, and stored
        self.unstored = 0  # events sent but never stored: the history backlog overflowed
        self._unstored_warned = -WARN_EVERY  # when that was last logged (monotonic)
        self._lock = threading.Lock()  # guards binding and the drop counter
        self._armed = False  # True while the pump will drain without being woken
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="dashboard-render")
        self._store = ThreadPoolExecutor(1, thread_name_prefix="dashboard-store")
        self._storing: asyncio.Future[None] | None = None
        # (described rows, or events nobody watched; rolled-back marks; newest seq)
        self._unstored: list[tuple[list[Any], list[Any], int]] = []
        self._unstored_rows = 0
        self._last_store = 0.0
        self._flushing: threading.Thread | None = None
        self._store_lock = threading.Lock()  # guards the unstored backlog
        self._write_lock = threading.Lock()  # one history writer at a time
        self._capacity: int | None = None

    # -- the receivers' side: cheap, never blocks, never raises ------------------

    def publish(self, event: "Event | RolledBack") -> None:
        if self._capacity is None:
            self._capacity = conf.get("QUEUE_SIZE")
        if len(self.queue) >= self._capacity:
            with self._lock:
                self.dropped += 1
            return
        self.queue.append(event)
        if not self._armed:
            self._armed = True
            self._notify()

    def _notify(self) -> None:
        loop, wake = self._loop, self._wake
        if _usable(loop) and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)  # type: ignore[union-attr]
                return
            except RuntimeError:  # the loop closed under us
                pass
        self._start_thread()

    # -- binding to a loop --------------------------------------------------------

    def bind_running_loop(self) -> None:
        """Run the pump on the calling coroutine's loop (the server's)."""
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return
        with self._lock:
            if loop is self._loop:
                return
            self._bind(loop)

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        # Called with the lock held. The pump on the old loop ends; a daemon loop stops.
        self._retire()
        self._loop = loop
        self._wake = asyncio.Event()

        wake = self._wake

        def start() -> None:
            self._task = loop.create_task(self._pump(loop, wake))
            # The old pump may have left itself armed: this one starts by looking.
            self._armed = True
            wake.set()

        loop.call_soon_threadsafe(start)

    def _start_thread(self) -> None:
        """Bind to a daemon loop of our own, unless a usable loop was bound meanwhile."""
        with self._lock:
            if not _usable(self._loop):
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="dashboard-publisher", daemon=True
                ).start()
                self._bind(loop)
                self._thread_loop = loop
            loop, wake = self._loop, self._wake
        loop.call_soon_threadsafe(wake.set)  # type: ignore[union-attr]

    # -- the pump: runs on the bound loop ----------------------------------------

    async def _pump(self, loop: asyncio.AbstractEventLoop, wake: asyncio.Event) -> None:
        # Everything the pump causes (renders, layer I/O, DB connections) is quiet.
        context.quiet.set(True)
        pacer = Pacer()
        while self._loop is loop:
            await wake.wait()
            wake.clear()
            while self._loop is loop:
                if self.queue:
                    started = loop.time()
                    batch = self._drain()
                    watched = await self._hand_on(batch)
                    window = conf.get("BATCH_WINDOW")
                    cost = loop.time() - started
                    # Unwatched, nobody waits: one window, so the saves are not
                    # interrupted by a pump that has nothing to show.
                    pause = pacer.after(len(batch), started, cost, window) if watched else window
                    await asyncio.sleep(pause)
                    continue
                pacer.idle()
                # Idle: disarm, then look once more, since a publish() that saw
                # `_armed` still True just before did not wake us.
                self._armed = False
                if not self.queue:
                    break
                self._armed = True

    def _drain(self) -> list["Event | RolledBack"]:
        batch = []
        queue = self.queue
        while queue:
            item = queue.popleft()
            if isinstance(item, Event):
                item.seq = next_seq()
            batch.append(item)
        return batch

    async def _hand_on(self, batch: list["Event | RolledBack"]) -> bool:
        """Send the batch as a frame, or keep it for the store; True if sent (watched)."""
        if fanout.watched():
            await self._send(batch)
            return True
        self._keep(batch)
        return False

    async def _send(self, batch: list["Event | RolledBack"]) -> None:
        from dashboard import pipeline

        try:
            if len(batch) <= INLINE_BATCH:
                # Small frames are prepared right here: a hop to the render thread
                # and back would cost two waits for the GIL, each up to the
                # interpreter's switch interval (5 ms) while a save is running.
                message, rows, marks = pipeline.prepare(batch, self.dropped, self.unstored)
            else:  # big ones on the render thread, so the loop keeps serving sockets
                message, rows, marks = await self._in_worker(
                    self._worker, pipeline.prepare, batch, self.dropped, self.unstored
                )
        except Exception:
            logger.exception("dashboard: could not prepare %d events", len(batch))
            return
        self.sent_batches += 1
        self.sent_seq = message.get("last_seq", self.sent_seq)
        try:
            await fanout.publish(message)
        except Exception:
            # A broken layer costs other processes' dashboards these events, never a save.
            logger.exception("dashboard: could not publish %d events", len(batch))
        self._to_store(rows, marks)

    def _keep(self, batch: list["Event | RolledBack"]) -> None:
        """Nobody watching: no frame; the events are described when stored."""
        events = [item for item in batch if isinstance(item, Event)]
        if events:
            self.sent_seq = events[-1].seq
        self._to_store(events, [item.event for item in batch if not isinstance(item, Event)])

    def _to_store(self, rows: list[Any], marks: list[Event]) -> None:
        # Store after sending: the database never sits on the live path. Sent
        # frames are stored together, one write at most every STORE_INTERVAL,
        # so a busy pump makes few transactions. Past STORE_BACKLOG unstored
        # rows (a database stuck for a long while) the oldest are not stored,
        # and counted: history loses them, the live view does not wait. Rows
        # are described already, or events (nobody watched) described then.
        with self._store_lock:
            self._unstored.append((rows, marks, self.sent_seq))
            self._unstored_rows += len(rows)
            lost = 0
            while self._unstored_rows > STORE_BACKLOG and len(self._unstored) > 1:
                rows_lost = len(self._unstored.pop(0)[0])
                self._unstored_rows -= rows_lost
                lost += rows_lost
            self.unstored += lost
        if lost and time.monotonic() >= self._unstored_warned + WARN_EVERY:
            self._unstored_warned = time.monotonic()
            logger.warning(
                "dashboard: the history store fell %d events behind; %d sent events will "
                "not be in the history (%d so far)", STORE_BACKLOG, lost, self.unstored
            )
        storing = self._storing
        if (
            storing is None
            or storing.done()
            or storing.get_loop() is not asyncio.get_running_loop()
        ):
            self._storing = asyncio.ensure_future(self._store_pending())

    async def _store_pending(self) -> None:
        loop = asyncio.get_running_loop()
        while self._unstored:
            await asyncio.sleep(max(0.0, self._last_store + STORE_INTERVAL - loop.time()))
            self._last_store = loop.time()
            try:
                await self._in_worker(self._store, self._store_unstored, inline=False)
            except RuntimeError:  # the store thread is gone (exit): flush() stores them
                return

    def _store_unstored(self) -> None:
        """Store every sent batch not stored yet. One writer at a time, taking
        and storing together, keeps history in sending order."""
        from dashboard import pipeline

        with self._write_lock:
            with self._store_lock:  # never held across I/O: the loop takes it too
                pending, self._unstored, self._unstored_rows = self._unstored, [], 0
            if not pending:
                return
            rows = [row for batch_rows, _, _ in pending for row in batch_rows]
            marks = [mark for _, batch_marks, _ in pending for mark in batch_marks]
            pipeline.store(rows, marks)
            self.stored_seq = pending[-1][2]

    async def wait_stored(self, timeout: float = 2.0) -> None:
        """Until what this process has sent so far is stored (a page resuming reads it)."""
        target, deadline = self.sent_seq, time.monotonic() + timeout
        while self.stored_seq < target and time.monotonic() < deadline:
            await asyncio.sleep(0.002)

    async def _in_worker(
        self,
        executor: ThreadPoolExecutor,
        func: Callable[..., Any],
        *args: Any,
        inline: bool = True,
    ) -> Any:
        """Run blocking work on a thread of ours, in this (quiet) context, so the
        loop keeps serving sockets meanwhile. At exit the executors are shut
        down: work that touches no database may then run right here."""
        run = contextvars.copy_context().run
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, run, func, *args)
        except RuntimeError:
            if not inline:
                raise
            return run(func, *args)

    @property
    def idle(self) -> bool:
        """Nothing queued, no frame in flight (the pump disarms only when done), nothing
        being stored."""
        storing = self._storing
        return (
            not self.queue
            and not self._armed
            and not self._unstored
            and (storing is None or storing.done())
            and not (self._flushing and self._flushing.is_alive())
        )

    # -- shutdown and tests -------------------------------------------------------

    def flush(self, timeout: float = 2.0) -> None:
        """Send what is queued, then store what is sent but unstored (atexit; tests).

        Call it from a thread that runs no event loop. At exit the publisher's
        executors are gone, so the store gets a thread of its own.
        """
        loop = self._loop
        if loop is not None and loop.is_running():
            # The pump is alive: it sends what is queued. Wait until it idles,
            # so a frame on its way now (a command that exits right after its
            # last save) is not cut off with the process.
            deadline = time.monotonic() + timeout
            while (self.queue or self._armed) and time.monotonic() < deadline:
                time.sleep(0.002)
            if self.queue or self._armed:
                logger.warning(
                    "dashboard: flush timed out; %d queued events and any frame being sent lost",
                    len(self.queue),
                )
        elif self.queue:
            asyncio.run(self._hand_on(self._drain()))
        # On a thread of its own: the caller's thread may be inside a
        # transaction, which must not carry (or roll back) the history.
        run = contextvars.copy_context().run

        def store() -> None:
            with context.quiet_block():
                self._store_unstored()

        try:
            self._flushing = threading.Thread(target=run, args=(store,), name="dashboard-flush")
            self._flushing.start()
            self._flushing.join(timeout)
        except RuntimeError:  # no new threads this late in shutdown
            store()

    def reset(self) -> None:
        """Forget queued events, counters and the loop (tests)."""
        with self._lock:
            self.queue.clear()
            self.dropped = 0
            self.sent_batches = 0
            self.sent_seq = self.stored_seq = 0
            self._armed = False
            self._capacity = None
            self._retire()
            self._loop = None
            self._wake = None
            self._storing = None
            self._unstored, self._unstored_rows = [], 0
            self.unstored = 0
            self._unstored_warned = -WARN_EVERY
        fanout.reset()

    def _retire(self) -> None:
        """End the current pump task and its store task (what they hold stays
        queued, for the next loop or flush()), and the loop if it is our daemon
        loop. A task left pending on a loop that closes is destroyed noisily."""
        loop, task, own = self._loop, self._task, self._loop is self._thread_loop
        storing = self._storing
        self._task = None
        if own:
            self._thread_loop = None
        if loop is None or loop.is_closed():
            return

        async def end() -> None:
            for pending in (task, storing):
                if pending is not None and pending.get_loop() is loop:
                    pending.cancel()
                    with contextlib.suppress(BaseException):
                        await pending
            if own:
                loop.stop()

        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(end(), loop)


INLINE_BATCH = 64  # events a frame may hold and still be prepared on the loop
STORE_INTERVAL = 0.05  # seconds between history writes, at the least
STORE_BACKLOG = 50_000  # sent rows awaiting the store; past it the oldest are not stored
WARN_EVERY = 60.0  # seconds between warnings that the history is losing events


def _usable(loop: asyncio.AbstractEventLoop | None) -> bool:
    return loop is not None and not loop.is_closed()


publisher = Publisher()
atexit.register(publisher.flush)
