"""The stored row an update's diff compares with: read before its save, shown at its post_save.

The row is read when `pre_save` is sent (before its receivers run: what was
stored before this save began) and kept once that send is over, so a save of
the same instance made by one of its receivers keeps and takes its own row
first (capture/record.py calls `begin()` and `end()` around every `pre_save`
send, recorded or not, and `take()` at `post_save`). Kept beside the instance,
never on it: the host's object carries nothing of ours, during its save or
after one that raised.
"""

import logging
import weakref
from contextvars import ContextVar
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model

from dashboard.capture import begun, stored, timing
from dashboard.capture.snapshot import PLAIN_TYPES, snapshot

logger = logging.getLogger("dashboard")

Row = dict[str, Any]

# The pre_save sends under way in this context, innermost last: (instance, row read), or
# None for one that read nothing. From the first that reads: a send outside any that read
# pushes nothing, and its end() finds nothing to pop (a create's pre_save, most sends).
_reading: ContextVar[tuple[tuple[Model, Row] | None, ...]] = ContextVar(
    "dashboard_diff_reads", default=()
)
# Rows kept by the instance's id until its post_save. The weak reference tells a reused id
# apart and drops the entry when the instance goes (a save that raised between the two
# signals sends no post_save).
_kept: dict[int, tuple["weakref.ref[Model]", Row]] = {}


def stored_row(instance: Model, using: str | None) -> Row | None:
    """The row as stored before an update (one query), or None for an insert."""
    if instance._state.adding or instance.pk is None:
        return None
    connection = connections[using or DEFAULT_DB_ALIAS]
    if connection.needs_rollback:  # a query now would fail the sender's transaction
        return None
    if begun.first_statement(connection):
        return None  # it would begin the sender's transaction: capture/begun.py
    token = timing.counting.set(None)  # ours: not the running receiver's SQL
    try:
        row = stored.read(type(instance), instance.pk, connection)
    finally:
        timing.counting.reset(token)
    if row is None or PLAIN_TYPES.issuperset(map(type, row.values())):
        return row
    # A field's value of a type of the host's (money, a phone number): kept as the saved
    # instance's is (its text), so that no method of it runs later, when the event is
    # pickled or the two are compared (capture/snapshot.py).
    return {k: v if type(v) in PLAIN_TYPES else snapshot(v, 1, True) for k, v in row.items()}


def begin(instance: Any, using: str | None, read: bool) -> None:
    """A pre_save send starts: read the row if `read` (the diff would show). Never
    raises. Each begin() is matched by the end() of the same send: it pushes whenever a
    send under way pushed (its end() pops then), and when it reads."""
    reading = _reading.get()
    if reading:
        _reading.set((*reading, None))
    # issubclass(type()), not isinstance(): a pre_save sent by hand may carry anything, a
    # lazy object too, which isinstance() would evaluate.
    if not issubclass(type(instance), Model):
        return
    # A row an earlier save of it kept and never took (it raised before its post_save)
    # is not this save's.
    _kept.pop(id(instance), None)
    if not read:
        return
    try:
        row = stored_row(instance, using)
    except Exception:  # no diff for this update; the save goes on as without us
        logger.exception("dashboard: could not read the stored row for an update's diff")
        return
    _reading.set((*reading, None if row is None else (instance, row)))


def end() -> None:
    """The pre_save send is over (its receivers ran): keep what it read for its post_save."""
    reading = _reading.get()
    if not reading:  # none under way has pushed
        return
    _reading.set(reading[:-1])
    if (entry := reading[-1]) is not None:
        _keep(*entry)


def _keep(instance: Model, row: Row) -> None:
    key = id(instance)

    def gone(ref: "weakref.ref[Model]") -> None:
        entry = _kept.get(key)
        if entry is not None and entry[0] is ref:
            _kept.pop(key, None)

    _kept[key] = (weakref.ref(instance, gone), row)  # every Model takes a weak reference


def take(instance: Any) -> Row | None:
    """The row kept for this instance's save, at its post_save (once)."""
    entry = _kept.pop(id(instance), None)
    return entry[1] if entry is not None and entry[0]() is instance else None
