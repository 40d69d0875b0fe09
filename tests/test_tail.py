"""The tail's looks at the history (live/tail.py): what each reads, and from where."""

import datetime

import pytest
from django.db import connections, router
from django.test.utils import CaptureQueriesContext

from dashboard.core import keys
from dashboard.live import tail as tail_module
from dashboard.live.tail import Tail
from dashboard.models import StoredEvent

pytestmark = pytest.mark.django_db

MOMENT = datetime.datetime(2026, 1, 2, 9, 5, 3, tzinfo=datetime.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(tail_module.time, "monotonic", clock)
    return clock


def store(process: str, seqs: range, first_id: int | None = None) -> None:
    StoredEvent.objects.bulk_create(
        StoredEvent(id=None if first_id is None else first_id + n, time=MOMENT,
                    signal="post_save", family="model", sender="blog.Post", summary="s",
                    process=process, seq=seq, search_text="")
        for n, seq in enumerate(seqs)
    )  # fmt: skip


def look(tail: Tail) -> list:
    """One look, as `Tail.run` takes it: the rows read, then handed on as frames."""
    rows = tail.read()
    tail.frames(rows)
    return rows


def rows_scanned(tail: Tail) -> tuple[list, int]:
    """A look's rows, and how many stored rows its range covers (what the database scans)."""
    with CaptureQueriesContext(connections[router.db_for_read(StoredEvent)]) as queries:
        rows = look(tail)
    [scan] = [q["sql"] for q in queries if "NOT" in q["sql"]]
    low = int(scan.split('"id" > ')[1].split()[0])
    return rows, StoredEvent.objects.filter(id__gt=low).count()


def test_a_look_scans_the_last_seconds_rows_however_long_the_page_has_been_open(clock):
    tail = Tail()
    assert tail.read() == []  # the start: from now on
    for _ in range(8):  # this process stores on and on; nobody else stores anything
        store(keys.process(), range(StoredEvent.objects.count() + 1,
                                    StoredEvent.objects.count() + 101))  # fmt: skip
        clock.now += tail_module.TAIL_EVERY
        rows, scanned = rows_scanned(tail)
        assert rows == []
    # Each look covers the rows of the last LATE seconds (four looks of 100), not the 800
    # stored since the page opened.
    assert scanned == 100 * round(tail_module.LATE / tail_module.TAIL_EVERY)


def test_another_process_s_rows_reach_the_page_once_and_a_late_commit_still_does(clock):
    tail = Tail()
    tail.read()
    store("shell-1", range(1, 4), first_id=1)
    clock.now += tail_module.TAIL_EVERY
    assert [r.seq for r in look(tail)] == [1, 2, 3]
    store(keys.process(), range(1, 51), first_id=10)
    clock.now += tail_module.TAIL_EVERY
    assert look(tail) == []  # its own rows never; the shell's not again
    # A transaction that took ids 4 and 5 before this process's 50 rows and committed
    # after them (PostgreSQL's order): within LATE, still read.
    store("shell-2", range(1, 3), first_id=4)
    clock.now += tail_module.TAIL_EVERY
    assert [(r.process, r.seq) for r in look(tail)] == [("shell-2", 1), ("shell-2", 2)]
    clock.now += tail_module.TAIL_EVERY
    assert look(tail) == []


def test_a_backlog_bigger_than_a_look_is_read_over_the_next_looks(clock, settings):
    settings.DASHBOARD = {"MAX_ROWS": 10}  # a look takes 100 rows at most
    tail = Tail()
    tail.read()
    store("shell-1", range(1, 251))
    seqs = []
    for _ in range(4):
        clock.now += tail_module.TAIL_EVERY
        seqs += [r.seq for r in look(tail)]
    assert seqs == list(range(1, 251))
