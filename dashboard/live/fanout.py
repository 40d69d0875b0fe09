"""Frames → every open dashboard: this process's sockets directly, others' via the layer.

The pump hands each frame to `fanout.publish()` on its loop, which
passes it to every socket of this process in turn (a socket's send only
queues bytes, so this does not wait on clients; under daphne the frame is
framed once for all of them, see live/daphne.py). With a layer that crosses
processes (`crosses_processes()`: channels-redis, not the in-memory one), it
then `group_send`s the frame once, for other processes. In each process that
serves dashboards, one relay task listens to the group on one layer channel
and delivers what *other* processes sent to its own sockets.

So a frame costs one layer message per process, not one per socket: the
in-memory layer deep-copies a message for every member of a group and
scans every member's queue on each receive, which made the layer, not the
sockets, the ceiling at 100 dashboards; with channels-redis it saves a
round trip per socket.
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any, Protocol

from channels.layers import InMemoryChannelLayer, get_channel_layer

from dashboard import conf
from dashboard.core import keys
from dashboard.live.daphne import Frame
from dashboard.live.tail import Tail

logger = logging.getLogger("dashboard")

# Group memberships expire in channels' layers (a day by default): the relay
# renews its own well before.
RENEW_EVERY = 3600.0
RETRY_AFTER = 1.0  # seconds before the relay tries the layer again, doubling per failure
RETRY_AT_MOST = 30.0
JOIN_WAIT = 2.0  # seconds a socket's opening waits, at most, for the relay to listen
# Other processes' frames a socket opening now is handed too (see recent()): those of the
# last second, at most 16 (each at most MAX_ROWS rows of HTML).
RECENT_SECONDS = 1.0
RECENT_AT_MOST = 16

try:  # channels-redis's client: an idle blocking read ends with its own TimeoutError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError:  # no Redis here
    RedisTimeoutError = TimeoutError  # type: ignore[assignment,misc]
# A read that ended only because nothing came in time: nothing wrong, listen again.
# (redis-py says the same of a server that stopped answering: so after QUIET_CHECK of
# them in a row, the relay asks the layer something, which fails if it is gone.)
IDLE_READ_ENDED = (TimeoutError, RedisTimeoutError)
QUIET_CHECK = 6  # idle reads in a row (about 30 s with channels-redis) between checks


def _closed_errors() -> tuple[type[BaseException], ...]:
    """What a write to a socket that closed raises: autobahn's Disconnected (daphne),
    an OSError (uvicorn's ClientDisconnected, a reset connection)."""
    found: list[type[BaseException]] = [OSError]
    with contextlib.suppress(ImportError):  # no autobahn: not served by daphne
        from autobahn.exception import Disconnected

        found.append(Disconnected)
    return tuple(found)


CLOSED = _closed_errors()


class Subscriber(Protocol):
    async def deliver(self, frame: Frame) -> None: ...


class Fanout:
    def __init__(self) -> None:
        # A dict keeps subscription order; values unused.
        self.subscribers: dict[Subscriber, None] = {}
        self._recent: deque[tuple[float, dict[str, Any]]] = deque(maxlen=RECENT_AT_MOST)
        self._relay: asyncio.Task[None] | None = None
        # Set once the relay listens to the group, or could not join it (the layer down:
        # sockets then open at once, "this process only"). Per relay: a new one starts unset.
        self._joined = asyncio.Event()
        self._tail: asyncio.Task[None] | None = None
        # The channel layer failed its last send or receive (`layer_down`).
        self._layer_down = False
        # The newest seq of this process's frames handed to its sockets (live/tail.py).
        self.relayed_seq = 0

    def subscribe(self, subscriber: Subscriber) -> None:
        """Called on the server's loop by a socket that opened."""
        self.subscribers[subscriber] = None
        if crosses_processes():
            self._ensure_relay()
        else:  # other processes' events come from the history (live/tail.py)
            self._ensure_tail()

    async def listening(self, timeout: float = JOIN_WAIT) -> None:
        """Until the relay listens to the group, or its first try to join failed (at most
        `timeout`): a frame another process publishes before the join reaches no socket
        of this process, so a socket opens only once it would hear it. Nothing to wait
        for without a crossing layer."""
        if not crosses_processes():
            return
        self._ensure_relay()
        with contextlib.suppress(TimeoutError):  # a layer that does not answer
            await asyncio.wait_for(self._joined.wait(), timeout)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.pop(subscriber, None)

    async def deliver(self, message: dict[str, Any]) -> None:
        frame = Frame(message)  # framed once for every socket (live/daphne.py)
        for subscriber in list(self.subscribers):
            try:
                await subscriber.deliver(frame)
            except CLOSED:  # the page went as the frame was on its way: nobody to show it
                self.unsubscribe(subscriber)
                logger.debug("dashboard: %r closed before a frame reached it", subscriber)
            except Exception:  # one broken socket must not cost the others their frame
                logger.exception("dashboard: could not deliver a frame to %r", subscriber)

    def recent(self) -> list[Frame]:
        """Other processes' frames relayed here in the last RECENT_SECONDS, for a socket
        opening now to hold as if they came after it. Another process's frame leaves
        before its events are stored (its sidecar stores after sending it): one relayed
        just before a page opened may not be in the page's backfill, and if that process
        sends nothing more (it ended, or was killed), no later frame of it shows the gap.
        The socket skips those whose events are stored by then (live/consumer.py)."""
        horizon = time.monotonic() - RECENT_SECONDS
        return [Frame(message) for at, message in self._recent if at >= horizon]

    def _remember(self, message: dict[str, Any]) -> None:
        now = time.monotonic()
        recent = self._recent
        while recent and recent[0][0] < now - RECENT_SECONDS:
            recent.popleft()
        recent.append((now, message))

    def watched(self) -> bool:
        """Could anyone see a frame now? A socket here, or, through a layer that
        reaches other processes, sockets elsewhere. Nobody: no frame is made."""
        return bool(self.subscribers) or crosses_processes()

    async def publish(self, message: dict[str, Any]) -> None:
        """Deliver a frame of this process: here first, then to the others. A layer
        that fails costs other processes' dashboards this frame, never a save. A layer
        that stays in this process reaches no one else (nothing here listens to the
        group: no relay runs): no send, for which the in-memory layer scans its queues
        and groups for what expired, per frame."""
        await self.deliver(message)
        if (last := message.get("last_seq")) is not None:
            self.relayed_seq = max(self.relayed_seq, last)
        if crosses_processes():
            layer = get_channel_layer()
            try:
                await layer.group_send(conf.get("GROUP"), message)
            except Exception as exc:
                self._down(f"could not publish to the channel layer: {exc!r}")
            else:
                self._up()

    @property
    def layer_down(self) -> bool:
        """The crossing layer failed its last send or receive: frames say so (the page
        shows "this process only"), the log said it once, until it works again. A layer
        that stays in this process is never down (CHANNEL_LAYERS changed to it meanwhile:
        no send or receive of it would ever say it is back)."""
        if not self._layer_down:
            return False
        try:
            return crosses_processes()
        except Exception:  # CHANNEL_LAYERS broken meanwhile: the failure stands
            return True

    def _down(self, why: str) -> None:
        if not self._layer_down:
            self._layer_down = True
            logger.warning(
                "dashboard: %s; this process's events reach only its own dashboards, and "
                "other processes' events do not reach them, until it is back", why
            )

    def _up(self) -> None:
        if self._layer_down:
            self._layer_down = False
            logger.warning("dashboard: the channel layer is back")

    # -- other processes' frames: from the layer (the relay), or the history ------

    def _ensure_tail(self) -> None:
        loop = asyncio.get_running_loop()
        tail = self._tail
        if tail is not None and not tail.done() and tail.get_loop() is loop:
            return
        _stop(tail)
        self._tail = loop.create_task(
            Tail(lambda: self.relayed_seq).run(self.deliver, lambda: bool(self.subscribers)),
            name="dashboard-tail",
        )

    def _ensure_relay(self) -> None:
        loop = asyncio.get_running_loop()
        relay = self._relay
        if relay is not None and not relay.done() and relay.get_loop() is loop:
            return
        _stop(relay)
        self._joined = asyncio.Event()
        self._relay = loop.create_task(self._listen(self._joined), name="dashboard-relay")

    async def _listen(self, joined: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        layer = get_channel_layer()
        if layer is None:
            return
        group = conf.get("GROUP")
        channel = await layer.new_channel()
        await self._join(layer, group, channel, joined)
        joined.set()
        renewing = asyncio.ensure_future(self._renew(layer, group, channel))
        try:
            delay, quiet = RETRY_AFTER, 0
            while True:
                try:
                    message = await layer.receive(channel)
                except asyncio.CancelledError:
                    raise
                except IDLE_READ_ENDED:
                    # An idle blocking read that timed out (channels-redis reads with
                    # redis-py's 5 s socket_timeout): not the layer down, listen again;
                    # quiet for long, check it is there (joining again: retried, said).
                    quiet += 1
                    if quiet % QUIET_CHECK == 0:
                        await self._join(layer, group, channel)
                    continue
                except Exception as exc:  # e.g. Redis restarting: back off, listen again
                    if _loop_gone(loop):  # collected after its loop closed: nothing to retry
                        return
                    self._down(f"could not listen to the channel layer: {exc!r}")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_AT_MOST)
                    continue
                delay, quiet = RETRY_AFTER, 0
                self._up()
                if message.get("process") != keys.process():  # ours went out directly
                    self._remember(message)
                    await self.deliver(message)
        finally:
            # Collected after its loop closed (a test's end), perhaps while another loop
            # runs in this thread: nothing left to tidy, and no await (a coroutine being
            # closed must not wait again: "coroutine ignored GeneratorExit").
            with contextlib.suppress(RuntimeError):
                renewing.cancel()
                if asyncio.get_running_loop() is loop:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(layer.group_discard(group, channel))

    async def _join(
        self, layer: Any, group: str, channel: str, tried: asyncio.Event | None = None
    ) -> None:
        """Join the group, retrying until it works; `tried` is set after the first try
        either way (a socket waits for the join, not for the layer to come back)."""
        delay = RETRY_AFTER
        while True:
            try:
                await layer.group_add(group, channel)
            except Exception as exc:
                self._down(f"could not join the layer group: {exc!r}")
                if tried is not None:
                    tried.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_AT_MOST)
            else:
                self._up()
                return

    async def _renew(self, layer: Any, group: str, channel: str) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            await self._join(layer, group, channel)

    def reset(self) -> None:
        """Forget sockets and stop the relay and the tail (tests)."""
        self.subscribers.clear()
        self._recent.clear()
        relay, self._relay = self._relay, None
        tail, self._tail = self._tail, None
        self._layer_down = False
        self.relayed_seq = 0
        _stop(relay)
        _stop(tail)


def crosses_processes() -> bool:
    """Does the channel layer reach other processes? The stock in-memory layer never
    leaves this process (a subclass might); no layer at all neither."""
    layer = get_channel_layer()
    return layer is not None and type(layer) is not InMemoryChannelLayer


def _stop(relay: asyncio.Task[None] | None) -> None:
    """Cancel a relay or tail task on its own loop, which may be another thread's, or closed."""
    if relay is not None and not relay.done():
        with contextlib.suppress(RuntimeError):  # its loop is closed: it is gone
            relay.get_loop().call_soon_threadsafe(relay.cancel)


fanout = Fanout()


def _loop_gone(loop: asyncio.AbstractEventLoop) -> bool:
    """`loop`, the one a coroutine began on, no longer runs it: it closed, and the coroutine
    is being collected, maybe while another loop runs in this thread (a later test's),
    which is not the coroutine's to wait on ("coroutine ignored GeneratorExit")."""
    try:
        return loop.is_closed() or asyncio.get_running_loop() is not loop
    except RuntimeError:  # no loop runs
        return True
