"""Time every receiver of a dispatch the dashboard records.

Django calls a signal's receivers in a loop over `Signal._live_receivers(sender)`
(send, send_robust, asend, asend_robust). While a recorded dispatch is under
way (capture/dispatch.py), that call's receivers come back wrapped, each in
a `Timed` that notes how long it ran and whether it raised, and looks like
the receiver to whoever asks (`__qualname__`, `__wrapped__`...: Django's
`send_robust` log names the real receiver). The send methods hand the
caller back the receivers it connected, never the wrappers; `has_listeners()`
and every call outside a recorded dispatch get Django's answer untouched.

A sync receiver's own SQL is counted too: while it runs, it is the `counting`
receiver of its context, and the execute wrapper already on every connection
(capture/writes.py, put there once as each opens) adds each query and its time
to it; a query of a receiver it sets off counts for that one (the innermost
receiver running). Nothing is put on or taken off a connection per receiver.

`_live_receivers` is Django-internal. `probe()` checks its shape at start-up
on the versions it was written for; anywhere else, or at the first surprise,
dispatches are recorded untimed (seams.py).
"""

import logging
from collections.abc import Callable
from contextvars import ContextVar
from time import perf_counter
from typing import Any

import django
from django.dispatch import Signal

from dashboard.core.events import ReceiverTiming
from dashboard.core.payload import unwrapped
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
    """One receiver's own queries and their time (capture/writes.py adds to it)."""

    __slots__ = ("queries", "seconds")

    def __init__(self) -> None:
        self.queries, self.seconds = 0, 0.0


class NoQueries:
    """Set as `counting` while the dashboard runs the host's code that must not query (a
    model's __str__, capture/snapshot.py): the execute wrapper refuses each query before
    it reaches the database (capture/writes.py), noting the connection and the last
    entry of its query log then, so that the entry Django's debug cursor logs for the
    refused query anyway can be taken back (capture/snapshot.py `_take_back`)."""

    # No __init__ (one is made per instance snapshotted, twice a save): the list is made
    # at the first refusal, in the instance's own dict.
    refused: list[tuple[Any, Any]] | None = None

    def refuse(self, connection: Any) -> None:
        """Note a refusal: a query on `connection`, or (None) a signal's send."""
        log = getattr(connection, "queries_log", None)
        if self.refused is None:
            self.refused = []
        self.refused.append((connection, log[-1] if log else None))


class WouldQuery(Exception):
    """A query the dashboard refused: the host's code it ran would have queried."""


# The receiver whose queries count now (the innermost one running, in this context), or
# NoQueries while the dashboard runs host code that must not query.
counting: ContextVar[SQLCount | NoQueries | None] = ContextVar("dashboard_sql_count", default=None)


class Timed:
    """A receiver, timed; looks like it (`__qualname__` and the rest) to whoever asks."""

    __slots__ = ("receiver", "timings")

    def __init__(self, receiver: Receiver, timings: list[ReceiverTiming]) -> None:
        self.receiver, self.timings = receiver, timings

    def __call__(self, **kwargs: Any) -> Any:
        sql = SQLCount()
        token = counting.set(sql)
        started = perf_counter()
        raised = True
        try:
            result = self.receiver(**kwargs)
            raised = False
            return result
        finally:
            seconds = perf_counter() - started
            counting.reset(token)
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
        if not sync and not asynchronous:  # none for this sender: nothing to wrap
            return result
        return [Timed(r, timings) for r in sync], [ATimed(r, timings) for r in asynchronous]
    except Exception as exc:  # a new shape: Django goes on as without us
        SEAM.fail(f"it returned {type(result).__name__} ({exc})")
        return result


TIMED = (Timed, ATimed)  # what send() would return in the place of a receiver connected


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
    # Seen through functools.wraps wrappers: sentry-sdk's signal spans wrap each receiver
    # here (its patch of this method), and the probe failed, so nothing was timed.
    if [unwrapped(r) for r in sync] != [receiver] or list(asynchronous) != []:
        return "it no longer lists a connected receiver as (sync, async) lists"
    asked = []
    signal._live_receivers = lambda sender: asked.append(sender) or result  # type: ignore[method-assign]
    with quiet_block():  # not an event
        signal.send(sender=None)
    if not asked:
        return "Signal.send() no longer asks it for the receivers"
    return None
