"""An update's stored row, read by SQL the ORM built once per model (capture/diffs.py).

The diff's read runs inside the sender's `save()`. Built through the QuerySet API
each time (`filter(pk=…).values(…).first()`: clones, lookups, the compiler), it
cost 324 µs an update on SQLite here, for a query that takes 16 µs to run: nearly
half of what an update cost with the dashboard on. So the ORM builds it once per
(model, database): its SQL, the columns' names in order, and the converters the
ORM applies to what the database returns (`from_db_value`, the backend's own).
Each read then runs that SQL with the pk's database value, and converts the row
as the ORM would.

Read through the QuerySet API each time instead: a model whose base manager is its
own (it may filter by context: its SQL must be built anew each time), one whose read
takes more than the pk's value (a composite key), a child of multi-table inheritance
(its parent's key is its own), a pk the built SQL cannot take (not of the key's type,
past its range), and every model once the seam has failed.

The SQL compiler's `as_sql()`, `select`, `col_count` and `get_converters()` are
not public: behind one seam (`READ`), checked at start-up on the dashboard's own
model.
"""

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Manager, Model, QuerySet

from dashboard.core.identity import ByIdentity
from dashboard.seams import seam

READ = seam(
    "dashboard.W009",
    "the SQL compiler's `as_sql()`, `select`, `col_count` and `get_converters()` "
    "(`capture/stored.py`)",
    "each update's diff read builds its query through the QuerySet API "
    "(about 0.3 ms more per update)",
)

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Read:
    """One model's read, as the ORM built it."""

    sql: str
    names: tuple[str, ...]  # the columns' attnames, in the SELECT's order
    # (position, ((function, a method of connection.ops?), ...), expression)
    converters: tuple[tuple[int, tuple[tuple[Any, bool], ...], Any], ...]


# model → alias → its read, or None: read through the QuerySet API. Tied to the model's
# life (a model made for a test, then dropped).
_built: ByIdentity[dict[str, Any]] = ByIdentity()


def queryset(model: type[Model], alias: str, pk: Any) -> QuerySet[Any, Row]:
    """The read, through the public API: every concrete field of the row with this pk."""
    names = [f.attname for f in model._meta.concrete_fields]
    return model._base_manager.using(alias).filter(pk=pk).order_by().values(*names)[:1]


def read(model: type[Model], pk: Any, connection: BaseDatabaseWrapper) -> Row | None:
    """The stored row with this pk (None: there is none). Raises what the query raises;
    on PostgreSQL, inside a transaction, once it is undone (`_undone_if_it_fails`)."""
    reads = _built.get(id(model))
    if reads is None:
        reads = _built.put(model, {})
    built = reads.get(connection.alias, _UNBUILT)
    if built is _UNBUILT:
        built = _build(model, pk, connection) if READ.ok else None
        if built is not _NOT_NOW:
            reads[connection.alias] = built
    guarded = _guarded(connection)
    if isinstance(built, Read) and READ.ok:
        try:
            value = _db_value(model, pk, connection)
        except Exception:  # not a value of the pk's type: as the QuerySet API says it
            pass
        else:
            found = _run(built, value, connection, guarded)
            if found is not _REFUSED:
                return None if found is None else _converted(built, found, connection)
    with _undone_if_it_fails(connection, guarded):
        return _through_the_api(model, pk, connection)


def _run(built: Read, value: Any, connection: BaseDatabaseWrapper, guarded: bool) -> Any:
    """The built read's row (None: there is none), or _REFUSED: the driver refused the
    value before sending it (an int past 64 bits on SQLite)."""
    with connection.cursor() as cursor:
        one_trip = guarded and _several_at_once(cursor)
        with _undone_if_it_fails(connection, guarded and not one_trip):
            try:
                if one_trip:  # the savepoint, the read and the release: one round trip
                    cursor.execute(
                        f"SAVEPOINT {SAVEPOINT}; {built.sql}; RELEASE SAVEPOINT {SAVEPOINT}",
                        (value,),
                    )
                    cursor.nextset()  # past the savepoint's result, to the read's rows
                else:
                    cursor.execute(built.sql, (value,))
            except DatabaseError:
                if one_trip:
                    _roll_back(connection)
                raise
            except Exception:
                return _REFUSED
            return cursor.fetchone()


def _converted(built: Read, found: Any, connection: BaseDatabaseWrapper) -> Row:
    """The row as the ORM would have made it."""
    values, ops = list(found), connection.ops
    for position, functions, expression in built.converters:
        value = values[position]
        for convert, of_ops in functions:
            value = convert(ops, value, expression, connection) if of_ops else convert(
                value, expression, connection
            )
        values[position] = value
    return dict(zip(built.names, values, strict=True))


def _through_the_api(model: type[Model], pk: Any, connection: BaseDatabaseWrapper) -> Row | None:
    return next(iter(queryset(model, connection.alias, pk)), None)


_REFUSED = object()  # the driver refused the value before sending it


# -- a read that fails must not abort the host's PostgreSQL transaction ----------------
#
# On PostgreSQL a statement that fails inside a transaction aborts the whole transaction:
# every later query of the host's would fail with "current transaction is aborted", where
# without the dashboard it would not. There, inside a transaction, the read runs in a
# savepoint of its own, rolled back if the read fails. (Ours, by raw SQL: Django's
# numbering of the host's own savepoints is untouched.) With psycopg 3's client-side
# binding (Django's default) the savepoint, the read and the release go as one string:
# one round trip instead of three (an update in a transaction here: +350-500 us for the
# two more). Elsewhere a failed read leaves the transaction as it was.

SAVEPOINT = "dashboard_diff_read"


def _guarded(connection: BaseDatabaseWrapper) -> bool:
    return connection.vendor == "postgresql" and not connection.get_autocommit()


def _several_at_once(cursor: Any) -> bool:
    """Several statements in one execute(), each one's rows in turn: psycopg 3's
    client-side binding (a server-side bound cursor cannot; psycopg2 shows only the
    last statement's rows)."""
    psycopg = sys.modules.get("psycopg")  # imported already if this is its connection
    return psycopg is not None and isinstance(getattr(cursor, "cursor", None), psycopg.ClientCursor)


@contextlib.contextmanager
def _undone_if_it_fails(connection: BaseDatabaseWrapper, guarded: bool) -> Iterator[None]:
    if not guarded:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute(f"SAVEPOINT {SAVEPOINT}")
    try:
        yield
    except BaseException:
        _roll_back(connection)
        raise
    with connection.cursor() as cursor:
        cursor.execute(f"RELEASE SAVEPOINT {SAVEPOINT}")


def _roll_back(connection: BaseDatabaseWrapper) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"ROLLBACK TO SAVEPOINT {SAVEPOINT}")


def _db_value(model: type[Model], pk: Any, connection: BaseDatabaseWrapper) -> Any:
    """The pk as the `pk=` lookup hands it to the database."""
    field = model._meta.pk
    return field.get_db_prep_value(pk, connection, prepared=False)  # type: ignore[union-attr]


_UNBUILT = object()  # never tried for this (model, database)
_NOT_NOW = object()  # this pk did not build (out of range, not of its type): another may


def _build(model: type[Model], pk: Any, connection: BaseDatabaseWrapper) -> Any:
    """The read of this model; None where it does not fit (always read through the
    QuerySet API); _NOT_NOW where this pk did not build. A compiler that is not what it
    was fails the seam: every model is then read through the QuerySet API."""
    # A base manager of the model's own may filter by context (soft-deleted rows shown to
    # some, not to others): SQL built once would freeze the first context's filter.
    if type(model._base_manager) is not Manager:
        return None
    try:
        value = _db_value(model, pk, connection)
        compiler = queryset(model, connection.alias, pk).query.get_compiler(
            connection=connection
        )
        sql, params = compiler.as_sql()
    except Exception:  # this pk: past the column's range (EmptyResultSet), not its type
        return _NOT_NOW
    if len(params) != 1 or params[0] != value:
        return None  # a composite key, a lookup that prepares the pk otherwise
    try:
        columns = _columns(compiler)
        names = tuple(column.target.attname for column in columns)
        converters = compiler.get_converters(columns)
    except Exception as exc:
        READ.fail(f"building a read of {model._meta.label} raised {type(exc).__name__}: {exc}")
        return None
    if sorted(names) != sorted(f.attname for f in model._meta.concrete_fields):
        return None  # a child of multi-table inheritance: its parent's key is its own
    ops = connection.ops
    # The backend's converters are methods of this thread's connection's `ops`: kept as
    # functions and bound to the reading thread's at each read, or the cache would keep
    # this thread's connection (and its database handle) alive after the thread.
    portable = tuple(
        (
            position,
            tuple(
                (convert.__func__, True) if getattr(convert, "__self__", None) is ops
                else (convert, False)
                for convert in functions
            ),
            expression,
        )
        for position, (functions, expression) in converters.items()
    )  # fmt: skip
    return Read(sql, names, portable)


def _columns(compiler: Any) -> list[Any]:
    """The SELECT's expressions, as `results_iter()` takes them (set by `as_sql()`)."""
    return [selected[0] for selected in compiler.select[: compiler.col_count]]


def probe() -> str | None:
    """At start-up, without a query: the dashboard's own model's read builds, naming
    every column (a JSON field among them, with converters on some backends)."""
    from django.db import DEFAULT_DB_ALIAS, connections, router

    from dashboard.models import StoredEvent

    connection = connections[router.db_for_read(StoredEvent) or DEFAULT_DB_ALIAS]
    built = _build(StoredEvent, 1, connection)
    if not READ.ok:
        return READ.reason
    if not isinstance(built, Read):
        return "the compiler's read by pk of the dashboard's own model did not build"
    _built.get(id(StoredEvent), {}).pop(connection.alias, None)
    return None


def forget() -> None:
    """Every read built anew (tests)."""
    _built.clear()
