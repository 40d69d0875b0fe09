"""Whether a query now would be the first of the host's transaction.

An update's diff read (capture/diffs.py) runs inside the sender's `save()`. As
the first statement of a transaction it would begin the transaction's reading
early, which changes what the host's own statements do:

- SQLite, with Django's default deferred `BEGIN`: the read takes a snapshot, and
  a write another connection commits before the host's `UPDATE` then makes that
  `UPDATE` fail at once ("database is locked"), where as the first statement it
  would simply have taken the write lock;
- PostgreSQL under REPEATABLE READ or SERIALIZABLE: the read fixes the
  transaction's snapshot, and the `UPDATE` fails to serialize with a row another
  transaction committed meanwhile.

So the read is skipped then (that save shows no diff). SQLite: Django sends
its `BEGIN` through the cursor, where the write detector sees it (`began()`;
only a deferred one counts), and any later statement clears the mark (`ran()`).
PostgreSQL: the driver's own transaction status (psycopg 2 and 3: idle until
the first statement). Other backends cannot tell, and read only outside a
transaction.
"""

from collections.abc import Callable
from typing import Any

# ids of the connections (SQLite's) whose BEGIN has been followed by nothing yet. A closed
# connection's id left here costs only a diff, never a query: it is a reason not to read.
_fresh: set[int] = set()
IDLE = 0  # psycopg's TransactionStatus.IDLE (psycopg2's TRANSACTION_STATUS_IDLE)
_detector: list[Callable[..., Any]] = []  # the write detector, which calls began() and ran()


def seen_by(detector: Callable[..., Any]) -> None:
    _detector[:] = [detector]


def began(connection: Any, sql: str) -> None:
    """SQLite's BEGIN ran. A deferred one (Django's default) has taken no lock and no
    snapshot yet; IMMEDIATE and EXCLUSIVE take the write lock at once, after which no
    other connection can commit, so a read first changes nothing."""
    words = sql.upper().split()
    if "IMMEDIATE" not in words and "EXCLUSIVE" not in words:
        _fresh.add(id(connection))


def ran(connection: Any) -> None:
    """A statement ran on the connection (called only while some connection is fresh)."""
    _fresh.discard(id(connection))


def pending() -> bool:
    """Is any connection's BEGIN waiting for its first statement? (The write detector
    asks on every query: one truth test while none is.)"""
    return bool(_fresh)


def first_statement(connection: Any) -> bool:
    """Would a query on this connection now be the first of the host's transaction?"""
    if connection.connection is None or connection.get_autocommit():
        return False  # no transaction: a read is a statement of its own
    vendor = connection.vendor
    if vendor == "sqlite":
        # Outside atomic() (set_autocommit(False)), Python's sqlite3 begins only before
        # a write: a read then begins nothing, and no BEGIN was seen.
        return id(connection) in _fresh or not _watched(connection)
    if vendor == "postgresql":
        info = getattr(connection.connection, "info", None)
        status = getattr(info, "transaction_status", None)
        return status is None or int(status) == IDLE
    return True  # cannot tell


def _watched(connection: Any) -> bool:
    """Is the write detector on this connection (so its BEGIN was seen)?"""
    wrappers = getattr(connection, "execute_wrappers", None)  # behind writes.py's seam
    return isinstance(wrappers, list) and any(w is d for w in wrappers for d in _detector)
