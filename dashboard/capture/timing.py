"""Time every receiver of a dispatch the dashboard records.

Django calls a signal's receivers in a loop over `Signal._live_receivers(sender)`
(send, send_robust, asend, asend_robust). While a recorded dispatch is under
way (capture/dispatch.py), that call's receivers come back wrapped, each in
a `Timed` that notes how long it ran and whether it raised, and looks like
the receiver to whoever asks (`__qualname__`, `__wrapped__`...: Django's
`send_robust` log names the real receiver). The send methods hand the
caller back the receivers it connected, never the wrappers; `has_listeners()`
and every call outside a recorded dispatch get Django's answer untouched.

A sync receiver's own SQL is counted too: while it runs, an execute wrapper
(Django's public `connection.execute_wrapper()`) sits on each connection this
thread has set up, and counts the queries and their time; a query of a
receiver it sets off counts for that one (the innermost receiver running).
The wrapper calls Django's executor as it is (same SQL, same parameters, its
exceptions unchanged) and is taken off when the receiver returns or raises.

`_live_receivers` is Django-internal. `probe()` checks its shape at start-up
on the versions it was written for; anywhere else, or at the first surprise,
dispatches are recorded untimed (seams.py).
"""

import logging
from collections.abc import Callable
from contextvars import ContextVar, Token
from time import perf_counter
from typing import Any

import django
from django.db import connections
from django.dispatch import Signal

from dashboard.core.events import ReceiverTiming
from dashboard.core.quiet import quiet_block
from dashboard.seams import seam

logger = logging.getLogger("dashboard")
Receiver = Callable[..., Any]
# Django versions whose Signal._live_receivers(sender) returns (sync, async) lists.
KNOWN_VERSIONS = ((5, 0), (6, 1))  # from, up to (excluded)

SEAM = seam(
    "dashboard.W001",
    "django.dispatch.Signal._live_receivers",
    "signals are recorded without receiver timings",
)


class SQLCount:
    """An execute wrapper counting one receiver's own queries and their time."""

    __slots__ = ("installed", "queries", "seconds", "token")

    def __init__(self) -> None:
        self.queries, self.seconds = 0, 0.0
        self.token: Token[SQLCount | None] | None = None
        self.installed: list[Any] = []

    def __call__(self, execute: Callable[..., Any], sql: Any, params: Any, many: bool,
                 context: dict[str, Any]) -> Any:  # fmt: skip
        if counting.get() is not self:  # a receiver this one set off is running
            return execute(sql, params, many, context)
        started = perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.queries += 1
            self.seconds += perf_counter() - started

    def install(self) -> None:
        """On every connection this thread has set up. Never raises."""
        try:
            self.token = counting.set(self)
            for connection in connections.all(initialized_only=True):
                manager = connection.execute_wrapper(self)
                manager.__enter__()
                self.installed.append(manager)
        except Exception:
            logger.exception("dashboard: could not count a receiver's queries")

    def uninstall(self) -> None:
        try:
            for manager in reversed(self.installed):
                manager.__exit__(None, None, None)
            if self.token is not None:
                counting.reset(self.token)
        except Exception:
            logger.exception("dashboard: could not stop counting a receiver's queries")


# The receiver whose queries count now (the innermost one running, in this context).
counting: ContextVar[SQLCount | None] = ContextVar("dashboard_sql_count", default=None)


class Timed:
    """A receiver, timed; looks like it (`__qualname__` and the rest) to whoever asks."""

    __slots__ = ("receiver", "timings")

    def __init__(self, receiver: Receiver, timings: list[ReceiverTiming]) -> None:
        self.receiver, self.timings = receiver, timings

    def __call__(self, **kwargs: Any) -> Any:
        sql = SQLCount()
        sql.install()
        started = perf_counter()
        raised = True
        try:
            result = self.receiver(**kwargs)
            raised = False
            return result
        finally:
            seconds = perf_counter() - started
            sql.uninstall()
            self.timings.append(
                ReceiverTiming(self.receiver, seconds, raised, sql.queries, sql.seconds)
            )

    @property
    def __wrapped__(self) -> Receiver:
        return self.receiver

    def __getattr__(self, name: str) -> Any:
        if name in Timed.__slots__:  # not set yet (copying): no recursion
            raise AttributeError(name)
        return getattr(self.receiver, name)

    def __repr__(self) -> str:
        return f"<timed {self.receiver!r}>"


class ATimed(Timed):
    """An async receiver, timed (its queries run in other threads: not counted)."""

    __slots__ = ()

    async def __call__(self, **kwargs: Any) -> Any:  # type: ignore[override]
        started = perf_counter()
        try:
            result = await self.receiver(**kwargs)
        except BaseException:
            self.timings.append(ReceiverTiming(self.receiver, perf_counter() - started, True))
            raise
        self.timings.append(ReceiverTiming(self.receiver, perf_counter() - started))
        return result


def timed(result: Any, timings: list[ReceiverTiming]) -> Any:
    """Django's (sync, async) receivers, each wrapped to note its time in `timings`;
    any other shape is handed back as it is, and the seam falls back for good."""
    try:
        sync, asynchronous = result
        return [Timed(r, timings) for r in sync], [ATimed(r, timings) for r in asynchronous]
    except Exception as exc:  # a new shape: Django goes on as without us
        SEAM.fail(f"it returned {type(result).__name__} ({exc})")
        return result


def connected(receiver: Any) -> Any:
    """The receiver a caller connected, for one that send() returns."""
    return receiver.receiver if type(receiver) in (Timed, ATimed) else receiver


def probe() -> str | None:
    """At start-up: does `_live_receivers` still look as this module expects?"""
    if not KNOWN_VERSIONS[0] <= django.VERSION[:2] < KNOWN_VERSIONS[1]:
        low, high = KNOWN_VERSIONS
        return (
            f"Django {django.get_version()} is not among the versions it was checked on "
            f"({low[0]}.{low[1]} up to {high[0]}.{high[1]})"
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
    with quiet_block():  # not an event
        signal.send(sender=None)
    if not asked:
        return "Signal.send() no longer asks it for the receivers"
    return None
