"""Writing the history: a batch of rows, rolled-back marks, and the bounds.

Runs on the writer's thread (history/writer.py), or in `prune_events`. A
failure costs history, never the live view. Public database API only: the
INSERT and the DELETEs are plain SQL through a cursor (QuerySet.delete()
would load every row to send pre/post_delete for each).
"""

import logging
import operator
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    connections,
    router,
    transaction,
)

from dashboard import conf
from dashboard.core.events import Event
from dashboard.core.keys import parse_key
from dashboard.core.rows import Row, moment
from dashboard.models import StoredEvent

logger = logging.getLogger("dashboard")

# The columns a row fills, in INSERT order: every concrete field of the model
# but its id. Each value is the row's attribute of the same name, except the
# payload, stored as the JSON text the row already carries.
COLUMNS = tuple(f.name for f in StoredEvent._meta.concrete_fields if not f.primary_key)
_values = operator.attrgetter(*("payload_json" if c == "payload" else c for c in COLUMNS))
_TIME, _DETAIL = COLUMNS.index("time"), COLUMNS.index("detail")
PRUNE_EVERY = 500  # rows between prunes by age; the count cap is kept every write

_missing_table_reported = False


class Unavailable(Exception):
    """The database cannot take the batch now (locked, unreachable): try it again later."""


def write(rows: list[Row], rolled_back: Iterable[Event] = ()) -> int:
    """Store rows and marks; how many rows could not be stored (each said in the log).

    Raises Unavailable when the database cannot take them now (nothing was
    stored: it was one transaction). A batch the database refuses is stored row
    by row, so a bad value costs its own row, never its batch."""
    global _missing_table_reported
    try:
        _write(rows, rolled_back)
        return 0
    except DatabaseError as exc:
        if table_missing():
            if not _missing_table_reported:  # e.g. events of the very first migrate
                logger.warning(
                    "dashboard: events sent before migrate created the history table are not "
                    "stored (expected on a database's first migrate)"
                )
                _missing_table_reported = True
            return len(rows)
        if isinstance(exc, (OperationalError, InterfaceError)):
            raise Unavailable(str(exc)) from exc
        if len(rows) > 1:
            lost = sum(write([row]) for row in rows)
            return lost + write([], rolled_back)
        if rows:
            logger.exception("dashboard: the database refused event %s", rows[0].key)
        else:
            logger.exception("dashboard: could not mark rolled-back events")
        return len(rows)
    except Exception:
        logger.exception("dashboard: could not store %d events", len(rows))
        return len(rows)


def _write(rows: list[Row], rolled_back: Iterable[Event]) -> None:
    """Insert a sent batch, mark rolled-back events, keep the history bounded.

    One short transaction: on SQLite each takes the database's one write
    lock, and a save that finds it taken sleeps in SQLite's busy handler
    (1 ms, then longer). So the rows' parameters are built before it begins,
    never while the lock is held (a thread may wait for the GIL meanwhile)."""
    alias = router.db_for_write(StoredEvent)
    connection = connections[alias]
    insert = _insert_statement(connection, rows) if rows else None
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        if insert is not None:
            _in_commit_order(cursor, connection)
            cursor.executemany(*insert)
        for process, seqs in _by_process(rolled_back).items():
            StoredEvent.objects.using(alias).filter(process=process, seq__in=seqs).update(
                rolled_back=True
            )
        if rows and (last := _last_id(cursor, connection)):
            # The count caps every batch (index ranges: cheap), the age about
            # once per PRUNE_EVERY events.
            _cap_families(cursor, connection, {row.family for row in rows})
            _cap(cursor, connection)
            if last % PRUNE_EVERY < len(rows):
                _prune(cursor, connection)


# PostgreSQL's transaction-level advisory lock that history writes take, whatever the
# process: a number of our own (b"sigdash" as an integer), which no host is likely to use.
ID_ORDER_LOCK = int.from_bytes(b"sigdash", "big")


def _in_commit_order(cursor: Any, connection: Any) -> None:
    """Ids in the order rows become visible. A page resumes with the newest id it was
    rendered with, and reads what came after it (history/reads.py backfill): on
    PostgreSQL, two processes' writes could otherwise commit out of id order, and a row
    committed just after the page was rendered, with an id below the page's, would be
    missed for good. So their writes take turns, each held until its commit (they are
    short: one batch). SQLite has one writer at a time already."""
    if connection.vendor == "postgresql":
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ID_ORDER_LOCK])


def _last_id(cursor: Any, connection: Any) -> int:
    """The newest event's id (the ORM's last_id() costs ~100 µs more a batch)."""
    quote, meta = connection.ops.quote_name, StoredEvent._meta
    cursor.execute(f"SELECT MAX({quote(meta.pk.column)}) FROM {quote(meta.db_table)}")
    return cursor.fetchone()[0] or 0


def _insert_statement(connection: Any, rows: list[Row]) -> tuple[str, list[tuple]]:
    """One executemany: bulk_create would build a model instance per row and
    serialise the payload again, in the process (one GIL) that is saving."""
    ops, meta = connection.ops, StoredEvent._meta
    columns = ", ".join(ops.quote_name(meta.get_field(c).column) for c in COLUMNS)
    sql = (
        f"INSERT INTO {ops.quote_name(meta.db_table)} ({columns}) "
        f"VALUES ({', '.join(['%s'] * len(COLUMNS))})"
    )
    adapt_time, adapt_json = ops.adapt_datetimefield_value, ops.adapt_json_value
    params = []
    for row in rows:
        values = list(_values(row))
        values[_TIME] = adapt_time(values[_TIME])
        values[_DETAIL] = adapt_json(values[_DETAIL], None)
        params.append(tuple(values))
    return sql, params


def _by_process(events: Iterable[Event]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for event in events:
        process, seq = parse_key(event.key)
        found.setdefault(process, []).append(seq)
    return found


def _cap(cursor: Any, connection: Any) -> int:
    """Delete all but the newest HISTORY_MAX_EVENTS (ids grow with time)."""
    return _keep_newest(cursor, connection, conf.get("HISTORY_MAX_EVENTS"))


def family_cap(family: str) -> int | None:
    """The most events of this family kept (HISTORY_FAMILY_MAX_EVENTS), or None."""
    caps = conf.get("HISTORY_FAMILY_MAX_EVENTS")
    return caps.get(family, caps.get("*"))


def _cap_families(cursor: Any, connection: Any, families: Iterable[str]) -> int:
    """Delete all but the newest of each capped family: so a flood of one family
    (requests, new connections) pushes out its own oldest, never another's."""
    deleted = 0
    for family in families:
        if (cap := family_cap(family)) is not None:
            deleted += _keep_newest(cursor, connection, cap, family)
    return deleted


def _keep_newest(cursor: Any, connection: Any, cap: int, family: str | None = None) -> int:
    """Delete the oldest events (of a family) past `cap`. Counted, then the excess is
    found from the oldest end: a few rows walked, where an OFFSET from the newest
    end walked the whole history (4 ms a batch at 10,000 events on SQLite). By
    position, not by id range: the family caps leave gaps in the ids."""
    quote, meta = connection.ops.quote_name, StoredEvent._meta
    table, pk = quote(meta.db_table), quote(meta.pk.column)
    where, params = "", []
    if family is not None:
        where, params = f" WHERE {quote(meta.get_field('family').column)} = %s", [family]
    cursor.execute(f"SELECT COUNT(*) FROM {table}{where}", params)
    excess = cursor.fetchone()[0] - cap
    if excess <= 0:
        return 0
    cursor.execute(
        f"SELECT {pk} FROM {table}{where} ORDER BY {pk} LIMIT 1 OFFSET %s", [*params, excess - 1]
    )
    newest_dropped = cursor.fetchone()[0]
    and_ = " AND" if where else " WHERE"
    cursor.execute(f"DELETE FROM {table}{where}{and_} {pk} <= %s", [*params, newest_dropped])
    return cursor.rowcount


def _prune(cursor: Any, connection: Any, now: float | None = None) -> int:
    """The caps, and every event older than HISTORY_MAX_AGE."""
    cutoff = moment(now or time.time()) - timedelta(seconds=conf.get("HISTORY_MAX_AGE"))
    quote, meta = connection.ops.quote_name, StoredEvent._meta
    cursor.execute(
        f"DELETE FROM {quote(meta.db_table)} WHERE {quote(meta.get_field('time').column)} < %s",
        [connection.ops.adapt_datetimefield_value(cutoff)],
    )
    deleted = cursor.rowcount
    families = StoredEvent.objects.using(connection.alias).order_by().values_list("family")
    deleted += _cap_families(cursor, connection, {f for (f,) in families.distinct()})
    return deleted + _cap(cursor, connection)


def prune(now: float | None = None) -> int:
    """Drop events beyond HISTORY_MAX_EVENTS (by id) and older than HISTORY_MAX_AGE."""
    alias = router.db_for_write(StoredEvent)
    connection = connections[alias]
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        return _prune(cursor, connection, now)


def table_missing() -> bool:
    alias = router.db_for_write(StoredEvent)
    try:
        return StoredEvent._meta.db_table not in connections[alias].introspection.table_names()
    except DatabaseError:
        return False
