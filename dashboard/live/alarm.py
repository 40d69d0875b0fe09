"""The pump's waits, one turn of its loop each.

Every turn of an asyncio loop ends in a select() that lets the GIL go, even
with nothing to wait for, and a thread of the host's waiting for it (a
request, a save) takes it and holds it until its next I/O or for a switch
interval (5 ms) while the pump waits: each turn of the pump's beside a request
costs the request a turn of the GIL. asyncio.wait_for() over Event.wait() took
five turns to wait out a pause (a task for the wait, its cancellation, the
waiters), and three over a future; these take one, the timer's or the
wake-up's (bench/README.md).
"""

import asyncio
from typing import Any


class Alarm:
    """What wakes the pump: set() on its loop (publish() and flush() through
    call_soon_threadsafe), and wait() for it or a time-out, whichever comes
    first. One waiter at a time: the pump."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._set = True
        resolve(self._waiter)

    def clear(self) -> None:
        self._set = False

    async def wait(self, timeout: float | None = None) -> None:
        """Until set, or `timeout` seconds (None: no end)."""
        if self._set:
            return
        self._waiter = waiter = self._loop.create_future()
        timer = None if timeout is None else self._loop.call_later(timeout, resolve, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()


def resolve(waiter: "asyncio.Future[Any] | None") -> None:
    """Done with None, unless done already (a timer, a wake-up: whichever came first)."""
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
