"""Frames reach this process's sockets directly and other processes' through one relay each."""

import asyncio
import json
import logging
import re
import threading
from html import unescape

from channels.layers import get_channel_layer
from django.db import connection
from django.test import override_settings

from blog.models import Post
from dashboard import conf
from dashboard.core import keys
from dashboard.core.render import render_frame
from dashboard.history import reads
from dashboard.live.fanout import fanout
from dashboard.live.frames import frames as live_frames
from tests.frames import collect, rows
from tests.helpers import communicator, in_thread, make_row, resumed, settle, wait_for

# A layer that reaches other processes (as channels-redis does): frames go through the relay.
CROSSING = override_settings(
    CHANNEL_LAYERS={"default": {"BACKEND": "tests.broken_layer.CrossingLayer"}}
)

class Recorder:
    """A socket of this process that keeps the html of each frame handed to it."""

    def __init__(self) -> None:
        self.delivered: list[str] = []

    async def deliver(self, frame) -> None:
        self.delivered.append(frame.html)


async def published_elsewhere(process: str, summary: str) -> None:
    """Another process's frame of one post_save (seq 1), sent to the layer's group."""
    row = make_row(process=process, seq=1, summary=summary)
    await get_channel_layer().group_send(conf.get("GROUP"), {
        "type": "events.batch", "process": process, "first_seq": 1, "last_seq": 1,
        "html": render_frame([row], {"post_save": 1}),
    })  # fmt: skip


@CROSSING
async def test_sockets_share_one_layer_channel_per_process(staff_client):
    await in_thread(settle)
    comms = [communicator(staff_client) for _ in range(3)]
    for comm in comms:
        assert (await comm.connect())[0]
        await resumed(comm)
    await asyncio.sleep(0.05)  # the relay joins the group
    layer = get_channel_layer()
    assert len(layer.groups[conf.get("GROUP")]) == 1  # the relay's, not one per socket

    await in_thread(Post.objects.create, title="to all three")
    for comm in comms:
        got = rows(await collect(comm))
        assert [r.signal for r in got if r.sender == "blog.Post"] == ["pre_save", "post_save"]
        await comm.disconnect()


@CROSSING
async def test_other_processes_frames_are_relayed_and_ours_are_not_repeated(staff_client):
    await in_thread(settle)
    dashboard = communicator(staff_client)
    assert (await dashboard.connect())[0]
    await resumed(dashboard)
    await asyncio.sleep(0.05)  # the relay joins the group
    await published_elsewhere("elsewhere-7", "from another process")
    got = rows(await collect(dashboard))
    assert [r.summary for r in got if r.key.startswith("elsewhere-7.")] == ["from another process"]

    await in_thread(Post.objects.create, title="ours")
    got = rows(await collect(dashboard))
    assert [r.signal for r in got if r.sender == "blog.Post"] == ["pre_save", "post_save"]
    await dashboard.disconnect()


@CROSSING
async def test_the_relay_leaves_this_process_s_own_frames_to_the_direct_path():
    """Each frame of ours goes to our sockets directly and to the layer for other
    processes; the relay hears the group too, and must not deliver ours twice."""
    socket = Recorder()
    delivered = socket.delivered
    fanout.subscribe(socket)
    try:
        await asyncio.sleep(0.05)  # the relay joins the group
        await fanout.publish({"type": "events.batch", "process": keys.process(), "html": "ours"})
        # The relay reads the group in order: once this one is delivered, ours was read.
        other = {"type": "events.batch", "process": "elsewhere-7", "html": "theirs"}
        await get_channel_layer().group_send(conf.get("GROUP"), other)

        async def theirs_delivered() -> None:
            while "theirs" not in delivered:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(theirs_delivered(), timeout=2)  # TimeoutError fails the test
        # (the settings change of this test's own is a frame too)
        assert [html for html in delivered if html in ("ours", "theirs")] == ["ours", "theirs"]
    finally:
        fanout.reset()
        await asyncio.sleep(0)


async def test_frames_sent_during_a_resume_follow_its_backfill(staff_client, monkeypatch):
    await in_thread(settle)
    after = await in_thread(reads.last_id)
    await in_thread(Post.objects.create, title="missed")
    await in_thread(settle)

    original = reads.backfill

    def backfill_while_a_post_is_saved(*args):
        found = original(*args)
        sent = live_frames.sent
        # A save elsewhere (not this socket's quiet context), sent before we return.
        saver = threading.Thread(target=save_and_close, args=("meanwhile",))
        saver.start()
        saver.join()
        wait_for(lambda: live_frames.sent > sent, what="the save's frame to be sent")
        return found

    monkeypatch.setattr(reads, "backfill", backfill_while_a_post_is_saved)
    comm = communicator(staff_client)
    assert (await comm.connect())[0]
    await comm.send_to(text_data=json.dumps({"type": "resume", "after": after}))
    frames = await collect(comm)
    titles = [r.payload["instance"]["str"] for r in rows(frames) if r.signal.endswith("_save")]
    assert titles == ["missed", "missed", "meanwhile", "meanwhile"]
    await comm.disconnect()


def save_and_close(title: str) -> None:
    try:
        Post.objects.create(title=title)
    finally:
        connection.close()


@override_settings(DASHBOARD={"MAX_ROWS": 50})
async def test_live_rows_and_history_rows_are_the_same_markup(dashboard, staff_client):
    await in_thread(Post.objects.create, title="Ünïcode “quoted” & <b>bold</b>")
    frames = await collect(dashboard)
    await in_thread(settle)
    page = (await in_thread(staff_client.get, "/")).content.decode()
    live_rows = [tr for f in frames for tr in re.findall(r"<tr .*?</tr>", f.raw, re.S)]
    assert sum("_save" in tr for tr in live_rows) == 2
    # History rows add their stored id (for "load older"); otherwise the same markup.
    page = re.sub(r' data-id="\d+"', "", page)
    for tr in live_rows:  # frames are ASCII (character references); the page is UTF-8
        assert unescape(tr) in unescape(page)


@CROSSING
def test_a_relay_left_on_a_closed_loop_is_replaced():
    """A server loop that ended (a restart in-process, a test) must not break the next socket."""

    class Socket:
        async def deliver(self, frame) -> None:
            return None

    async def open_socket(socket) -> bool:
        fanout.subscribe(socket)
        await asyncio.sleep(0)
        return fanout._relay is not None and fanout._relay.get_loop() is asyncio.get_running_loop()

    first, second = Socket(), Socket()
    old_loop = asyncio.new_event_loop()
    try:
        assert old_loop.run_until_complete(open_socket(first))
        old_loop.close()
        assert asyncio.run(open_socket(second))  # before the fix: RuntimeError, loop is closed
    finally:
        fanout.reset()


def test_a_relay_collected_while_another_loop_runs_ends_without_waiting(monkeypatch, caplog):
    """A relay left on a loop that closed is collected later, perhaps while another loop
    runs in the thread (a later test's): the layer's read fails as it is closed, and the
    relay must end there, not log the layer down and wait to retry on a loop not its own
    (Python: "coroutine ignored GeneratorExit", which failed whichever test was running)."""
    from dashboard.live import fanout as fanout_module

    class Layer:
        async def new_channel(self) -> str:
            return "relay"

        async def group_add(self, group: str, channel: str) -> None:
            return None

        async def group_discard(self, group: str, channel: str) -> None:
            return None

        async def receive(self, channel: str) -> dict:
            try:
                await asyncio.sleep(3600)
            except BaseException as exc:  # as the layer's read did when it was closed
                raise RuntimeError("Event loop is closed") from exc
            return {}

    monkeypatch.setattr(fanout_module, "get_channel_layer", Layer)
    relay = fanout_module.Fanout()._listen(asyncio.Event())
    old_loop = asyncio.new_event_loop()

    async def start() -> None:
        relay.send(None)  # by hand, not as a task: it runs up to the layer's read

    try:
        old_loop.run_until_complete(start())

        async def collect_it() -> None:
            relay.close()  # as the collector closes it: raised, before the fix

        with caplog.at_level(logging.WARNING, logger="dashboard"):
            asyncio.run(collect_it())
        assert "could not listen" not in caplog.text
    finally:
        left = asyncio.all_tasks(old_loop)  # its renewal of the group
        for task in left:
            task.cancel()
        old_loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        old_loop.close()


@CROSSING
async def test_a_frame_of_another_process_that_came_before_the_resume_is_not_lost(staff_client):
    """Another process's frame leaves before its events are stored (its sidecar stores
    after it sends): one that reaches a socket between its open and the page's resume
    is not in the backfill yet, and nothing later of that process may come to fill it."""
    await in_thread(settle)
    after = await in_thread(reads.last_id)
    comm = communicator(staff_client)
    assert (await comm.connect())[0]  # open: the relay has joined the group
    await published_elsewhere("elsewhere-8", "sent, not stored yet")
    await asyncio.sleep(0.1)  # relayed to the socket, held there until the resume
    await comm.send_to(text_data=json.dumps({"type": "resume", "after": after}))
    got = rows(await collect(comm))
    assert [r.summary for r in got if r.key.startswith("elsewhere-8.")] == [
        "sent, not stored yet"
    ]
    await comm.disconnect()


@CROSSING
async def test_a_frame_relayed_just_before_a_page_opened_and_stored_after_is_not_lost(
    staff_client,
):
    """A frame another process sent just before a page opened reached this process's
    other sockets only; its events were not stored yet when the page's backfill read
    the history, and that process sent nothing more (it was killed): the page must
    still get it (tests/test_twin_servers.py missed one so, once)."""
    await in_thread(settle)
    after = await in_thread(reads.last_id)
    first = communicator(staff_client)
    assert (await first.connect())[0]
    await resumed(first)
    await published_elsewhere("elsewhere-10", "sent just before the page opened")
    got = rows(await collect(first))
    assert [r.summary for r in got if r.key.startswith("elsewhere-10.")] == [
        "sent just before the page opened"
    ]
    page = communicator(staff_client)
    assert (await page.connect())[0]
    await page.send_to(text_data=json.dumps({"type": "resume", "after": after}))
    got = rows(await collect(page))
    assert [r.summary for r in got if r.key.startswith("elsewhere-10.")] == [
        "sent just before the page opened"
    ]
    # Once: a page that already holds it (its resume says so) does not get it again.
    again = communicator(staff_client)
    assert (await again.connect())[0]
    await again.send_to(text_data=json.dumps(
        {"type": "resume", "after": after, "seen": {"elsewhere-10": 1}}
    ))  # fmt: skip
    await published_elsewhere("elsewhere-11", "after it opened")
    got = rows(await collect(again))
    assert [r.summary for r in got if r.key.startswith("elsewhere-")] == ["after it opened"]
    for comm in (first, page, again):
        await comm.disconnect()


@CROSSING
async def test_a_page_is_not_sent_again_what_was_stored_before_it_was_rendered(staff_client):
    """A relayed frame whose events were stored before the page was rendered (`after`)
    is on the page already, or left out of it on purpose (not among its newest rows,
    filtered out): handed to the opening socket again, it would count them twice."""
    from dashboard.history import store

    await in_thread(settle)
    first = communicator(staff_client)
    assert (await first.connect())[0]
    await resumed(first)
    await in_thread(store.write, [make_row(process="elsewhere-20", seq=1, summary="stored")])
    await published_elsewhere("elsewhere-20", "stored")
    got = rows(await collect(first))
    assert [r.summary for r in got if r.key.startswith("elsewhere-20.")] == ["stored"]
    after = await in_thread(reads.last_id)  # the page is rendered now
    page = communicator(staff_client)
    assert (await page.connect())[0]
    await page.send_to(text_data=json.dumps({"type": "resume", "after": after}))
    await published_elsewhere("elsewhere-21", "after it opened")
    got = rows(await collect(page))
    assert [r.summary for r in got if r.key.startswith("elsewhere-")] == ["after it opened"]
    for comm in (first, page):
        await comm.disconnect()


@override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "tests.broken_layer.SlowJoinLayer"}})
async def test_a_socket_opens_once_other_processes_frames_reach_it(staff_client):
    """The relay joins the layer's group when the first socket opens; a frame another
    process publishes before it has joined reaches nobody here. So the socket's opening
    waits for the join: whatever is published once it is open reaches the page."""
    await in_thread(settle)
    after = await in_thread(reads.last_id)
    comm = communicator(staff_client)
    assert (await comm.connect())[0]
    await published_elsewhere("elsewhere-9", "right after the open")
    await comm.send_to(text_data=json.dumps({"type": "resume", "after": after}))
    got = rows(await collect(comm))
    assert [r.summary for r in got if r.key.startswith("elsewhere-9.")] == [
        "right after the open"
    ]
    await comm.disconnect()


IN_MEMORY = {"BACKEND": "channels.layers.InMemoryChannelLayer"}


@override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "tests.broken_layer.NoJoinLayer"}})
async def test_sockets_open_at_once_while_the_layer_cannot_be_joined(staff_client):
    """A socket waits for the relay's join, not for a layer that is down to come back:
    each opens at once (the relay keeps trying), and its frames say the layer is down."""
    await in_thread(settle)
    for _ in range(2):
        comm = communicator(staff_client)
        started = asyncio.get_running_loop().time()
        assert (await comm.connect(timeout=5))[0]
        assert asyncio.get_running_loop().time() - started < 1.0
        await comm.disconnect()
    assert fanout.layer_down
    # The layer changed to one that stays in this process: nothing can be down any more,
    # and no send or receive of it would ever say the old one is back.
    with override_settings(CHANNEL_LAYERS={"default": IN_MEMORY}):
        assert not fanout.layer_down
    fanout.reset()


async def test_a_layer_that_stays_in_this_process_is_sent_no_frame(monkeypatch):
    """The in-memory layer reaches only this process, where the sockets had the frame
    directly and no relay listens: a group_send per frame would be work for no one."""
    layer = get_channel_layer()
    sent: list[dict] = []

    async def group_send(group: str, message: dict) -> None:
        sent.append(message)

    monkeypatch.setattr(layer, "group_send", group_send)
    socket = Recorder()
    fanout.subscribe(socket)
    try:
        await fanout.publish({"type": "events.batch", "process": keys.process(), "html": "ours"})
    finally:
        fanout.reset()
    assert socket.delivered == ["ours"]
    assert sent == []
    assert not fanout.layer_down


async def test_a_socket_closed_as_its_frame_was_on_its_way_is_let_go_quietly(caplog):
    """A tab closed: its page cannot be sent the frame, and the log had a traceback for
    it. A socket that fails otherwise is still logged, and the others get the frame."""
    from autobahn.exception import Disconnected

    class Closed:
        async def deliver(self, frame) -> None:
            raise Disconnected("Attempt to send on a closed protocol")

    class Broken:
        async def deliver(self, frame) -> None:
            raise ValueError("a bug")

    closed, broken, open_ = Closed(), Broken(), Recorder()
    for socket in (closed, broken, open_):  # (subscribe() would start the history's tail)
        fanout.subscribers[socket] = None
    try:
        await fanout.deliver({"html": "<tbody></tbody>"})
        assert closed not in fanout.subscribers and broken in fanout.subscribers
        assert open_.delivered == ["<tbody></tbody>"]
        logged = [r for r in caplog.records if r.levelno >= logging.WARNING
                  and r.name == "dashboard" and "a frame" in r.getMessage()]  # fmt: skip
        assert [r.getMessage().split(" to ")[0] for r in logged] == [
            "dashboard: could not deliver a frame"
        ]
        assert logged[0].exc_info[0] is ValueError
    finally:
        fanout.reset()
