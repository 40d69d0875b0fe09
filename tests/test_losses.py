"""Nothing is lost without being said: a database that cannot take a write now gets it
later; a value it refuses costs that value (stored cleaned) or at most its own row,
counted; never its batch, never another request's events."""

import logging

import pytest
from django.db import DataError, OperationalError

from blog.models import Post
from blog.signals import post_viewed
from dashboard.core.payload import storable
from dashboard.history import store
from dashboard.history.writer import writer
from dashboard.models import StoredEvent
from tests.helpers import make_row, settle, wait_for


def test_nul_bytes_and_lone_surrogates_are_written_out_visibly():
    assert storable("plain") == "plain"
    assert storable("/blog/\x00/") == "/blog/\\x00/"
    assert storable("é\ud800") == "é\\ud800"
    assert storable("é\ud800").encode("utf-8")  # what any database takes


@pytest.mark.django_db(transaction=True)
def test_a_hostile_value_is_stored_cleaned_with_the_rest_of_its_batch():
    post = Post.objects.create(title="neighbour")
    post_viewed.send(sender=Post, post=post, request=None, note="a\x00b\ud800c")
    settle()
    viewed = StoredEvent.objects.get(signal="post_viewed")
    assert viewed.payload["note"] == "a\\x00b\\ud800c"
    assert StoredEvent.objects.filter(signal="post_save", sender="blog.Post").exists()
    assert writer.unstored == 0


def locked(monkeypatch, times: int) -> list[int]:
    """The history's writes fail `times` times with "database is locked", then go
    through; returned: [how many failures are left]."""
    original, failures = store._write, [times]

    def write(rows, marks):
        if failures[0]:
            failures[0] -= 1
            raise OperationalError("database is locked")
        return original(rows, marks)

    monkeypatch.setattr(store, "_write", write)
    return failures


@pytest.mark.django_db(transaction=True)
def test_a_locked_database_gets_the_rows_later_and_says_so_once(monkeypatch, caplog, in_process):
    failures = locked(monkeypatch, times=2)
    with caplog.at_level(logging.WARNING, "dashboard"):
        Post.objects.create(title="waited for the lock")
        settle()  # flush: the first try fails; the store task tries again
        wait_for(lambda: StoredEvent.objects.filter(sender="blog.Post").count() == 2,
                 timeout=10, what="the retried rows")  # fmt: skip
    assert failures == [0] and writer.unstored == 0
    said = [r.getMessage() for r in caplog.records]
    assert len([m for m in said if "history store is unavailable" in m]) == 1
    assert len([m for m in said if "history store is back" in m]) == 1


@pytest.mark.django_db(transaction=True)
def test_rows_a_flush_could_not_store_are_tried_again_without_another_event(
    monkeypatch, in_process
):
    """flush() takes the pending rows on a thread of its own; the store task, finding
    nothing pending meanwhile, may end. Rows the flush could not store then waited for
    the next event (a test's settle() timed out on them)."""
    Post.objects.create(title="starts the store task")
    settle()
    assert writer._storing is not None and writer._storing.done()  # it ended: idle
    failures = locked(monkeypatch, times=1)
    with writer._lock:  # kept just as the store task had found nothing pending, and ended
        writer._pending.append(([make_row(process="elsewhere", seq=1, summary="stranded")],
                                [], writer.kept_seq))  # fmt: skip
        writer._pending_rows += 1
    writer.flush()
    assert failures == [0]
    wait_for(lambda: StoredEvent.objects.filter(summary="stranded").exists(),
             what="the rows the flush could not store")  # fmt: skip
    assert writer.unstored == 0


@pytest.mark.django_db(transaction=True)
def test_a_row_the_database_refuses_costs_only_that_row_and_is_counted(
    monkeypatch, caplog, in_process
):
    original = store._write

    def refuse_the_bad_one(rows, marks):
        if any("refused" in row.summary for row in rows):
            raise DataError("value too long for type character varying(200)")
        return original(rows, marks)

    monkeypatch.setattr(store, "_write", refuse_the_bad_one)
    Post.objects.create(title="refused")  # pre_save and post_save: both refused
    Post.objects.create(title="kept")
    settle()
    titles = set(StoredEvent.objects.filter(sender="blog.Post").values_list("summary", flat=True))
    assert titles and all("kept" in t for t in titles)
    assert writer.unstored == 2  # said on every frame and on the page
    assert "the database refused event" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_an_event_that_cannot_be_described_costs_itself_counted_never_its_batch(
    in_process, monkeypatch, caplog
):
    from dashboard.core import payload

    describe = payload.describe_event

    def refuse_views(event):
        if event.signal == "post_viewed":
            raise RuntimeError("a host's __str__ that raises, say")
        return describe(event)

    monkeypatch.setattr(payload, "describe_event", refuse_views)
    before = writer.unstored
    post = Post.objects.create(title="neighbour")
    post_viewed.send(sender=Post, post=post, request=None)
    Post.objects.create(title="after it")
    settle()
    assert not StoredEvent.objects.filter(signal="post_viewed").exists()
    titles = {e.payload["instance"]["str"] for e in StoredEvent.objects.filter(signal="post_save")}
    assert titles == {"neighbour", "after it"}  # the rest of its batch, and what came after
    assert writer.unstored == before + 1  # counted: the page shows it
    assert "could not describe a post_viewed event" in caplog.text


def test_a_frame_shows_the_events_beside_one_that_cannot_be_described_whole(monkeypatch):
    """Watched: the frame and the rows it hands to the writer keep every other event,
    with its payload (a batch described again after a failure half-way was empty)."""
    from dashboard.core import payload
    from dashboard.live.frames import prepare
    from tests.frames import parse
    from tests.test_payload import saved_event

    describe = payload.describe_event

    def refuse_the_second(event):
        if event.seq == 6:
            raise RuntimeError("a host's __str__ that raises, say")
        return describe(event)

    monkeypatch.setattr(payload, "describe_event", refuse_the_second)
    batch = [saved_event(), saved_event(), saved_event()]
    for seq, event in enumerate(batch, start=5):
        event.seq = seq
    before = writer.unstored
    message, rows, _ = prepare(batch, dropped=0, unstored=before)
    assert [r.seq for r in rows] == [5, 7]
    assert all(r.payload["instance"]["pk"] == 1 for r in rows)  # described, not emptied
    assert [r.key for r in parse(message["html"]).rows] == ["host-1.7", "host-1.5"]
    assert writer.unstored == before + 1
    assert parse(message["html"]).unstored == before + 1  # and the page is told
