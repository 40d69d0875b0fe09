"""The stored history of events: write a batch, read it back, keep it bounded."""

import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Count, Max, Q, QuerySet

from dashboard import conf
from dashboard.events import Event
from dashboard.filters import EventFilter, search_text
from dashboard.models import StoredEvent
from dashboard.payload import to_json
from dashboard.render import display


def store(rows: list[dict[str, Any]], rolled_back: Iterable[Event] = ()) -> None:
    """Insert a sent batch, mark rolled-back events, keep the history bounded."""
    objs = [
        StoredEvent(
            time=row["time"],
            signal=row["signal"],
            family=row["family"],
            sender=row["sender"],
            summary=row["summary"],
            payload=row["payload"],
            detail=row["detail"],
            request_id=row["request_id"],
            process=row["process"],
            seq=row["seq"],
            rolled_back=row["rolled_back"],
            search_text=search_text(
                row["signal"], row["sender"], row["summary"], row["payload_json"]
            ),
        )
        for row in rows
    ]
    StoredEvent.objects.bulk_create(objs, batch_size=500)
    for process, seqs in _by_process(rolled_back).items():
        StoredEvent.objects.filter(process=process, seq__in=seqs).update(rolled_back=True)
    if objs and (last := objs[-1].pk) is not None:
        # The count cap every batch (an index range: cheap), the age about
        # once per PRUNE_EVERY events.
        _raw_delete(StoredEvent.objects.filter(id__lte=last - conf.get("HISTORY_MAX_EVENTS")))
        if last % PRUNE_EVERY < len(objs):
            prune(last_id=last)


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
