"""Time every receiver of a watched signal, and publish the event when all have run.

Django calls a signal's receivers in a loop over `Signal._live_receivers(sender)`
(send, send_robust and asend alike). Wrapping that method on each watched
signal lets each receiver be timed without touching how they are connected.
The capture receiver (one of them) does not publish its event itself: it hands
it to the dispatch, and whichever receiver finishes last publishes it, with
every receiver's time, so the publisher never sees a half-filled event.

`Signal._live_receivers` is Django-internal (5.0+); tests/test_detail.py checks it.
"""

import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.dispatch import Signal

from dashboard.events import Event
from dashboard.publisher import publisher

Receiver = Callable[..., Any]


class Dispatch:
    __slots__ = ("event", "timings", "tokens")

    def __init__(self, receivers: int) -> None:
        self.event: Event | None = None
        self.timings: list[tuple[Receiver, float]] = []
        # list.pop() is atomic: whoever pops 0 is the last receiver to finish,
        # even when asend runs sync and async receivers in two threads.
        self.tokens = list(range(receivers))

    def finished(self, receiver: Receiver, seconds: float, failed: bool = False) -> None:
        """Record one receiver; the last one, or one that raised, publishes the event.

        A raising receiver publishes at once: under send() the rest never run.
        """
        self.timings.append((receiver, seconds))
        last = self.tokens.pop() == 0
        if (last or failed) and (event := self.event) is not None:
            self.event = None
            event.timings = list(self.timings)
            publisher.publish(event)


current: ContextVar[Dispatch | None] = ContextVar("dashboard_dispatch", default=None)


class _Timing:
    """Around one receiver call: make its dispatch current, time it, record it."""

    __slots__ = ("dispatch", "receiver", "started", "token")

    def __init__(self, receiver: Receiver, dispatch: Dispatch) -> None:
        self.receiver, self.dispatch = receiver, dispatch

    def __enter__(self) -> None:
        self.token = current.set(self.dispatch)
        self.started = time.perf_counter()

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        seconds = time.perf_counter() - self.started
        current.reset(self.token)
        self.dispatch.finished(self.receiver, seconds, failed=exc_type is not None)


def _timed(receiver: Receiver, dispatch: Dispatch) -> Receiver:
    def call(**kwargs: Any) -> Any:
        with _Timing(receiver, dispatch):
            return receiver(**kwargs)

    return call


def _atimed(receiver: Receiver, dispatch: Dispatch) -> Receiver:
    async def call(**kwargs: Any) -> Any:
        with _Timing(receiver, dispatch):
            return await receiver(**kwargs)

    return call


def instrument(signal: Signal) -> None:
    if getattr(signal, "_dashboard_instrumented", False):
        return
    original = signal._live_receivers

    def live_receivers(sender: Any) -> tuple[list[Receiver], list[Receiver]]:
        sync, asynchronous = original(sender)
        dispatch = Dispatch(len(sync) + len(asynchronous))
        return (
            [_timed(r, dispatch) for r in sync],
            [_atimed(r, dispatch) for r in asynchronous],
        )

    signal._live_receivers = live_receivers  # type: ignore[method-assign]
    signal._dashboard_instrumented = True  # type: ignore[attr-defined]


def hand_off(event: Event) -> None:
    """Called by the capture receiver: publish now, or when the dispatch ends."""
    dispatch = current.get()
    if dispatch is None:  # sent some way that bypassed _live_receivers
        publisher.publish(event)
    else:
        dispatch.event = event
