"""Time every receiver of a watched signal, and publish the event when all have run.

Django calls a signal's receivers in a loop over `Signal._live_receivers(sender)`
(send, send_robust and asend alike). Wrapping that method on each watched
signal lets each receiver be timed without touching how they are connected.
The capture receiver (one of them) does not publish its event itself: its
`capture` function gives the event to the dispatch, and whichever receiver
finishes last publishes it, with every receiver's time, so the publisher
never sees a half-filled event.

`Signal._live_receivers` is Django-internal (5.0+); tests/test_detail.py checks it.
"""

from collections.abc import Callable
from time import perf_counter
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


def _timed(receiver: Receiver, dispatch: Dispatch) -> Receiver:
    capture = getattr(receiver, "capture", None)
    if capture is not None:
        # The dashboard's own receiver: it makes the event this dispatch publishes.
        def call_capture(*, sender: Any, **kwargs: Any) -> None:
            started = perf_counter()
            if (event := capture(sender, kwargs)) is not None:  # never raises
                dispatch.event = event
            dispatch.finished(receiver, perf_counter() - started)

        return call_capture

    def call(**kwargs: Any) -> Any:
        started, failed = perf_counter(), True
        try:
            result = receiver(**kwargs)
            failed = False
            return result
        finally:
            dispatch.finished(receiver, perf_counter() - started, failed)

    return call


def _atimed(receiver: Receiver, dispatch: Dispatch) -> Receiver:
    async def call(**kwargs: Any) -> Any:
        started, failed = perf_counter(), True
        try:
            result = await receiver(**kwargs)
            failed = False
            return result
        finally:
            dispatch.finished(receiver, perf_counter() - started, failed)

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
