"""Copies of a signal's arguments that are safe to keep after the sender returns.

Runs inside the sender's call: cheap, never evaluates anything lazy, never
queries, never runs the host's code but a model instance's own `__str__` (with
any query it would run refused: capture/timing.py NoQueries). Values are told
apart by their type alone: `isinstance()` and a truth test ask a lazy object,
which evaluates it. Describing (masking, truncating) is left to core/payload.py.
"""

import datetime
import decimal
import enum
import itertools
import types
import uuid
from collections import deque
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model, QuerySet
from django.db.models.fields.files import FieldFile
from django.http import HttpRequest
from django.utils import functional
from django.utils.functional import LazyObject

from dashboard.capture.timing import NoQueries, WouldQuery, counting
from dashboard.core.events import SENDER_MAX_LENGTH, InstanceSnapshot, RequestSnapshot
from dashboard.core.identity import ByIdentity
from dashboard.seams import seam

LOG = seam(
    "dashboard.W010",
    "connection.queries_log, the deque behind connection.queries",
    "a query that a model's __str__ would have run, refused by the dashboard, is still "
    "listed in connection.queries under DEBUG (it did not run)",
)

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
    datetime.datetime,
    datetime.date,
    datetime.time,
    datetime.timedelta,
)
# Exact types kept as they are, for a set lookup before anything else: PLAIN's, and the
# enums of them met since (Django's choices: a model's status field), which pickle by name.
PLAIN_TYPES: set[type] = set(PLAIN)
BUILT_IN = frozenset(PLAIN)  # PLAIN's own types: their str() and repr() are Python's
MAX_ITEMS = 50  # of a list, set or dict, kept
QUERIES = "<str() not run: it would query the database>"

# Per model class: "app.Model". Options.label formats it anew on every access.
_model_labels: ByIdentity[str] = ByIdentity()


def model_label(model: type[Model]) -> str:
    label = _model_labels.get(id(model))
    if label is None:
        label = _model_labels.put(model, model._meta.label)
    return label


def snapshot_instance(obj: Model, depth: int = 0) -> InstanceSnapshot:
    # __dict__ holds the concrete field values by attname. A shallow copy, without the
    # private state (_state: related objects, caches), each value made safe to keep as
    # a kwarg is: later saves must not rewrite history, and a QuerySet or a file kept
    # on the instance must not be evaluated or pickled by the dashboard. A field's value
    # of a type of the host's (money, a phone number, a range) is kept as its text.
    model = type(obj)
    fields = dict(obj.__dict__)
    keys = tuple(fields)
    shape = _shapes.get(id(model))
    if shape is None or shape[0] != keys:
        shape = _shape(model, keys)
    for key in shape[1]:
        del fields[key]
    if not PLAIN_TYPES.issuperset(map(type, fields.values())):
        for key in [k for k, v in fields.items() if type(v) not in PLAIN_TYPES]:
            fields[key] = snapshot(fields[key], depth + 1, key in shape[2])
    text = text_of(obj)
    state = obj.__dict__
    if len(state) != len(keys):  # its __str__ kept something on it (a cached_property)
        _take_off(state, keys)
    return InstanceSnapshot(shape[3], obj.pk, text, fields)


def _take_off(state: dict[str, Any], keys: tuple[Any, ...]) -> None:
    """Leave the instance as its __str__ found it: Django's save never calls __str__, so
    what it cached on the instance (a cached_property, a fallback it fell back to) would
    be there only because of the dashboard, and stale after the host's next change."""
    before = set(keys)
    for key in [k for k in state if k not in before]:
        del state[key]


def text_of(value: Any) -> str:
    """str(value) (a model instance's, a field value's), with any query it would run
    refused (a deferred field, a related object not loaded yet), and any signal it
    would send (a write's pre_save; a connection it opens: capture/dispatch.py): the
    host's SQL is the same with the dashboard as without, and the instance is left as
    it was."""
    guard = NoQueries()
    token = counting.set(guard)
    try:
        text = str(value)
    except WouldQuery:
        text = QUERIES
    except Exception as exc:  # a broken __str__ is the sender's bug, not ours
        text = f"<str() failed: {type(exc).__name__}>"
    finally:
        counting.reset(token)
    if guard.refused:  # caught by the __str__ itself, perhaps: said all the same
        _take_back(guard.refused)
        return QUERIES
    return text if type(text) is str else str.__str__(text)


def _take_back(refused: list[tuple[Any, Any]]) -> None:
    """Django's debug cursor (DEBUG, or a test capturing queries) logs a query even when
    an execute wrapper refuses it, as the refusal unwinds: right after the entry that
    was its log's last then (entries of a transaction's BEGIN or ROLLBACK may follow)."""
    if not LOG.ok:
        return
    try:
        for connection, last in reversed(refused):
            if connection is None:  # a signal refused: nothing logged
                continue
            log = connection.queries_log
            at = 0 if last is None else _after(log, last)
            if at is not None and at < len(log):
                del log[at]
    except Exception as exc:
        LOG.fail(f"{type(exc).__name__}: {exc}")


def _after(log: deque[Any], entry: Any) -> int | None:
    for index in range(len(log) - 1, -1, -1):
        if log[index] is entry:
            return index + 1
    return None  # pushed out of a full log since


def probe() -> str | None:
    """At start-up: is a connection's query log still a deque?"""
    log = getattr(connections[DEFAULT_DB_ALIAS], "queries_log", None)
    return None if isinstance(log, deque) else f"it is a {type(log).__name__}, not a deque"


# Per model: the keys its last instance's __dict__ had, in order, the private ones among
# them, the model's concrete fields' attnames, and its label. A model's instances have the
# same keys every time, so their private state is deleted by name, not the dict rebuilt
# without it (0.3 µs an instance against 1.0 for a comprehension over a blog post's ten
# keys).
Shape = tuple[tuple[Any, ...], tuple[Any, ...], frozenset[str], str]
_shapes: ByIdentity[Shape] = ByIdentity()


def _shape(model: type[Model], keys: tuple[Any, ...]) -> Shape:
    # Private: "_state" and the like, and keys that are not names (set through __dict__
    # itself), which describing would trip over.
    dropped = tuple(k for k in keys if type(k) is not str or k[:1] in ("_", ""))
    concrete = frozenset(f.attname for f in model._meta.concrete_fields)
    shape = (keys, dropped, concrete, model_label(model))
    return _shapes.put(model, shape, replace=True)  # a new model's, or one of new keys


_EMPTY = getattr(functional, "empty", object())


def _unwrapped(value: LazyObject) -> Any:
    """A LazyObject's target if it was evaluated already, else None. Django's
    `_wrapped` is internal: were it renamed, lazy values would only be named
    (seams.py lists it)."""
    wrapped = vars(value).get("_wrapped", _EMPTY)
    return None if wrapped is _EMPTY else wrapped


def snapshot(value: Any, depth: int = 0, as_text: bool = False) -> Any:
    """A copy of a kwarg that is safe to keep after the sender returns. A value of a type
    it does not know is named `<Type>`, or, `as_text` (a model field's value), its str()
    as a model's is taken (text_of)."""
    cls = type(value)
    if cls in PLAIN_TYPES:
        return value
    if issubclass(cls, LazyObject):  # e.g. request.user; never evaluated here
        value = _unwrapped(value)
        if value is None:
            return f"<lazy {cls.__qualname__}>"
        cls = type(value)
    if issubclass(cls, Model):
        return snapshot_instance(value, depth) if depth < 3 else _short(value)
    if issubclass(cls, PLAIN):
        return _plain(value, cls)
    if issubclass(cls, type):
        return model_label(value) if issubclass(value, Model) else value.__qualname__
    if issubclass(cls, _NAMED):  # a function or method: where it lives
        module = getattr(value, "__module__", None)
        kind = "method" if cls is types.MethodType else "function"
        return f"<{kind} {module + '.' if type(module) is str else ''}{value.__qualname__}>"
    if issubclass(cls, HttpRequest):
        return RequestSnapshot(value.method or "", value.path)
    if issubclass(cls, QuerySet):  # never evaluate it: that would query
        return f"QuerySet<{model_label(value.model)}>"
    if issubclass(cls, FieldFile):  # its name; pickled, it would take its instance along
        return value.name
    if issubclass(cls, BaseDatabaseWrapper):
        return {"alias": value.alias, "vendor": value.vendor}
    if depth < 3 and issubclass(cls, dict):
        items = _first(dict.items(value), dict.__len__(value))
        if items is None:
            return f"<{cls.__qualname__} of {dict.__len__(value)}>"
        return {_key(k, i): snapshot(v, depth + 1) for i, (k, v) in enumerate(items)}
    if depth < 3 and (base := _container(cls)) is not None:
        # By the built-in's own methods: a subclass's __len__ or __iter__ is host code.
        items = _first(base.__iter__(value), base.__len__(value))
        if items is None:
            return f"<{cls.__qualname__} of {base.__len__(value)}>"
        if base in (set, frozenset) and BUILT_IN.issuperset(map(type, items)):
            items.sort(key=repr)  # built-in values: a stable order (their own repr)
        return [snapshot(v, depth + 1) for v in items]
    return text_of(value) if as_text else f"<{cls.__qualname__}>"


def _container(cls: type) -> type | None:
    for base in (list, tuple, set, frozenset):
        if issubclass(cls, base):
            return base
    return None


def _plain(value: Any, cls: type) -> Any:
    """A value of a subclass of a plain type, as the plain type's: an enum of one (Django's
    choices) kept as it is, pickled by name (its type is kept from now on); any other
    subclass (SafeString, a host's own str) made the built-in value through the built-in's
    own methods, for its pickling (and an unpickling where its module is not, __main__)
    would run the host's code."""
    if issubclass(cls, enum.Enum) and cls.__module__ != "__main__":
        PLAIN_TYPES.add(cls)
        return value
    for base in PLAIN:
        if issubclass(cls, base):
            if base is str:
                return str.__str__(value)
            if base is int:
                return int.__int__(value)
            if base is float:
                return float.__float__(value)
            if base is bytes:
                return bytes.__bytes__(value)
            return base.__str__(value)  # a date, a time, a Decimal or UUID of its own: as text
    return f"<{cls.__qualname__}>"


def _first(values: Any, size: int) -> list[Any] | None:
    """The first MAX_ITEMS of a container, copied at once (another thread may change it),
    without copying a large one whole; None if it changed under us."""
    try:
        return list(values) if size <= MAX_ITEMS else list(itertools.islice(values, MAX_ITEMS))
    except RuntimeError:  # a set or dict that changed size during iteration
        return None


def _key(key: Any, index: int) -> str:
    """A dict's key as text, without the host's __str__ (a model's might query)."""
    cls = type(key)
    if cls is str:
        return key
    if cls in BUILT_IN:
        return str(key)
    if issubclass(cls, Model):
        return _short(key)
    return f"<{cls.__qualname__} #{index}>"


def _short(obj: Model) -> str:
    return f"{model_label(type(obj))} {obj.pk}"


def sender_label(sender: Any, kwargs: dict[str, Any]) -> str:
    connection = kwargs.get("connection")
    if issubclass(type(connection), BaseDatabaseWrapper):
        return f"{connection.alias} ({connection.vendor})"
    if issubclass(type(sender), type) and issubclass(sender, Model):
        return model_label(sender)
    return _name_of(sender)[:SENDER_MAX_LENGTH]  # the history's column


def _name_of(sender: Any) -> str:
    cls = type(sender)
    if issubclass(cls, _NAMED):  # a class, or a function or method: its own name
        return sender.__qualname__
    if sender is None or issubclass(cls, str):  # a str of its own (an enum's): as text
        return str.__str__(sender) if sender is not None else "None"
    return cls.__qualname__


# What has a name of its own: classes, functions, methods (Python's and C's: str.join).
_NAMED = (
    type,
    types.FunctionType,
    types.MethodType,
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.ClassMethodDescriptorType,
)
