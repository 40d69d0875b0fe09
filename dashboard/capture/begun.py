"""Whether a query now would begin the reading of the host's transaction.

An update's diff read (capture/diffs.py) runs inside the sender's `save()`. As
the transaction's first statement that reads, it would begin the transaction's
reading early, which changes what the host's own statements do:

- SQLite, with Django's default deferred `BEGIN`: the read takes a snapshot, and
  a write another connection commits before the host's `UPDATE` then makes that
  `UPDATE` fail at once ("database is locked"), where as the first statement it
  would simply have taken the write lock;
- PostgreSQL under REPEATABLE READ or SERIALIZABLE: the read fixes the
  transaction's snapshot, and the `UPDATE` fails to serialize with a row another
  transaction committed meanwhile.

So the read is skipped then (that save shows no diff). What begins a transaction
but reads nothing: SQLite's deferred `BEGIN` (Django sends it through the
cursor, where the write detector sees it), a `SAVEPOINT` (a nested `atomic()`),
its `RELEASE` or `ROLLBACK TO`, and the statements PostgreSQL runs without a
snapshot (`SET`, `RESET`, `SHOW`, `LOCK` — which its documentation has a
REPEATABLE READ transaction run first —, `LISTEN`, `NOTIFY`, `FETCH`, ...);
on SQLite, a `SELECT` of no table and a `PRAGMA` that sets. The write detector
(capture/writes.py) sends the statements that may be such to `control()`, and
every other to `ran()` while any connection waits. PostgreSQL's driver also
says whether any statement ran (psycopg 2 and 3: idle until the first). Other
backends cannot tell, and read only outside a transaction.
"""

import re
from collections.abc import Callable
from typing import Any

# ids of the connections whose transaction has run only transaction control so far. A
# closed connection's id left here costs only a diff, never a query: it is a reason not
# to read.
_fresh: set[int] = set()
IDLE = 0  # psycopg's TransactionStatus.IDLE (psycopg2's TRANSACTION_STATUS_IDLE)
# The first four characters (upper-cased) of the statements that may read nothing: the
# write detector's test on every query, before control() looks at the first word.
CONTROL = frozenset({"BEGI", "SAVE", "RELE", "ROLL", "SET ", "RESE", "SHOW", "LOCK", "LIST",
                     "NOTI", "UNLI", "FETC", "CHEC", "DISC", "PRAG"})  # fmt: skip
# First words of statements that take no snapshot (PostgreSQL) and read no table.
NO_SNAPSHOT = frozenset({
    "SAVEPOINT", "RELEASE", "ROLLBACK", "SET", "RESET", "SHOW", "LOCK", "LISTEN", "NOTIFY",
    "UNLISTEN", "FETCH", "CHECKPOINT", "DISCARD",
})  # fmt: skip
FROM = re.compile(r"\bFROM\b", re.IGNORECASE)
_detector: list[Callable[..., Any]] = []  # the write detector, which reports to us


def seen_by(detector: Callable[..., Any]) -> None:
    _detector[:] = [detector]


def control(connection: Any, sql: str) -> None:
    """A statement CONTROL's heads begin is about to run: as its first word says."""
    words = sql.upper().split()
    word = words[0] if words else ""
    if word == "BEGIN":  # SQLite's (Django sends PostgreSQL's none)
        # IMMEDIATE and EXCLUSIVE take the write lock at once: no other connection can
        # commit after it, so a read first changes nothing.
        if "IMMEDIATE" not in words and "EXCLUSIVE" not in words:
            _fresh.add(id(connection))
    elif word in NO_SNAPSHOT or (word == "PRAGMA" and "=" in sql):
        if _idle(connection) is True:  # PostgreSQL: this begins the transaction
            _fresh.add(id(connection))
    elif _fresh:
        ran(connection, word, sql)


def ran(connection: Any, head: str, sql: str) -> None:
    """Any other statement is about to run (called only while pending()). On SQLite, a
    SELECT of no table (SELECT 1) opens no read transaction: the mark stays."""
    vendor = getattr(connection, "vendor", None)
    if head.startswith("SELECT") and vendor == "sqlite" and not FROM.search(sql):
        return
    _fresh.discard(id(connection))


def pending() -> bool:
    """Is any connection's transaction waiting for its first statement that reads? (The
    write detector asks on every query: one truth test while none is.)"""
    return bool(_fresh)


def first_statement(connection: Any) -> bool:
    """Would a query on this connection now be the first of the host's transaction that
    reads?"""
    if connection.connection is None or connection.get_autocommit():
        return False  # no transaction: a read is a statement of its own
    vendor = connection.vendor
    if vendor == "sqlite":
        # Outside atomic() (set_autocommit(False)), Python's sqlite3 begins only before
        # a write: a read then begins nothing, and no BEGIN was seen.
        return id(connection) in _fresh or not _watched(connection)
    if vendor == "postgresql":
        return _idle(connection) is not False or id(connection) in _fresh or not _watched(
            connection
        )
    return True  # cannot tell


def _idle(connection: Any) -> bool | None:
    """PostgreSQL's driver: has no statement run in this transaction? None: not known."""
    if getattr(connection, "vendor", None) != "postgresql" or connection.connection is None:
        return None
    info = getattr(connection.connection, "info", None)
    status = getattr(info, "transaction_status", None)
    return None if status is None else int(status) == IDLE


def _watched(connection: Any) -> bool:
    """Is the write detector on this connection (so its control statements are seen)?"""
    wrappers = getattr(connection, "execute_wrappers", None)  # behind writes.py's seam
    return isinstance(wrappers, list) and any(w is d for w in wrappers for d in _detector)
