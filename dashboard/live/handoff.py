"""The hand-off between receivers and the live view: one per process.

Receivers call `publish()` (inside the sender's call: it appends to a
bounded deque and, only when the pump is idle, wakes it with one
`call_soon_threadsafe`; it never raises and never waits on I/O or another
process). Woken, the pump drains at once if a dashboard in this process
watches, else one window later.

Nobody watching and the sidecar up, a sender that publishes a window after
the last batch, or finds HAND_ON_EVENTS queued, hands the queue on itself
(`_send_here`): it pickles the batch and writes what the sidecar's socket
takes now, keeping the GIL, as the pump would have, and the pump only sends
what is left once the senders stop. A pump that drained in the sender's
stead cost the sender the same work plus turns of the GIL (creates in one
transaction, interleaved scratch A/Bs of 11 rounds: 1.35x and 1.39x the bare
time with the pump draining, 1.28x and 1.21x with the sender handing on; the
saving thread off a core 44 µs a create against 8). It is the one piece of
I/O in a sender's call, once a window or per HAND_ON_EVENTS at most: sends
to a local socket that cannot block (MSG_DONTWAIT, live/sends.py), the batch
and, after a settings change, the new settings.

The pump runs on
one long-lived event loop: the server's own under an ASGI server (bound by
dashboard/asgi.py and the consumer), otherwise a daemon thread started on
demand (management commands, the shell, tests). It drains the queue,
numbers the events (core/keys.py) and hands each batch to the sidecar
process (sidecar/link.py), or, where none can run, to live/frames.py here;
then it pauses as live/pacing.py says, so everything that arrived meanwhile
goes out as one frame.
"""

import asyncio
import atexit
import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable

from dashboard import conf
from dashboard.core import keys
from dashboard.core.events import Event, RolledBack
from dashboard.core.quiet import quiet
from dashboard.history.writer import Writer, writer
from dashboard.live.alarm import Alarm
from dashboard.live.fanout import fanout
from dashboard.live.frames import frames
from dashboard.live.pacing import MIN_PAUSE, Pacer
from dashboard.sidecar.link import Link, link

logger = logging.getLogger("dashboard")

Batch = list[Event | RolledBack]

# Queued events from which a sender hands them on at once, window or not (nobody watching,
# the sidecar up): the sidecar describes a burst as it comes (at its end, a command's exit,
# at most this many are left to describe), and no pump drains a window's worth beside the
# saving thread at a burst's start. 200 creates in autocommit, settled: 1.34x and 1.37x
# the bare time by the window alone, 1.30x and 1.27x with it (scratch A/Bs, 5 rounds).
HAND_ON_EVENTS = 64


class Handoff:
    def __init__(self) -> None:
        self.queue: deque[Event | RolledBack] = deque()
        self.dropped = 0  # events a full queue refused, since the process started
        self._capacity: int | None = None
        self._lock = threading.Lock()  # guards binding and the drop counter
        self._armed = False  # True while the pump will drain without being woken
        self._sending = False  # the pump's batch: from its drain until it is handed on
        self._hurry = False  # set by flush(): send what is queued now, without waiting
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: Alarm | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        # From when (monotonic) a sender hands the queue on itself (the sidecar up, nobody
        # watching); None: the pump does. Set after an unwatched batch to the sidecar, by
        # whoever sent it; cleared by the pump when it idles or a dashboard watches.
        self._due: float | None = None
        # A sender may hand on: one with HAND_ON_EVENTS queued does, even before `_due` (the
        # pump's wait after a quiet spell). True from the start, so that a sidecar already
        # up takes a first burst from its senders too (after reset(), 300 creates in
        # autocommit: the pump had pickled half of them beside the saves, 12 µs of its CPU
        # a create against 6). Cleared when a sender finds it cannot (no sidecar up yet, a
        # dashboard watching, an error) or a watched batch left; set again by the pump's
        # next batch to the sidecar unwatched. Set whenever `_due` is, and cleared with it
        # but for the pump's idling: so it alone says whether a sender may send.
        self._onward = True
        # One drain-and-send at a time, the pump's or a sender's: batches must reach the
        # sidecar in the order of their numbers. A sender never waits for it.
        self._order = threading.Lock()

    # -- the receivers' side: cheap, never raises, never waits on I/O -------------

    def publish(self, event: Event | RolledBack) -> None:
        if self._capacity is None:
            self._capacity = conf.get("QUEUE_SIZE")
        if len(self.queue) >= self._capacity:
            with self._lock:
                self.dropped += 1
            return
        self.queue.append(event)
        if ((due := self._due) is not None and time.monotonic() >= due) or (
            self._onward and len(self.queue) >= HAND_ON_EVENTS
        ):
            self._send_here()
        if not self._armed:
            self._armed = True
            self._notify()

    def _send_here(self) -> None:
        """Inside the sender's call: the queue to the sidecar, unwatched (see the module's
        docstring). Another thread sending now, or the link busy (a sidecar starting):
        left for later, never waited for. Never raises. What it causes (a value's repr, a
        log record) is quiet, as on the pump."""
        if not self._order.acquire(blocking=False):
            return
        token = quiet.set(True)
        try:
            with link.free() as free:
                if free:
                    self._send_held()
        except Exception:  # never into the sender: the pump takes over
            self._due, self._onward = None, False
            logger.exception("dashboard: could not hand events on from the sender's call")
        finally:
            quiet.reset(token)
            self._order.release()

    def _send_held(self) -> None:
        """_send_here's work, holding the order and the link."""
        if (
            not self._onward
            or not self.queue
            or not link.enabled()
            or not link.up()
            or fanout.watched()
        ):
            self._due, self._onward = None, False  # the pump looks again after its next batch
            return
        batch = self._drain()
        self._due = time.monotonic() + conf.get("BATCH_WINDOW")
        link.send_unwatched(batch, self.dropped)

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
        self._wake = wake = Alarm(loop)

        def start() -> None:
            if self._loop is not loop:  # reset or bound elsewhere before this ran
                return
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
                    target=_run_until_stopped, args=(loop,), name="dashboard-publisher", daemon=True
                ).start()
                self._bind(loop)
                self._thread_loop = loop
                # Its start wakes it. A second wake here, landing after its first look, cut
                # its first window short: a burst's first event left alone, from the pump.
                return
            loop, wake = self._loop, self._wake
        loop.call_soon_threadsafe(wake.set)  # type: ignore[union-attr]

    # -- the pump: runs on the bound loop ----------------------------------------

    async def _pump(self, loop: asyncio.AbstractEventLoop, wake: Alarm) -> None:
        # Everything the pump causes (renders, layer I/O, DB connections) is quiet.
        quiet.set(True)
        pacer = Pacer()
        while self._loop is loop:
            await wake.wait()
            wake.clear()
            if (delay := pacer.wait_before(loop.time())) and not self._hurry:
                # Under load, the next frame keeps its distance even after an idle moment
                # (between two requests): fewer, bigger frames, each a GIL turn less for
                # the requests. flush() cuts it short.
                await wake.wait(delay)
                wake.clear()
            if not fanout.watched() and not self._hurry:
                # Nobody here waits for it: let the rest of its burst (the request it
                # belongs to) come first, rather than take the GIL from the sender
                # half-way through. flush() cuts this short (its wake may have been
                # cleared with the publish's just above: hence the flag).
                await wake.wait(conf.get("BATCH_WINDOW"))
                wake.clear()
            self._hurry = False
            while self._loop is loop:
                if self.queue or self._order.locked():
                    # Never waited for on this loop (the server's): a sender holds it
                    # while it pickles and sends what is queued; look again after that.
                    if not self._order.acquire(blocking=False):
                        await wake.wait(MIN_PAUSE)
                        wake.clear()
                        continue
                    started, cpu = loop.time(), time.thread_time()
                    try:
                        try:
                            batch = self._drain()
                            if not batch:  # a sender took it meanwhile
                                continue
                            self._sending = True
                            handing = self._hand_on(batch)  # sent in order, before release
                        finally:
                            self._order.release()
                        watched = await handing  # its frame, if watched, on its way
                    finally:
                        self._sending = False
                    window = conf.get("BATCH_WINDOW")
                    # This process's own time on the batch. Rendered by the sidecar: this
                    # loop's CPU time (draining, pickling, relaying the frame to its
                    # sockets), not the wait while the sidecar rendered it (pausing for
                    # it as well would wait for it twice), nor the waits for a GIL that
                    # the host's threads held (bench/: at 1,000 posts/s, pauses grew with
                    # the saving thread's turns; frames' p99 spacing 30-63 ms against 28).
                    # Kept in this process: all of it (a worker thread renders it).
                    elapsed = loop.time() - started
                    cost = time.thread_time() - cpu if link.rendered_elsewhere else elapsed
                    # Unwatched, nobody waits: one window, so the saves are not
                    # interrupted by a pump that has nothing to show.
                    if watched:
                        self._due, self._onward = None, False
                        pause = pacer.after(len(batch), started, cost, window, elapsed)
                    else:
                        if link.rendered_elsewhere:  # to the sidecar: senders may go on
                            self._due = time.monotonic() + window
                        self._onward = link.rendered_elsewhere
                        pause = window
                    # A pause that flush() cuts short (wake): what is queued goes now.
                    await wake.wait(pause)
                    wake.clear()
                    # While senders hand on what they publish, this pump only sends
                    # what is left once they stop: half a window after the last batch.
                    while (
                        not self._hurry
                        and (due := self._due) is not None
                        and (left := due + window / 2 - time.monotonic()) > 0
                    ):
                        await wake.wait(left)
                        wake.clear()
                    continue
                # A flush meanwhile found what it waited for sent: its hurry must not
                # cut the next burst's wait short.
                self._hurry = False
                # Idle: disarm, then look once more, since a publish() that saw
                # `_armed` still True just before did not wake us. Senders stop handing
                # on: a burst after a quiet spell waits its window, as above. (Cleared
                # holding the order, so no sender's send sets it again just after.)
                if not self._order.acquire(blocking=False):
                    continue  # a sender is sending: not idle
                self._due = None
                self._order.release()
                self._armed = False
                if not self.queue:
                    break
                self._armed = True

    def _hand_on(self, batch: Batch) -> Awaitable[bool]:
        """Send the batch to the sidecar now (the caller holds `_order`: batches leave in
        the order of their numbers), or, where none can run, keep it in this process
        (live/frames.py). Awaited: whether it was watched, once its frame may follow."""
        link.rendered_elsewhere = False  # until the link hands the batch to the sidecar
        if link.enabled() and (watched := link.submit(batch, self.dropped)) is not None:
            return _when_turn(watched)
        return frames.hand_on(batch, self.dropped)

    async def caught_up(self, timeout: float = 2.0) -> int:
        """Until what this process has handed on so far is stored (a page resuming
        reads it); the newest seq stored then. The sidecar's count, or this process's
        writer's where the pipeline stayed here."""
        source: Link | Writer = link if link.sent else writer
        target, deadline = source.kept_seq, time.monotonic() + timeout
        while source.stored_seq < target and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        return source.stored_seq

    def _drain(self) -> Batch:
        batch: Batch = []
        queue, process, next_seq = self.queue, keys.process(), keys.next_seq
        while queue:
            item = queue.popleft()
            if isinstance(item, Event):
                item.process, item.seq = process, next_seq()
            batch.append(item)
        return batch

    @property
    def drained(self) -> bool:
        """Nothing queued, nothing being handed on, by the pump or a sender (the pump's
        pause after a frame does not count: flush() would otherwise wait out a window
        with nothing to send)."""
        return not self.queue and not self._sending and not self._order.locked()

    @property
    def idle(self) -> bool:
        """Drained, and nothing left to store."""
        return self.drained and writer.idle and link.idle

    # -- shutdown, fork and tests ------------------------------------------------

    def flush(self, timeout: float = 2.0, final: bool = False) -> None:
        """Send what is queued, then store what is sent but unstored (atexit; tests).

        Call it from a thread that runs no event loop.
        """
        if self._onward and self.queue:
            # Nobody watching, the sidecar up: from this thread now, as a sender would,
            # not after the pump is woken (0.6-1.1 ms more of a command's exit).
            self._send_here()
        loop = self._loop
        # Nothing queued nor on its way (drained): the pump is left as it is. A hurry it was
        # given anyway, taken up late (a busy machine), made it drain the start of the next
        # burst itself, beside the saves, instead of their handing it on (tests saw it).
        if loop is not None and loop.is_running() and not self.drained:
            # The pump is alive: it sends what is queued, now (its pause cut short).
            # Wait until it idles, so a frame on its way now (a command that exits
            # right after its last save) is not cut off with the process.
            self._hurry = True
            if (wake := self._wake) is not None:
                with contextlib.suppress(RuntimeError):  # closed under us: nothing to wake
                    loop.call_soon_threadsafe(wake.set)
            deadline = time.monotonic() + timeout
            while not self.drained and time.monotonic() < deadline:
                # Short: the pump's batch leaves in a fraction of a millisecond, and a
                # command's exit waits for this (2 ms steps cost a 200-save run 3 %).
                time.sleep(0.0005)
            if not self.drained:
                logger.warning(
                    "dashboard: flush timed out; %d queued events and any frame being sent lost",
                    len(self.queue),
                )
        elif self.queue:
            # A sender on another thread may be sending: after it, in order.
            if self._order.acquire(timeout=timeout):
                try:
                    batch = self._drain()
                    asyncio.run(_awaited(self._hand_on, batch))
                finally:
                    self._order.release()
            else:
                logger.warning("dashboard: flush timed out; %d queued events lost",
                               len(self.queue))
        link.flush(timeout, final)
        writer.flush(timeout, final)

    def reset(self) -> None:
        """Forget queued events, counters and the loop (tests)."""
        with self._lock:
            self.queue.clear()
            self.dropped = 0
            self._armed = self._sending = self._hurry = False
            self._due, self._onward = None, True
            self._capacity = None
            self._retire()
            self._loop = None
            self._wake = None
        frames.reset()
        writer.reset()
        link.reset()
        fanout.reset()

    def _retire(self) -> None:
        """End the current pump task, and the loop if it is our daemon loop. A
        task left pending on a loop that closes is destroyed noisily."""
        loop, task, own = self._loop, self._task, self._loop is self._thread_loop
        self._task = None
        if own:
            self._thread_loop = None
        if loop is None or loop.is_closed():
            return
        writer.stop_on(loop)

        async def end() -> None:
            if task is not None and task.get_loop() is loop:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            if own:
                loop.stop()

        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(end(), loop)

    def _after_fork(self) -> None:
        """In a forked child: the parent's loop thread is not here, nor are its events."""
        self.queue.clear()
        self._lock, self._order = threading.Lock(), threading.Lock()
        self._armed = self._sending = self._hurry = False
        self._due, self._onward = None, True
        self._loop = self._wake = self._thread_loop = self._task = None


async def _when_turn(watched: bool) -> bool:
    if watched:  # the link's frames in flight: at most IN_FLIGHT (sidecar/returns.py)
        await link.back.wait_turn()
    return watched


async def _awaited(hand_on: Callable[[Batch], Awaitable[bool]], batch: Batch) -> bool:
    return await hand_on(batch)  # called inside the loop: link.submit() asks for it


def _run_until_stopped(loop: asyncio.AbstractEventLoop) -> None:
    """A daemon loop of ours: run it, and close it once retired (else the collector
    closes it later, at any moment, on whatever thread runs another loop then)."""
    loop.run_forever()
    with contextlib.suppress(Exception):
        loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


def _usable(loop: asyncio.AbstractEventLoop | None) -> bool:
    return loop is not None and not loop.is_closed()


handoff = Handoff()
atexit.register(handoff.flush, final=True)
os.register_at_fork(after_in_child=handoff._after_fork)
