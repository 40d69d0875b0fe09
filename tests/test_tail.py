"""The tail's looks at the history (live/tail.py): what each reads, and from where."""

import asyncio
import datetime
import json
import re

import pytest
from django.db import connections, router
from django.test.utils import CaptureQueriesContext

from dashboard.core import keys
from dashboard.core.rows import Row
from dashboard.history import reads
from dashboard.live import consumer
from dashboard.live import tail as tail_module
from dashboard.live.fanout import fanout
from dashboard.live.tail import Tail
from dashboard.models import StoredEvent
from tests.frames import collect, parse, rows
from tests.helpers import communicator, in_thread, settle

# Committed as it goes: an open test transaction holds SQLite's write lock on the
# history, and the sidecar storing this process's own events waited on it until the
# teardown gave up on it (10 s).
pytestmark = pytest.mark.django_db(transaction=True)

# This process's rows in these tests: seqs its own pipeline will not reach meanwhile.
OWN_SEQS = 10**9
# Within HISTORY_MAX_AGE: an older row may be pruned by any write meanwhile (history/store.py).
MOMENT = datetime.datetime.now(datetime.UTC).replace(microsecond=0)


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
        start = OWN_SEQS + StoredEvent.objects.count()
        store(keys.process(), range(start, start + 100))
        rows, scanned = rows_scanned(tail)
        assert rows == []
        # The 100 rows stored since the last look, not the 800 since the page opened.
        assert scanned == 100


def test_another_process_s_rows_reach_the_page_once():
    tail = Tail()
    tail.read()
    store("shell-1", range(1, 4))
    assert [r.seq for r in look(tail)] == [1, 2, 3]
    store(keys.process(), range(OWN_SEQS, OWN_SEQS + 50))
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


def test_a_look_s_last_frame_carries_the_id_it_covered():
    relayed = [OWN_SEQS + 10]  # this process's frames handed to its sockets, up to this seq
    tail = Tail(lambda: relayed[0])
    tail.read()
    store("shell-1", range(1, 3))
    store(keys.process(), range(OWN_SEQS + 1, OWN_SEQS + 4))
    store("shell-2", range(1, 3))
    newest = StoredEvent.objects.order_by("-id").first().id
    first, last = (parse(m["html"]) for m in tail.frames(tail.read()))
    assert (first.history_id, last.history_id) == (None, newest)

    # A row of this process whose frame is still on its way here: covered up to below it.
    store("shell-1", range(3, 5))
    store(keys.process(), range(OWN_SEQS + 11, OWN_SEQS + 13))
    store("shell-2", range(3, 5))
    unrelayed = StoredEvent.objects.get(process=keys.process(), seq=OWN_SEQS + 11).id
    assert parse(tail.frames(tail.read())[-1]["html"]).history_id == unrelayed - 1
    relayed[0] = OWN_SEQS + 12
    store("shell-3", range(1, 2))
    assert parse(tail.frames(tail.read())[-1]["html"]).history_id == newest + 7


def test_a_look_s_frames_come_in_the_order_stored_and_feed_the_chart():
    tail = Tail()
    tail.read()
    store("shell-b", range(1, 3))
    store("shell-a", range(1, 4))
    messages = tail.frames(tail.read())
    assert [m["process"] for m in messages] == ["shell-b", "shell-a"]  # the newest on top
    rates = [json.loads(re.search(r'data-rates="([^"]*)"', m["html"])[1].replace("&quot;", '"'))
             for m in messages]  # fmt: skip
    stamp = int(MOMENT.timestamp())
    assert rates == [[[stamp, "model", 2]], [[stamp, "model", 3]]]  # the chart's per second


async def test_a_page_that_saw_more_processes_than_it_sends_back_resumes_without_repeats(
    staff_client,
):
    """The page sends back its newest 64 processes' seqs. Other processes' rows came through
    the tail without a history id, so the page's `after` stayed where it opened, and on a
    reconnect the backfill sent again every row of the processes beyond those 64."""
    await in_thread(settle)
    comm = communicator(staff_client)
    assert (await comm.connect())[0]
    await comm.send_to(text_data=json.dumps({"type": "resume", "after": 0}))
    page = await collect(comm, quiet_for=0.3)  # the backfill; the tail has looked since
    for n in range(70):
        await in_thread(store, f"shell-{n:02}", range(1, 3))
    page += await collect(comm, quiet_for=3 * tail_module.TAIL_EVERY)
    seen: dict[str, int] = {}  # as the page keeps it: in the order processes came
    for row in rows(page):
        process, seq = row.key.rsplit(".", 1)
        seen[process] = max(int(seq), seen.get(process, 0))
    assert sum(p.startswith("shell-") for p in seen) == 70
    after = max(f.history_id for f in page if f.history_id is not None)
    await comm.disconnect()

    comm = communicator(staff_client)
    assert (await comm.connect())[0]
    newest_64 = dict(list(seen.items())[-64:])  # dashboard.js newestSeen()
    await comm.send_to(text_data=json.dumps({"type": "resume", "after": after, "seen": newest_64}))
    again = [r.key for r in rows(await collect(comm, quiet_for=0.3))]
    assert [k for k in again if k.startswith("shell-")] == []
    await comm.disconnect()


async def test_the_tail_keeps_one_database_connection_from_look_to_look(
    staff_client, monkeypatch
):
    """Under CONN_MAX_AGE = 0 each look connected anew (4 ms on PostgreSQL, four a second)."""
    monkeypatch.setattr(tail_module, "TAIL_EVERY", 0.01)
    alias = router.db_for_read(StoredEvent)
    looks: list[bool] = []  # per look: did it find its thread's connection closed?
    read = Tail.read

    def looking(self):
        looks.append(connections[alias].connection is None)
        return read(self)

    monkeypatch.setattr(Tail, "read", looking)
    comm = communicator(staff_client)
    assert (await comm.connect())[0]
    await comm.send_to(text_data=json.dumps({"type": "resume", "after": 0}))
    await collect(comm, quiet_for=0.3)
    for n in range(3):  # with rows of another process to read now and then
        await in_thread(store, "shell-7", range(2 * n + 1, 2 * n + 3))
        got = []
        for _ in range(100):  # this server's own frames may wait for its rows (fill_gap)
            got += [r.key for r in rows(await collect(comm, quiet_for=0.1))
                    if r.key.startswith("shell-7.")]  # fmt: skip
            if len(got) >= 2:
                break
        assert got == [f"shell-7.{2 * n + 1}", f"shell-7.{2 * n + 2}"]
    await comm.disconnect()
    assert len(looks) >= 20
    assert looks.count(True) == 1  # the first look connects; the others use its connection


async def test_a_frame_spanning_what_the_page_resumed_with_still_brings_the_rest(
    staff_client, monkeypatch
):
    """A shell stores two batches around a page's open: the page's backfill has the first,
    and the tail's next look reads both as one frame. The page holds the first already;
    the second must still reach it (it once dropped the whole frame)."""
    monkeypatch.setattr(tail_module, "TAIL_EVERY", 3600)  # this test's frame, not the tail's
    after = await in_thread(reads.last_id)
    await in_thread(settle)
    await in_thread(store, "shell-9", range(1, 3))
    comm = communicator(staff_client)
    assert (await comm.connect())[0]
    await comm.send_to(text_data=json.dumps({"type": "resume", "after": after}))
    backfilled = rows(await collect(comm, quiet_for=0.15))
    shell = sorted(r.key for r in backfilled if r.key.startswith("shell-9."))
    assert shell == ["shell-9.1", "shell-9.2"]

    await in_thread(store, "shell-9", range(3, 5))
    stored = await in_thread(lambda: [Row.from_stored(e) for e in
                                      StoredEvent.objects.filter(process="shell-9")])  # fmt: skip
    [message] = Tail().frames(stored)
    assert (message["first_seq"], message["last_seq"]) == (1, 4)
    await fanout.deliver(message)
    got = rows(await collect(comm, quiet_for=0.15))
    assert sorted(r.key for r in got) == ["shell-9.3", "shell-9.4"]
    await comm.disconnect()


def unstored_frame(process: str, seqs: range) -> dict:
    """A frame of events that were never stored (the history unwritable meanwhile)."""
    events = [StoredEvent(id=seq, time=MOMENT, signal="post_save", family="model",
                          sender="blog.Post", summary="s", process=process, seq=seq,
                          search_text="") for seq in seqs]  # fmt: skip
    [message] = Tail().frames([Row.from_stored(e) for e in events])
    return message


async def test_a_gap_the_history_never_fills_does_not_freeze_the_page(
    staff_client, monkeypatch
):
    """A frame after events the page never got waits for them to be stored (a second a
    read, GAP_TRIES reads). They never were: the frame found the same gap again, waited
    again, and held every later frame for as long as the page stayed open."""
    monkeypatch.setattr(consumer, "GAP_TRIES", 2)
    comm = communicator(staff_client)
    assert (await comm.connect())[0]
    await comm.send_to(text_data=json.dumps({"type": "resume", "after": 0}))
    await collect(comm, quiet_for=0.3)
    await fanout.deliver(unstored_frame("lost-1", range(1, 3)))
    await fanout.deliver(unstored_frame("lost-1", range(5, 7)))  # 3 and 4 never stored
    await fanout.deliver(unstored_frame("later-1", range(1, 2)))
    got = []
    for _ in range(40):
        got += [r.key for r in rows(await collect(comm, quiet_for=0.1))
                if r.key.startswith(("lost-1.", "later-1."))]  # fmt: skip
        if len(got) >= 5:
            break
    assert got == ["lost-1.1", "lost-1.2", "lost-1.5", "lost-1.6", "later-1.1"]
    await comm.disconnect()


async def test_a_gap_stored_late_still_reaches_the_page(staff_client):
    """Its events stored two seconds late (a busy history): the frame waits for them."""
    comm = communicator(staff_client)
    assert (await comm.connect())[0]
    await comm.send_to(text_data=json.dumps({"type": "resume", "after": 0}))
    await collect(comm, quiet_for=0.3)
    await in_thread(store, "slow-1", range(1, 3))
    await fanout.deliver(unstored_frame("slow-1", range(1, 3)))
    await fanout.deliver(unstored_frame("slow-1", range(5, 7)))  # 3 and 4 stored late
    await asyncio.sleep(2)
    await in_thread(store, "slow-1", range(3, 5))
    got = []
    for _ in range(40):
        got += [r.key for r in rows(await collect(comm, quiet_for=0.1))
                if r.key.startswith("slow-1.")]  # fmt: skip
        if len(got) >= 6:
            break
    assert got == [f"slow-1.{n}" for n in range(1, 7)]
    await comm.disconnect()
