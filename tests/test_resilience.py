"""The dashboard never makes the sender fail: a broken layer costs an event, not a save."""

import logging
import threading

import pytest
from django.test import override_settings

from blog.models import Post
from dashboard.capture import record
from dashboard.core.events import Event
from dashboard.live.handoff import handoff
from tests.broken_layer import GatedLayer
from tests.frames import collect, rows
from tests.helpers import communicator, in_thread, resumed, settle, wait_for

BROKEN = {"default": {"BACKEND": "tests.broken_layer.BrokenLayer"}}


@pytest.mark.django_db(transaction=True)
def test_broken_channel_layer_does_not_break_create(caplog):
    with override_settings(CHANNEL_LAYERS=BROKEN), caplog.at_level(logging.WARNING, "dashboard"):
        post = Post.objects.create(title="Saved anyway")
        handoff.flush()
        Post.objects.create(title="and again")
        handoff.flush()
    assert Post.objects.filter(pk=post.pk, title="Saved anyway").exists()
    said = [r for r in caplog.records if "could not publish" in r.getMessage()]
    assert len(said) == 1, caplog.text  # once an outage, not once a frame
    assert "channel layer is down" in said[0].getMessage() and not said[0].exc_info


@pytest.mark.django_db(transaction=True)
def test_failing_capture_is_logged_not_raised(monkeypatch, caplog):
    def explode(*args, **kwargs):
        raise ValueError("capture bug")

    monkeypatch.setattr(record, "capture", explode)
    with caplog.at_level(logging.ERROR, "dashboard"):
        post = Post.objects.create(title="Still saved")
    assert Post.objects.filter(pk=post.pk).exists()
    assert "could not capture a signal" in caplog.text
    assert "capture bug" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_save_does_not_wait_for_the_layer():
    """The save returns while the layer is still stuck sending its event."""
    GatedLayer.gate.clear()
    GatedLayer.log.clear()
    with override_settings(
        CHANNEL_LAYERS={"default": {"BACKEND": "tests.broken_layer.GatedLayer"}}
    ):
        try:
            Post.objects.create(title="Quick")
            assert "sent" not in GatedLayer.log  # a receiver that waited would have sent by now
        finally:
            GatedLayer.gate.set()
        handoff.flush()
    wait_for(lambda: "sent" in GatedLayer.log, what="the event to reach the layer")


async def test_a_broken_layer_costs_other_processes_not_this_one(staff_client, caplog):
    """This process's dashboards get their frame even when the layer fails every send."""
    with override_settings(CHANNEL_LAYERS=BROKEN), caplog.at_level(logging.WARNING, "dashboard"):
        await in_thread(settle)
        comm = communicator(staff_client)
        assert (await comm.connect())[0]
        await resumed(comm)
        await in_thread(Post.objects.create, title="Shown here anyway")
        shown = [r for r in rows(await collect(comm)) if r.signal == "post_save"]
        await comm.disconnect()
    assert [r.payload["instance"]["str"] for r in shown] == ["Shown here anyway"]
    assert "channel layer is down" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_flush_waits_for_the_frame_on_its_way():
    """At exit (atexit runs flush()) a frame the pump is still sending must leave first:
    a management command that exits right after its last save would lose it."""
    GatedLayer.gate.set()
    with override_settings(
        CHANNEL_LAYERS={"default": {"BACKEND": "tests.broken_layer.GatedLayer"}}
    ):
        settle()  # override_settings' own setting_changed has gone out
        GatedLayer.gate.clear()
        GatedLayer.log.clear()
        try:
            handoff.publish(Event(signal="post_save", family="model", sender="x", raw={}))
            wait_for(lambda: "entered" in GatedLayer.log, what="the pump to reach the layer")
            assert not handoff.queue  # the pump has it, mid-send
        except BaseException:
            GatedLayer.gate.set()
            raise
        threading.Timer(0.2, GatedLayer.gate.set).start()
        handoff.flush(timeout=5)
        assert GatedLayer.log == ["entered", "sent"]
