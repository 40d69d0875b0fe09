"""Every send of every signal, observed: the class-wide seam on Signal's send methods.

`Signal.send`, `send_robust`, `asend` and `asend_robust` are wrapped once,
at start-up (`install()`), as the dashboard's only hook into Django's
dispatch. No receiver is connected: `has_listeners()`, receiver order,
Django's fast-delete path and what each send returns are exactly what they
are without the dashboard. A send of a signal that is recorded (capture/
signals.py) is snapshotted before its receivers run (capture/record.py),
its receivers are timed (capture/timing.py) and the event is handed off
once the send returns or raises, so a dispatch whose receiver raised still
shows. Everything else goes straight to Django's method: a signal found to need
nothing but noting (`_plain`: pre_init and post_init, sent per row loaded)
costs one lookup, and with no receivers returns the [] Django's method would
(`EMPTY`, checked at start-up by `probe_empty()`).

The send methods are Django's public API; wrapping them depends only on
their `(self, sender, **named)` signature, which `probe()` checks.
"""

import contextlib
import functools
import inspect
import logging
import threading
from collections.abc import Callable
from contextvars import ContextVar
from time import perf_counter
from typing import Any

from django.db.backends.signals import connection_created
from django.dispatch import Signal

from dashboard import conf
from dashboard.capture import context, record, seen, signals, timing
from dashboard.capture.seen import MAX_SENDERS
from dashboard.core import keys
from dashboard.core.events import Event, ReceiverTiming
from dashboard.core.identity import ByIdentity
from dashboard.core.payload import name_now
from dashboard.core.quiet import quiet
from dashboard.live.handoff import handoff
from dashboard.seams import seam

logger = logging.getLogger("dashboard")

SEAM = seam(
    "dashboard.W004",
    "django.dispatch.Signal.send, send_robust, asend and asend_robust (wrapped class-wide)",
    "no signal is recorded",
)
METHODS = ("send", "send_robust", "asend", "asend_robust")
EMPTY = seam(
    "dashboard.W008",
    "django.dispatch.Signal.receivers (a signal without receivers returns [] from every "
    "send method, calling nothing)",
    "sends of unrecorded signals without receivers go through Django's methods "
    "(a row loaded: about 8 % more instructions)",
)
ORIGINAL: dict[str, Callable[..., Any]] = {}


class Dispatch:
    """One recorded send under way: its event, and its receivers' times."""

    __slots__ = ("event", "signal", "started", "timings")

    def __init__(self, signal: Signal, event: Event) -> None:
        self.signal, self.event = signal, event
        self.timings: list[ReceiverTiming] | None = None  # set when its receivers are timed
        self.started = perf_counter()

    def done(self) -> None:
        event = self.event
        event.duration = perf_counter() - self.started
        if self.timings:
            event.timings = self.timings
        name_now(event)  # not held past the send: see there
        handoff.publish(event)


# The recorded send under way in this context (a receiver's own sends nest).
current: ContextVar[Dispatch | None] = ContextVar("dashboard_dispatch", default=None)
# dashboard.testing.record_signals(): told of every send in this context.
recorders: ContextVar[tuple[Callable[[Signal, Any, dict[str, Any]], None], ...]] = ContextVar(
    "dashboard_recorders", default=()
)


# Signals with nothing to do on a send but note it (capture/seen.py), under the settings
# in force: not recorded, no hook, no record_signals() open. pre_init and post_init are
# sent for every row a query loads: through _begin, a send cost 2.2x Django's own in
# instructions (a row loaded 1.195x); here one dict lookup and a set's. The value: the
# signal's noted senders.
_plain: ByIdentity[set[int]] = ByIdentity()
_forgotten = [0]  # times it was emptied: an answer found before is not kept
_held = [0]  # record_signals() contexts open: every send goes through _begin meanwhile
_holding = threading.Lock()  # record_signals() may open and close in several threads


def forget_plain() -> None:
    """Every signal's answer found anew: DASHBOARD changed, a hook came or went."""
    _forgotten[0] += 1  # first: a _begin that already decided sees it (_keep_plain)
    _plain.clear()


conf.on_forget(forget_plain)


def hold_fast_path(hold: bool) -> None:
    """record_signals() opened (True) or closed (False): its recorders see every send."""
    with _holding:
        _held[0] += 1 if hold else -1
        forget_plain()


def _keep_plain(signal: Signal, senders: set[int], forgotten: int) -> None:
    """Remember that this signal needs only noting, unless its answer went stale since
    `_begin` began (a DASHBOARD change, a recording opened, in another thread): put,
    then look again and take it back, so a clear between the look and the put cannot
    leave it behind."""
    if forgotten != _forgotten[0] or _held[0]:
        return
    _plain.put(signal, senders)
    if forgotten != _forgotten[0] or _held[0]:
        _plain.pop(id(signal), None)


def _begin(signal: Signal, sender: Any, named: dict[str, Any]) -> Dispatch | None:
    """The dispatch to record for this send, or None. Never raises, but to refuse a send
    from the host's code that the dashboard runs (below)."""
    if type(guard := timing.counting.get()) is timing.NoQueries:
        _refuse(guard, signal, named)
    try:
        forgotten = _forgotten[0]
        # First: a hook's AFTER runs however this send goes (_end), and must find what its
        # BEFORE began (capture/diffs.py's stack), so nothing may fail before it.
        if (hook := context.BEFORE.get(id(signal))) is not None:
            hook(sender, named)
        senders = seen.note(signal, sender)
        for note in recorders.get():
            note(signal, sender, named)
        if quiet.get():
            return None
        spec = signals.recorded(signal)
        if spec is None:
            if hook is None and id(signal) not in context.AFTER:
                _keep_plain(signal, senders, forgotten)
            return None
        event = record.capture(spec, signal, sender, named)
        if event is None:
            return None
        event.cid, event.sender_id, event.sent_with = keys.next_cid(), id(sender), senders
        event.receivers_then = list(signal.receivers)  # connect() and disconnect() mutate it
        caused_by(event)
        return Dispatch(signal, event)
    except Exception:  # the sender must never fail because of the dashboard
        logger.exception("dashboard: could not capture a signal")
        return None


def _refuse(guard: timing.NoQueries, signal: Signal, named: dict[str, Any]) -> None:
    """A send from a model's __str__ that the snapshot runs (capture/snapshot.py), refused
    before any receiver runs, as its queries are: a write's pre_save (the host's
    receivers, a row shown for a save that never was), or connection_created for a
    connection it opened, which is closed again first, so that the host's next query
    opens it with the host's own receivers run on it."""
    if signal is connection_created and (connection := named.get("connection")) is not None:
        with contextlib.suppress(Exception):
            connection.close()
    guard.refuse(None)  # no query logged for it
    raise timing.WouldQuery(f"a signal sent: {signal!r}")


def caused_by(event: Event) -> None:
    """Name the dispatch (and its receiver) this event was sent, or written, from."""
    if (parent := current.get()) is not None:
        event.cause = parent.event.cid
        if parent.timings is not None:  # receivers run in turn: the one running now
            event.cause_receiver = len(parent.timings)


def _end(signal: Signal, dispatch: Dispatch | None) -> None:
    try:
        if dispatch is not None:
            dispatch.done()
    except Exception:
        logger.exception("dashboard: could not hand off a signal")
    # Whatever happened to the event: a hook undoes what its BEFORE did.
    try:
        if (hook := context.AFTER.get(id(signal))) is not None:
            hook()
    except Exception:
        logger.exception("dashboard: could not end a signal's hook")


def _live_receivers(self: Signal, sender: Any) -> Any:
    result = ORIGINAL["_live_receivers"](self, sender)
    dispatch = current.get()
    if dispatch is None or dispatch.signal is not self or dispatch.timings is not None:
        return result  # has_listeners(), or a call outside a recorded send
    if not timing.SEAM.ok or (type(self) is not Signal and _lists_its_own(type(self))):
        return result
    dispatch.timings = []
    return timing.timed(result, dispatch.timings)


# Per Signal subclass: does it override _live_receivers? Its override calls this one
# (super()) and works on what it returns: it must get the receivers the host connected,
# not our timers around them (a filter by identity would miss). Its receivers go untimed.
_own_listing: ByIdentity[bool] = ByIdentity()


def _lists_its_own(cls: type) -> bool:
    found = _own_listing.get(id(cls))
    if found is None:
        mro = cls.__mro__
        below = mro[: mro.index(Signal)] if Signal in mro else mro
        found = _own_listing.put(cls, any("_live_receivers" in c.__dict__ for c in below))
    return found


def _responses(responses: Any, dispatch: Dispatch) -> Any:
    """What Django's send returned, with the receivers the caller connected."""
    if not dispatch.timings:
        return responses
    timed = timing.TIMED
    return [(r.receiver if type(r) in timed else r, v) for r, v in responses]


def _sync(method: Callable[..., Any]) -> Callable[..., Any]:
    # Bound once, for the fast path. EMPTY is only ever failed by its start-up probe,
    # which runs before install().
    plain, empty = _plain.get, EMPTY.ok
    @functools.wraps(method)
    def send(self: Signal, sender: Any, **named: Any) -> Any:
        if (senders := plain(id(self))) is not None:
            if (key := id(sender)) not in senders and len(senders) < MAX_SENDERS:
                senders.add(key)
            if empty and not self.receivers:
                return []  # what Django's method returns then (EMPTY's probe)
            return method(self, sender, **named)
        dispatch = _begin(self, sender, named)
        if dispatch is None:
            try:
                return method(self, sender, **named)
            finally:
                if id(self) in context.AFTER:
                    _end(self, None)
        token = current.set(dispatch)
        try:
            return _responses(method(self, sender, **named), dispatch)
        finally:
            current.reset(token)
            _end(self, dispatch)

    return send


def _async(method: Callable[..., Any]) -> Callable[..., Any]:
    plain, empty = _plain.get, EMPTY.ok
    @functools.wraps(method)
    async def asend(self: Signal, sender: Any, **named: Any) -> Any:
        if (senders := plain(id(self))) is not None:
            if (key := id(sender)) not in senders and len(senders) < MAX_SENDERS:
                senders.add(key)
            if empty and not self.receivers:
                return []  # what Django's method returns then (EMPTY's probe)
            return await method(self, sender, **named)
        dispatch = _begin(self, sender, named)
        if dispatch is None:
            try:
                return await method(self, sender, **named)
            finally:
                if id(self) in context.AFTER:
                    _end(self, None)
        token = current.set(dispatch)
        try:
            return _responses(await method(self, sender, **named), dispatch)
        finally:
            current.reset(token)
            _end(self, dispatch)

    return asend


def install() -> bool:
    """Observe every send from now on (DashboardConfig.ready); False if the seam is off."""
    if ORIGINAL or not SEAM.ok:
        return bool(ORIGINAL)
    forget_plain()  # learnt anew, of the methods wrapped now
    for name in (*METHODS, "_live_receivers"):
        ORIGINAL[name] = getattr(Signal, name)
    for name in METHODS:
        wrap = _async if inspect.iscoroutinefunction(ORIGINAL[name]) else _sync
        setattr(Signal, name, wrap(ORIGINAL[name]))
    Signal._live_receivers = _live_receivers  # type: ignore[method-assign]
    return True


def uninstall() -> None:
    """Django's own methods again (the benchmark's `off` runs)."""
    for name, method in ORIGINAL.items():
        setattr(Signal, name, method)
    ORIGINAL.clear()


def installed() -> bool:
    return bool(ORIGINAL)


def probe_empty() -> str | None:
    """At start-up: a signal without receivers has an empty list of them, and each send
    method returns [] at once (the async ones without awaiting anything)."""
    signal = Signal()
    if type(getattr(signal, "receivers", None)) is not list or signal.receivers:
        return "Signal().receivers is not an empty list"
    for name in METHODS:
        result = ORIGINAL.get(name, getattr(Signal, name))(signal, sender=None)
        if inspect.iscoroutine(result):
            try:
                result.send(None)
            except StopIteration as done:
                result = done.value
            else:
                result.close()
                return f"Signal.{name} awaits something without receivers"
        if result != []:
            return f"Signal.{name} returns {result!r} without receivers"
    return None


def probe() -> str | None:
    """At start-up: do the send methods still take (sender, **named)?"""
    for name in METHODS:
        method = getattr(Signal, name, None)
        if method is None:
            return f"Signal.{name} is gone"
        params = list(inspect.signature(method).parameters.values())
        names = [p.name for p in params[:2]]
        if names != ["self", "sender"] or params[-1].kind != inspect.Parameter.VAR_KEYWORD:
            return f"Signal.{name}{inspect.signature(method)} no longer takes (sender, **named)"
    return None
