"""The hand-off: an idle pump sends at once, a busy one coalesces, the queue is bounded."""

import asyncio
import itertools
import threading
import time

import pytest
from django.test import override_settings

from blog.models import Post
from dashboard import conf
from dashboard.core.events import Event
from dashboard.history import store as store_module
from dashboard.history import writer as writer_module
from dashboard.history.writer import writer
from dashboard.live import frames as frames_module
from dashboard.live.fanout import fanout
from dashboard.live.frames import frames as live_frames
from dashboard.live.handoff import handoff
from dashboard.live.pacing import LOAD_PAUSE, LOAD_SPAN, MIN_PAUSE, Pacer
from dashboard.models import StoredEvent
from dashboard.sidecar.link import link
from tests.broken_layer import GatedLayer
from tests.frames import parse
from tests.helpers import settle as settle_stored
from tests.helpers import wait_for

WINDOW = 0.5  # long enough that "at once" and "after the window" cannot be confused


def event(n: int) -> Event:
    return Event(signal="post_save", family="model", sender="blog.Post", raw={"n": n})


class Watcher:
    """A dashboard socket of this process, as the fanout sees one: it queues frames."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[str] = asyncio.Queue()

    async def deliver(self, frame) -> None:
        self.frames.put_nowait(frame.html)


@pytest.fixture
async def group():
    """A dashboard watching, and the publisher bound to this loop."""
    watcher = Watcher()
    fanout.subscribe(watcher)
    handoff.bind_running_loop()
    yield watcher
    fanout.unsubscribe(watcher)
    handoff.reset()
    await asyncio.sleep(0.01)


async def next_frame(watcher: Watcher, timeout: float):
    return parse(await asyncio.wait_for(watcher.frames.get(), timeout))


def numbers(frame) -> list[int]:
    return [row.payload["n"] for row in reversed(frame.rows) if row.signal == "post_save"]


async def settle(watcher: Watcher) -> None:
    """Take what is in flight (override_settings' own setting_changed) until the pump idles."""
    window = conf.get("BATCH_WINDOW")
    deadline = time.monotonic() + 5
    while not handoff.idle:  # its frame may come back from the sidecar a moment later
        assert time.monotonic() < deadline, f"the pipeline did not settle: {link.__dict__}"
        await asyncio.sleep(0.005)
    while True:
        try:
            await asyncio.wait_for(watcher.frames.get(), 2 * window + 0.05)
        except TimeoutError:
            return


@override_settings(DASHBOARD={"BATCH_WINDOW": WINDOW})
async def test_idle_pump_sends_the_first_event_at_once_then_coalesces(group):
    watcher = group
    await settle(watcher)
    batches_before = live_frames.sent
    loop = asyncio.get_running_loop()
    started = loop.time()
    handoff.publish(event(1))
    first = await next_frame(watcher, timeout=WINDOW)
    assert numbers(first) == [1]
    assert loop.time() - started < WINDOW  # did not wait for a window

    for n in (2, 3, 4):  # arrive while the pump waits out its window
        handoff.publish(event(n))
    second = await next_frame(watcher, timeout=3 * WINDOW)
    assert numbers(second) == [2, 3, 4]  # one frame, oldest→newest, rendered once
    assert second.counts == {"post_save": 3}
    assert live_frames.sent - batches_before == 2


@override_settings(DASHBOARD={"BATCH_WINDOW": 0.01, "MAX_ROWS": 5000})
async def test_one_producer_thread_loses_and_reorders_nothing(group):
    watcher = group
    await settle(watcher)
    total = 3000

    def produce() -> None:
        for n in range(total):
            handoff.publish(event(n))

    producer = threading.Thread(target=produce)
    producer.start()
    seen: list[int] = []
    counted = 0
    while counted < total:
        frame = await next_frame(watcher, timeout=5)
        seen += numbers(frame)
        counted += frame.total
    producer.join()
    assert seen == list(range(total))
    assert handoff.dropped == 0


@override_settings(
    DASHBOARD={"QUEUE_SIZE": 100},
    CHANNEL_LAYERS={"default": {"BACKEND": "tests.broken_layer.GatedLayer"}},
)
def test_full_queue_drops_and_counts_without_blocking():
    """A stuck layer holds the pump; the queue stops at its cap and counts the rest."""
    GatedLayer.gate.clear()
    GatedLayer.log.clear()
    try:
        handoff.publish(event(0))  # the pump takes it and gets stuck sending it
        wait_for(lambda: "entered" in GatedLayer.log, what="the pump to reach the layer")
        for n in range(1, 251):
            handoff.publish(event(n))  # returns at once: nothing here waits for the layer
        assert len(handoff.queue) == 100
        assert handoff.dropped == 150
        assert [e.raw["n"] for e in handoff.queue] == list(range(1, 101))  # the oldest kept
    finally:
        GatedLayer.gate.set()


@override_settings(DASHBOARD={"MAX_ROWS": 10})
async def test_a_burst_renders_at_most_max_rows_but_counts_every_event(group):
    watcher = group
    await settle(watcher)
    for n in range(1, 1001):
        handoff.publish(event(n))
    await asyncio.sleep(0)  # let the pump (woken by the first) take the rest at once
    frame = await next_frame(watcher, timeout=3)
    assert frame.total == 1000
    assert frame.counts == {"post_save": 1000}
    assert numbers(frame) == list(range(991, 1001))  # the newest ten


async def test_frames_report_the_process_drop_count(group):
    watcher = group
    handoff.dropped = 7
    handoff.publish(event(1))
    frame = await next_frame(watcher, timeout=1)
    assert frame.dropped == 7


async def test_a_stuck_history_store_never_holds_up_live_frames(
    group, monkeypatch, caplog, in_process
):
    """Past the store backlog the oldest unstored rows are counted, not waited for;
    the frames carry the count for the page, and the log says so, once."""
    watcher = group
    await settle(watcher)
    gate = threading.Event()
    monkeypatch.setattr(store_module, "write", lambda rows, marks: gate.wait(10))
    monkeypatch.setattr(writer_module, "STORE_BACKLOG", 5)
    try:
        for n in range(4):  # four frames of three rows, while the store is stuck
            for i in range(3):
                handoff.publish(event(10 * n + i))
            frame = await next_frame(watcher, timeout=2)
            assert numbers(frame) == [10 * n + i for i in range(3)]
        assert writer.unstored >= 3
        for i in range(3):  # the next frame reports the losses so far (its own rows may add 3)
            handoff.publish(event(100 + i))
        frame = await next_frame(watcher, timeout=2)
        assert frame.unstored >= 3 and writer.unstored - frame.unstored in (0, 3)
        warnings = [r for r in caplog.records if "will not be in the history" in r.getMessage()]
        assert len(warnings) == 1  # at most one a minute
    finally:
        gate.set()


@pytest.mark.django_db(transaction=True)
def test_unwatched_events_are_stored_without_a_frame(monkeypatch):
    """No socket here and the in-memory layer: nobody could see a frame, so none is made;
    the events are described when stored, and a page opening later reads them."""
    prepared = []
    monkeypatch.setattr(frames_module, "prepare", lambda *a: prepared.append(a))
    Post.objects.create(title="nobody watching")
    settle_stored()
    assert prepared == []
    stored = StoredEvent.objects.filter(signal="post_save").get()
    assert stored.payload["instance"]["str"] == "nobody watching"
    assert "nobody watching" in stored.summary


def recording(monkeypatch) -> list[list[int]]:
    """From an idle pump on (override_settings' own events sent first), each batch it
    hands on, as its events' numbers."""
    batches: list[list[int]] = []

    async def noting(batch) -> bool:
        batches.append([item.raw["n"] for item in batch if "n" in item.raw])
        return False

    handoff.flush(timeout=10)
    wait_for(lambda: not handoff._armed, 10, "the pump to idle")
    monkeypatch.setattr(handoff, "_hand_on", noting)
    return batches


def burst(batches: list[list[int]]) -> None:
    """A request's events as an idle, unwatched pump sees them: one, then the rest."""
    handoff.publish(event(1))
    time.sleep(WINDOW / 5)  # the rest of the request
    handoff.publish(event(2))
    wait_for(lambda: batches and handoff.drained, 5, "the pump to take the burst")


@override_settings(DASHBOARD={"BATCH_WINDOW": WINDOW})
def test_an_unwatched_pump_lets_a_burst_come_before_its_first_batch(monkeypatch):
    """Nobody in this process waits for a frame: woken by a request's first event, the
    pump lets the rest of the request come first instead of taking the GIL from the
    sender half-way through it; one batch holds the burst."""
    batches = recording(monkeypatch)
    try:
        burst(batches)
        assert batches == [[1, 2]]
    finally:
        handoff.reset()


@override_settings(DASHBOARD={"BATCH_WINDOW": 5})  # the longest there is
def test_a_flush_right_after_the_event_that_wakes_the_pump_does_not_wait(monkeypatch):
    """The publish's wake and the flush's can reach the idle pump together, and the
    pump clears both at once: the flush must still not wait out the window."""
    batches = recording(monkeypatch)
    try:
        started = time.monotonic()
        handoff.publish(event(1))
        handoff.flush(timeout=10)
        assert time.monotonic() - started < 2.5  # half the window
        assert batches == [[1]]
    finally:
        handoff.reset()


@override_settings(DASHBOARD={"BATCH_WINDOW": WINDOW})
def test_a_flush_during_the_pause_does_not_hurry_the_next_burst(monkeypatch):
    """A flush that cut the pump's pause short has what it waited for once the pump
    idles: the next request's events must still leave together, after its window."""
    batches = recording(monkeypatch)
    try:
        handoff.publish(event(0))
        wait_for(lambda: batches, 5, "the first batch")  # the pump pauses after it now
        handoff.flush(timeout=2)
        wait_for(lambda: not handoff._armed, 5, "the pump to idle")
        batches.clear()
        burst(batches)
        assert batches == [[1, 2]]
    finally:
        handoff.reset()


def test_the_pause_grows_under_load_and_drops_back_below_it():
    pacer, window = Pacer(), 0.05
    assert pacer.after(events=1, started=0.0, cost=0.0, window=window) == MIN_PAUSE  # from idle
    now, pauses = 0.0, []
    for _ in range(6):  # 2,000 events a second: load
        pause = pacer.after(events=40, started=now + 0.02, cost=0.0, window=window)
        now += 0.02
        pauses.append(pause)
    assert pauses == [MIN_PAUSE * 2**n for n in range(1, 5)] + [LOAD_PAUSE] * 2
    # A trickle below LOAD_RATE (200 events a second), once the load's LOAD_SPAN has
    # passed: short pauses at once.
    now += LOAD_SPAN
    assert pacer.after(events=3, started=now + 0.015, cost=0.0, window=window) == MIN_PAUSE
    assert pacer.after(events=40, started=now + 0.02, cost=0.03, window=window) == 0.03  # cost
    assert pacer.after(events=40, started=now + 0.025, cost=0.2, window=window) == window
    assert pacer.wait_before(now + 1) == 0  # quiet for long: the load is over
    assert pacer.after(events=1, started=now + 1, cost=0.0, window=window) == MIN_PAUSE


def test_requests_back_to_back_are_paced_as_load_though_the_pump_idles_between_them():
    """A request's few events come as a burst, and the pump idles until the next one:
    each frame alone looks light. Over LOAD_SPAN they are load, and a frame woken from
    idling waits until the floor has passed since the last one."""
    pacer, window = Pacer(), 0.05
    us, starts, sent = 0, [], 0  # time in whole microseconds
    while us < 300_000:  # a request every 4 ms, 3 events each: 750 a second
        us += round(pacer.wait_before(us / 1e6) * 1e6)  # woken by a request's first event
        starts.append(us / 1e6)
        events = (us // 4000) * 3 + 3 - sent  # every request's so far
        sent += events
        pacer.after(events=events, started=us / 1e6, cost=0.0005, window=window)
        us = (us // 4000 + 1) * 4000  # idle until the next request's first event
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(g >= LOAD_PAUSE - 1e-6 for g in gaps[8:]), gaps
    assert len(starts) <= 0.3 / LOAD_PAUSE + 8  # not a frame per request (75)


@override_settings(DASHBOARD={"BATCH_WINDOW": 0.05, "MAX_ROWS": 5000})
async def test_sustained_load_makes_few_big_frames_and_a_lone_pair_two_quick_ones(group):
    watcher = group
    await settle(watcher)
    loop = asyncio.get_running_loop()
    started = loop.time()
    handoff.publish(event(0))
    handoff.publish(event(1))  # e.g. pre_save, then its post_save
    seen = numbers(await next_frame(watcher, timeout=1))
    if seen == [0]:  # the pump woke between them: the second follows a short pause
        seen += numbers(await next_frame(watcher, timeout=1))
    assert seen == [0, 1]
    assert loop.time() - started < 0.025  # well within the window
    await settle(watcher)

    batches_before = live_frames.sent
    stop = threading.Event()

    def produce() -> None:  # a steady stream for 0.4 s, as a save loop would be
        n = 0
        while not stop.is_set():
            handoff.publish(event(n))
            n += 1
            time.sleep(0.0002)

    producer = threading.Thread(target=produce)
    producer.start()
    await asyncio.sleep(0.4)
    stop.set()
    producer.join()
    await settle(watcher)
    frames = live_frames.sent - batches_before
    # A frame per ms or so would be hundreds; pausing LOAD_PAUSE, about 0.4 / 0.016.
    assert frames <= 35


def test_a_pump_start_overtaken_by_a_reset_leaves_nothing_stuck():
    """A bind schedules the pump's start on its loop; a reset that comes first must
    not let that late start arm a hand-off no pump serves (every publish after it
    would then wait for a wake-up that never comes)."""
    loop = asyncio.new_event_loop()
    try:
        with handoff._lock:  # as bind_running_loop() does, the loop not running yet
            handoff._bind(loop)  # schedules the pump's start on this loop
        handoff.reset()  # ...comes first
        loop.run_until_complete(asyncio.sleep(0.01))  # the late start runs now
    finally:
        loop.close()
    handoff.publish(event(1))
    wait_for(lambda: handoff.drained, 5, "a pump to take the event")


@pytest.mark.django_db(transaction=True)
@override_settings(DASHBOARD={"BATCH_WINDOW": 5})  # the longest there is
def test_flush_does_not_wait_out_the_pumps_pause(caplog):
    """Unwatched, the pump waits a whole window before its first batch and pauses one
    after it. A flush (a command's exit, a resuming page, the bench settling) cuts
    either short, and returns once that batch is handed on: not a window after it,
    with the pump pausing again with nothing to send."""
    Post.objects.create(title="Sent at once")
    handoff.flush(timeout=2)
    assert handoff.drained
    assert "flush timed out" not in caplog.text
    assert StoredEvent.objects.filter(summary__startswith="blog.Post").count() == 2


@pytest.fixture
def costs(monkeypatch) -> list[float]:
    """The cost of each batch, as the pump gives it to its pacer."""
    noted: list[float] = []
    after = Pacer.after

    def noting(self, events, started, cost, window, elapsed=None):
        noted.append(cost)
        return after(self, events, started, cost, window, elapsed)

    monkeypatch.setattr(Pacer, "after", noting)
    return noted


class SlowSockets:
    """Sockets of this process whose writes take this loop 80 ms of CPU a frame (as
    writing to many of them does): relaying is this process's own work. `waiting`:
    80 ms, but waiting (as for a GIL that the host's saving thread holds meanwhile)."""

    def __init__(self, waiting: bool = False) -> None:
        self.frames = 0
        self.waiting = waiting

    async def deliver(self, frame) -> None:
        if self.waiting:
            time.sleep(0.08)
        else:
            end = time.thread_time() + 0.08
            while time.thread_time() < end:
                pass
        self.frames += 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("waiting", [False, True], ids=["relaying", "waiting"])
async def test_the_pause_counts_relaying_a_frame_but_not_the_sidecars_render(costs, waiting):
    """The pump waits for each frame to come back from the sidecar and leave. The time
    the sidecar held it costs this process nothing and is left out of the pause (it
    would wait for it twice); relaying it to this process's sockets is counted, so
    sending stays at most about half the loop. Waiting meanwhile for the host's
    threads is not: beside a saving thread, the pauses grew with its turns."""
    sockets = SlowSockets(waiting)
    fanout.subscribe(sockets)
    handoff.bind_running_loop()
    try:
        for n in range(2):  # the first frame also waits for the sidecar to start
            handoff.publish(event(n))
            deadline = time.monotonic() + 20
            while sockets.frames <= n:
                assert time.monotonic() < deadline, "no frame came back"
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the pump's cost noted, after the frame left
        assert link.sent >= 2, "the frames went through the sidecar"
    finally:
        fanout.unsubscribe(sockets)
        handoff.reset()
        await asyncio.sleep(0.01)
    assert len(costs) >= 2, costs
    if waiting:
        assert all(cost < 0.04 for cost in costs[:2]), costs
    else:
        assert all(0.07 < cost < 1.0 for cost in costs[:2]), costs


async def test_a_pipeline_kept_in_process_counts_its_whole_time(group, costs, monkeypatch):
    """Where the sidecar is off (or could not start again), nothing of the batch's time
    is the sidecar's: a wait noted for an earlier sidecar must not shorten the pause."""
    async def slow_render(batch, dropped):
        await asyncio.sleep(0.1)  # describing and rendering here
        return True

    monkeypatch.setattr(link, "rendered_elsewhere", True)  # by a sidecar since gone
    monkeypatch.setattr(link, "enabled", lambda: False)
    monkeypatch.setattr(live_frames, "hand_on", slow_render)
    handoff.publish(event(1))
    await asyncio.sleep(0.3)
    assert costs and costs[0] > 0.09, costs


def test_a_round_trip_to_the_sidecar_is_part_of_the_pause_not_added_to_it():
    pacer, window = Pacer(), 0.05
    now = 0.0
    for _ in range(6):  # under load: the floor is LOAD_PAUSE
        pacer.after(events=40, started=now, cost=0.0, window=window)
        now += 0.02
    # 10 ms since the frame started, 1 ms of it this process's own: frames stay a
    # floor apart, so events wait no longer for a frame rendered elsewhere.
    assert pacer.after(events=40, started=now, cost=0.001, window=window, elapsed=0.010) == (
        pytest.approx(LOAD_PAUSE - 0.010)
    )
    # Never below the frame's own cost, however long the round trip took.
    now += 0.02
    assert pacer.after(events=40, started=now, cost=0.004, window=window, elapsed=0.030) == 0.004
