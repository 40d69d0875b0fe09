"""Frames the sidecar writes back, on their way to this process's sockets.

For each watched batch it sends, the link (sidecar/link.py) `expect()`s a frame
and the pump waits (`wait_turn()`) while IN_FLIGHT frames are on their way.
The link's reader thread hands each frame that comes back to `arrive()`, which
relays it on the pump's loop, in order: to the pump itself when that is the
frame it waits for (its own turn of the loop, not a task's more), else through
a task that relays what is queued. A frame leaves through the fanout (this
process's sockets and the channel layer: live/fanout.py).

Every frame counts once as arrived and once as left (relayed, or dropped), so
a process that exits can tell whether its last frames left it: if they did,
it says "bye" and the sidecar need not send them again (sidecar/main.py).

The link calls `expect()`, `arrive()` and `reset()` holding its lock; the
rest runs on the pump's loop.
"""

import asyncio
import contextlib
from collections import deque
from typing import Any

from dashboard.live.alarm import resolve
from dashboard.live.fanout import fanout
from dashboard.live.frames import frames

Message = dict[str, Any] | None  # None: a batch that made no frame
Waiter = asyncio.Future[Message]

# Watched batches whose frames may be on their way at once: while a frame is on its way,
# what arrives meanwhile becomes the next one (not a queue of small frames). Two on their
# way overlapped the round trip with the pump's pause, but made more, smaller frames, and a
# server relaying another's frames through Redis fell behind on them (each frame is a read
# and a write per socket, each waiting for the GIL beside a saving thread): two daphnes at
# 1,000 events/s, p99 600-960 ms against 81-106 ms with one (bench/twin.py, same hour).
IN_FLIGHT = 1
FRAME_WAIT = 5.0  # seconds the pump waits for a batch's frame to come back and leave


class Returns:
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None  # the pump's
        self.arrived = self.left = 0  # frames written back; those that left or were dropped
        self._queued: deque[Message] = deque()  # arrived, for the relay task
        self._out: deque[Waiter] = deque()  # per watched batch sent: done once its frame left
        self._awaited: Waiter | None = None  # the one the pump waits for
        self._task: asyncio.Future[None] | None = None
        self._epoch = 0  # grows with each reset: what the sidecar sent before is dropped

    # -- the pump's side (on its loop) --------------------------------------------------

    def expect(self) -> None:
        """A watched batch was sent: its frame will come back."""
        assert self.loop is not None
        self._out.append(self.loop.create_future())

    async def wait_turn(self) -> None:
        """Until fewer than IN_FLIGHT frames are on their way."""
        if len(self._out) >= IN_FLIGHT and not (waiter := self._out[-IN_FLIGHT]).done():
            await self._frame_of(waiter)

    async def _frame_of(self, waiter: Waiter) -> None:
        """Until the batch's frame has left this process. Nothing else relaying, it is
        handed to this coroutine to relay (`_relay`): the pump's own turn, not a task's
        more. One turn of the loop when it comes, not wait_for's three (live/alarm.py
        says why turns matter); after FRAME_WAIT, a frame lost on the way: go on."""
        timer = self.loop.call_later(FRAME_WAIT, resolve, waiter)  # type: ignore[union-attr]
        self._awaited = waiter
        try:
            message = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                self.left += 1  # handed to a pump that was stopped: gone with it
            raise
        finally:
            self._awaited = None
            timer.cancel()
        if message is not None:
            await self._publish(message)

    async def _publish(self, message: Message) -> None:
        """A frame leaves this process."""
        try:
            if message is not None:
                await fanout.publish(message)
                frames.sent += 1
        finally:
            self.left += 1

    # -- the reader thread's side ---------------------------------------------------------

    def arrive(self, message: Message) -> None:
        """A frame came back (the link's lock held): relayed on the pump's loop."""
        self.arrived += 1
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._relay, message, self._epoch)

    def _relay(self, message: Message, epoch: int) -> None:
        if epoch != self._epoch:  # a frame of before a reset (tests)
            self.left += 1
            return
        waiter = self._out[0] if self._out else None  # the batch this frame is of
        if (
            waiter is not None
            and waiter is self._awaited
            and not waiter.done()  # its time-out may have come in this same turn
            and not self._queued
            and not self.relaying
        ):
            self._out.popleft()
            if message is None:
                self.left += 1
            waiter.set_result(message)  # the pump relays it (_frame_of)
            return
        self._queued.append(message)
        if not self.relaying:
            self._task = asyncio.ensure_future(self._relay_all())

    @property
    def relaying(self) -> bool:
        task = self._task
        return task is not None and not task.done() and not task.get_loop().is_closed()

    async def _relay_all(self) -> None:
        while self._queued:
            await self._publish(self._queued.popleft())
            if self._out and not (done := self._out.popleft()).done():
                done.set_result(None)

    def release(self) -> None:
        """No frame will come back for what was sent (the sidecar ended): the pump goes on."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._release)

    def _release(self) -> None:
        while self._out:
            if not (done := self._out.popleft()).done():
                done.set_result(None)

    # -- state ------------------------------------------------------------------------------

    @property
    def settled(self) -> bool:
        """Nothing queued here or being relayed."""
        return not self._queued and not self.relaying

    @property
    def all_left(self) -> bool:
        """Every frame that came back has left this process (or was dropped)."""
        return self.arrived <= self.left

    def reset(self) -> None:
        """Forget what waits (the link's lock held, tests). `arrived` and `left` stay: frames
        of before the reset still queued on the loop each count as left once dropped
        (_relay), as every frame does once."""
        self._epoch += 1
        self.left += len(self._queued)  # dropped: as good as left
        self._queued.clear()
        out, self._out = self._out, deque()
        task, loop, self._task, self.loop = self._task, self.loop, None, None
        if task is not None and loop is not None and not task.done():
            with contextlib.suppress(RuntimeError):  # its loop closed: it ended with it
                loop.call_soon_threadsafe(task.cancel)
        for done in out:
            if loop is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(done.cancel)
