"""Tell the truth about transactions: mark events whose transaction rolled back.

Django drops pending `on_commit` callbacks when their transaction or savepoint
rolls back, and runs them when it commits. One small callback object per
(connection, savepoint level) is registered with on_commit and referenced
nowhere else, so CPython frees it the moment Django drops it: a finalizer that
finds it never ran knows the transaction rolled back, right then.
"""

import weakref
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from dashboard.core.events import Event, RolledBack
from dashboard.live.handoff import handoff
from dashboard.seams import seam

SEAM = seam(
    "dashboard.W002",
    "django.db.backends.base.base.BaseDatabaseWrapper.savepoint_ids",
    "events are not marked when their transaction rolls back",
)


class _Outcome:
    __slots__ = ("__weakref__", "state")

    def __init__(self, state: list[Any]) -> None:
        self.state = state  # [committed: bool, events: list[Event]]

    def __call__(self) -> None:  # on commit
        self.state[0] = True


def _settle(state: list[Any]) -> None:
    committed, events = state
    if not committed:
        for event in events:
            event.rolled_back = True  # if the publisher has not described it yet
            handoff.publish(RolledBack(event))  # if it has: mark what was sent


Outcome = weakref.ref["_Outcome"]


def track(event: Event, using: str | None) -> Outcome | None:
    """If `using`'s connection is inside a transaction, watch how it ends; the outcome the
    event joined, for another event of the same save to `join()`."""
    connection = connections[using or DEFAULT_DB_ALIAS]
    if not connection.in_atomic_block or not SEAM.ok:
        return None
    # Per connection: savepoint ids → a weak reference to that level's outcome.
    outcomes = connection.__dict__.get("_dashboard_outcomes")
    if outcomes is None:
        outcomes = connection.__dict__["_dashboard_outcomes"] = {}
    try:
        key = tuple(connection.savepoint_ids)
    except (AttributeError, TypeError) as exc:
        SEAM.fail(f"{type(exc).__name__}: {exc}")
        return None
    ref = outcomes.get(key)
    outcome = ref() if ref is not None else None
    if outcome is None:
        outcome, ref = _watch(outcomes, key, connection.alias)
    outcome.state[1].append(event)
    return ref


def join(event: Event, ref: Outcome) -> bool:
    """Watch the event with the outcome `track()` returned for another, if its transaction
    (or savepoint) has not ended since: False, and nothing done, if it has."""
    outcome = ref()
    if outcome is None:
        return False
    outcome.state[1].append(event)
    return True


def _watch(
    outcomes: dict[tuple[str, ...], Any], key: tuple[str, ...], alias: str
) -> tuple[_Outcome, Outcome]:
    state: list[Any] = [False, []]
    outcome = _Outcome(state)
    weakref.finalize(outcome, _settle, state).atexit = False

    def forget(ref: weakref.ref[_Outcome]) -> None:
        if outcomes.get(key) is ref:
            del outcomes[key]

    outcomes[key] = ref = weakref.ref(outcome, forget)
    transaction.on_commit(outcome, using=alias)
    return outcome, ref


def probe() -> str | None:
    """At start-up: do connections still keep their savepoint ids as a list?"""
    ids = getattr(connections[DEFAULT_DB_ALIAS], "savepoint_ids", None)
    if not isinstance(ids, list):
        return f"a connection's savepoint_ids is {type(ids).__name__}, not a list"
    return None
