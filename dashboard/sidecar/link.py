"""The capturing process's end of the sidecar: start it, feed it, relay its frames.

`submit()` runs on the pump's loop (live/handoff.py), and `send_unwatched()` in
a sender's call when nobody watches: each pickles the drained batch
(sidecar/wire.py) and writes what the socket to the sidecar's stdin takes
now, keeping the GIL (live/sends.py); a writer thread sends the rest,
so neither the loop nor a save ever waits on the sidecar. (Handing every
batch to the thread cost a wake-up and a GIL hand-off each: up to 5 ms
beside a saving thread.) A reader thread takes the
sidecar's answers: frames go back to this process's sockets (sidecar/returns.py:
sockets live here); "stored" tells
a resuming dashboard (live/handoff.py caught_up) how far the history is written.

When no sidecar can run (settings configured in code, no Python executable,
DASHBOARD["SIDECAR"] off) or it fails to start twice, the pipeline stays in
this process (live/frames.py, history/writer.py), as it was.
"""

import asyncio
import contextlib
import itertools
import logging
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connections

from dashboard import conf
from dashboard.core import keys
from dashboard.core.events import Event, RolledBack
from dashboard.live import sends
from dashboard.live.fanout import fanout
from dashboard.sidecar import wire
from dashboard.sidecar.returns import Returns

logger = logging.getLogger("dashboard")

OUTBOX_AT_MOST = 1_000  # batches waiting for the writer thread; past it lost, and counted
STARTS_AT_MOST = 3  # sidecars started in one process before it keeps the pipeline itself


@dataclass(slots=True)
class Channel:
    """One sidecar's stdin: our end of its socket, and what waits for its writer thread.
    One per sidecar started, so a writer still finishing for an old one counts nothing
    of the new one's."""

    sock: socket.socket
    outbox: queue.SimpleQueue[bytes | None] = field(default_factory=queue.SimpleQueue)
    queued: int = 0  # messages in the outbox
    writing: bool = False  # the writer thread holds bytes it has not sent yet


class Link:
    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.sent = self.acked = 0  # batches written, and those the sidecar has stored
        self.kept_seq = self.stored_seq = 0  # the newest event sent, and stored
        self.unstored = 0  # the sidecar's count of events it could not store
        self.lost = 0  # events this process sent but no sidecar stored (it died; a full outbox)
        self.unavailable = False
        self.rendered_elsewhere = False  # the last batch sent went to the sidecar
        self._base = 0  # batches sent before the current sidecar started
        self._unacked: deque[tuple[int, int]] = deque()  # (batch number, events) not yet stored
        self._config_key: Any = None
        self._channel: Channel | None = None  # to the current sidecar
        self._waiting: dict[int, threading.Event] = {}
        self._tokens = itertools.count(1)
        self.back = Returns()  # frames written back, on their way to this process's sockets
        self._lock = threading.RLock()

    # -- which pipeline ------------------------------------------------------------

    def enabled(self) -> bool:
        return (
            self.starts < STARTS_AT_MOST
            and bool(conf.get("SIDECAR"))
            # The sidecar imports the settings by module: settings made in code cannot.
            and bool(os.environ.get("DJANGO_SETTINGS_MODULE"))
            and "python" in os.path.basename(sys.executable or "")
        )

    def warm(self) -> None:
        """Start the sidecar now, not with the next event (a dashboard opened: what it
        shows next should not wait for a Python to start and set Django up)."""
        if self.proc is None and self.enabled():
            self._start()

    # -- the pump's side -----------------------------------------------------------

    def submit(self, batch: list[Event | RolledBack], dropped: int) -> bool | None:
        """On the pump's loop: send the batch, starting a sidecar if none runs; whether a
        frame will come back (watched), or None if no sidecar can run (the caller keeps
        the batch in this process). The caller then waits its turn (back.wait_turn)."""
        self.back.loop = asyncio.get_running_loop()
        if not self.up() and self._start() is None:
            return None
        return self._send(batch, dropped, fanout.watched())

    @contextlib.contextmanager
    def free(self) -> Iterator[bool]:
        """Held for a sender's hand-off if nobody holds it now (a sidecar starting holds it
        through its Popen): a sender's call never waits for it."""
        got = self._lock.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                self._lock.release()

    def up(self) -> bool:
        # Not proc.poll(): its waitpid() lets the GIL go, a turn of it for the host's
        # threads per batch. A sidecar that ended is found by the reader thread, which
        # sets self.proc to None (_ended): a batch sent before is counted lost there,
        # one sent after, in _send.
        proc = self.proc
        return proc is not None and proc.returncode is None

    def send_unwatched(self, batch: list[Event | RolledBack], dropped: int) -> None:
        """From a sender's call (live/handoff.py), to the sidecar that is up: a batch
        nobody watches, so no frame comes back and nothing is awaited. Never raises, never
        blocks (the socket takes what it can now; the writer thread sends the rest)."""
        try:
            self._send(batch, dropped, watched=False)
        except Exception:  # counted, and shown, like a batch that will not pickle
            logger.exception("dashboard: could not hand %d events to the sidecar", len(batch))
            self._lose(sum(1 for item in batch if isinstance(item, Event)))

    def _send(self, batch: list[Event | RolledBack], dropped: int, watched: bool) -> bool:
        self._send_config()
        events = sum(1 for item in batch if isinstance(item, Event))
        head = (keys.process(), dropped, self.lost, watched, fanout.layer_down)
        try:
            data = wire.encode_batch(head, batch)
        except Exception:
            logger.exception("dashboard: could not hand %d events to the sidecar", len(batch))
            self._lose(events)
            return watched
        with self._lock:
            if self.proc is None or (
                self._channel is not None and self._channel.queued >= OUTBOX_AT_MOST
            ):  # it ended since up() (_ended counted what it held), or it cannot keep up
                self._lose(events)
                return watched
            self.sent += 1
            self._unacked.append((self.sent, events))
            for item in reversed(batch):
                if isinstance(item, Event):
                    self.kept_seq = item.seq
                    break
            self._put(data)
            self.rendered_elsewhere = True
            if watched:
                self.back.expect()
        return watched

    def _put(self, data: bytes | None) -> None:
        """Called with the lock held: send now what the socket takes, if nothing waits
        before it; the writer thread sends the rest, in order."""
        channel = self._channel
        if channel is None:
            return
        if data is not None and sends.KEEPS_GIL and not (channel.queued or channel.writing):
            try:
                sent = sends.send(channel.sock, data)
            except OSError:  # full, or the sidecar gone: the writer thread finds out
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        channel.queued += 1
        channel.outbox.put(data)

    def _lose(self, events: int) -> None:
        self.lost += events

    def _send_config(self) -> None:
        key = (
            conf.current_generation(),
            settings.ROOT_URLCONF,
            tuple(connections[alias].settings_dict.get("NAME") for alias in connections),
        )
        if key == self._config_key:
            return
        self._config_key = key
        with self._lock:  # reentrant: _start() sends it first, holding the lock
            self._put(wire.encode(("config", sidecar_config())))

    # -- the sidecar process ---------------------------------------------------------

    def _start(self) -> subprocess.Popen[bytes] | None:
        with self._lock:
            if self.proc is not None and self.proc.poll() is None:
                return self.proc
            if not self.enabled():
                return None
            self.starts += 1
            path = [p or os.getcwd() for p in sys.path]
            env = {
                **os.environ,
                "DASHBOARD_SIDECAR": "1",
                "PYTHONPATH": os.pathsep.join(path),
            }
            ours, theirs = socket.socketpair()  # its stdin: a socket, so sends can keep the GIL
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "dashboard.sidecar"],
                    stdin=theirs,
                    stdout=subprocess.PIPE,
                    # Unbuffered: a buffered reader's lock, held by the reader thread while
                    # it waits, would hang a forked child closing it (after_fork).
                    bufsize=0,
                    env=env,
                )
            except OSError as exc:
                ours.close()
                logger.warning("dashboard: could not start the sidecar (%s); the pipeline "
                               "stays in this process", exc)
                self.starts = STARTS_AT_MOST
                return None
            finally:
                theirs.close()
            self.proc = proc
            self._channel = channel = Channel(ours)
            self._base = self.sent  # batches before this sidecar: it counts from zero
            self._config_key = None
            self._send_config()  # its first message, whatever is asked of it next
            threading.Thread(
                target=self._write_all, args=(channel,), name="dashboard-sidecar-write",
                daemon=True,
            ).start()
            threading.Thread(
                target=self._read_all, args=(proc,), name="dashboard-sidecar-read", daemon=True
            ).start()
            return proc

    def _write_all(self, channel: Channel) -> None:
        try:
            while (data := channel.outbox.get()) is not None:
                with self._lock:
                    channel.queued -= 1
                    channel.writing = True
                try:
                    channel.sock.sendall(data)
                except OSError:  # the sidecar is gone: the reader says so
                    return
                finally:
                    with self._lock:
                        channel.writing = False
        finally:
            # Under the lock: a send now (in _put) must not find its number reused.
            with self._lock:
                channel.sock.close()  # the sidecar reads the end of its stdin

    def _read_all(self, proc: subprocess.Popen[bytes]) -> None:
        stdout = proc.stdout
        assert stdout is not None
        reader = wire.Reader(stdout)  # as many messages per read as have come
        try:
            while (message := reader.read()) is not None:
                self._answer(message)
        except Exception:
            logger.exception("dashboard: bad message from the sidecar")
        finally:
            self._ended(proc)

    def _answer(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "frame":
            with self._lock:  # a reader of an earlier sidecar may still be finishing
                self.back.arrive(message[1])
        elif kind == "stored":
            received, stored_seq, self.unstored, self.unavailable = message[1:]
            with self._lock:
                self.acked = max(self.acked, self._base + received)
                while self._unacked and self._unacked[0][0] <= self.acked:
                    self._unacked.popleft()
                self.stored_seq = max(self.stored_seq, stored_seq)
        elif (waiter := self._waiting.pop(message[1], None)) is not None:
            waiter.set()  # "flushed", "reset"

    def _ended(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            if self.proc is not proc:
                return
            self.proc = None
            lost = sum(events for _, events in self._unacked)
            self._unacked.clear()
            self.acked = self.sent
            self.stored_seq = self.kept_seq
            self.lost += lost
            for waiter in self._waiting.values():
                waiter.set()
        self.back.release()
        code = proc.wait()
        if code or lost:
            logger.warning(
                "dashboard: the sidecar ended (exit code %s); %d events it held were not "
                "stored; a new one starts with the next event", code, lost
            )

    # -- waiting for it ------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        return self.acked >= self.sent and self.back.settled

    def _ask(self, kind: str, timeout: float) -> bool:
        """Send (kind, token) and wait for the answer; False on time-out."""
        if self.proc is None:
            return True
        token, done = next(self._tokens), threading.Event()
        self._waiting[token] = done
        with self._lock:
            self._put(wire.encode((kind, token)))
        return done.wait(timeout)

    def flush(self, timeout: float = 2.0, final: bool = False) -> None:
        """Store what the sidecar holds, now; at exit, then let it go."""
        proc = self.proc
        if proc is None:
            return
        deadline = time.monotonic() + timeout
        answered = self._ask("flush", timeout)
        if not answered and final:  # it goes on after this process: stdin's end tells it
            logger.warning("dashboard: the sidecar had not stored this process's last events "
                           "within %.0f s; it stores them after the exit", timeout)
        elif not answered:
            logger.warning("dashboard: the sidecar did not store its events in time")
        # Its frames came before its answer: let them leave too (a command that exits
        # right after its last save must not cut its last frame off).
        loop = self.back.loop
        while (
            not self.back.all_left
            and loop is not None
            and loop.is_running()
            and time.monotonic() < deadline
        ):
            time.sleep(0.002)
        if final:
            with self._lock:
                # Every frame came back and left: the sidecar need not send them again
                # (sidecar/main.py). Unanswered, some may still be on their way here.
                if answered and self.back.all_left:
                    self._put(wire.encode(("bye",)))
                self._put(None)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)

    def reset(self) -> None:
        """Forget what is pending here and in the sidecar, and the counters (tests)."""
        if self.proc is not None:
            self._ask("reset", 5.0)
        with self._lock:
            self.sent = self.acked = self._base = self.kept_seq = self.stored_seq = 0
            self.unstored = self.lost = 0
            self.unavailable = False
            self.rendered_elsewhere = False
            self._unacked.clear()
            self._config_key = None
            self.back.reset()

    def after_fork(self) -> None:
        """In a forked child: the parent's sidecar is not ours. Its socket and pipe are closed
        here (nothing of the parent's is written twice)."""
        proc, channel = self.proc, self._channel
        self.__init__()  # type: ignore[misc]
        if channel is not None:
            channel.sock.close()
        if proc is not None:
            with contextlib.suppress(Exception):
                proc.stdout.close()  # type: ignore[union-attr]


def sidecar_config() -> dict[str, Any]:
    """What the sidecar is told of this process's settings (its first message)."""
    return {
        "databases": {alias: dict(connections[alias].settings_dict) for alias in connections},
        "dashboard": getattr(settings, "DASHBOARD", {}),
        "urlconf": settings.ROOT_URLCONF,
    }


link = Link()
os.register_at_fork(after_in_child=link.after_fork)
