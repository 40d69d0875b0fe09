"""The stored history of events: write a batch, read it back, keep it bounded."""

import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections, router, transaction
from django.db.models import Count, Max, Q, QuerySet

from dashboard import conf
from dashboard.events import Event
from dashboard.filters import EventFilter, search_text
from dashboard.models import StoredEvent
from dashboard.payload import to_json
from dashboard.render import display

# The columns a sent row fills, in INSERT order (the id is the database's).
COLUMNS = (
    "time", "signal", "family", "sender", "summary", "payload", "detail",
    "request_id", "process", "seq", "rolled_back", "search_text",
)  # fmt: skip


def store(rows: list[dict[str, Any]], rolled_back: Iterable[Event] = ()) -> None:
    """Insert a sent batch, mark rolled-back events, keep the history bounded.

    One short transaction: on SQLite each takes the database's one write
    lock, and a save that finds it taken sleeps in SQLite's busy handler
    (1 ms, then longer). So the rows' parameters are built before it begins,
    never while the lock is held (a thread may wait for the GIL meanwhile)."""
    alias = router.db_for_write(StoredEvent)
    insert = _insert_statement(connections[alias], rows) if rows else None
    with transaction.atomic(using=alias):
        if insert is not None:
            with connections[alias].cursor() as cursor:
                cursor.executemany(*insert)
        for process, seqs in _by_process(rolled_back).items():
            StoredEvent.objects.filter(process=process, seq__in=seqs).update(rolled_back=True)
        if rows and (last := last_id()):
            # The count cap every batch (an index range: cheap), the age about
            # once per PRUNE_EVERY events.
            _raw_delete(StoredEvent.objects.filter(id__lte=last - conf.get("HISTORY_MAX_EVENTS")))
            if last % PRUNE_EVERY < len(rows):
                prune(last_id=last)


def _insert_statement(connection: Any, rows: list[dict[str, Any]]) -> tuple[str, list[tuple]]:
    """One executemany: bulk_create would build a model instance per row and
    serialise the payload again, in the process (one GIL) that is saving."""
    ops, meta = connection.ops, StoredEvent._meta
    columns = ", ".join(ops.quote_name(meta.get_field(c).column) for c in COLUMNS)
    sql = (
        f"INSERT INTO {ops.quote_name(meta.db_table)} ({columns}) "
        f"VALUES ({', '.join(['%s'] * len(COLUMNS))})"
    )
    adapt_time, adapt_json = ops.adapt_datetimefield_value, ops.adapt_json_value
    params = [
        (
            adapt_time(row["time"]),
            row["signal"],
            row["family"],
            row["sender"],
            row["summary"],
            row["payload_json"],  # JSON text already; both backends take it as it is
            adapt_json(row["detail"], None),
            row["request_id"],
            row["process"],
            row["seq"],
            row["rolled_back"],
            search_text(row["signal"], row["sender"], row["summary"], row["payload_json"]),
        )
        for row in rows
    ]
    return sql, params


def _by_process(events: Iterable[Event]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for event in events:
        process, seq = event.key.rsplit(".", 1)
        found.setdefault(process, []).append(int(seq))
    return found


PRUNE_EVERY = 500


def _raw_delete(events: QuerySet) -> int:
    # One DELETE statement. QuerySet.delete() would load every row to send
    # pre/post_delete for each, since the dashboard listens to those signals.
    return events._raw_delete(events.db)


def prune(last_id: int | None = None, now: float | None = None) -> int:
    """Drop events beyond HISTORY_MAX_EVENTS (by id) and older than HISTORY_MAX_AGE."""
    if last_id is None:
        last_id = StoredEvent.objects.aggregate(m=Max("id"))["m"] or 0
    cutoff = datetime.fromtimestamp(now or time.time(), UTC) - timedelta(
        seconds=conf.get("HISTORY_MAX_AGE")
    )
    old = Q(id__lte=last_id - conf.get("HISTORY_MAX_EVENTS")) | Q(time__lt=cutoff)
    return _raw_delete(StoredEvent.objects.filter(old))


def row(obj: StoredEvent) -> dict[str, Any]:
    """A stored event in the shape render.py and the templates use."""
    return {
        **display(obj.key, obj.time),
        "id": obj.pk,
        "key": obj.key,
        "time": obj.time,
        "signal": obj.signal,
        "family": obj.family,
        "sender": obj.sender,
        "summary": obj.summary,
        "payload": obj.payload,
        "payload_json": to_json(obj.payload),
        "detail": obj.detail,
        "request_id": obj.request_id,
        "rolled_back": obj.rolled_back,
    }


def counts(events: QuerySet) -> dict[str, int]:
    return dict(events.order_by().values_list("signal").annotate(n=Count("id")))


def last_id() -> int:
    return StoredEvent.objects.aggregate(m=Max("id"))["m"] or 0


def backfill(
    after: int, flt: EventFilter, seen: dict[str, int], limit: int
) -> tuple[list[dict[str, Any]], dict[str, int], int, dict[str, int]]:
    """What a page missed: stored events past id `after` that it does not hold.

    `seen` maps a process to the highest seq the page holds from it (sequence
    numbers grow per process, and each process's events reach a page in order).
    Returns the rows (filtered, newest first, at most `limit`), counts of every
    missed event, the newest id considered, and per process the highest seq sent.
    """
    missed = StoredEvent.objects.filter(id__gt=after)
    for process, seq in seen.items():
        missed = missed.exclude(process=process, seq__lte=seq)
    newest = missed.aggregate(m=Max("id"))["m"] or after
    missed = missed.filter(id__lte=newest)
    highest = dict(
        missed.order_by().values_list("process").annotate(m=Max("seq")).values_list("process", "m")
    )
    return latest_of(flt.apply(missed), limit), counts(missed), newest, highest


def latest_of(events: QuerySet, limit: int) -> list[dict[str, Any]]:
    return [row(o) for o in events.order_by("-id")[:limit]]
