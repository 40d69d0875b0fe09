"""Reading the history: the newest rows, counts, and what a resuming page missed."""

from typing import Any

from django.db.models import Count, Max, QuerySet

from dashboard.core.filters import EventFilter
from dashboard.core.rows import Row
from dashboard.models import StoredEvent


def last_id(alias: str | None = None) -> int:
    events = StoredEvent.objects.using(alias) if alias else StoredEvent.objects
    return events.order_by("-id").values_list("id", flat=True).first() or 0


def counts(events: QuerySet) -> dict[str, int]:
    return dict(events.order_by().values_list("signal").annotate(n=Count("id")))


def latest_of(events: QuerySet, limit: int) -> list[Row]:
    return [Row.from_stored(o) for o in events.order_by("-id")[:limit]]


def backfill(
    after: int, flt: EventFilter, seen: dict[str, int], limit: int
) -> tuple[list[Row], dict[str, int], int, dict[str, int]]:
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
    highest: dict[str, Any] = dict(
        missed.order_by().values_list("process").annotate(m=Max("seq")).values_list("process", "m")
    )
    return latest_of(flt.apply(missed), limit), counts(missed), newest, highest
