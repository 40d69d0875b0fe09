"""Copies of a signal's arguments that are safe to keep after the sender returns.

Runs inside the sender's call: cheap, never evaluates anything lazy, never
queries. Describing (masking, truncating) is left to core/payload.py.
"""

import datetime
import decimal
import types
import uuid
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils import functional
from django.utils.functional import LazyObject

from dashboard.core.events import SENDER_MAX_LENGTH, InstanceSnapshot, RequestSnapshot

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


_EMPTY = getattr(functional, "empty", object())


def _unwrapped(value: LazyObject) -> Any:
    """A LazyObject's target if it was evaluated already, else None. Django's
    `_wrapped` is internal: were it renamed, lazy values would only be named
    (seams.py lists it)."""
    wrapped = vars(value).get("_wrapped", _EMPTY)
    return None if wrapped is _EMPTY else wrapped


def snapshot(value: Any, depth: int = 0) -> Any:
    """A copy of a kwarg that is safe to keep after the sender returns."""
    cls = type(value)
    if cls in PLAIN_TYPES:
        return value
    # By its type, not isinstance(): a lazy object answers isinstance() for what it
    # wraps, and would be evaluated (below: only if it was already).
    if issubclass(cls, Model):
        return snapshot_instance(value)
    if isinstance(value, PLAIN):
        return value
    if isinstance(value, LazyObject):  # e.g. request.user; never evaluated here
        wrapped = _unwrapped(value)
        if wrapped is None:
            return f"<lazy {type(value).__qualname__}>"
        value = wrapped
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
    if isinstance(sender, type) and issubclass(sender, Model):
        return model_label(sender)
    return _name_of(sender)[:SENDER_MAX_LENGTH]  # the history's column


def _name_of(sender: Any) -> str:
    if isinstance(sender, _NAMED):  # a class, or a function or method: its own name
        return sender.__qualname__
    if sender is None or isinstance(sender, str):
        return str(sender)
    return type(sender).__qualname__


_NAMED = (type, types.FunctionType, types.MethodType, types.BuiltinFunctionType)
