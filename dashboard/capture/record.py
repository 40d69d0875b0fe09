"""One send → an Event: what the signal carried, snapshotted before its receivers run.

This runs inside the sender's call (capture/dispatch.py), so it must be
cheap: it snapshots what may change or vanish (capture/snapshot.py), labels
the sender and notes where the project's code sent it from. Describing,
masking and rendering happen later, off the sender's path.
"""

import linecache
import logging
import sys
import traceback
from collections.abc import Callable
from contextvars import ContextVar
from fnmatch import fnmatchcase
from types import FrameType
from typing import Any

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler, StaticFilesHandler
from django.core.signals import got_request_exception, request_finished, request_started
from django.db.backends.signals import connection_created
from django.db.models import Model
from django.db.models.signals import post_save, pre_save
from django.dispatch import Signal

from dashboard import conf
from dashboard.capture import context, diffs, transactions
from dashboard.capture.origin import is_project_file, origin, project_path
from dashboard.capture.signals import Spec, recorded
from dashboard.capture.snapshot import PLAIN_TYPES, sender_label, snapshot, text_of
from dashboard.capture.transactions import Outcome
from dashboard.core.events import Event, RequestSnapshot
from dashboard.core.identity import ByIdentity
from dashboard.core.quiet import quiet
from dashboard.routers import history_alias

logger = logging.getLogger("dashboard")

# Static files are served by handlers that send request signals of their own.
QUIET_SENDERS = (ASGIStaticFilesHandler, StaticFilesHandler)
TRACEBACK_FRAMES = 5


def is_ignored_model(model: type[Model]) -> bool:
    """The dashboard's own models: storing one must not cause another event."""
    return model._meta.app_label == "dashboard"


def _ignored(sender: Any) -> bool:
    """Senders never captured: static file handlers (they send request signals
    of their own) and the dashboard's own models (storing one must not cause
    another). Decided once per sender class."""
    if not issubclass(type(sender), type):  # not isinstance(): a lazy sender would evaluate
        return False
    ignored = _ignored_senders.get(id(sender))
    if ignored is None:
        ignored = _ignored_senders.put(sender, any(sender is q for q in QUIET_SENDERS) or (
            issubclass(sender, Model) and sender._meta.app_label == "dashboard"
        ))  # fmt: skip
    return ignored


_ignored_senders: ByIdentity[bool] = ByIdentity()


def _request_fields(raw: dict[str, Any], kwargs: dict[str, Any]) -> None:
    """request_started carries the raw scope or environ: keep what a person reads."""
    if (scope := kwargs.get("scope")) is not None:
        raw["request"] = RequestSnapshot(scope.get("method", ""), scope.get("path", ""))
    elif (environ := kwargs.get("environ")) is not None:
        raw["request"] = RequestSnapshot(
            environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
        )


def _finished_fields(raw: dict[str, Any], kwargs: dict[str, Any]) -> None:
    """request_finished has no kwargs: the request context knows what finished."""
    if info := context.current_request.get():
        raw["request"] = RequestSnapshot(info.method, info.path)
        if info.status is not None:
            raw["status"] = info.status
        raw["duration_ms"] = round(info.duration_ms, 2)


def _exception_fields(raw: dict[str, Any], kwargs: dict[str, Any]) -> None:
    """got_request_exception is sent from inside the except block."""
    exc_type, exc, tb = sys.exc_info()
    if exc_type is None:
        return
    frames = traceback.extract_tb(tb)
    raw["exception"] = {
        "type": exc_type.__qualname__,
        "message": text_of(exc),  # any query its __str__ would run refused
        "traceback": [f"{f.filename}:{f.lineno} in {f.name}" for f in frames[-TRACEBACK_FRAMES:]],
        # The frames in the project's own code, with a few lines around each: where to
        # look. No local variables: nothing secret leaves the process.
        "project_frames": [
            {
                "where": f"{project_path(f.filename)}:{f.lineno}",
                "function": f.name,
                "lines": _lines_around(f.filename, f.lineno or 0),
                "line": f.lineno,
            }
            for f in frames
            if is_project_file(f.filename)
        ][-TRACEBACK_FRAMES:],
    }


def _lines_around(filename: str, lineno: int, context: int = 2) -> list[list[Any]]:
    """[line number, text] of the lines around a frame's (linecache: read once)."""
    return [
        [n, linecache.getline(filename, n).rstrip("\n")]
        for n in range(max(1, lineno - context), lineno + context + 1)
        if linecache.getline(filename, n)
    ]


SPECIAL_KWARGS = {"scope", "environ", "signal"}
EXTRA_FIELDS: dict[int, Callable[[dict[str, Any], dict[str, Any]], None]] = {  # id(signal)
    id(request_started): _request_fields,
    id(request_finished): _finished_fields,
    id(got_request_exception): _exception_fields,
}
# Families whose events can belong to a transaction that rolls back.
UNTRANSACTED = frozenset({"request", "database", "settings"})


@conf.per_settings
def _ignored_label(label: str) -> bool:
    """IGNORE_SENDERS, decided once per label."""
    return any(fnmatchcase(label, pattern) for pattern in conf.get("IGNORE_SENDERS"))


def _own_connection(kwargs: dict[str, Any]) -> bool:
    """connection_created of the history's own database (routers.py): the dashboard's."""
    return getattr(kwargs.get("connection"), "alias", None) == history_alias()


def captured_label(signal: Signal, sender: Any, kwargs: dict[str, Any]) -> str | None:
    """The sender's label if a send of this signal from it is captured, else None."""
    # A class sending without a connection (a model's saves, deletes, m2m changes: most
    # sends) has the same answer for every signal it sends: worked out once per settings.
    # issubclass(type()), not isinstance(): a lazy sender would evaluate.
    if issubclass(type(sender), type) and "connection" not in kwargs:
        return _class_label(sender)
    return _label_if_captured(signal, sender, kwargs)


@conf.per_settings(by_identity=True)
def _class_label(sender: type) -> str | None:
    return _label_if_captured(None, sender, {})


def _label_if_captured(signal: Signal | None, sender: Any, kwargs: dict[str, Any]) -> str | None:
    if _ignored(sender) or (signal is connection_created and _own_connection(kwargs)):
        return None
    label = sender_label(sender, kwargs)
    return None if _ignored_label(label) else label


# A save's pre_save and post_save are sent by one Model.save_base call, in one
# transaction: where the project called the save from, and the transaction's outcome,
# found at its pre_save hold at its post_save, which takes them instead of walking the
# stack and looking the connection up again (24,000 instructions a create fewer, of
# 289,000 the capture cost). One save deep, per context: (id of save_base's frame, id of
# the instance, origin, outcome). Any pre_save sent meanwhile (a receiver's own save)
# clears it (_pre_save_begins), and that post_save looks again.
_SAVE_BASE = Model.save_base.__code__
_saving: ContextVar[tuple[int, int, str | None, Outcome | None] | None] = ContextVar(
    "dashboard_saving", default=None
)


def capture(spec: Spec, signal: Signal, sender: Any, kwargs: dict[str, Any]) -> Event | None:
    """The event for this send, or None (an ignored sender)."""
    label = captured_label(signal, sender, kwargs)
    if label is None:
        return None
    saved = None
    if signal is post_save and (saved := _saving.get()) is not None:
        _saving.set(None)
        caller = _senders_frame()
        if (
            caller is None
            or saved[0] != id(caller)
            or saved[1] != id(kwargs.get("instance"))
            or caller.f_code is not _SAVE_BASE
        ):
            saved = None
    raw = {
        k: v if type(v) in PLAIN_TYPES else snapshot(v)  # most kwargs: no call
        for k, v in kwargs.items()
        if k not in SPECIAL_KWARGS
    }
    if extra := EXTRA_FIELDS.get(id(signal)):
        extra(raw, kwargs)
    info = context.current_request.get()
    event = Event(
        signal=spec.name,
        family=spec.family,
        sender=label,
        raw=raw,
        request_id=info.id if info else None,
        origin=origin() if saved is None else saved[2],
    )
    if signal is post_save:
        event.before = diffs.take(kwargs.get("instance"))
    if spec.family not in UNTRANSACTED:
        if saved is None:
            outcome = transactions.track(event, kwargs.get("using"))
        elif (outcome := saved[3]) is not None and not transactions.join(event, outcome):
            transactions.track(event, kwargs.get("using"))  # it ended: where is this one?
        if signal is pre_save and (caller := _senders_frame()) and caller.f_code is _SAVE_BASE:
            _saving.set((id(caller), id(kwargs.get("instance")), event.origin, outcome))
    return event


def _senders_frame() -> FrameType | None:
    """The frame that sent the signal: 0 this, 1 capture(), 2 dispatch._begin, 3 its send
    wrapper, 4 the send's caller; None for a send with no Python frame above it (a bare
    thread's target)."""
    try:
        return sys._getframe(4)
    except ValueError:
        return None


# Around every pre_save send, recorded or not (capture/dispatch.py): the diff's read of
# the stored row, for post_save to show (capture/diffs.py).


def _pre_save_begins(sender: Any, named: dict[str, Any]) -> None:
    _saving.set(None)  # another save begins: a post_save to come is not that one's
    instance = named.get("instance")
    try:
        read = bool(
            # An update (an insert has no stored row), cheapest test first.
            issubclass(type(instance), Model)  # not isinstance(): a lazy one would evaluate
            and not instance._state.adding
            and conf.get("DIFFS")
            and not named.get("raw")
            and not quiet.get()
            # post_save, which shows the diff, recorded for this sender: else the host
            # would pay the query for nothing.
            and recorded(post_save) is not None
            and captured_label(post_save, sender, named) is not None
        )
    except Exception:
        logger.exception("dashboard: could not tell whether an update's diff is wanted")
        read = False
    diffs.begin(instance, named.get("using"), read)  # always: its end() pops it


context.BEFORE[id(pre_save)] = _pre_save_begins
context.AFTER[id(pre_save)] = diffs.end
