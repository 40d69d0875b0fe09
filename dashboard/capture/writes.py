"""Writes that send no signal, shown as events of their own.

Raw SQL that writes (INSERT, UPDATE, DELETE run through a cursor by the project's
code or a package's, not by the ORM) is seen by an execute wrapper put once on
each connection as it opens (`connection_created`, seen through the dashboard's
hook on Signal.send: no receiver is connected), first in the list so that any
wrapper the host installs stays last, as Django's context manager expects. It
reads the statement's first word (a read goes on at once) and, for a write, the
few frames above the cursor: the ORM's writes (save, delete, update, bulk_*) come
from django/db/models/ and are shown as their own events or signals; Django's own
raw writes (a flush, the database cache, migrations) are not shown. It never
changes the SQL or its parameters and never raises: Django's exceptions pass
through unchanged. The dashboard's own history writes run quiet and are skipped.
The same wrapper counts a running receiver's queries (capture/timing.py): one
wrapper for the connection's life, none put on or taken off per receiver.

`QuerySet.update()`, `bulk_create()`, `bulk_update()` and the rows of a delete
(`QuerySet.delete()`, `Model.delete()`) that Django takes its fast path for (no
pre_delete/post_delete receiver for the model, nothing to cascade from it: a single
instance, or what cascades from a delete that is signalled) change rows without a
pre_save/post_save or pre_delete/post_delete: a row that says so ("blog.Post ·
QuerySet.update · 12 rows, no pre_save/post_save sent"), with its call site, in the
model family. The methods are Django's public API, wrapped class-wide like Signal's
send methods (capture/dispatch.py); the cost is paid by these calls only (measured:
bench/README.md).
"""

import functools
import logging
import os
import re
import sys
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from time import perf_counter
from types import CodeType, FrameType
from typing import Any

import django
from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections, router
from django.db.backends.signals import connection_created
from django.db.backends.utils import CursorWrapper
from django.db.models import Model, QuerySet
from django.db.models.signals import m2m_changed, pre_delete

from dashboard.capture import begun, context, dispatch, record, timing
from dashboard.capture.filtered import pks
from dashboard.capture.origin import origin
from dashboard.capture.snapshot import model_label
from dashboard.core import keys
from dashboard.core.events import Event
from dashboard.core.quiet import quiet
from dashboard.live.handoff import handoff
from dashboard.routers import history_alias
from dashboard.seams import seam

logger = logging.getLogger("dashboard")
SEAM = seam(
    "dashboard.W006",
    "connection.execute_wrappers (the list behind connection.execute_wrapper())",
    "raw SQL writes through a cursor are not shown",
)
ORIGINAL: dict[tuple[type, str], Callable[..., Any]] = {}
NO_SAVE_SIGNALS = "no pre_save/post_save sent"


def _publish(queryset: QuerySet, method: str, rows: int, extra: dict[str, Any],
             started: float, filtered: bool = False) -> None:  # fmt: skip
    """Never raises: the write has happened; telling of it must not undo the caller.
    `filtered`: the objects its filter limited it to are named (capture/filtered.py)."""
    try:
        if quiet.get() or record.is_ignored_model(queryset.model):
            return
        label = model_label(queryset.model)
        raw = {"rows": rows, "using": written_to(queryset), **extra}
        if filtered and rows:  # a write of no row touched none of them
            _name(raw, label, pks(queryset))
        _event(f"QuerySet.{method}", "model", label, raw, started)
    except Exception:
        logger.exception("dashboard: could not tell of a QuerySet.%s", method)


def written_to(queryset: QuerySet) -> str:
    """The database a QuerySet's write went to, as Django chose it, asking the host's
    routers again only where they had a choice. `QuerySet.db` would ask `db_for_read` of a
    queryset not marked for writing (Django's delete marks its own copy), and a router
    that picks a replica at random would draw once more. `_db` is the alias `using()`
    gave, `_hints` what it was made for (private: where they are gone, the routers are
    asked as Django asks them without)."""
    alias = getattr(queryset, "_db", None)
    if type(alias) is str:
        return alias
    if len(connections.settings) - (history_alias() in connections.settings) <= 1:
        return DEFAULT_DB_ALIAS  # the host's one database: nothing to choose from
    hints = getattr(queryset, "_hints", None)  # the instance a related manager is for
    return router.db_for_write(queryset.model, **(hints if type(hints) is dict else {}))


def m2m_unsent(model: type[Model]) -> str | None:
    """The note for the rows `add()` writes to a many-to-many relation's own table: Django
    sends its m2m_changed only while a receiver listens for the relation (`has_listeners`;
    `remove()` and `clear()` send theirs always), and the dashboard connects none, so as
    not to change that. None for any other model."""
    owner = model._meta.auto_created
    if not owner or m2m_changed.has_listeners(model):  # it was sent: pre_add, post_add
        return None
    fields = [f.name for f in owner._meta.many_to_many if f.remote_field.through is model]
    relation = f"{model_label(owner)}.{fields[0]}" if fields else model_label(model)
    return f"no m2m_changed sent: no receiver listens to {relation}"


def _name(raw: dict[str, Any], label: str, found: list[Any] | None) -> None:
    """The objects a write was limited to, as a model signal's payload names its instance
    ("model", then "pk": the object's timeline finds them so, history/reads.py)."""
    if found:
        raw["objects"] = [{"model": label, "pk": pk} for pk in found]


def _event(signal: str, family: str, sender: str, raw: dict[str, Any], started: float) -> None:
    info = context.current_request.get()
    event = Event(
        signal=signal,
        family=family,
        sender=sender,
        raw=raw,
        request_id=info.id if info else None,
        origin=origin(),
    )
    event.time -= perf_counter() - started  # when the write began
    event.duration = perf_counter() - started
    event.cid = keys.next_cid()
    dispatch.caused_by(event)  # a receiver's write: under its dispatch
    handoff.publish(event)


def _update(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def update(self: QuerySet, **kwargs: Any) -> Any:
        started = perf_counter()
        rows = method(self, **kwargs)
        _publish(self, "update", rows, {"fields": sorted(kwargs), "note": NO_SAVE_SIGNALS},
                 started, filtered=True)  # fmt: skip
        return rows

    return update


def _bulk_create(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def bulk_create(self: QuerySet, objs: Any, *args: Any, **kwargs: Any) -> Any:
        started = perf_counter()
        created = method(self, objs, *args, **kwargs)
        note = m2m_unsent(self.model) or NO_SAVE_SIGNALS
        _publish(self, "bulk_create", len(created), {"note": note}, started)
        return created

    return bulk_create


def _bulk_update(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def bulk_update(self: QuerySet, objs: Any, fields: Any, *args: Any, **kwargs: Any) -> Any:
        started = perf_counter()
        rows = method(self, objs, fields, *args, **kwargs)
        _publish(self, "bulk_update", rows, {"fields": list(fields), "note": NO_SAVE_SIGNALS},
                 started)  # fmt: skip
        return rows

    return bulk_update


class _Delete:
    """A delete under way (in this context): the rows a pre_delete told of, per model label
    (those it deleted beyond them went without any signal: below), and when the last
    pre_delete sent ended. Django deletes the rows it sends nothing for right after every
    pre_delete is sent (Collector.delete): their event begins there, not before the signals
    of the delete they cascaded from."""

    __slots__ = ("counts", "signalled")

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.signalled: float | None = None


_deleting: ContextVar[_Delete | None] = ContextVar("dashboard_deleting", default=None)


def _signalled(sender: Any, named: dict[str, Any]) -> None:
    """pre_delete's hook (run for every send of it, recorded or not: capture/context.py)."""
    under_way = _deleting.get()
    if under_way is not None and issubclass(type(sender), type) and issubclass(sender, Model):
        under_way.counts[model_label(sender)] += 1


def _sent() -> None:
    """pre_delete's hook once sent (its receivers have run)."""
    if (under_way := _deleting.get()) is not None:
        under_way.signalled = perf_counter()


def _delete(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """QuerySet.delete and Model.delete: what Django deleted without a pre_delete and a
    post_delete, each model's rows one event. Django signals only the rows it cannot delete
    in one statement: with no receiver for a model and nothing to cascade from it, its
    fast path deletes the rows (a single instance too, and what cascades to such a model)
    and sends nothing, and Django's result counts them all."""

    def wrap(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def delete(self: Any, *args: Any, **kwargs: Any) -> Any:
            under_way = _Delete()
            token = _deleting.set(under_way)
            # An instance's pk, read before Django sets it to None once deleted.
            pk = self.__dict__.get(self._meta.pk.attname) if kind == "Model" else None
            started = perf_counter()
            try:
                result = method(self, *args, **kwargs)
            finally:
                _deleting.reset(token)
            _unsignalled(kind, self, result, under_way.counts,
                         kwargs.get("using", args[0] if args else None),
                         under_way.signalled or started, pk)  # fmt: skip
            return result

        return delete

    return wrap


def _unsignalled(kind: str, target: Any, result: Any, counts: Counter[str], using: Any,
                 started: float, pk: Any = None) -> None:  # fmt: skip
    """Never raises: the rows are gone; telling of it must not undo the caller."""
    try:
        if quiet.get():
            return
        model = target.model if kind == "QuerySet" else type(target)
        own = model_label(model)
        where: Any = None  # asked for once, and only if a row went unsignalled
        for label, rows in result[1].items():
            silent = rows - counts[label]
            if silent <= 0 or record.is_ignored_model(apps.get_model(label)):
                continue
            note = "no pre_delete/post_delete sent"
            if label != own:
                note += f" (cascaded from {own})"
            if where is None:
                where = written_to(target) if kind == "QuerySet" else using or target._state.db
            raw = {"rows": silent, "using": where, "note": note}
            if label == own:
                named = pks(target) if kind == "QuerySet" else None if pk is None else [pk]
                _name(raw, label, named)
            _event(f"{kind}.delete", "model", label, raw, started)
    except Exception:
        logger.exception("dashboard: could not tell of a %s.delete", kind)


WRAPS = {(QuerySet, "update"): _update, (QuerySet, "bulk_create"): _bulk_create,
         (QuerySet, "bulk_update"): _bulk_update, (QuerySet, "delete"): _delete("QuerySet"),
         (Model, "delete"): _delete("Model")}  # fmt: skip


def install() -> None:
    if ORIGINAL:
        return
    for (cls, name), wrap in WRAPS.items():
        ORIGINAL[cls, name] = getattr(cls, name)
        setattr(cls, name, wrap(ORIGINAL[cls, name]))
    # Every connection opened from now on, and those this thread has open already.
    context.BEFORE[id(connection_created)] = lambda sender, named: watch(named.get("connection"))
    context.BEFORE[id(pre_delete)] = _signalled
    context.AFTER[id(pre_delete)] = _sent
    dispatch.forget_plain()  # a signal with a hook now is no longer one to skip
    for connection in connections.all(initialized_only=True):
        watch(connection)


def uninstall() -> None:
    for (cls, name), method in ORIGINAL.items():
        setattr(cls, name, method)
    ORIGINAL.clear()
    context.BEFORE.pop(id(connection_created), None)
    context.BEFORE.pop(id(pre_delete), None)
    context.AFTER.pop(id(pre_delete), None)
    dispatch.forget_plain()
    for connection in connections.all(initialized_only=True):
        unwatch(connection)


# -- raw SQL through a cursor -----------------------------------------------------------

WRITES = {"INSERT": "INSERT", "UPDATE": "UPDATE", "DELETE": "DELETE", "REPLAC": "REPLACE"}
TABLE = re.compile(
    r"^\s*(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?|DELETE\s+FROM)"
    r"\s+[\"`\[]?([\w.$]+)",
    re.IGNORECASE,
)
LITERAL = re.compile(r"'(?:[^']|'')*'")  # a value written into the SQL: never shown
OPEN_LITERAL = re.compile(r"'[^']*$")  # one the cut left open
_DJANGO_DIR = os.path.dirname(django.__file__) + os.sep
PATCHED = ("execute", "executemany")  # CursorWrapper's methods that packages replace
_BACKENDS = (os.path.join(_DJANGO_DIR, "db", "backends") + os.sep,
             os.path.join(_DJANGO_DIR, "db", "utils.py"))  # fmt: skip
NO_SIGNALS = "raw SQL: no model signal sent"


def _from_django() -> bool:
    """Whether Django's own code called the cursor (the ORM, shown otherwise, or Django's
    upkeep), not the project's or a package's (CPython's _getframe, as Django's own code
    uses it): past the execute wrappers (ours, any other) and Django's cursor and debug
    cursor, the first caller decides. A package that patches the cursor's methods
    (sentry-sdk's Django integration, an APM agent) puts frames of its own between: they
    are passed over, up to the frame of the method installed now (with sentry-sdk, every
    ORM write showed a second time, as raw SQL)."""
    frame = sys._getframe(2)
    while frame is not None and not frame.f_code.co_filename.startswith(_BACKENDS):
        frame = frame.f_back  # wrappers outside ours
    patches: tuple[CodeType, ...] | None = None  # looked up only past an ORM caller
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(_BACKENDS):
            frame = frame.f_back  # Django's cursor wrappers
            continue
        if name.startswith(_DJANGO_DIR):
            return True
        if patches is None:
            patches = _cursor_patches()
        past = _past_patch(frame, patches) if patches else None
        if past is None:
            return False
        frame = past
    return False


def _cursor_patches() -> tuple[CodeType, ...]:
    """The code of CursorWrapper's execute and executemany where a package replaced them."""
    codes = (getattr(getattr(CursorWrapper, name, None), "__code__", None) for name in PATCHED)
    return tuple(c for c in codes if c is not None and not c.co_filename.startswith(_DJANGO_DIR))


def _past_patch(frame: FrameType, patches: tuple[CodeType, ...]) -> FrameType | None:
    """The frame that called the patched method, if `frame` begins a package's patch: the
    frames outside Django from it up to the installed method's own (the first found: a
    frame further out with the same code is the package wrapping something else)."""
    while frame is not None and not frame.f_code.co_filename.startswith(_DJANGO_DIR):
        if any(frame.f_code is code for code in patches):
            return frame.f_back
        frame = frame.f_back
    return None


_tables: dict[str, type[Model]] = {}


def _model_of(table: str) -> type[Model] | None:
    if not _tables:
        for model in apps.get_models(include_auto_created=True):
            _tables[model._meta.db_table.lower()] = model
    return _tables.get(table.lower())


def detect_write(execute: Callable[..., Any], sql: Any, params: Any, many: bool,
                 context_: dict[str, Any]) -> Any:  # fmt: skip
    """The execute wrapper on every connection: a raw write becomes an event, and a
    running receiver's query is counted (capture/timing.py)."""
    count = timing.counting.get()
    if type(count) is timing.NoQueries:  # the dashboard runs a model's __str__: refused
        count.refuse(context_.get("connection"))
        raise timing.WouldQuery(sql)
    head = sql.lstrip()[:6].upper() if type(sql) is str else ""
    if head[:4] in begun.CONTROL:  # may read nothing (capture/begun.py)
        begun.control(context_.get("connection"), sql)
    elif begun.pending():  # the transaction may read from here on (capture/begun.py)
        begun.ran(context_.get("connection"), head, sql)
    write = head in WRITES and not quiet.get()
    if count is None and not write:
        return execute(sql, params, many, context_)  # a read, or the dashboard's own work
    started = perf_counter()
    try:
        result = execute(sql, params, many, context_)
    finally:
        if count is not None:
            count.queries += 1
            count.seconds += perf_counter() - started
    if write:
        try:
            _raw_write(sql, many, context_, started)
        except Exception:
            logger.exception("dashboard: could not tell of a raw SQL write")
    return result


begun.seen_by(detect_write)


def _raw_write(sql: str, many: bool, context_: dict[str, Any], started: float) -> None:
    if _from_django():  # the ORM (shown otherwise) or Django's own upkeep
        return
    match = TABLE.match(sql)
    table = match.group(1).strip('"`[]') if match else ""
    model = _model_of(table.rsplit(".", 1)[-1]) if table else None
    if model is not None and record.is_ignored_model(model):
        return
    cursor, connection = context_.get("cursor"), context_.get("connection")
    rows = getattr(cursor, "rowcount", -1)
    # Its start is enough (the row cuts it at VALUE_LIMIT): a long one costs no more.
    blanked = OPEN_LITERAL.sub("\x00", LITERAL.sub("\x00", sql[:2000]))
    statement = " ".join(blanked.replace("\x00", "'…'").split())
    _event(
        "cursor.executemany" if many else "cursor.execute",
        "model" if model is not None else "database",
        model_label(model) if model is not None else (table or "?"),
        {
            "statement": statement,
            "verb": WRITES[sql.lstrip()[:6].upper()],
            "table": table,
            "rows": rows if isinstance(rows, int) and rows >= 0 else None,
            "using": getattr(connection, "alias", None),
            "note": NO_SIGNALS,
        },
        started,
    )


def watch(connection: Any) -> None:
    """Put the write detector on a connection, once, first in its list (for the
    connection's life: execute_wrapper() is a context manager). Never raises."""
    if connection is None or not SEAM.ok:
        return
    try:
        wrappers = connection.execute_wrappers
        if not isinstance(wrappers, list):
            SEAM.fail(f"it is a {type(wrappers).__name__}, not a list")
            return
        if not any(w is detect_write for w in wrappers):
            wrappers.insert(0, detect_write)
    except Exception as exc:
        SEAM.fail(f"{type(exc).__name__}: {exc}")


def probe() -> str | None:
    """At start-up: does execute_wrapper() still push onto a list `execute_wrappers`?"""
    connection = connections[DEFAULT_DB_ALIAS]
    wrappers = getattr(connection, "execute_wrappers", None)
    if not isinstance(wrappers, list):
        return f"it is a {type(wrappers).__name__}, not a list"

    def marker(execute: Callable[..., Any], *args: Any) -> Any:
        return execute(*args)

    with connection.execute_wrapper(marker):
        if not wrappers or wrappers[-1] is not marker:
            return "execute_wrapper() no longer appends to it"
    if marker in wrappers:
        return "execute_wrapper() no longer takes its wrapper off it"
    return None


def unwatch(connection: Any) -> None:
    try:
        while detect_write in connection.execute_wrappers:
            connection.execute_wrappers.remove(detect_write)
    except Exception:
        logger.exception("dashboard: could not unwatch a connection")
