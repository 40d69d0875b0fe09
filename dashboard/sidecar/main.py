"""The sidecar process: describe, render and store what a capturing process sends.

Started by sidecar/link.py as `python -m dashboard.sidecar`, with the parent's
settings module, sys.path and `DASHBOARD_SIDECAR=1` (so this process captures
nothing itself: apps.py). It reads messages from stdin (sidecar/wire.py):

- ("config", {...}): the parent's databases (a test database's name, too),
  DASHBOARD and ROOT_URLCONF, first and whenever they change;
- ("batch", process, dropped, lost, watched, layer_down, items): events (or
  rows) and rolled-back marks. Watched: one frame is rendered and written back
  as ("frame", message) at once; then the rows go to the history writer
  (history/writer.py), which stores them as it does in one process;
- ("flush", token) / ("reset", token): store now / forget what is pending,
  then answer (token) so the parent can wait;
- ("bye",): the parent is exiting, every frame written back has left it.

After each store it writes ("stored", batches, stored_seq, unstored,
unavailable) once nothing is pending: the parent's resume and flush wait on
it. At the end of stdin (the parent exited, or was killed) it stores what is
left and exits.

A parent killed (kill -9, the OOM killer, a worker timed out) ends without its
"bye": the frames written back last may never have left it, while their events
are stored here. Dashboards of other processes would then miss them for good
(no later frame of that process shows them the gap). So once everything is
stored, the frames of its last REPUBLISH_SECONDS go to the channel layer from
here, where it crosses processes; a dashboard skips what it holds already
(live/consumer.py).
"""

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from typing import Any

logger = logging.getLogger("dashboard")

REPUBLISH_SECONDS = 5.0  # a killed parent's frames of its last moments, sent again
REPUBLISH_AT_MOST = 16  # ... at most this many (each names its seqs: a gap is read)
REPUBLISH_WAIT = 5.0  # seconds the layer gets to take them before this process exits


def configure(config: dict[str, Any]) -> None:
    """Before django.setup(): the parent's view of the settings that matter here."""
    from django.conf import settings

    settings.DATABASES = config["databases"]
    settings.DASHBOARD = config["dashboard"]
    settings.ROOT_URLCONF = config["urlconf"]


def reconfigure(config: dict[str, Any]) -> None:
    from django.conf import settings
    from django.urls import clear_url_caches

    from dashboard import conf
    from dashboard.core import rows

    if config["databases"] != settings.DATABASES:
        from dashboard.history.writer import writer

        # In place: the connection handler keeps the dict it first read (and each
        # connection its own entry of it), so a new dict would not be seen.
        current, new = settings.DATABASES, config["databases"]
        for alias in [a for a in current if a not in new]:
            del current[alias]
        for alias, entry in new.items():
            current.setdefault(alias, {}).clear()
            current[alias].update(entry)
        # Connections are per thread: the store thread's too must open anew.
        for forget in (_forget_connections, lambda: writer._thread.submit(
                _forget_connections).result(timeout=30)):  # fmt: skip
            forget()
    settings.DASHBOARD = config["dashboard"]
    conf.forget()
    if config["urlconf"] != settings.ROOT_URLCONF:
        settings.ROOT_URLCONF = config["urlconf"]
        clear_url_caches()
        rows._detail_url_template.cache_clear()


def _forget_connections() -> None:
    """This thread's connections closed and dropped: the next query opens anew, on
    the databases now configured (a test database, once created)."""
    from django.db import connections

    for alias in list(connections):
        with contextlib.suppress(Exception):  # never opened in this thread
            connections[alias].close()
            del connections[alias]


class Sidecar:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        from dashboard.history.writer import writer

        self.loop = loop
        self.writer = writer
        self.received = 0  # batches read
        self._warm = False  # a frame was rendered (templates loaded): frozen again
        self._out = threading.Lock()
        self.parted = False  # the parent said "bye": every frame left it
        self.orphaned = False  # a write to the parent failed: it is gone
        self.frames: deque[tuple[float, dict[str, Any]]] = deque(maxlen=REPUBLISH_AT_MOST)
        self.ended_at: float | None = None  # when stdin ended
        writer.on_stored = self.stored

    def stored(self) -> None:
        """On the store thread: report from the loop, where batches are received."""
        with contextlib.suppress(RuntimeError):  # the loop closed: the parent is gone
            self.loop.call_soon_threadsafe(self.report)

    def send(self, message: tuple[Any, ...]) -> None:
        """Write to the parent; once it is gone, nothing (what it sent is stored all the
        same, and its frames republished: `republish`)."""
        from dashboard.sidecar import wire

        data = wire.encode(message)
        with self._out:
            if self.orphaned:
                return
            try:
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()
            except OSError:  # a broken pipe: the parent was killed
                self.orphaned = True
                # What stdout still buffers would fail again at exit, noisily.
                with open(os.devnull, "wb") as null:
                    os.dup2(null.fileno(), sys.stdout.fileno())

    def report(self) -> None:
        """On the loop, after a store: what is stored, once nothing waits."""
        writer = self.writer
        if not writer._pending:
            self.send(
                ("stored", self.received, writer.stored_seq, writer.unstored, writer.unavailable)
            )

    def handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "batch":
            self.batch(*message[1:])
        elif kind == "config":
            reconfigure(message[1])
        elif kind == "flush":
            self.writer.flush(timeout=10.0)
            self.report()  # first: once flush() returns there, what is stored is known
            self.send(("flushed", message[1]))
        elif kind == "reset":
            with self.writer.held():
                self.writer.reset()
            self.received = 0
            self.frames.clear()
            self.send(("reset", message[1]))
        elif kind == "bye":
            self.parted = True

    def batch(
        self, process: str, dropped: int, lost: int, watched: bool, layer_down: bool, items: list
    ) -> None:
        from dashboard.core.events import RolledBack
        from dashboard.live.frames import prepare
        from dashboard.sidecar import wire

        self.received += 1
        try:
            items = wire.decode_batch(items)
        except Exception:
            logger.exception("dashboard: could not read a batch of %d events", len(items))
            if watched:
                self.send(("frame", None))  # the parent's pump waits for one per batch
            return
        marks = [item.event for item in items if isinstance(item, RolledBack)]
        kept = [item for item in items if not isinstance(item, RolledBack)]
        if watched:
            try:
                message, kept, marks = prepare(
                    items, dropped, self.writer.unstored + lost, process, layer_down
                )
            except Exception:
                logger.exception("dashboard: could not prepare %d events", len(items))
                self.send(("frame", None))  # the parent's pump waits for one
            else:
                if not self._warm:
                    self._warm = True
                    # Only the young generation collected first: the parent's pump waits
                    # for this frame. What cyclic garbage is older stays, once.
                    _freeze(generation=0)
                self.send(("frame", message))
                if message is not None:
                    self.frames.append((time.monotonic(), message))
        else:
            # Described now, on this loop, while the store thread may be waiting for the
            # database (SQLite's lock, held through the host's transaction): at the
            # commit only the INSERT is left.
            from dashboard.core.payload import describe_each

            kept, failed = describe_each(kept)
            self.writer.count_unstored(failed)
        self.writer.keep(kept, marks)

    async def republish(self) -> None:
        """The parent ended without its "bye": its last frames, to other processes'
        dashboards through the layer (where it crosses processes), now that their
        events are stored. Said in the log if the layer does not take them."""
        from channels.layers import get_channel_layer

        from dashboard import conf
        from dashboard.live.fanout import crosses_processes

        horizon = (self.ended_at or time.monotonic()) - REPUBLISH_SECONDS
        frames = [message for at, message in self.frames if at >= horizon]
        if self.parted or not frames or not crosses_processes():
            return
        layer, group = get_channel_layer(), conf.get("GROUP")
        try:
            async with asyncio.timeout(REPUBLISH_WAIT):
                for message in frames:
                    await layer.group_send(group, message)
        except Exception as exc:
            logger.warning(
                "dashboard: a process ended without relaying its last %d frames, and they "
                "could not be sent for it (%r): other processes' dashboards show their "
                "events once reloaded", len(frames), exc,
            )  # fmt: skip


def _freeze(generation: int = 2) -> None:
    """Out of the collector's reach from now on: what is here at start-up (Django, the
    templates), which it would otherwise walk in every full collection (40-120 ms, with
    a frame waiting). Collected first, up to `generation`."""
    gc.collect(generation)
    gc.freeze()


async def serve(stdin: Any) -> None:
    from dashboard.core.quiet import quiet
    from dashboard.sidecar import wire

    quiet.set(True)
    loop = asyncio.get_running_loop()
    sidecar = Sidecar(loop)
    ended = asyncio.Event()

    def read_all() -> None:
        try:
            while (message := wire.read(stdin)) is not None:
                loop.call_soon_threadsafe(sidecar.handle, message)
        finally:
            sidecar.ended_at = time.monotonic()  # before the last stores, however long
            loop.call_soon_threadsafe(ended.set)

    threading.Thread(target=read_all, name="dashboard-sidecar-read", daemon=True).start()
    await ended.wait()
    sidecar.writer.on_stored = None
    sidecar.writer.flush(timeout=10.0, final=True)
    await sidecar.republish()


def _never_preempt() -> None:
    """SCHED_BATCH for this thread, before any other starts (threads started later
    inherit it): woken by a batch, the sidecar runs on a free core or waits its turn,
    but never preempts the thread that woke it. Under the default policy the kernel often
    ran it at once in place of the host's writing thread, which holds the host's GIL
    while it writes: the whole host stood still meanwhile (a 5 KB batch's send took
    300 µs against 45 of CPU; with this, 45 µs; in two A/B runs of 3,000 creates in a
    transaction, the host's time off any core fell from 43-50 µs a create to 2-6).
    Wake-up latency is unchanged (p99 0.24 ms beside a busy sender). Not on every
    platform: then as before."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux; or refused
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


def main() -> None:
    os.environ["DASHBOARD_SIDECAR"] = "1"
    # Signals meant for the parent reach this process too: Ctrl-C interrupts a terminal's
    # whole foreground group, systemd stops a service's whole control group with SIGTERM,
    # a closed terminal hangs up its session. It then died storing (Ctrl-C: its reader
    # thread holding stdin, the interpreter aborted at exit) and lost what it held. It
    # ends when its parent's messages end (stdin closes as the parent exits, however it
    # exits), after storing what is left.
    for stop in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, signal.SIG_IGN)
    _never_preempt()
    from dashboard.sidecar import wire

    stdin = sys.stdin.buffer
    first = wire.read(stdin)
    if first is None or first[0] != "config":
        return
    configure(first[1])
    import django

    django.setup()
    _freeze()
    asyncio.run(serve(stdin))
