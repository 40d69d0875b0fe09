"""Time every receiver of a watched signal; hand the event off when all have run.

Django calls a signal's receivers in a loop over `Signal._live_receivers(sender)`
(send, send_robust, asend, asend_robust; has_listeners counts them). This
seam wraps that method on each watched signal instance, as sentry-python
wraps it class-wide, so each receiver is timed without touching how it was
connected:

- each receiver is wrapped in a `Timed` that names it (`__qualname__`,
  `__wrapped__`...: Django's `send_robust` log names the real receiver);
  the signal's send methods hand the caller back the receivers it connected,
  never the wrappers;
- the dashboard's own receiver (one of them) does not hand its event off
  itself: whichever receiver finishes last does, with every receiver's time;
- a receiver that raises hands the event off at once (under send() the rest
  never run) and, if the dashboard's receiver had not run yet, captures first:
  the dispatch shows, with the receiver that raised marked.

`_live_receivers` is Django-internal. `probe()` checks its shape at start-up
on the versions it was written for; anywhere else, or at the first surprise,
signals are captured by the plain receiver, untimed (seams.py).
"""

import functools
from collections.abc import Callable
from time import perf_counter
from typing import Any

import django
from django.dispatch import Signal

from dashboard.core.events import Event, ReceiverTiming
from dashboard.live.handoff import handoff
from dashboard.seams import seam

Receiver = Callable[..., Any]
# Django versions whose Signal._live_receivers(sender) returns (sync, async) lists.
KNOWN_VERSIONS = ((5, 0), (6, 1))  # from, up to (excluded)

SEAM = seam(
    "dashboard.W001",
    "django.dispatch.Signal._live_receivers",
    "signals are captured without receiver timings",
)


class Dispatch:
    """One send of a watched signal: the event, once captured, and every receiver's time."""

    __slots__ = ("event", "timings", "to_capture", "tokens")

    def __init__(self, receivers: int) -> None:
        self.event: Event | None = None
        self.timings: list[ReceiverTiming] = []
        # list.pop() is atomic: whoever pops 0 is the last receiver to finish,
        # even when asend runs sync and async receivers in two threads; and
        # whoever pops the capture (added by the wrapping) captures, once.
        self.tokens = list(range(receivers))
        self.to_capture: list[Callable[[Any, dict[str, Any]], Event | None]] = []

    def run_capture(self, sender: Any, kwargs: dict[str, Any]) -> None:
        try:
            capture = self.to_capture.pop()
        except IndexError:
            return
        self.event = capture(sender, kwargs)  # never raises

    def finished(
        self, receiver: Receiver, seconds: float, kwargs: dict[str, Any] | None = None
    ) -> None:
        """Record one receiver (`kwargs` when it raised); the last one hands the event off."""
        self.timings.append(ReceiverTiming(receiver, seconds, kwargs is not None))
        last = self.tokens.pop() == 0
        if kwargs is not None:
            named = dict(kwargs)
            self.run_capture(named.pop("sender", None), named)
        if (last or kwargs is not None) and (event := self.event) is not None:
            self.event = None
            event.timings = list(self.timings)
            handoff.publish(event)


class Timed:
    """A receiver, timed; looks like it (`__qualname__` and the rest) to whoever asks."""

    __slots__ = ("dispatch", "receiver")

    def __init__(self, receiver: Receiver, dispatch: Dispatch) -> None:
        self.receiver, self.dispatch = receiver, dispatch

    def __call__(self, **kwargs: Any) -> Any:
        started = perf_counter()
        try:
            result = self.receiver(**kwargs)
        except BaseException:
            self.dispatch.finished(self.receiver, perf_counter() - started, kwargs)
            raise
        self.dispatch.finished(self.receiver, perf_counter() - started)
        return result

    @property
    def __wrapped__(self) -> Receiver:
        return self.receiver

    def __getattr__(self, name: str) -> Any:
        if name in Timed.__slots__:  # not set yet (copying): no recursion
            raise AttributeError(name)
        return getattr(self.receiver, name)

    def __repr__(self) -> str:
        return f"<timed {self.receiver!r}>"


class TimedCapture(Timed):
    """The dashboard's own receiver: it makes the event this dispatch hands off."""

    __slots__ = ()

    def __call__(self, *, sender: Any, **kwargs: Any) -> None:
        started = perf_counter()
        self.dispatch.run_capture(sender, kwargs)
        self.dispatch.finished(self.receiver, perf_counter() - started)


class ATimed(Timed):
    __slots__ = ()

    async def __call__(self, **kwargs: Any) -> Any:  # type: ignore[override]
        started = perf_counter()
        try:
            result = await self.receiver(**kwargs)
        except BaseException:
            self.dispatch.finished(self.receiver, perf_counter() - started, kwargs)
            raise
        self.dispatch.finished(self.receiver, perf_counter() - started)
        return result


WRAPPERS = (Timed, TimedCapture, ATimed)


def _connected(receiver: Any) -> Any:
    return receiver.receiver if type(receiver) in WRAPPERS else receiver


def _timed_receivers(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def live_receivers(sender: Any) -> Any:
        result = original(sender)
        if not SEAM.ok:
            return result
        try:
            sync, asynchronous = result
            dispatch = Dispatch(len(sync) + len(asynchronous))
            timed: list[Timed] = []
            for receiver in sync:
                if (capture := getattr(receiver, "capture", None)) is not None:
                    dispatch.to_capture.append(capture)
                    timed.append(TimedCapture(receiver, dispatch))
                else:
                    timed.append(Timed(receiver, dispatch))
            return timed, [ATimed(r, dispatch) for r in asynchronous]
        except Exception as exc:  # a new shape: Django goes on as without us
            SEAM.fail(f"it returned {type(result).__name__} ({exc})")
            return result

    return live_receivers


def _unwrapping(send: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(send)
    def unwrapped(sender: Any, **named: Any) -> Any:
        return [(_connected(r), v) for r, v in send(sender, **named)]

    return unwrapped


def _aunwrapping(send: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(send)
    async def unwrapped(sender: Any, **named: Any) -> Any:
        return [(_connected(r), v) for r, v in await send(sender, **named)]

    return unwrapped


def instrument(signal: Signal) -> bool:
    """Time this signal's receivers from now on; False if the seam is off."""
    if getattr(signal, "_dashboard_instrumented", False):
        return True
    if not SEAM.ok:
        return False
    signal._live_receivers = _timed_receivers(signal._live_receivers)  # type: ignore[method-assign]
    signal.send = _unwrapping(signal.send)  # type: ignore[method-assign]
    signal.send_robust = _unwrapping(signal.send_robust)  # type: ignore[method-assign]
    signal.asend = _aunwrapping(signal.asend)  # type: ignore[method-assign]
    signal.asend_robust = _aunwrapping(signal.asend_robust)  # type: ignore[method-assign]
    signal._dashboard_instrumented = True  # type: ignore[attr-defined]
    return True


INSTRUMENTED = ("_live_receivers", "send", "send_robust", "asend", "asend_robust")


def uninstrument(signal: Signal) -> None:
    """Undo instrument() (the benchmark's `off` runs; tests)."""
    for name in (*INSTRUMENTED, "_dashboard_instrumented"):
        signal.__dict__.pop(name, None)


def probe() -> str | None:
    """At start-up: does `_live_receivers` still look as this module expects?"""
    if not KNOWN_VERSIONS[0] <= django.VERSION[:2] < KNOWN_VERSIONS[1]:
        return (
            f"Django {django.get_version()} is not among the versions it was checked on "
            f"({KNOWN_VERSIONS[0][0]}.{KNOWN_VERSIONS[0][1]} up to "
            f"{KNOWN_VERSIONS[1][0]}.{KNOWN_VERSIONS[1][1]})"
        )
    signal = Signal()

    def receiver(**kwargs: Any) -> None:
        pass

    signal.connect(receiver, weak=False)
    result = Signal._live_receivers(signal, None)
    if not (isinstance(result, tuple) and len(result) == 2):
        return f"it returned {type(result).__name__}, not a (sync, async) pair"
    sync, asynchronous = result
    if list(sync) != [receiver] or list(asynchronous) != []:
        return "it no longer lists a connected receiver as (sync, async) lists"
    asked = []
    signal._live_receivers = lambda sender: asked.append(sender) or result  # type: ignore[method-assign]
    signal.send(sender=None)
    if not asked:
        return "Signal.send() no longer asks it for the receivers"
    return None
