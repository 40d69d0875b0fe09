"""Receivers that turn (signal, sender, kwargs) into an Event and hand it off.

This runs inside the sender's call, so it must be cheap and must never raise:
it snapshots what may change or vanish (a model instance's fields, the
current exception), labels the sender, and enqueues. Describing, masking and
rendering happen later, in the publisher.
"""

import datetime
import decimal
import logging
import os
import sys
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType
from typing import Any

from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler, StaticFilesHandler
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils.functional import LazyObject, empty

from dashboard import conf, context, dispatch, transactions
from dashboard.events import Event
from dashboard.publisher import publisher
from dashboard.watched import WATCHED, Watched

logger = logging.getLogger("dashboard")

# Static files are served by handlers that send request signals of their own.
QUIET_SENDERS = (ASGIStaticFilesHandler, StaticFilesHandler)
# Values kept as they are: immutable, cheap, and harmless to str() later.
PLAIN = (
    type(None),
    bool,
    int,
    float,
    str,
    bytes,
    decimal.Decimal,
    uuid.UUID,
    datetime.date,
    datetime.time,
    datetime.timedelta,
)
PLAIN_TYPES = frozenset(PLAIN)  # exact types, for a set lookup before the isinstance chain
TRACEBACK_FRAMES = 5


# Plain slots dataclasses, not frozen ones: a frozen __init__ goes through
# object.__setattr__ per field, and one is made per instance per signal.
@dataclass(slots=True)
class InstanceSnapshot:
    label: str
    pk: Any
    text: str
    fields: dict[str, Any]


@dataclass(slots=True)
class RequestSnapshot:
    method: str
    path: str


def _is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, Model)


# Per model class: "app.Model". Options.label formats it anew on every access.
_model_labels: dict[type[Model], str] = {}


def model_label(model: type[Model]) -> str:
    label = _model_labels.get(model)
    if label is None:
        label = _model_labels[model] = model._meta.label
    return label


def snapshot_instance(obj: Model) -> InstanceSnapshot:
    try:
        text = str(obj)
    except Exception as exc:  # a broken __str__ is the sender's bug, not ours
        text = f"<str() failed: {type(exc).__name__}>"
    # __dict__ holds the concrete field values by attname; private keys are
    # dropped when described. A shallow copy: later saves must not rewrite history.
    return InstanceSnapshot(model_label(type(obj)), obj.pk, text, dict(obj.__dict__))


def snapshot(value: Any, depth: int = 0) -> Any:
    """A copy of a kwarg that is safe to keep after the sender returns."""
    if isinstance(value, PLAIN):
        return value
    if isinstance(value, LazyObject):  # e.g. request.user; never evaluated here
        if value._wrapped is empty:
            return f"<lazy {type(value).__qualname__}>"
        value = value._wrapped
    if isinstance(value, Model):
        return snapshot_instance(value)
    if isinstance(value, type):
        return model_label(value) if issubclass(value, Model) else value.__qualname__
    if isinstance(value, HttpRequest):
        return RequestSnapshot(value.method or "", value.path)
    if isinstance(value, QuerySet):  # never evaluate it: that would query
        return f"QuerySet<{model_label(value.model)}>"
    if isinstance(value, BaseDatabaseWrapper):
        return {"alias": value.alias, "vendor": value.vendor}
    if depth < 3 and isinstance(value, dict):
        return {str(k): snapshot(v, depth + 1) for k, v in list(value.items())[:50]}
    if depth < 3 and isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [snapshot(v, depth + 1) for v in list(items)[:50]]
    return f"<{type(value).__qualname__}>"


def sender_label(sender: Any, kwargs: dict[str, Any]) -> str:
    if connection := kwargs.get("connection"):
        return f"{connection.alias} ({connection.vendor})"
    if _is_model(sender):
        return model_label(sender)
    if isinstance(sender, type):
        return sender.__qualname__
    if sender is None or isinstance(sender, str):
        return str(sender)
    return type(sender).__qualname__


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
    raw["exception"] = {
        "type": exc_type.__qualname__,
        "message": str(exc),
        "traceback": [
            f"{f.filename}:{f.lineno} in {f.name}"
            for f in traceback.extract_tb(tb)[-TRACEBACK_FRAMES:]
        ],
    }


SPECIAL_KWARGS = {"scope", "environ", "signal"}
EXTRA_FIELDS: dict[str, Callable[[dict[str, Any], dict[str, Any]], None]] = {
    "request_started": _request_fields,
    "request_finished": _finished_fields,
    "got_request_exception": _exception_fields,
}


# Code that is the project's own (not Django, not site-packages, not the
# dashboard itself), decided once per code object: the walk runs per event.
_PROJECT_ROOT = str(settings.BASE_DIR) + os.sep
_DASHBOARD_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_is_project_code: dict[CodeType, bool] = {}


def _project_code(code: CodeType) -> bool:
    filename = code.co_filename
    mine = _is_project_code[code] = (
        filename.startswith(_PROJECT_ROOT)
        and not filename.startswith(_DASHBOARD_DIR)
        and "site-packages" not in filename
        and f"{os.sep}.venv{os.sep}" not in filename
    )
    return mine


# "file:line in function" per (code, instruction): the same call sites send
# again and again, and a line number is looked up, and formatted, once.
_origins: dict[tuple[CodeType, int], str] = {}


def origin() -> str | None:
    """The innermost frame of the project's own code on the stack, if any."""
    frame = sys._getframe(2)
    known = _is_project_code
    while frame is not None:
        code = frame.f_code
        mine = known.get(code)
        if mine is None:
            mine = _project_code(code)
        if mine:
            site = (code, frame.f_lasti)
            where = _origins.get(site)
            if where is None:
                path = code.co_filename[len(_PROJECT_ROOT) :]
                where = _origins[site] = f"{path}:{frame.f_lineno} in {code.co_name}"
            return where
        frame = frame.f_back
    return None


def _stored_values(instance: Model, using: str | None) -> dict[str, Any] | None:
    """The row as stored before an update: pre_save's one query, for the diff."""
    if instance._state.adding or instance.pk is None:
        return None
    connection = connections[using or DEFAULT_DB_ALIAS]
    if connection.needs_rollback:  # a query now would fail the sender's transaction
        return None
    fields = [f.attname for f in instance._meta.concrete_fields]
    return (
        type(instance)
        ._base_manager.using(connection.alias)
        .filter(pk=instance.pk)
        .values(*fields)
        .first()
    )


def build_event(spec: Watched, sender: Any, kwargs: dict[str, Any]) -> Event | None:
    if _ignored(sender):
        return None
    raw = {
        k: v if type(v) in PLAIN_TYPES else snapshot(v)  # most kwargs: no call
        for k, v in kwargs.items()
        if k not in SPECIAL_KWARGS
    }
    if extra := EXTRA_FIELDS.get(spec.name):
        extra(raw, kwargs)
    info = context.current_request.get()
    event = Event(
        signal=spec.name,
        family=spec.family,
        sender=sender_label(sender, kwargs),
        raw=raw,
        request_id=info.id if info else None,
        origin=origin(),
    )
    instance = kwargs.get("instance")
    if spec.name == "pre_save" and not kwargs.get("raw") and conf.get("DIFFS"):
        # Kept on the instance until its post_save compares against it.
        instance.__dict__["_dashboard_before"] = _stored_values(instance, kwargs.get("using"))
    elif spec.name == "post_save":
        event.before = instance.__dict__.pop("_dashboard_before", None)
    if spec.family in ("model", "custom"):
        transactions.track(event, kwargs.get("using"))
    return event


def make_receiver(spec: Watched) -> Callable[..., None]:
    def capture(sender: Any, kwargs: dict[str, Any]) -> Event | None:
        """The event for this signal, or None (quiet, ignored). Never raises."""
        if context.quiet.get():
            return None
        try:
            return build_event(spec, sender, kwargs)
        except Exception:
            # The sender must never fail because of the dashboard.
            logger.exception("dashboard: could not capture %s", spec.name)
            return None

    def receiver(sender: Any, **kwargs: Any) -> None:
        # Called like this only when a send bypassed the dispatch (dispatch.py),
        # which otherwise calls `capture` and publishes when all receivers ran.
        if (event := capture(sender, kwargs)) is not None:
            publisher.publish(event)

    receiver.capture = capture  # type: ignore[attr-defined]
    receiver.dashboard_internal = True  # type: ignore[attr-defined]
    receiver.__qualname__ = f"capture_{spec.name}"
    return receiver


def connect_all() -> None:
    """Connect one receiver per watched signal (called from AppConfig.ready)."""
    for spec in WATCHED:
        dispatch.instrument(spec.signal)
        spec.signal.connect(make_receiver(spec), weak=False, dispatch_uid=f"dashboard:{spec.name}")
