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

from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Manager, Model, QuerySet

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


# (model, alias) → its read, or None: read through the QuerySet API.
_built: dict[tuple[type[Model], str], Any] = {}


def queryset(model: type[Model], alias: str, pk: Any) -> QuerySet[Any, Row]:
    """The read, through the public API: every concrete field of the row with this pk."""
    names = [f.attname for f in model._meta.concrete_fields]
    return model._base_manager.using(alias).filter(pk=pk).order_by().values(*names)[:1]


def read(model: type[Model], pk: Any, connection: BaseDatabaseWrapper) -> Row | None:
    """The stored row with this pk (None: there is none). Raises what the query raises."""
    key = (model, connection.alias)
    built = _built.get(key, _UNBUILT)
    if built is _UNBUILT:
        built = _build(model, pk, connection) if READ.ok else None
        if built is not _NOT_NOW:
            _built[key] = built
    if not isinstance(built, Read) or not READ.ok:
        return _through_the_api(model, pk, connection)
    try:
        value = _db_value(model, pk, connection)
    except Exception:  # not a value of the pk's type: as the QuerySet API says it
        return _through_the_api(model, pk, connection)
    with connection.cursor() as cursor:
        try:
            cursor.execute(built.sql, (value,))
        except DatabaseError:
            raise
        except Exception:  # refused before it was sent (an int past 64 bits on SQLite)
            return _through_the_api(model, pk, connection)
        found = cursor.fetchone()
    if found is None:
        return None
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
    _built.pop((StoredEvent, connection.alias), None)
    return None


def forget() -> None:
    """Every read built anew (tests)."""
    _built.clear()
