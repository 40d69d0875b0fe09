"""An update's stored row, read by SQL the ORM built once per model (capture/diffs.py).

The diff's read runs inside the sender's `save()`. Built through the QuerySet API
each time (`filter(pk=…).values(…).first()`: clones, lookups, the compiler), it
cost 324 µs an update on SQLite here, for a query that takes 16 µs to run: nearly
half of what an update cost with the dashboard on. So the ORM builds it once per
(model, database): its SQL, the columns' names in order, and the converters the
ORM applies to what the database returns (`from_db_value`, the backend's own).
Each read then runs that SQL with the pk's database value, and converts the row
as the ORM would.

The SQL compiler's `as_sql()`, `select`, `col_count` and `get_converters()` are
not public: behind one seam (`READ`), checked at start-up on the dashboard's own
model. A model whose read does not fit (its SQL takes other parameters than the
pk's value: a composite key) is read through the QuerySet API, as is every model
once the seam has failed.
"""

from dataclasses import dataclass
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model, QuerySet

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
    converters: tuple[tuple[int, tuple[Any, ...], Any], ...]  # (position, functions, expression)


# (model, alias) → its read, or None: read through the QuerySet API.
_built: dict[tuple[type[Model], str], Read | None] = {}


def queryset(model: type[Model], alias: str, pk: Any) -> QuerySet[Any, Row]:
    """The read, through the public API: every concrete field of the row with this pk."""
    names = [f.attname for f in model._meta.concrete_fields]
    return model._base_manager.using(alias).filter(pk=pk).order_by().values(*names)[:1]


def read(model: type[Model], pk: Any, connection: BaseDatabaseWrapper) -> Row | None:
    """The stored row with this pk (None: there is none). Raises what the query raises."""
    key = (model, connection.alias)
    if key in _built:
        built = _built[key]
    else:
        built = _built[key] = _build(model, pk, connection) if READ.ok else None
    if built is None or not READ.ok:
        return next(iter(queryset(model, connection.alias, pk)), None)
    with connection.cursor() as cursor:
        cursor.execute(built.sql, (_db_value(model, pk, connection),))
        found = cursor.fetchone()
    if found is None:
        return None
    values = list(found)
    for position, functions, expression in built.converters:
        value = values[position]
        for convert in functions:
            value = convert(value, expression, connection)
        values[position] = value
    return dict(zip(built.names, values, strict=True))


def _db_value(model: type[Model], pk: Any, connection: BaseDatabaseWrapper) -> Any:
    """The pk as the `pk=` lookup hands it to the database."""
    field = model._meta.pk
    return field.get_db_prep_value(pk, connection, prepared=False)  # type: ignore[union-attr]


def _build(model: type[Model], pk: Any, connection: BaseDatabaseWrapper) -> Read | None:
    """The read of this model, or None where it does not fit (read through the
    QuerySet API). A compiler that is not what it was fails the seam."""
    try:
        compiler = queryset(model, connection.alias, pk).query.get_compiler(
            connection=connection
        )
        sql, params = compiler.as_sql()
        if len(params) != 1 or params[0] != _db_value(model, pk, connection):
            return None  # a composite key, a lookup that prepares the pk otherwise
        columns = _columns(compiler)
        names = tuple(column.target.attname for column in columns)
        if set(names) != {f.attname for f in model._meta.concrete_fields}:
            return None
        converters = tuple(
            (position, tuple(functions), expression)
            for position, (functions, expression) in compiler.get_converters(columns).items()
        )
    except Exception as exc:
        READ.fail(f"building a read of {model._meta.label} raised {type(exc).__name__}: {exc}")
        return None
    return Read(sql, names, converters)


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
    if built is None:
        return "the compiler's SQL for a read by pk takes other parameters than the pk's"
    _built.pop((StoredEvent, connection.alias), None)
    return None


def forget() -> None:
    """Every read built anew (tests)."""
    _built.clear()
