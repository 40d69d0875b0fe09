"""Every signal the process sends is captured and named, with no list to edit, and
the dashboard alters nothing of Django's dispatch (it connects no receiver)."""

import importlib
import re
import sys
import weakref

import pytest
from django.contrib.auth.signals import user_logged_in
from django.core.signals import request_started, setting_changed
from django.db.models.signals import (
    post_delete,
    post_init,
    post_save,
    pre_delete,
    pre_init,
    pre_save,
)
from django.dispatch import Signal
from django.test import override_settings

from blog.models import Comment, Post
from blog.signals import post_published
from dashboard.capture import signals
from dashboard.models import StoredEvent
from tests.helpers import settle, with_and_without


def test_families_come_from_where_a_signal_is_defined():
    assert signals.spec_of(post_save) == signals.Spec(
        "post_save", "django.db.models.signals.post_save", "model"
    )
    assert signals.spec_of(request_started).family == "request"
    assert signals.spec_of(setting_changed).family == "settings"
    assert signals.spec_of(user_logged_in).path == "django.contrib.auth.signals.user_logged_in"
    assert signals.spec_of(user_logged_in).family == "auth"
    assert signals.spec_of(post_published) == signals.Spec(
        "post_published", "blog.signals.post_published", "blog"
    )


def test_the_page_lists_every_signal_found_in_family_order():
    found = [spec for _, spec in signals.discovered()]
    paths = {spec.path for spec in found}
    assert {"django.db.models.signals.pre_init", "blog.signals.post_viewed",
            "django.db.backends.signals.connection_created"} <= paths  # fmt: skip
    families = [spec.family for spec in found]
    assert families.index("model") < families.index("request") < families.index("auth")
    assert families[-1] not in signals.FAMILY_ORDER  # apps' own families come last


@pytest.mark.django_db(transaction=True)
def test_a_signal_defined_in_a_module_imported_late_is_found_when_sent():
    sys.modules.pop("tests.late.signals", None)
    late = importlib.import_module("tests.late.signals")
    late.parcel_delivered.send(sender=Post, tracking="XY-1")
    settle()
    event = StoredEvent.objects.get(signal="parcel_delivered")
    assert event.family == "tests"  # no app holds it: its top-level package
    assert event.payload["tracking"] == "XY-1"


@pytest.mark.django_db(transaction=True)
def test_a_signal_sent_with_no_receivers_is_captured_too():
    adhoc = Signal()
    assert not adhoc.has_listeners()
    assert adhoc.send(sender=None, n=1) == []
    settle()
    event = StoredEvent.objects.get(signal__startswith="signal-")
    assert event.family == "other" and event.payload == {"n": 1}


def test_what_a_send_leaves_per_signal_goes_with_the_signal():
    """Per-signal answers are kept by id(signal): one collected must take its entries
    along, or a new signal given the same id would inherit them (sent, recorded)."""
    import gc

    from dashboard.capture import seen

    adhoc = Signal()
    adhoc.send(sender=Post)
    key = id(adhoc)
    assert seen.senders(adhoc) == {id(Post)}
    recorded = signals.recorded.answers
    assert key in recorded and key in signals._specs
    del adhoc
    gc.collect()
    assert key not in seen._sent and key not in recorded and key not in signals._specs
    assert key not in seen._sent._tied and key not in recorded._tied


@pytest.mark.django_db(transaction=True)
def test_pre_init_and_post_init_are_listed_but_not_recorded_unless_asked_for():
    Post.objects.create(title="loaded")
    list(Post.objects.all())
    settle()
    assert not StoredEvent.objects.filter(signal__in=["pre_init", "post_init"]).exists()
    with override_settings(DASHBOARD={"IGNORE_SIGNALS": []}):
        list(Post.objects.all())
        settle()
    assert StoredEvent.objects.filter(signal="post_init", sender="blog.Post").exists()
    assert not signals.spec_of(pre_init).recorded and not signals.spec_of(post_init).recorded


@pytest.mark.django_db(transaction=True)
@override_settings(DASHBOARD={"SIGNALS": ["model.*"], "IGNORE_SENDERS": ["blog.Tag"]})
def test_settings_pick_the_signals_and_senders_recorded():
    from blog.models import Tag

    Post.objects.create(title="kept")
    Tag.objects.create(name="left out")
    post_published.send(sender=Post, post=Post.objects.first())
    settle()
    recorded = set(StoredEvent.objects.values_list("signal", "sender"))
    assert ("post_save", "blog.Post") in recorded
    assert not [r for r in recorded if r[1] == "blog.Tag" or r[0] == "post_published"]


@pytest.mark.django_db(transaction=True)
def test_a_sender_ignored_for_a_while_is_recorded_before_and_after():
    """What is captured of a sender is remembered per class, until DASHBOARD changes."""
    from blog.models import Tag

    Tag.objects.create(name="before")
    with override_settings(DASHBOARD={"IGNORE_SENDERS": ["blog.Tag"]}):
        Tag.objects.create(name="while ignored")
    Tag.objects.create(name="after")
    settle()
    saved = StoredEvent.objects.filter(signal="post_save", sender="blog.Tag").order_by("id")
    assert [e.payload["instance"]["str"] for e in saved] == ["before", "after"]


# -- observe, never alter -------------------------------------------------------------


def test_no_receiver_of_the_dashboard_is_connected_to_any_signal():
    for signal, spec in signals.discovered():
        for _, receiver, _ in signal.receivers:
            target = receiver() if isinstance(receiver, weakref.ReferenceType) else receiver
            module = getattr(target, "__module__", "") or ""
            assert not module.startswith("dashboard"), (spec.path, target)


@pytest.mark.django_db(transaction=True)
def test_has_listeners_and_fast_delete_are_what_they_are_without_the_dashboard():
    from django.db.models.deletion import Collector

    assert not pre_delete.has_listeners(Comment) and not post_delete.has_listeners(Comment)
    post = Post.objects.create(title="with comments")
    Comment.objects.bulk_create([Comment(post=post, name="n", body=f"c{i}") for i in range(5)])
    comments = Comment.objects.all()
    assert Collector(using="default", origin=comments).can_fast_delete(comments)


# post_save not recorded (pre_init and post_init: the defaults, which IGNORE_SIGNALS replaces).
WITHOUT_POST_SAVE = ["post_save", "pre_init", "post_init"]


def stored_title_diffs() -> list[tuple[str, str] | None]:
    """(old, new) of the title in each stored update's diff, in order (None: unchanged)."""
    updates = StoredEvent.objects.filter(signal="post_save", payload__created=False)
    diffs = [{c["field"]: (c["old"], c["new"]) for c in e.detail["diff"]} for e in updates]
    return [d.get("title") for d in diffs]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "dashboard",
    [
        {"DIFFS": False},
        # Diffs on, but post_save, which would show them, not recorded: no pre-read.
        {"DIFFS": True, "IGNORE_SIGNALS": WITHOUT_POST_SAVE},
        # ... nor for a sender whose events are not captured.
        {"DIFFS": True, "IGNORE_SENDERS": ["blog.*"]},
    ],
    ids=["diffs off", "post_save not recorded", "sender ignored"],
)
def test_the_sql_django_runs_is_the_same_with_the_dashboard_or_without(dashboard):
    """Observe, never alter: (the diff's pre-read aside, switched off here, or of no
    use since no post_save is recorded to show it)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from blog.models import Tag

    def work(n: int) -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            post = Post.objects.create(title=f"same sql {n}", slug=f"same-sql-{n}")
            post.title = "renamed"
            post.save()
            tag = Tag.objects.create(name=f"t{n}")
            post.tags.add(tag)
            Comment.objects.create(post=post, name="n", body="b")
            Comment.objects.filter(post=post).delete()
            post.delete()
        # The statements, their values aside (times, ids, titles differ by run).
        return [re.sub(r"\d+", "N", re.sub(r"'[^']*'", "?", q["sql"]))
                for q in queries.captured_queries]  # fmt: skip

    with override_settings(DASHBOARD=dashboard):
        with_it, without = with_and_without(work)
    assert with_it == without
    assert len(with_it) > 8


@pytest.mark.django_db(transaction=True)
def test_the_diffs_read_comes_back_once_post_save_is_recorded_again():
    post = Post.objects.create(title="before", slug="comes-back")
    with override_settings(DASHBOARD={"IGNORE_SIGNALS": WITHOUT_POST_SAVE}):
        post.title = "unseen"
        post.save()
    post.title = "seen"
    post.save()
    settle()
    assert stored_title_diffs() == [("unseen", "seen")]


@pytest.mark.django_db(transaction=True)
def test_an_update_shows_its_diff_with_pre_save_not_recorded():
    """The row is read around pre_save's send whether or not pre_save is recorded:
    post_save, which shows the diff, is."""
    post = Post.objects.create(title="before", slug="pre-save-ignored")
    with override_settings(DASHBOARD={"IGNORE_SIGNALS": ["pre_save", "pre_init", "post_init"]}):
        post.title = "after"
        post.save()
        settle()
    assert not StoredEvent.objects.filter(signal="pre_save", payload__instance__str="after")
    assert stored_title_diffs() == [("before", "after")]


def save_with_a_nested_save(post: Post) -> None:
    """post saved as "second", and, from a pre_save receiver, saved again as "nested"
    before the outer save goes on as "outer"."""

    def nested(sender, instance, **kwargs):
        if instance.pk == post.pk and instance.title == "second":
            instance.title = "nested"
            instance.save()  # sends pre_save again: this receiver leaves it be
            instance.title = "outer"

    pre_save.connect(nested, sender=Post, weak=False, dispatch_uid="nested-save")
    try:
        post.title = "second"
        post.save()
    finally:
        pre_save.disconnect(sender=Post, dispatch_uid="nested-save")


@pytest.mark.django_db(transaction=True)
def test_a_save_of_the_same_instance_from_a_pre_save_receiver_keeps_both_diffs():
    """The outer save's diff is against the row before it began; the nested save's,
    against the row it found (the same: nothing was written in between)."""
    post = Post.objects.create(title="first", slug="nested-diffs")
    save_with_a_nested_save(post)
    settle()
    assert sorted(stored_title_diffs(), key=repr) == [("first", "nested"), ("first", "outer")]


@pytest.mark.django_db(transaction=True)
def test_saves_nested_in_saves_that_read_nothing_and_the_reverse_keep_their_diffs():
    """A create reads no stored row and pushes nothing (capture/diffs.py): an update a
    receiver of its pre_save makes keeps its own diff, and so does an update whose
    pre_save receiver creates another post."""
    from dashboard.capture import diffs

    other = Post.objects.create(title="other", slug="nested-other")
    post = Post.objects.create(title="first", slug="nested-reverse")

    def nested(sender, instance, **kwargs):
        if instance.title == "created":  # a create: it updates the other post
            other.title = "other, updated"
            other.save()
        elif instance.title == "second":  # an update: it creates a post
            Post.objects.create(title="created inside", slug="created-inside")

    pre_save.connect(nested, sender=Post, weak=False, dispatch_uid="nested-reverse")
    try:
        Post.objects.create(title="created", slug="created-outside")
        post.title = "second"
        post.save()
    finally:
        pre_save.disconnect(sender=Post, dispatch_uid="nested-reverse")
    settle()
    assert diffs._reading.get() == ()
    assert sorted(d for d in stored_title_diffs() if d) == [
        ("first", "second"), ("other", "other, updated")]


@pytest.mark.django_db(transaction=True)
def test_pre_saves_event_failing_to_hand_off_still_leaves_the_diff(monkeypatch, caplog):
    from dashboard.capture import dispatch

    handed = dispatch.Dispatch.done

    def failing(self):
        if self.event.signal == "pre_save":
            raise RuntimeError("hand-off failed")
        handed(self)

    post = Post.objects.create(title="first", slug="hand-off-fails")
    monkeypatch.setattr(dispatch.Dispatch, "done", failing)
    post.title = "second"
    post.save()
    settle()
    assert "could not hand off a signal" in caplog.text
    assert stored_title_diffs() == [("first", "second")]


@pytest.mark.django_db(transaction=True)
def test_a_failing_diff_read_costs_that_diff_only(monkeypatch, caplog):
    """The host's save goes on as without us, the send is still recorded, and the
    next update has its diff (what the failed read began was ended with its send)."""
    from dashboard.capture import diffs

    post = Post.objects.create(title="first", slug="read-fails")
    reading = diffs.stored_row

    def failing(instance, using):
        raise RuntimeError("no read")

    monkeypatch.setattr(diffs, "stored_row", failing)
    post.title = "second"
    post.save()
    monkeypatch.setattr(diffs, "stored_row", reading)
    post.title = "third"
    post.save()
    settle()
    assert "could not read the stored row" in caplog.text
    assert diffs._reading.get() == ()
    assert stored_title_diffs().count(None) == 1  # the update whose read failed
    assert ("second", "third") in stored_title_diffs()
    assert Post.objects.get(pk=post.pk).title == "third"


@pytest.mark.django_db(transaction=True)
def test_a_failure_before_the_hook_cannot_unbalance_the_diffs(monkeypatch):
    """A send whose noting fails still ends what its diff read began: the outer save
    keeps its own row."""
    from dashboard.capture import diffs, seen

    post = Post.objects.create(title="first", slug="note-fails")
    noting = seen.note

    def failing_inside(signal, sender):
        if signal is pre_save and post.title == "nested":
            raise RuntimeError("noting failed")
        return noting(signal, sender)

    monkeypatch.setattr(seen, "note", failing_inside)
    save_with_a_nested_save(post)
    settle()
    assert diffs._reading.get() == ()
    assert ("first", "outer") in stored_title_diffs()


@pytest.mark.django_db(transaction=True)
def test_a_row_kept_by_a_save_that_raised_is_not_shown_by_a_later_one():
    from django.db import IntegrityError

    Post.objects.create(title="taken", slug="taken-raised")
    post = Post.objects.create(title="first", slug="raised")
    post.title, post.slug = "failed", "taken-raised"  # fails between pre_save and post_save
    with pytest.raises(IntegrityError):
        post.save()
    post.slug = "raised"
    with override_settings(DASHBOARD={"DIFFS": False}):
        post.title = "no diff"
        post.save()
        settle()
    assert stored_title_diffs() == [None]


@pytest.mark.django_db(transaction=True)
def test_the_hosts_instance_carries_nothing_of_the_dashboards_during_or_after_a_save():
    """Observe, never alter: the diff's stored row is kept beside the instance, not on it
    (a receiver, or a save that raised, sees the object as it would be without us)."""
    from django.db import IntegrityError

    seen: list[tuple[str, list[str]]] = []

    def look(sender, instance, **kwargs):
        when = "pre" if kwargs["signal"] is pre_save else "post"
        seen.append((when, sorted(instance.__dict__)))

    def work(n: int) -> list[tuple[str, list[str]]]:
        seen.clear()
        Post.objects.create(title=f"taken {n}", slug=f"taken-{n}")
        post = Post.objects.create(title=f"carries {n}", slug=f"carries-{n}")
        post.title = "renamed"
        post.save()
        post.slug = f"taken-{n}"  # the update fails between pre_save and post_save
        with pytest.raises(IntegrityError):
            post.save()
        return [*seen, ("after", sorted(post.__dict__))]

    pre_save.connect(look, sender=Post, weak=False, dispatch_uid="carries")
    post_save.connect(look, sender=Post, weak=False, dispatch_uid="carries")
    try:
        with_it, without = with_and_without(work)
    finally:
        pre_save.disconnect(sender=Post, dispatch_uid="carries")
        post_save.disconnect(sender=Post, dispatch_uid="carries")
    assert with_it == without
    assert [what for what, _ in with_it] == [*["pre", "post"] * 3, "pre", "after"]
    assert ("carries 1", "renamed") in stored_title_diffs()  # the diff still made
