"""The tail's looks at the history (live/tail.py): what each reads, and from where."""

import datetime

import pytest
from django.db import connections, router
from django.test.utils import CaptureQueriesContext

from dashboard.core import keys
from dashboard.live.tail import Tail
from dashboard.models import StoredEvent

pytestmark = pytest.mark.django_db

MOMENT = datetime.datetime(2026, 1, 2, 9, 5, 3, tzinfo=datetime.UTC)


def store(process: str, seqs: range) -> None:
    StoredEvent.objects.bulk_create(
        StoredEvent(time=MOMENT, signal="post_save", family="model", sender="blog.Post",
                    summary="s", process=process, seq=seq, search_text="")
        for seq in seqs
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


def test_a_look_scans_only_what_was_stored_since_the_last_however_long_the_page_is_open():
    tail = Tail()
    assert tail.read() == []  # the start: from now on
    for _ in range(8):  # this process stores on and on; nobody else stores anything
        store(keys.process(), range(StoredEvent.objects.count() + 1,
                                    StoredEvent.objects.count() + 101))  # fmt: skip
        rows, scanned = rows_scanned(tail)
        assert rows == []
        # The 100 rows stored since the last look, not the 800 since the page opened.
        assert scanned == 100


def test_another_process_s_rows_reach_the_page_once():
    tail = Tail()
    tail.read()
    store("shell-1", range(1, 4))
    assert [r.seq for r in look(tail)] == [1, 2, 3]
    store(keys.process(), range(1, 51))
    store("shell-2", range(1, 3))
    assert [(r.process, r.seq) for r in look(tail)] == [("shell-2", 1), ("shell-2", 2)]
    assert look(tail) == []  # its own rows never; nobody's twice


def test_a_backlog_bigger_than_a_look_is_read_over_the_next_looks(settings):
    settings.DASHBOARD = {"MAX_ROWS": 10}  # a look takes 100 rows at most
    tail = Tail()
    tail.read()
    store("shell-1", range(1, 251))
    seqs = []
    for _ in range(4):
        seqs += [r.seq for r in look(tail)]
    assert seqs == list(range(1, 251))
