"""Every client message is bounded and answered in linear time; a bad one closes its
socket (4400) with one log line; any consumer that ends leaves the fan-out at once."""

import json
import time

import pytest

from blog.models import Post
from dashboard.history import reads
from dashboard.live import consumer
from dashboard.live.fanout import fanout
from tests.frames import collect, parse, rows
from tests.helpers import communicator, in_thread, settle


async def opened(client):
    comm = communicator(client)
    connected, _ = await comm.connect()
    assert connected
    return comm


async def closed_with(comm) -> int:
    output = await comm.receive_output(timeout=5)
    assert output["type"] == "websocket.close", output
    return output["code"]


BAD = [
    pytest.param("{not json", id="not-json"),
    pytest.param(json.dumps({"type": "hello"}), id="not-resume"),
    pytest.param('{"type": "resume", "after": 1e999}', id="infinite-after"),  # crashed it
    pytest.param(json.dumps({"type": "resume", "after": "x"}), id="text-after"),
    pytest.param(json.dumps({"type": "resume", "after": -1}), id="negative-after"),
    pytest.param(json.dumps({"type": "resume", "seen": [1, 2]}), id="seen-not-a-map"),
    pytest.param(json.dumps({"type": "resume", "seen": {"p": 1.5}}), id="seen-not-whole"),
    pytest.param(json.dumps({"type": "resume", "filters": {"q": {"a": 1}}}), id="filters-shape"),
    pytest.param(  # the 30 KB message with 2,500 processes that froze every dashboard
        json.dumps({"type": "resume", "seen": {f"host-{i}": i for i in range(2500)}}),
        id="too-long",
    ),
    pytest.param(  # short enough, but more processes than a page ever sends
        json.dumps({"type": "resume", "seen": {f"p{i}": 1 for i in range(65)}}),
        id="too-many-processes",
    ),
]


@pytest.mark.parametrize("message", BAD)
async def test_a_bad_message_closes_the_socket_with_4400_and_one_log_line(
    staff_client, message, caplog
):
    comm = await opened(staff_client)
    await comm.send_to(text_data=message)
    assert await closed_with(comm) == consumer.BAD_MESSAGE
    assert len([r for r in caplog.records if "(4400)" in r.getMessage()]) == 1
    assert not fanout.subscribers  # left at once


async def test_only_one_resume_per_socket(dashboard, caplog):
    await dashboard.send_to(text_data=json.dumps({"type": "resume", "after": 0}))
    assert await closed_with(dashboard) == consumer.BAD_MESSAGE
    assert any("resumes once" in r.getMessage() for r in caplog.records)


async def test_the_largest_resume_allowed_is_answered_at_once(staff_client):
    await in_thread(Post.objects.create, title="missed")
    await in_thread(settle)
    seen = {f"gone-{i:04}-{'x' * 60}": 10**12 for i in range(consumer.PROCESSES_AT_MOST)}
    message = json.dumps({"type": "resume", "after": 0, "seen": seen})
    assert len(message) <= consumer.MESSAGE_AT_MOST
    comm = await opened(staff_client)
    started = time.monotonic()
    await comm.send_to(text_data=message)
    frame = parse(await comm.receive_from(timeout=5))
    assert time.monotonic() - started < 2
    assert "missed" in frame.raw
    await comm.disconnect()


def test_filters_are_bounded_whatever_a_message_holds():
    from dashboard.core.filters import MAX_VALUES

    values = ",".join(f"f{i}" for i in range(3000))[:8000]
    _, _, filters = consumer.parse_resume(
        json.dumps({"type": "resume", "filters": {"family": values}})
    )
    assert len(filters.family) == MAX_VALUES


async def test_a_consumer_that_fails_leaves_the_fanout_at_once(staff_client, monkeypatch):
    async def fails(self, *args):
        raise RuntimeError("a bug in the consumer")

    monkeypatch.setattr(consumer.EventsConsumer, "resume", fails)
    comm = await opened(staff_client)
    assert len(fanout.subscribers) == 1
    after = await in_thread(reads.last_id)
    await comm.send_to(text_data=json.dumps({"type": "resume", "after": after}))
    with pytest.raises(RuntimeError, match="a bug"):
        await comm.receive_output(timeout=5)
    assert not fanout.subscribers


async def test_a_page_that_resumed_keeps_getting_events_once(dashboard):
    await in_thread(Post.objects.create, title="after")
    got = [r for r in rows(await collect(dashboard)) if r.sender == "blog.Post"]
    assert [r.signal for r in got] == ["pre_save", "post_save"]
