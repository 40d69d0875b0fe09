"""The sidecar: events are described, rendered and stored in a process of their own.

The capturing process only captures and pickles (dashboard/sidecar/). These
tests use the real sidecar the suite's pipeline runs on.
"""

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connections, router
from django.test import override_settings

from blog.models import Post
from dashboard.core import payload
from dashboard.live.handoff import HAND_ON_EVENTS, handoff
from dashboard.models import StoredEvent
from dashboard.sidecar.link import link, sidecar_config
from tests.helpers import sent, settle, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def stored_titles(signal_name: str = "post_save") -> list[str]:
    return [
        payload["instance"]["str"]
        for payload in StoredEvent.objects.filter(signal=signal_name)
        .order_by("seq")
        .values_list("payload", flat=True)
    ]


def never(*args, **kwargs):
    raise AssertionError("described in the capturing process")


def test_events_are_described_and_stored_by_another_process(monkeypatch):
    # Where the pipeline describes events in this process (live/frames.py, the writer).
    monkeypatch.setattr(payload, "describe_event", never)
    Post.objects.create(title="Described elsewhere")
    settle()
    assert link.proc is not None and link.proc.pid != os.getpid()
    assert stored_titles() == ["Described elsewhere"]
    assert link.stored_seq == link.kept_seq > 0


def test_an_open_transaction_holds_no_snapshot_of_what_crossed():
    """Events stay referenced until their transaction ends (to be marked if it rolls
    back): once they crossed to the sidecar, their snapshots must not stay with them,
    or a long transaction (a data migration) holds every row it ever saved."""
    from django.db import transaction

    with transaction.atomic():
        for n in range(3):
            Post.objects.create(title=f"Held {n}")
        handoff.flush()  # the batch crosses; the transaction is still open
        held = [
            event
            for ref in connections["default"].__dict__["_dashboard_outcomes"].values()
            for event in ref().state[1]
        ]
        assert len(held) == 6  # pre_save and post_save of each
        assert all(event.seq and not event.raw and event.timings == [] for event in held)
    settle()
    assert stored_titles() == ["Held 0", "Held 1", "Held 2"]


def test_a_value_that_will_not_pickle_costs_nothing_but_is_described_here():
    """A host's own attribute on an instance (here a lambda) cannot cross: that event
    is described in this process and crosses as its row; the rest of the batch too."""
    Post.objects.create(title="Before")
    odd = Post(title="Odd one")
    odd.callback = lambda: None  # a public attribute: a field of the snapshot
    odd.save()
    Post.objects.create(title="After")
    settle()
    assert stored_titles() == ["Before", "Odd one", "After"]
    odd_rows = StoredEvent.objects.filter(signal="post_save", summary__contains="Odd")
    (payload,) = odd_rows.values_list("payload", flat=True)
    assert payload["instance"]["fields"]["callback"].startswith("<function")


def policies(pid: int | str) -> set[int]:
    """The scheduling policies of a process's threads (one that ended meanwhile aside)."""
    found = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            found.add(os.sched_getscheduler(int(tid)))
    return found


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="no SCHED_BATCH here")
def test_the_sidecar_never_preempts_the_host_when_a_batch_wakes_it():
    """Every thread of the sidecar runs as SCHED_BATCH: woken by a batch it waits for a
    free core instead of taking the one of the host's thread that wrote it (which holds
    the host's GIL meanwhile). The host's own threads keep their policy."""
    Post.objects.create(title="Wakes it")
    settle()
    assert link.proc is not None
    assert len(os.listdir(f"/proc/{link.proc.pid}/task")) > 1  # threads started after it
    assert policies(link.proc.pid) == {os.SCHED_BATCH}
    assert policies("self") == {os.SCHED_OTHER}


def test_a_killed_sidecar_costs_what_it_held_counted_and_a_new_one_takes_over():
    Post.objects.create(title="Stored by the first")
    settle()
    first = link.proc
    assert first is not None
    os.kill(first.pid, signal.SIGSTOP)  # it holds the next events unstored...
    try:
        Post.objects.create(title="Held when it died")
        wait_for(lambda: handoff.drained and link.sent > link.acked, what="the batch to reach it")
    finally:
        os.kill(first.pid, signal.SIGKILL)  # ...and dies with them
    wait_for(lambda: link.proc is not first, what="the link to see the sidecar gone")
    assert link.lost == 2  # pre_save and post_save, counted, not silently gone
    Post.objects.create(title="Stored by the second")
    settle()
    assert link.proc is not None and link.proc.pid != first.pid
    assert stored_titles() == ["Stored by the first", "Stored by the second"]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_meant_for_the_parent_leaves_the_sidecar_storing(stop):
    """Ctrl-C (the terminal's whole foreground group), systemd's stop (the service's whole
    control group), a closed terminal: the sidecar got them too and went down with what it
    held. It must go on, and end only when its parent's messages end. (Started here with
    each signal at its default: a shell's background job hands its children SIGINT
    ignored, which would make this pass whatever the sidecar does.)"""
    from dashboard.sidecar import wire

    def defaults() -> None:
        for each in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(each, signal.SIG_DFL)

    def flushed(token: int) -> tuple:
        sidecar.stdin.write(wire.encode(("flush", token)))
        sidecar.stdin.flush()
        while (answer := wire.read(sidecar.stdout)) is not None and answer[0] != "flushed":
            pass  # what it reports meanwhile
        return answer

    sidecar = subprocess.Popen(
        [sys.executable, "-m", "dashboard.sidecar"], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, preexec_fn=defaults, env={**os.environ, "PYTHONPATH": os.getcwd()},
    )  # fmt: skip
    try:
        sidecar.stdin.write(wire.encode(("config", sidecar_config())))
        assert flushed(1) == ("flushed", 1)  # set up and answering
        sidecar.send_signal(stop)
        assert flushed(2) == ("flushed", 2)  # still there, still answering
        sidecar.stdin.close()  # its parent's messages end: now it ends
        assert sidecar.wait(10) == 0
    finally:
        if sidecar.poll() is None:
            sidecar.kill()
            sidecar.wait()


def test_without_the_sidecar_the_pipeline_stays_in_this_process(in_process):
    before = link.sent
    Post.objects.create(title="In process")
    settle()
    assert link.sent == before
    assert stored_titles() == ["In process"]


def test_the_sidecar_follows_a_change_of_database(tmp_path):
    """The history's database renamed under a running sidecar (as a test database is,
    once created): its events go to the new one, never the old (a real database, in
    the test's case)."""
    Post.objects.create(title="Into the first")
    settle()
    alias = router.db_for_write(StoredEvent)
    first = settings.DATABASES[alias]["NAME"]
    second = str(tmp_path / "second.sqlite3")
    with sqlite3.connect(first) as source, sqlite3.connect(second) as target:
        source.backup(target)
    connections[alias].close()
    settings.DATABASES[alias]["NAME"] = second  # the connections' own entry, too
    try:
        Post.objects.create(title="Into the second")
        settle()
        here = stored_titles()
    finally:
        connections[alias].close()
        settings.DATABASES[alias]["NAME"] = first
    assert here == ["Into the first", "Into the second"]
    assert stored_titles() == ["Into the first"]


def test_a_batch_is_written_by_the_pump_itself_when_nothing_waits_before_it(monkeypatch):
    """Handing each batch to the writer thread cost a wake-up and a GIL hand-off, up to
    5 ms beside a saving thread: what the socket takes now is sent at once."""
    from dashboard.live import sends

    Post.objects.create(title="Starts it")
    settle()
    direct: list[int] = []
    send = sends.send

    def noting(sock, data: bytes) -> int:
        taken = send(sock, data)
        direct.append(len(data) - taken)  # what was left for the writer thread
        return taken

    monkeypatch.setattr(sends, "send", noting)
    Post.objects.create(title="Sent at once")
    settle()
    assert direct and direct[0] == 0
    assert stored_titles() == ["Starts it", "Sent at once"]


def test_what_the_socket_does_not_take_follows_in_order(monkeypatch):
    """A socket that takes a few bytes at a time: the writer thread sends the rest of
    each batch, and later batches wait behind it, so nothing arrives out of order."""
    from dashboard.live import sends

    Post.objects.create(title="Starts it")
    settle()
    send = sends.send
    monkeypatch.setattr(sends, "send", lambda sock, data: send(sock, data[:7]))
    for n in range(20):
        Post.objects.create(title=f"In order {n}")
        if n % 5 == 0:
            handoff.flush()  # several batches, some while the writer still has one
    settle()
    assert stored_titles() == ["Starts it"] + [f"In order {n}" for n in range(20)]


def test_nothing_is_sent_ahead_of_what_the_writer_thread_still_holds(monkeypatch):
    import socket

    from dashboard.live import sends
    from dashboard.sidecar.link import Channel, Link

    here = Link()
    ours, sidecar = socket.socketpair()
    sidecar.settimeout(2)
    here._channel = channel = Channel(ours)
    try:
        for waiting in ("queued", "writing"):  # queued for it, or in its hands
            setattr(channel, waiting, 1)
            with here._lock:
                here._put(b"later")
            assert channel.outbox.get_nowait() == b"later"
            setattr(channel, waiting, 0)
        channel.queued = 0
        send = sends.send
        monkeypatch.setattr(sends, "send", lambda sock, data: send(sock, data[:3]))
        with here._lock:
            here._put(b"abcdef")  # nothing waits: sent now, as far as the socket takes
        assert sidecar.recv(10) == b"abc"
        assert channel.outbox.get_nowait() == b"def" and channel.queued == 1
    finally:
        ours.close()
        sidecar.close()


async def test_the_sidecar_keeps_its_start_up_and_first_frame_out_of_full_collections(
    monkeypatch,
):
    """A full collection in the sidecar walked all of Django and the templates, 40-120
    ms with a frame waiting (bench/: the p99 of 1,000 posts/s to 100 dashboards). What
    is there once a first frame is rendered is frozen; later frames freeze nothing."""
    import asyncio
    import gc
    import io

    from dashboard.core.events import Event
    from dashboard.history.writer import writer
    from dashboard.sidecar import main, wire

    def batch(n: int) -> tuple:
        event = Event(signal="post_save", family="model", sender="blog.Post", raw={"n": n})
        event.process, event.seq = "elsewhere", n
        return wire.read(io.BytesIO(wire.encode_batch(("elsewhere", 0, 0, True, False), [event])))

    sidecar = main.Sidecar(asyncio.get_running_loop())
    sent: list[tuple] = []
    monkeypatch.setattr(sidecar, "send", sent.append)
    gc.unfreeze()
    try:
        sidecar.handle(batch(1))
        assert [m[0] for m in sent] == ["frame"]
        frozen = gc.get_freeze_count()
        assert frozen > 0
        sidecar.handle(batch(2))
        assert [m[0] for m in sent] == ["frame", "frame"]
        # Nothing frozen again. (The count can fall: a frozen object that another thread
        # lets go of meanwhile is freed all the same; a fresh-clone run saw 7 go.)
        assert gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()
        writer.on_stored = None
        with writer.held():
            writer.reset()


def test_a_flush_once_the_pumps_loop_has_stopped_still_gets_the_sidecars_answer(caplog):
    """At exit the server's loop no longer runs (daphne stopping): the flush must still
    hear the sidecar's answer, not wait out its time-out (answers read on the pump's
    loop alone would never be read: an idea tried once, bench/README.md)."""
    import asyncio

    from dashboard.core.events import Event

    async def hand_on() -> None:
        event = Event(signal="post_save", family="model", sender="blog.Post", raw={})
        event.process, event.seq = "here", 1
        await handoff._hand_on([event])

    asyncio.run(hand_on())  # handed on from a loop that is closed now
    with caplog.at_level("WARNING", logger="dashboard"):
        link.flush(timeout=5.0)
    assert "did not store" not in caplog.text
    assert link.acked == link.sent


def test_the_answers_reader_takes_messages_however_the_reads_cut_them():
    """The sidecar's answers are read as they come: several in one read, or one over
    several reads (a frame larger than the pipe), and a message cut off by the end of
    the stream (the sidecar killed mid-write) is not one."""
    from dashboard.sidecar import wire

    messages = [("frame", {"html": "x" * n}) for n in (0, 3, 70_000)] + [("stored", 1, 2, 0, 0)]
    data = b"".join(wire.encode(m) for m in messages)

    class Pipe:
        def __init__(self, data: bytes, cuts: list[int]) -> None:
            self.chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]

        def read(self, size: int) -> bytes:  # at most `size`, whatever has come
            if not self.chunks:
                return b""
            chunk = self.chunks.pop(0)
            if len(chunk) > size:
                self.chunks.insert(0, chunk[size:])
            return chunk[:size]

    for cuts in ([], [1], [2, 9, 30], list(range(1, len(data), 4097))):
        reader = wire.Reader(Pipe(data, cuts))
        assert [reader.read() for _ in messages] == messages
        assert reader.read() is None
    assert wire.Reader(Pipe(data[:-1], [])).read() == messages[0]
    cut = wire.Reader(Pipe(wire.encode(messages[2])[:-5], []))
    assert cut.read() is None


def senders_of_batches(monkeypatch) -> tuple[list[str], list[int], list[int]]:
    """The names of the threads that pickle each batch for the sidecar, the numbers of
    the events as they leave, and each batch's events, as they do."""
    import threading

    from dashboard.core.events import Event
    from dashboard.sidecar import wire

    names: list[str] = []
    seqs: list[int] = []
    sizes: list[int] = []
    encode = wire.encode_batch

    def noting(head, batch):
        names.append(threading.current_thread().name)
        numbers = [item.seq for item in batch if isinstance(item, Event)]
        seqs.extend(numbers)
        sizes.append(len(numbers))
        return encode(head, batch)

    monkeypatch.setattr(wire, "encode_batch", noting)
    return names, seqs, sizes


def save_for(seconds: float, prefix: str) -> list[str]:
    """Posts created one after another for `seconds` (several batch windows); their titles."""
    import time

    titles: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        titles.append(f"{prefix} {len(titles)}")
        Post.objects.create(title=titles[-1])
    return titles


def test_a_sender_hands_on_what_it_sends_while_nobody_watches(monkeypatch):
    """A pump draining for a thread that saves flat out cost it the same pickling plus
    turns of the GIL (bench/saves.py: 1.39x against 1.21x). Once the pump has sent a
    batch, the saving thread sends its own, once a window; the pump sends the rest."""
    Post.objects.create(title="Starts it")
    settle()
    wait_for(lambda: not handoff._armed, 2.0, "the pump to idle")
    names, seqs, sizes = senders_of_batches(monkeypatch)
    few = [f"Few {i}" for i in range(5)]
    for title in few:
        Post.objects.create(title=title)
    sent()  # by the pump (a flush would send them from this thread)
    settle()
    # After a quiet spell, fewer than HAND_ON_EVENTS (a request's events) go together,
    # from the pump, a window later.
    assert names == ["dashboard-publisher"] and sizes == [2 * len(few)], (names, sizes)
    wait_for(lambda: not handoff._armed, 2.0, "the pump to idle")
    del names[:], sizes[:]
    titles = save_for(0.4, "Saved")  # eight windows of 50 ms
    settle()
    # A burst: the saving thread sends, once a window or whenever HAND_ON_EVENTS are
    # queued; the pump what is left.
    assert "dashboard-publisher" in names and "MainThread" in names, names
    assert sum(n < HAND_ON_EVENTS for n in sizes) <= 0.4 / 0.05 + 2, sizes
    # Every event once, in the order of its number: the two senders' batches never crossed.
    assert seqs == list(range(seqs[0], seqs[0] + 2 * (len(few) + len(titles))))
    assert stored_titles() == ["Starts it", *few, *titles]
    assert link.lost == 0 and link.stored_seq == link.kept_seq


@override_settings(DASHBOARD={"BATCH_WINDOW": 5})  # the longest there is
def test_a_sender_hands_on_a_full_batch_before_the_window(monkeypatch):
    """Nobody watching, a burst is handed on HAND_ON_EVENTS at a time by the thread that
    saves, window or not: the sidecar stores it as it comes, and what is left for the
    burst's end (a command's exit) is small. Without it, nothing would leave for 5 s."""
    Post.objects.create(title="Starts it")
    handoff.flush(timeout=10)  # the pump's batch, to the sidecar, unwatched
    settle()
    titles = saved_in_full_batches(monkeypatch, "Burst")
    assert stored_titles() == ["Starts it", *titles]


def saved_in_full_batches(monkeypatch, prefix: str) -> list[str]:
    """2 x HAND_ON_EVENTS creates (two events each) under a 5 s window: four full batches
    must leave from the saving thread as it saves; then every event once, in order."""
    names, seqs, sizes = senders_of_batches(monkeypatch)
    titles = [f"{prefix} {i}" for i in range(2 * HAND_ON_EVENTS)]
    for title in titles:
        Post.objects.create(title=title)
    assert names == ["MainThread"] * 4 and sizes == [HAND_ON_EVENTS] * 4, (names, sizes)
    handoff.flush(timeout=10)
    settle()
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and len(seqs) >= 2 * len(titles)
    return titles


@override_settings(DASHBOARD={"BATCH_WINDOW": 5})
def test_a_sender_hands_on_its_first_burst_when_the_sidecar_is_up(monkeypatch):
    """A sidecar already up (a process's second burst; a benchmark run after reset()),
    nobody watching: the first burst leaves from the saving thread too, not a window of
    it pickled by the pump beside the saves (here the window is 5 s: nothing at all)."""
    link.warm()
    assert link.up()
    handoff.reset()  # as a benchmark's run does; and nothing sent since (settings' event)
    titles = saved_in_full_batches(monkeypatch, "First")
    assert stored_titles() == titles


@override_settings(DASHBOARD={"BATCH_WINDOW": 5})
def test_a_flush_hands_on_what_is_queued_from_its_own_thread(monkeypatch):
    """A command's exit (atexit's flush) sends what its last saves left from its own
    thread, nobody watching and the sidecar up: not after a wake of the pump."""
    link.warm()
    handoff.reset()  # nothing queued before (the settings' event), nor sent since
    names, _, sizes = senders_of_batches(monkeypatch)
    Post.objects.create(title="Last one")
    handoff.flush(timeout=10)
    assert names == ["MainThread"], (names, sizes)  # one batch, from this thread
    settle()
    assert stored_titles() == ["Last one"]


def test_a_watched_process_leaves_every_batch_to_the_pump(monkeypatch):
    """Watched, a batch's frame comes back to the pump, which paces the next."""
    from dashboard.live.fanout import fanout

    class Dropping:
        async def deliver(self, frame):
            return None

    Post.objects.create(title="Starts it")
    settle()
    names, _, _ = senders_of_batches(monkeypatch)
    fanout.subscribers[Dropping()] = None
    titles = save_for(0.3, "Watched")
    settle()
    assert names and set(names) == {"dashboard-publisher"}, names
    assert stored_titles() == ["Starts it", *titles]


def test_a_batch_a_sender_cannot_hand_on_is_counted_never_raised(monkeypatch, caplog):
    import threading

    Post.objects.create(title="Starts it")
    settle()
    send_config = link._send_config

    def failing_in_the_sender():
        if threading.current_thread() is threading.main_thread():
            raise RuntimeError("no config today")
        send_config()

    monkeypatch.setattr(link, "_send_config", failing_in_the_sender)
    titles = save_for(0.3, "Lost or kept")  # no save raises
    settle()
    stored = StoredEvent.objects.filter(signal__in=["pre_save", "post_save"]).count() - 2
    assert link.lost > 0 and link.lost + stored == 2 * len(titles)  # every event, once
    assert set(stored_titles()[1:]) < set(titles)
    assert "could not hand" in caplog.text


def test_flushes_while_another_thread_hands_on_lose_nothing(monkeypatch):
    """flush() (atexit, a command's end) and settle() from one thread while another saves
    flat out and hands its batches on: every event once, in order, nothing counted lost."""
    import threading
    import time

    Post.objects.create(title="Starts it")
    settle()
    names, seqs, _ = senders_of_batches(monkeypatch)
    titles: list[str] = []
    failed: list[BaseException] = []

    def saving() -> None:
        try:
            titles.extend(save_for(0.5, "Beside flushes"))
        except BaseException as exc:  # reported below, not lost in the thread
            failed.append(exc)
        finally:
            connections.close_all()

    saver = threading.Thread(target=saving, name="saver")
    saver.start()
    while saver.is_alive():
        handoff.flush(timeout=5)
        time.sleep(0.06)  # past a window: the saver's turn to hand on comes meanwhile
    saver.join()
    settle()
    assert not failed, failed
    assert "saver" in names and "dashboard-publisher" in names, set(names)
    # Each save's two, and the thread's connection_created: once each, in order.
    assert seqs == list(range(seqs[0], seqs[0] + 2 * len(titles) + 1))
    assert stored_titles() == ["Starts it", *titles]
    assert link.lost == 0 and link.stored_seq == link.kept_seq


def test_a_sender_never_waits_for_the_link(monkeypatch):
    """A sidecar starting holds the link through its Popen (milliseconds): a sender whose
    turn comes meanwhile leaves its events queued for later, and its save goes on."""
    import threading

    Post.objects.create(title="Starts it")
    settle()
    names, _, _ = senders_of_batches(monkeypatch)
    held, release = threading.Event(), threading.Event()

    def holding() -> None:
        with link._lock:
            held.set()
            release.wait(5)

    holder = threading.Thread(target=holding)
    holder.start()
    try:
        held.wait(5)
        titles = save_for(0.3, "Beside a busy link")  # would hang here if it waited
        assert "MainThread" not in names
    finally:
        release.set()
        holder.join()
    settle()
    assert stored_titles() == ["Starts it", *titles]
