"""A request's events as a tree and a waterfall, read back from the history.

Each stored event names the dispatch it was sent (or written) from (`cause`, a
capture number of its process) and which receiver of it was running
(`cause_receiver`); each receiver carries its time and its own SQL. The tree
is the events in the order they began (capture numbers grow as sends begin;
the history stores them as they end, children first), each followed by its
receivers and, under each receiver, what it set off. The waterfall places each
line in time: an event from its start for as long as its whole send took, a
receiver after those of its dispatch that ran before it, against the request's
start and end (`request_finished` carries its duration).
"""

from dataclasses import dataclass, field
from typing import Any

from dashboard.models import StoredEvent

MIN_WIDTH = 0.4  # % of the track: an instant still shows


@dataclass
class Line:
    """One line of the tree: an event, or one receiver of an event's dispatch."""

    depth: int
    event: StoredEvent  # the event, or the one whose receiver this is
    receiver: dict[str, Any] | None = None
    start: float = 0.0  # seconds since the epoch
    ms: float | None = None
    queries: int = 0
    sql_ms: float = 0.0
    at: float = 0.0  # % of the track
    width: float = MIN_WIDTH
    children: list["Line"] = field(default_factory=list)

    @property
    def is_receiver(self) -> bool:
        return self.receiver is not None

    @property
    def bar(self) -> str:
        """The bar's place, as CSS custom properties (numbers only: nothing to escape)."""
        return f"--at: {self.at:.2f}%; --w: {self.width:.2f}%"


def begun_order(events: list[StoredEvent]) -> list[StoredEvent]:
    """Events in the order their sends began (the history holds them as they ended: a
    receiver's save before the dispatch it ran in). Capture numbers grow as sends begin
    in a process; across processes, their times say."""
    if len({e.process for e in events}) > 1:
        return sorted(events, key=lambda e: (e.time, e.process, e.detail.get("cid") or 0))
    return sorted(events, key=lambda e: (e.detail.get("cid") or 0, e.pk or 0))


def _start(event: StoredEvent) -> float:
    return event.time.timestamp()


def _own_sql(event: StoredEvent) -> tuple[int, float]:
    receivers = event.detail.get("receivers") or []
    return (
        sum(r.get("queries", 0) for r in receivers),
        round(sum(r.get("sql_ms", 0.0) for r in receivers), 3),
    )


def tree(events: list[StoredEvent], receivers_shown: Any = None) -> list[Line]:
    """The events as lines, depth first, in the order they began. `receivers_shown`
    (a predicate on a receiver's info) picks the receivers given lines of their own
    (default: all); a receiver that set something off always has one."""
    by_cid: dict[tuple[str, int], StoredEvent] = {}
    for e in events:
        if (cid := e.detail.get("cid")) is not None:
            by_cid[(e.process, cid)] = e
    children: dict[tuple[str, int], list[StoredEvent]] = {}
    roots = []
    for e in sorted(events, key=lambda e: (_start(e), e.detail.get("cid") or 0)):
        cause = e.detail.get("cause")
        if cause is not None and (e.process, cause) in by_cid:
            children.setdefault((e.process, cause), []).append(e)
        else:
            roots.append(e)
    lines: list[Line] = []

    def add(e: StoredEvent, depth: int) -> None:
        queries, sql_ms = _own_sql(e)
        line = Line(depth, e, start=_start(e), ms=e.detail.get("ms"), queries=queries,
                    sql_ms=sql_ms)  # fmt: skip
        lines.append(line)
        kids = children.get((e.process, e.detail.get("cid")), [])
        offset = line.start
        for i, info in enumerate(e.detail.get("receivers") or []):
            mine = [k for k in kids if k.detail.get("cause_receiver") == i]
            if mine or receivers_shown is None or receivers_shown(info):
                lines.append(Line(depth + 1, e, receiver=info, start=offset, ms=info.get("ms"),
                                  queries=info.get("queries", 0),
                                  sql_ms=info.get("sql_ms", 0.0)))  # fmt: skip
            for k in mine:
                add(k, depth + 2)
            offset += (info.get("ms") or 0) / 1000
        numbered = len(e.detail.get("receivers") or [])
        for k in kids:  # sent while none of its receivers was timed
            if not (isinstance(r := k.detail.get("cause_receiver"), int) and r < numbered):
                add(k, depth + 1)

    for e in roots:
        add(e, 0)
    return lines


def place(lines: list[Line], begin: float | None = None, end: float | None = None) -> float:
    """Give each line its place on the track between `begin` and `end` (seconds since
    the epoch; by default, the first start and the last end); the span in ms."""
    if not lines:
        return 0.0
    begin = min(line.start for line in lines) if begin is None else begin
    last = max(line.start + (line.ms or 0) / 1000 for line in lines)
    end = max(last, end or last)
    span = max(end - begin, 1e-6)
    for line in lines:
        line.at = min(max((line.start - begin) / span * 100, 0.0), 100.0 - MIN_WIDTH)
        line.width = min(max((line.ms or 0) / 1000 / span * 100, MIN_WIDTH), 100.0 - line.at)
    return round(span * 1000, 3)


def request_bounds(trace: list[StoredEvent]) -> tuple[float | None, float | None]:
    """The request's start and end (seconds since the epoch), from its request_finished:
    sent as the response ends, carrying how long the request took until then."""
    finished = next((e for e in trace if e.signal == "request_finished"), None)
    if finished is None or not isinstance(ms := finished.payload.get("duration_ms"), int | float):
        return None, None
    end = _start(finished) + (finished.detail.get("ms") or 0) / 1000
    return _start(finished) - ms / 1000, end


def subtree(root: StoredEvent, events: Any = None, limit: int = 200) -> list[StoredEvent]:
    """The event and everything sent from its receivers, down every level (its process),
    among `events` (a queryset: those the viewer may see; by default all)."""
    found, frontier = [root], [root.detail.get("cid")]
    events = StoredEvent.objects.all() if events is None else events
    same_process = events.filter(process=root.process)
    while frontier and len(found) < limit:
        frontier = [c for c in frontier if c is not None]
        if not frontier:
            break
        level = list(same_process.filter(detail__cause__in=frontier).order_by("id")[:limit])
        found.extend(level)
        frontier = [e.detail.get("cid") for e in level]
    return found
