"""One send → an Event: what the signal carried, snapshotted before its receivers run.

This runs inside the sender's call (capture/dispatch.py), so it must be
cheap: it snapshots what may change or vanish (capture/snapshot.py), labels
the sender and notes where the project's code sent it from. Describing,
masking and rendering happen later, off the sender's path.
"""

import linecache
import sys
import traceback
import weakref
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Any

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler, StaticFilesHandler
from django.core.signals import got_request_exception, request_finished, request_started
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.signals import connection_created
from django.db.models import Model
from django.db.models.signals import post_save, pre_save
from django.dispatch import Signal

from dashboard import conf
from dashboard.capture import context, timing, transactions
from dashboard.capture.origin import is_project_file, origin, project_path
from dashboard.capture.signals import Spec, recorded
from dashboard.capture.snapshot import PLAIN_TYPES, sender_label, snapshot
from dashboard.core.events import Event, RequestSnapshot
from dashboard.routers import history_alias

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
    if not isinstance(sender, type):
        return False
    ignored = _ignored_senders.get(sender)
    if ignored is None:
        ignored = _ignored_senders[sender] = sender in QUIET_SENDERS or (
            issubclass(sender, Model) and sender._meta.app_label == "dashboard"
        )
    return ignored


_ignored_senders: dict[type, bool] = {}


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
        "message": str(exc),
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
EXTRA_FIELDS: dict[Signal, Callable[[dict[str, Any], dict[str, Any]], None]] = {
    request_started: _request_fields,
    request_finished: _finished_fields,
    got_request_exception: _exception_fields,
}
# Families whose events can belong to a transaction that rolls back.
UNTRANSACTED = frozenset({"request", "database", "settings"})


def _stored_values(instance: Model, using: str | None) -> dict[str, Any] | None:
    """The row as stored before an update: pre_save's one query, for the diff."""
    if instance._state.adding or instance.pk is None:
        return None
    connection = connections[using or DEFAULT_DB_ALIAS]
    if connection.needs_rollback:  # a query now would fail the sender's transaction
        return None
    fields = [f.attname for f in instance._meta.concrete_fields]
    token = timing.counting.set(None)  # ours: not the running receiver's SQL
    try:
        return (
            type(instance)
            ._base_manager.using(connection.alias)
            .filter(pk=instance.pk)
            .values(*fields)
            .first()
        )
    finally:
        timing.counting.reset(token)


# pre_save's stored row, until the same instance's post_save: kept here by the
# instance's id, never on the instance (the host's object carries nothing of ours,
# during its save or after one that raised). The weak reference tells a reused id
# apart and drops the entry when the instance goes (a save that raised between the
# two signals sends no post_save).
_befores: dict[int, tuple["weakref.ref[Model]", dict[str, Any]]] = {}


def _keep_before(instance: Model, before: dict[str, Any] | None) -> None:
    key = id(instance)
    _befores.pop(key, None)  # an earlier save's, which raised before its post_save
    if before is None:
        return

    def gone(ref: "weakref.ref[Model]") -> None:
        entry = _befores.get(key)
        if entry is not None and entry[0] is ref:
            _befores.pop(key, None)

    _befores[key] = (weakref.ref(instance, gone), before)  # every Model takes one


def _take_before(instance: Model) -> dict[str, Any] | None:
    entry = _befores.pop(id(instance), None)
    return entry[1] if entry is not None and entry[0]() is instance else None


@conf.per_settings
def _ignored_label(label: str) -> bool:
    """IGNORE_SENDERS, decided once per label."""
    return any(fnmatchcase(label, pattern) for pattern in conf.get("IGNORE_SENDERS"))


def _own_connection(kwargs: dict[str, Any]) -> bool:
    """connection_created of the history's own database (routers.py): the dashboard's."""
    return getattr(kwargs.get("connection"), "alias", None) == history_alias()


def capture(spec: Spec, signal: Signal, sender: Any, kwargs: dict[str, Any]) -> Event | None:
    """The event for this send, or None (an ignored sender)."""
    if _ignored(sender) or (signal is connection_created and _own_connection(kwargs)):
        return None
    label = sender_label(sender, kwargs)
    if _ignored_label(label):
        return None
    raw = {
        k: v if type(v) in PLAIN_TYPES else snapshot(v)  # most kwargs: no call
        for k, v in kwargs.items()
        if k not in SPECIAL_KWARGS
    }
    if extra := EXTRA_FIELDS.get(signal):
        extra(raw, kwargs)
    info = context.current_request.get()
    event = Event(
        signal=spec.name,
        family=spec.family,
        sender=label,
        raw=raw,
        request_id=info.id if info else None,
        origin=origin(),
    )
    instance = kwargs.get("instance")
    if signal is pre_save:
        # A pre_save sent by hand may carry anything as its instance: no diff for it.
        # Nor a read the host would pay for nothing: post_save, which shows the diff,
        # left out by SIGNALS / IGNORE_SIGNALS.
        diff = (
            isinstance(instance, Model)
            and not kwargs.get("raw")
            and conf.get("DIFFS")
            and recorded(post_save) is not None
        )
        _keep_before(instance, _stored_values(instance, kwargs.get("using")) if diff else None)
    elif signal is post_save:
        event.before = _take_before(instance)
    if spec.family not in UNTRANSACTED:
        transactions.track(event, kwargs.get("using"))
    return event
