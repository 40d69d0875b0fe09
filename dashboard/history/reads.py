"""Reading the history: the newest rows, counts, and what a resuming page missed."""

import time
from datetime import timedelta
from typing import Any, NamedTuple

from django.db.models import Count, Max, Q, QuerySet
from django.db.models.functions import TruncSecond
from django.utils import timezone

from dashboard.core.filters import EventFilter
from dashboard.core.rows import Row, to_json
from dashboard.history.access import visible
from dashboard.models import StoredEvent


def last_id(alias: str | None = None) -> int:
    events = StoredEvent.objects.using(alias) if alias else StoredEvent.objects
    return events.order_by("-id").values_list("id", flat=True).first() or 0


def highest(processes: set[str]) -> dict[str, int]:
    """The newest seq stored of each of these processes (a process stores its events
    whole batches at a time, in order: every event up to it is stored)."""
    return dict(
        StoredEvent.objects.filter(process__in=processes)
        .order_by()
        .values_list("process")
        .annotate(m=Max("seq"))
        .values_list("process", "m")
    )


def counts(events: QuerySet) -> dict[str, int]:
    return dict(events.order_by().values_list("signal").annotate(n=Count("id")))


def plumbing(events: QuerySet) -> int:
    """How many of these events "my project" hides."""
    return events.filter(plumbing=True).count()


def latest_of(events: QuerySet, limit: int) -> list[Row]:
    return [Row.from_stored(o) for o in events.order_by("-id")[:limit]]


# The page's chart shows the last five minutes; the history gives it a little more.
RATE_SECONDS = 360


def rates(events: QuerySet, seconds: int = RATE_SECONDS) -> dict[tuple[int, str], int]:
    """Events per (second, family) over the last `seconds`: the chart's history."""
    since = timezone.now() - timedelta(seconds=seconds)
    found = (
        events.filter(time__gte=since)
        .order_by()
        .annotate(second=TruncSecond("time"))
        .values_list("second", "family")
        .annotate(n=Count("id"))
    )
    out: dict[tuple[int, str], int] = {}
    for second, family, n in found:
        key = (int(second.timestamp()), family)
        out[key] = out.get(key, 0) + n
    return out


def senders(events: QuerySet, limit: int = 200) -> list[str]:
    """The senders seen, most frequent first: suggestions for the sender filter."""
    found = events.order_by().values_list("sender").annotate(n=Count("id")).order_by("-n")
    return sorted(sender for sender, _ in found[:limit])


def requests_of(rows: list[Row]) -> dict[str, dict[str, Any]]:
    """Method, path, status and duration of the requests these rows belong to
    (from each request's request_finished, or its request_started), for the
    page's requests view: the rows may be filtered to leave those out."""
    ids = {r.request_id for r in rows if r.request_id}
    if not ids:
        return {}
    out: dict[str, dict[str, Any]] = {}
    found = StoredEvent.objects.filter(
        Q(signal="request_finished") | Q(signal="request_started"), request_id__in=ids
    ).values_list("request_id", "signal", "payload")
    for rid, signal, payload in found:
        info = out.setdefault(rid, {})
        if isinstance(request := payload.get("request"), dict):
            info.update(method=request.get("method", ""), path=request.get("path", ""))
        if signal == "request_finished":
            info.update(status=payload.get("status"), duration_ms=payload.get("duration_ms"))
    return out


def servers(events: QuerySet) -> list[str]:
    """Processes that served requests: their other events stay flat in the requests view."""
    return sorted(
        events.exclude(request_id="").order_by().values_list("process", flat=True).distinct()
    )


class Backfill(NamedTuple):
    rows: list[Row]  # filtered, newest first, at most the limit
    counts: dict[str, int]  # every missed event, per signal
    plumbing: int  # how many of them "my project" hides
    newest: int  # the newest history id considered
    highest: dict[str, int]  # per process, the highest seq sent
    rates: dict[tuple[int, str], int]  # recent ones per (second, family), for the chart


def backfill(
    after: int,
    flt: EventFilter,
    seen: dict[str, int],
    limit: int,
    perms: frozenset[str] | None = None,
) -> Backfill:
    """What a page missed: stored events past id `after` that it does not hold.

    `seen` maps a process to the highest seq the page holds from it (sequence
    numbers grow per process, and each process's events reach a page in order).
    Rows and counts are of what a viewer with `perms` may see (history/access.py;
    None: all); `highest` of everything, which the page need not wait for.
    """
    missed = StoredEvent.objects.filter(id__gt=after)
    for process, seq in seen.items():
        missed = missed.exclude(process=process, seq__lte=seq)
    newest = missed.aggregate(m=Max("id"))["m"] or after
    missed = missed.filter(id__lte=newest)
    highest: dict[str, Any] = dict(
        missed.order_by().values_list("process").annotate(m=Max("seq")).values_list("process", "m")
    )
    missed = visible(missed, perms)
    return Backfill(
        latest_of(flt.apply(missed), limit),
        counts(missed),
        plumbing(missed),
        newest,
        highest,
        rates(missed),
    )


def between(
    process: str,
    after_seq: int,
    before_seq: int,
    limit: int,
    wait: float = 1.0,
    perms: frozenset[str] | None = None,
) -> Backfill:
    """One process's stored events with after_seq < seq < before_seq: the gap before a
    live frame, or a frame a viewer may not see all of. Waits up to `wait` seconds for
    the event just before `before_seq` to be stored (a process stores what it sent a
    moment later). Rows and counts as `backfill`'s."""
    events = StoredEvent.objects.filter(process=process, seq__gt=after_seq, seq__lt=before_seq)
    deadline = time.monotonic() + wait
    while not events.filter(seq=before_seq - 1).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    highest = events.aggregate(m=Max("seq"))["m"]
    events = visible(events, perms)
    return Backfill(
        latest_of(events, limit),
        counts(events),
        plumbing(events),
        0,
        {process: highest} if highest else {},
        rates(events),
    )


def about_object(
    label: str, pk: str, limit: int, events: QuerySet | None = None
) -> list[StoredEvent]:
    """Every stored event about one object (`blog.Post`, pk "4"), oldest first: whichever
    argument held it (instance, post, user, ...), as its payload shows it. Of `events`
    (those a viewer may see), or all."""
    pk_json = pk if pk.lstrip("-").isdigit() else to_json(pk)
    # Then "," (an instance's "str" and fields follow) or "}" (a write's objects): pk 4
    # is not pk 41.
    fragment = f'{{"model": {to_json(label)}, "pk": {pk_json}'.lower()
    about = Q(search_text__contains=fragment + ",") | Q(search_text__contains=fragment + "}")
    events = StoredEvent.objects.all() if events is None else events
    return list(events.filter(about).order_by("-id")[:limit])[::-1]
