"""What caused what, exceptions that point at the project's code, and a request's
trace as a test: dashboard.testing.record_signals and the snippet built on it."""

import contextlib
import re

import pytest

from blog.models import Post
from blog.signals import post_published
from dashboard.capture import writes
from dashboard.models import StoredEvent
from dashboard.testing import record_signals
from tests.helpers import agent, settle


@pytest.mark.django_db(transaction=True)
def test_an_event_sent_from_a_receiver_names_its_cause():
    def cascade(sender, post, **kwargs):
        post.body = "touched by a receiver"
        post.save()  # pre_save and post_save, sent from post_published's dispatch

    post_published.connect(cascade)
    try:
        Post.objects.create(title="caused", status="published")
    finally:
        post_published.disconnect(cascade)
    settle()
    published = StoredEvent.objects.get(signal="post_published")
    saves = StoredEvent.objects.filter(
        signal__in=["pre_save", "post_save"], sender="blog.Post"
    ).order_by("id")
    caused = [e for e in saves if e.detail["cause"] == published.detail["cid"]]
    assert [e.signal for e in caused] == ["pre_save", "post_save"]
    assert published.detail["cause"] is None  # sent by Post.save itself, no dispatch around
    assert all(e.detail["cause"] is None for e in saves if e not in caused)


def test_an_exceptions_detail_shows_the_project_frames_with_their_lines(staff_client):
    staff_client.get("/blog/error/")
    settle()
    event = StoredEvent.objects.get(signal="got_request_exception")
    frames = event.payload["exception"]["project_frames"]
    assert [f["where"].split(":")[0] for f in frames] == ["blog/views.py"]
    assert frames[0]["function"] == "fail"
    assert any("raise RuntimeError" in text for _, text in frames[0]["lines"])


@pytest.mark.django_db(transaction=True)
def test_record_signals_sees_every_signal_of_the_block_in_order():
    with record_signals() as sent:
        post = Post.objects.create(title="recorded")
        post_published.send(sender=Post, post=post)
    assert sent.pairs() == [
        ("pre_save", "blog.Post"),
        ("post_save", "blog.Post"),
        ("post_published", "blog.Post"),
    ]
    assert sent[2].kwargs["post"] is post  # the very object the receivers got
    with record_signals() as nothing:
        pass
    assert nothing == []


def test_record_signals_sees_signals_the_dashboard_neither_records_nor_hears():
    """pre_init and post_init: not recorded by default and without receivers here, so
    their sends skip the capture (capture/dispatch.py), but not a recording's."""
    Post(title="before")  # the hook has seen them: nothing to do for them
    with record_signals(ignore=()) as sent:
        Post(title="recorded")
    assert sent.pairs() == [("pre_init", "blog.Post"), ("post_init", "blog.Post")]


def test_a_requests_trace_copies_as_a_test_that_passes(staff_client):
    post = Post.objects.create(title="As a test", status="published")
    settle()
    staff_client.get(f"/blog/{post.slug}/")
    settle()
    viewed = StoredEvent.objects.filter(signal="post_viewed").latest("id")
    snippet = staff_client.get(f"/events/{viewed.key}/test.py").content.decode()
    assert "with record_signals() as sent:" in snippet
    assert f"client.get('/blog/{post.slug}/')" in snippet
    assert "('post_viewed', 'blog.Post')," in snippet
    # And it runs: the same request asserts the same signals.
    namespace: dict = {}
    exec(compile(snippet, "snippet", "exec"), namespace)
    (test,) = [f for name, f in namespace.items() if name.startswith("test_")]
    test(staff_client)


@pytest.mark.django_db(transaction=True)
def test_each_dispatch_says_which_receivers_did_not_run_and_why():
    import gc

    from django.db.models.signals import post_save

    from blog.models import Tag

    def for_tags(sender, **kwargs):
        pass

    def twice(sender, **kwargs):
        pass

    def short_lived(sender, **kwargs):
        pass

    post_save.connect(for_tags, sender=Tag)
    post_save.connect(twice, sender=Post, dispatch_uid="one")
    post_save.connect(twice, sender=Post, dispatch_uid="two")
    post_save.connect(short_lived, sender=Post)  # weak: gone once this test drops it
    del short_lived
    gc.collect()
    try:
        Post.objects.create(title="who did not run")
    finally:
        post_save.disconnect(for_tags, sender=Tag)
        post_save.disconnect(sender=Post, dispatch_uid="one")
        post_save.disconnect(sender=Post, dispatch_uid="two")
    settle()
    event = StoredEvent.objects.get(signal="post_save", sender="blog.Post")
    why = {r["name"].rsplit(".", 1)[-1]: r["why"] for r in event.detail["not_run"]}
    assert why["for_tags"] == "connected for blog.Tag"  # as Django intends: folded away
    folded = [r["name"].rsplit(".", 1)[-1] for r in event.detail["not_run"] if r.get("other")]
    assert folded == ["bump_post_on_comment", "for_tags"]  # for blog.Comment and blog.Tag
    assert why["twice"].startswith("ran 2 times")
    assert why["(gone)"].startswith("garbage-collected")


@pytest.mark.django_db(transaction=True)
def test_what_did_not_run_follows_receivers_connected_and_disconnected_between_sends():
    """What did not run is worked out once per signal and sender while its receivers stay
    as they are (core/payload.py): each send still names those connected at its time."""
    from django.contrib.auth.models import User
    from django.db.models.signals import post_save

    from blog.models import Tag

    def for_tags(sender, **kwargs):
        pass

    def for_users(sender, **kwargs):
        pass

    Post.objects.create(title="nothing more")
    with connected(post_save, for_tags, Tag):
        Post.objects.create(title="one for tags")
        post_save.connect(for_users, sender=User)
    try:  # as many receivers as just before, one of them another
        Post.objects.create(title="one for users")
    finally:
        post_save.disconnect(for_users, sender=User)
    Post.objects.create(title="nothing more again")
    settle()
    skipped_by = {
        e.payload["instance"]["str"]: [r["name"].rsplit(".", 1)[-1] for r in e.detail["not_run"]]
        for e in StoredEvent.objects.filter(signal="post_save", sender="blog.Post")
    }
    assert skipped_by == {
        "nothing more": ["bump_post_on_comment"],
        "one for tags": ["bump_post_on_comment", "for_tags"],
        "one for users": ["bump_post_on_comment", "for_users"],
        "nothing more again": ["bump_post_on_comment"],
    }


class Listener:
    def on_save(self, sender, **kwargs):
        pass

    def on_tags(self, sender, **kwargs):
        pass


@pytest.mark.django_db(transaction=True)
def test_a_method_connected_twice_is_said_to_run_twice_once():
    """Connected weakly (Django's default), a method comes back as a new bound-method
    object each time: equal, never the same object."""
    from django.db.models.signals import post_save

    listener = Listener()
    post_save.connect(listener.on_save, sender=Post, dispatch_uid="one")
    post_save.connect(listener.on_save, sender=Post, dispatch_uid="two")
    try:
        Post.objects.create(title="a method twice")
    finally:
        post_save.disconnect(sender=Post, dispatch_uid="one")
        post_save.disconnect(sender=Post, dispatch_uid="two")
    settle()
    event = StoredEvent.objects.get(signal="post_save", sender="blog.Post")
    twice = [r for r in event.detail["not_run"] if r["why"].startswith("ran 2 times")]
    assert [r["name"].rsplit(".", 1)[-1] for r in twice] == ["on_save"]


@pytest.mark.django_db(transaction=True)
def test_a_receiver_connected_weakly_is_not_kept_alive_by_the_dashboard():
    """Naming a receiver (it ran, or did not run for another sender) must not keep it:
    connected weakly, it goes with its object, as without the dashboard."""
    import gc
    import weakref

    from django.db.models.signals import post_save

    from blog.models import Tag

    listener = Listener()
    post_save.connect(listener.on_save, sender=Post)
    post_save.connect(listener.on_tags, sender=Tag)
    Post.objects.create(title="named, then let go")
    settle()
    gone = weakref.ref(listener)
    del listener
    gc.collect()
    assert gone() is None
    assert not post_save.has_listeners(Tag)


def not_run_of(title: str) -> list[str]:
    """The receivers that did not run for the post_save of the post titled `title`."""
    (event,) = [e for e in StoredEvent.objects.filter(signal="post_save", sender="blog.Post")
                if e.payload["instance"]["str"] == title]  # fmt: skip
    return [r["name"].rsplit(".", 1)[-1] for r in event.detail["not_run"]]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("connected_for", ["blog.Post", "blog.Tag"])
def test_a_receiver_collected_between_two_sends_is_said_to_be_gone(connected_for):
    """What did not run is worked out once while the receivers stay as they are
    (core/payload.py): one collected since, whether connected for this sender or another,
    is still found gone at the next send."""
    import gc

    from django.apps import apps
    from django.db.models.signals import post_save

    def short_lived(sender, **kwargs):
        pass

    post_save.connect(short_lived, sender=apps.get_model(connected_for))  # weakly
    Post.objects.create(title="while it lives")
    del short_lived
    gc.collect()
    Post.objects.create(title="once it is gone")
    settle()
    assert "(gone)" in not_run_of("once it is gone")
    assert "short_lived" not in not_run_of("once it is gone")


@pytest.mark.django_db(transaction=True)
def test_a_receiver_disconnected_is_not_kept_alive_by_the_dashboard():
    """Connected strongly, then disconnected: it goes with its object, as without the
    dashboard (what did not run, worked out once, keeps no receiver)."""
    import gc
    import weakref

    from django.db.models.signals import post_save

    from blog.models import Tag

    listener = Listener()
    post_save.connect(listener.on_tags, sender=Tag, weak=False)
    Post.objects.create(title="skipped a strong one")
    post_save.disconnect(listener.on_tags, sender=Tag)
    settle()
    gone = weakref.ref(listener)
    del listener
    gc.collect()
    assert gone() is None


class RefusesComparison:
    """A receiver object whose __eq__ raises (the host's code)."""

    def __call__(self, sender, **kwargs):
        pass

    def __eq__(self, other):
        raise RuntimeError("not comparable")

    __hash__ = object.__hash__


@pytest.mark.django_db(transaction=True)
def test_a_receivers_own_eq_is_never_run_to_tell_what_did_not_run():
    """One receiver replaced by another under the same dispatch_uid between two sends: the
    second send names the new one, and no receiver's __eq__ is asked (it raises here)."""
    from django.db.models.signals import post_save

    from blog.models import Tag

    post_save.connect(RefusesComparison(), sender=Tag, weak=False, dispatch_uid="refuses")
    Post.objects.create(title="the first object")
    post_save.disconnect(sender=Tag, dispatch_uid="refuses")
    post_save.connect(RefusesComparison(), sender=Tag, weak=False, dispatch_uid="refuses")
    try:
        Post.objects.create(title="the second object")
    finally:
        post_save.disconnect(sender=Tag, dispatch_uid="refuses")
    settle()
    assert "RefusesComparison" in not_run_of("the second object")


@pytest.mark.django_db(transaction=True)
def test_a_relation_nobody_listens_to_says_why_no_m2m_changed_came():
    """Django sends add()'s m2m_changed only while a receiver listens for the relation
    (remove() sends its own always); the dashboard connects none (never alter): the
    write itself is shown, saying so."""
    from django.contrib.auth.models import Group, Permission

    group = Group.objects.create(name="editors")
    perms = list(Permission.objects.order_by("pk")[:2])
    group.permissions.add(*perms)
    group.permissions.remove(perms[0])
    settle()
    sent = StoredEvent.objects.filter(signal="m2m_changed")
    assert sorted(e.payload["action"] for e in sent) == ["post_remove", "pre_remove"]
    found = {e.signal: e for e in StoredEvent.objects.filter(sender="auth.Group_permissions")}
    assert found["QuerySet.bulk_create"].payload["rows"] == 2
    assert found["QuerySet.bulk_create"].summary.endswith(
        "no m2m_changed sent: no receiver listens to auth.Group.permissions")
    assert found["QuerySet.delete"].summary.endswith("no pre_delete/post_delete sent")


@pytest.mark.django_db(transaction=True)
def test_add_on_a_relation_someone_listens_to_does_not_say_no_m2m_changed_came():
    from django.db.models.signals import m2m_changed

    from blog.models import Tag

    assert m2m_changed.has_listeners(Post.tags.through)  # blog.signals.touch_on_tag_change
    post = Post.objects.create(title="tagged", slug="tagged")
    post.tags.add(Tag.objects.create(name="t1"))
    settle()
    actions = sorted(e.payload["action"] for e in StoredEvent.objects.filter(signal="m2m_changed"))
    assert actions == ["post_add", "pre_add"]
    rows = StoredEvent.objects.get(signal="QuerySet.bulk_create", sender="blog.Post_tags")
    assert rows.summary.endswith("no pre_save/post_save sent")


@pytest.mark.django_db(transaction=True)
def test_writes_that_send_no_signal_show_as_events_of_their_own():
    from blog.models import Comment

    posts = Post.objects.bulk_create([Post(title=f"bulk {i}", slug=f"bulk-{i}") for i in range(3)])
    Post.objects.filter(title__startswith="bulk").update(body="updated in bulk")
    for post in posts:
        post.body = "one by one"
    Post.objects.bulk_update(posts, ["body"])
    Comment.objects.bulk_create([Comment(post=posts[0], name="n", body="c") for _ in range(4)])
    Comment.objects.all().delete()  # no delete receiver for comments: Django's fast path
    settle()
    found = {
        e.signal: (e.sender, e.payload["rows"], e.summary)
        for e in StoredEvent.objects.filter(signal__startswith="QuerySet.")
    }
    assert found["QuerySet.update"][:2] == ("blog.Post", 3)
    assert "3 rows (body set), no pre_save/post_save sent" in found["QuerySet.update"][2]
    assert found["QuerySet.bulk_update"][:2] == ("blog.Post", 3)
    assert found["QuerySet.delete"][:2] == ("blog.Comment", 4)
    assert "no pre_delete/post_delete sent" in found["QuerySet.delete"][2]
    assert {e.family for e in StoredEvent.objects.filter(signal__startswith="QuerySet.")} == {
        "model"
    }
    from dashboard.core.events import WRITE_EVENTS

    assert set(found) <= set(WRITE_EVENTS)  # each listed on the page beside the signals
    origins = StoredEvent.objects.filter(signal="QuerySet.update").values_list("detail", flat=True)
    assert all(d["origin"].startswith("tests/test_causes.py:") for d in origins)


@pytest.mark.django_db(transaction=True)
def test_deletes_django_sends_no_signal_for_show_as_events_of_their_own(staff_client):
    """An instance deleted on Django's fast path (no receiver for its model, nothing to
    cascade: the admin's delete of a comment), and what cascades from a delete that is
    signalled (a post's comments, its tags' through rows): each model's rows one event."""
    from blog.models import Comment, Tag

    post = Post.objects.create(title="to delete", slug="to-delete")
    post.tags.add(Tag.objects.create(name="gone"))
    comments = [Comment.objects.create(post=post, name="n", body=f"c{i}") for i in range(3)]
    first = comments[0]
    response = staff_client.post(f"/admin/blog/comment/{first.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    post.delete()
    settle()
    deletes = StoredEvent.objects.filter(signal__endswith="delete", sender__startswith="blog.")
    deletes = deletes.order_by("seq")
    found = [(e.signal, e.sender, e.payload.get("rows"), e.payload.get("note")) for e in deletes]
    assert found[:3] == [
        ("Model.delete", "blog.Comment", 1, "no pre_delete/post_delete sent"),
        ("pre_delete", "blog.Post", None, None),
        ("post_delete", "blog.Post", None, None),
    ]
    cascaded = "no pre_delete/post_delete sent (cascaded from blog.Post)"
    assert sorted(found[3:]) == [
        ("Model.delete", "blog.Comment", 2, cascaded),
        ("Model.delete", "blog.Post_tags", 1, cascaded),
    ]
    # Deleted once the post's pre_delete was sent, before its post_delete: so they begin.
    times = {e.signal + (" " + e.sender if e.signal == "Model.delete" else ""): e.time
             for e in deletes[1:]}  # fmt: skip
    assert times["pre_delete"] < times["Model.delete blog.Comment"] < times["post_delete"]
    origin = deletes.last().detail["origin"]
    assert origin.startswith("tests/test_causes.py:")
    # Each such write's name is one the page lists beside the signals' (core/events.py).
    from dashboard.core.events import WRITE_EVENTS

    assert {signal for signal, *_ in found if "." in signal} <= set(WRITE_EVENTS)


def test_an_objects_timeline_lists_every_event_about_it_with_its_changes(staff_client):
    from django.db import transaction

    post = Post.objects.create(title="First title")
    post.title = "Second title"
    post.save()
    post_published.send(sender=Post, post=post)
    with contextlib.suppress(RuntimeError), transaction.atomic():
        post.title = "Never saved"
        post.save()
        raise RuntimeError
    Post.objects.create(title="Another post")
    settle()
    html = staff_client.get(f"/objects/blog.Post/{post.pk}/").content.decode()
    shown = [part.split("<")[0] for part in html.split('<span class="sig">')[1:]]
    # (its first pre_save came before it had a pk)
    # (post_published's receiver stamps it with an update(), by pk: ended before it)
    assert shown == ["post_save", "pre_save", "post_save", "QuerySet.update", "post_published",
                     "pre_save", "post_save"]  # fmt: skip
    # The save that rolled back is struck through and badged, as on the dashboard (an id
    # reused by SQLite put another object's rolled-back rows there, unmarked).
    assert html.count('class="fam-model rolled-back"') == 2
    assert html.count(">rolled back</span>") == 2
    assert "times in UTC" in html
    assert '<code>title</code>: <span class="old">First title</span>' in html
    assert "Another post" not in html
    assert staff_client.get("/objects/blog.Post/99999/").status_code == 200


def test_writes_by_pk_name_their_objects_and_are_on_the_objects_timeline(staff_client):
    """An update or a delete filtered by pk sends no signal: its row names the objects its
    filter limited it to (a pk, a short list of them), so that an object's timeline holds
    the update that set its field; any other filter names none."""
    from django.db.models import Q

    from blog.models import Comment

    post, other = Post.objects.create(title="Stamped"), Post.objects.create(title="Other")
    Post.objects.filter(pk=post.pk).update(body="stamped")
    Post.objects.filter(pk__in=[post.pk, other.pk], title__startswith="").update(body="both")
    Post.objects.filter(title="Stamped").update(body="by title")
    Post.objects.filter(Q(pk=post.pk) | Q(pk=other.pk)).update(body="either")
    Post.objects.exclude(pk=post.pk).update(body="not it")
    Post.objects.filter(pk__in=[post.pk, other.pk]).filter(pk=other.pk).update(body="other")
    Post.objects.filter(pk=post.pk, title="no such title").update(body="none")  # 0 rows
    comment = Comment.objects.create(post=other, name="n", body="c")
    # A joined copy's pk is not the write's: the comments of the post of comment #n.
    Comment.objects.filter(post__comments__pk=comment.pk).update(body="siblings")
    Comment.objects.filter(pk=comment.pk).delete()  # Django's fast path: no signal
    again = Comment.objects.create(post=other, name="n", body="again")
    again_pk = again.pk
    again.delete()  # an instance: the fast path too, its pk None once deleted
    settle()
    kinds = ["QuerySet.update", "QuerySet.delete", "Model.delete"]
    writes = StoredEvent.objects.filter(signal__in=kinds, sender__startswith="blog.")
    writes = writes.order_by("seq")
    named = [(e.signal, e.sender, e.payload.get("objects")) for e in writes]
    assert named == [
        ("QuerySet.update", "blog.Post", [{"model": "blog.Post", "pk": post.pk}]),
        ("QuerySet.update", "blog.Post", [{"model": "blog.Post", "pk": post.pk},
                                          {"model": "blog.Post", "pk": other.pk}]),
        ("QuerySet.update", "blog.Post", None),
        ("QuerySet.update", "blog.Post", None),
        ("QuerySet.update", "blog.Post", None),
        ("QuerySet.update", "blog.Post", [{"model": "blog.Post", "pk": other.pk}]),
        ("QuerySet.update", "blog.Post", None),
        ("QuerySet.update", "blog.Comment", None),
        ("QuerySet.delete", "blog.Comment", [{"model": "blog.Comment", "pk": comment.pk}]),
        ("Model.delete", "blog.Comment", [{"model": "blog.Comment", "pk": again_pk}]),
    ]  # fmt: skip
    assert writes[0].summary == f"#{post.pk}: 1 row (body set), no pre_save/post_save sent"
    assert writes[1].summary.startswith(f"#{post.pk}, #{other.pk}: 2 rows (body set)")

    html = staff_client.get(f"/objects/blog.Post/{post.pk}/").content.decode()
    shown = [part.split("<")[0] for part in html.split('<span class="sig">')[1:]]
    assert shown == ["post_save", "QuerySet.update", "QuerySet.update"]
    # A secret-looking model's pk (a session's key) is masked, as its instance's is.
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session

    session = SessionStore()
    session.create()
    Session.objects.filter(pk=session.session_key).update(session_data="x")
    settle()
    touched = StoredEvent.objects.get(signal="QuerySet.update", sender="sessions.Session")
    assert touched.payload["objects"] == [{"model": "sessions.Session", "pk": "•••••"}]
    assert session.session_key not in touched.summary + touched.search_text
    # The detail of a write that named one object links to its timeline.
    detail = staff_client.get(f"/events/{writes[0].key}/", **HTMX).content.decode()
    assert f"every event about blog.Post #{post.pk}" in detail


HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "detail"}


def test_the_detail_shows_the_tree_what_did_not_run_the_failing_lines_and_links(staff_client):
    from django.test import override_settings

    def cascade(sender, post, **kwargs):
        post.save()

    post_published.connect(cascade)
    try:
        Post.objects.create(title="tree", status="published")
    finally:
        post_published.disconnect(cascade)
    staff_client.get("/blog/error/")
    settle()
    published = StoredEvent.objects.get(signal="post_published")
    caused = StoredEvent.objects.filter(detail__cause=published.detail["cid"])
    child = caused.get(signal="post_save")
    html = staff_client.get(f"/events/{published.key}/", **HTMX).content.decode()
    assert f'href="/events/{child.key}/"' in html.split("<dt>Caused</dt>")[1]
    html = staff_client.get(f"/events/{child.key}/", **HTMX).content.decode()
    assert f'href="/events/{published.key}/"' in html.split("<dt>Caused by</dt>")[1]
    assert f"/objects/blog.Post/{child.payload['instance']['pk']}/" in html
    assert f'/events/{child.key}/test.py"' in html

    failed = StoredEvent.objects.get(signal="got_request_exception")
    with override_settings(DASHBOARD={"EDITOR_URL": "vscode://file/{path}:{line}"}):
        html = staff_client.get(f"/events/{failed.key}/", **HTMX).content.decode()
    assert "Where it failed, in the project&#x27;s code" in html or "in the project's code" in html
    assert '<span class="here">' in html and "raise RuntimeError" in html
    assert 'href="vscode://file/' in html and "blog/views.py:" in html
    html = staff_client.get(f"/events/{failed.key}/", **HTMX).content.decode()
    assert "vscode://" not in html  # off by default


@pytest.mark.django_db(transaction=True)
def test_each_receiver_counts_its_own_queries_not_those_it_sets_off():
    def counting(sender, post, **kwargs):
        Post.objects.count()
        Post.objects.create(title="nested")  # fill_slug's query is its own; the INSERT ours

    post_published.connect(counting)
    try:
        Post.objects.create(title="counted", status="published")
    finally:
        post_published.disconnect(counting)
    settle()
    published = StoredEvent.objects.get(signal="post_published")
    receivers = {r["name"].rsplit(".", 1)[-1]: r for r in published.detail["receivers"]}
    assert receivers["counting"]["queries"] == 2
    assert receivers["stamp_publication"]["queries"] == 1  # its update()
    assert all(r["sql_ms"] >= 0 for r in receivers.values())
    nested = StoredEvent.objects.get(
        signal="pre_save", payload__instance__str="nested", detail__cause=published.detail["cid"]
    )
    (fill_slug,) = nested.detail["receivers"]
    assert fill_slug["name"] == "blog.signals.fill_slug" and fill_slug["queries"] == 1
    order = [r["name"] for r in published.detail["receivers"]]
    assert nested.detail["cause_receiver"] == order.index(f"{__name__}.{counting.__qualname__}")
    assert published.detail["ms"] >= receivers["counting"]["ms"]
    # The update stamp_publication ran is a row caused by it too.
    update = StoredEvent.objects.get(signal="QuerySet.update")
    assert update.detail["cause"] == published.detail["cid"]
    assert update.detail["cause_receiver"] == order.index("blog.signals.stamp_publication")


@pytest.mark.django_db(transaction=True)
def test_counting_a_receivers_queries_puts_nothing_on_the_connection():
    """The one wrapper put there as the connection opened counts them: none is added
    per receiver (a receiver that looks at the wrappers sees the host's own)."""
    from django.db import connection

    seen = []

    def inner(sender, post, **kwargs):
        seen.append(len(connection.execute_wrappers))
        Post.objects.count()

    before = list(connection.execute_wrappers)
    post_published.connect(inner)
    try:
        post_published.send(sender=Post, post=Post.objects.create(title="w"))
    finally:
        post_published.disconnect(inner)
    assert writes.detect_write in before
    assert seen == [len(before)]
    assert connection.execute_wrappers == before


def _text(html: str) -> str:
    import re

    return re.sub(r"<[^>]+>", "", html)


def test_a_requests_detail_is_a_waterfall_of_its_tree_with_each_receivers_sql(staff_client):
    import re

    staff_client.post("/blog/playground/publish/", {"token": "waterfall"})
    settle()
    published = StoredEvent.objects.get(signal="post_published")
    html = staff_client.get(f"/events/{published.key}/", **HTMX).content.decode()
    waterfall = html.split('<div class="waterfall"')[1].split("</div>")[0]
    lines = re.findall(r'<li class="([^"]*)" style="--depth: (\d+)">(.*?)</li>', waterfall, re.S)
    labels = [
        ("wf-receiver" if "receiver" in cls else "", int(depth), _text(body).split("\n")[1].strip())
        for cls, depth, body in lines
    ]
    names = [label for _, _, label in labels]
    at = names.index("post_published blog.Post")
    assert labels[at + 1][:2] == ("wf-receiver", labels[at][1] + 1)
    assert "stamp_publication" in names[at + 1]
    assert names[at + 2] == "QuerySet.update blog.Post"  # under the receiver that ran it
    assert labels[at + 2][1] == labels[at][1] + 2
    assert names[0].startswith("request_started")  # in the order they began
    # Each line a bar placed in time, and the receiver's own query shown.
    bars = re.findall(r'class="wf-bar" style="--at: ([\d.]+)%; --w: ([\d.]+)%"', waterfall)
    assert len(bars) == len(lines)
    starts = [float(a) for a, _ in bars]
    assert starts[0] == min(starts) and max(starts) > 0
    assert all(float(a) >= 0 and float(a) + float(w) <= 100.01 for a, w in bars)
    assert "1 query" in lines[at + 1][2]
    assert re.search(r'<td class="sql">1 q · [\d.]+ ms</td>', html)  # the receivers table


@pytest.mark.django_db(transaction=True)
def test_raw_sql_that_writes_is_an_event_with_its_table_model_and_call_site():
    from django.db import DatabaseError, connection

    from dashboard.core.quiet import quiet_block

    post = Post.objects.create(title="raw")
    Post.objects.filter(pk=post.pk).update(body="through the ORM")  # not raw
    with connection.cursor() as cursor:
        cursor.execute("UPDATE blog_post SET body = 'a secret' WHERE id = %s", [post.pk])
        assert cursor.rowcount == 1  # Django's answer, as without the dashboard
        cursor.execute("SELECT body FROM blog_post WHERE id = %s", [post.pk])
        assert cursor.fetchone() == ("a secret",)
        cursor.execute("CREATE TABLE scratch (n integer)")
        cursor.executemany("INSERT INTO scratch (n) VALUES (%s)", [(1,), (2,)])
        with quiet_block():
            cursor.execute("DELETE FROM scratch")
        with pytest.raises(DatabaseError):  # Django's error, unchanged
            cursor.execute("UPDATE no_such_table SET n = 1")
    settle()
    found = list(StoredEvent.objects.filter(signal__startswith="cursor.").order_by("id"))
    assert [(e.signal, e.family, e.sender, e.payload["rows"]) for e in found] == [
        ("cursor.execute", "model", "blog.Post", 1),
        ("cursor.executemany", "database", "scratch", 2),
    ]
    update = found[0]
    assert update.payload["statement"] == "UPDATE blog_post SET body = '…' WHERE id = %s"
    assert "a secret" not in str(update.payload) and "a secret" not in update.summary
    assert update.summary.startswith("UPDATE blog_post · 1 row, raw SQL")
    assert update.detail["origin"].startswith("tests/test_causes.py:")
    # The ORM's own writes are never shown as raw SQL.
    assert not StoredEvent.objects.filter(signal__startswith="cursor.", sender="blog.Post")[1:]


def agent_patching(monkeypatch) -> dict:
    """A package's patch of Django's cursor methods, in sentry-sdk's shape, installed for
    the test (helpers.AGENT); its functions."""
    from django.db.backends.utils import CursorWrapper

    package = agent()
    for name in ("execute", "executemany"):
        real = getattr(CursorWrapper, name)
        monkeypatch.setattr(CursorWrapper, name, package["instrumented"](real))
    return package


@pytest.mark.parametrize("debug_cursor", [False, True])
@pytest.mark.django_db(transaction=True)
def test_orm_writes_through_another_packages_cursor_patch_are_not_raw_sql(
    monkeypatch, debug_cursor
):
    """With sentry-sdk installed, every ORM write showed a second time, as raw SQL: its
    frames between the ORM and the cursor were taken for a package's raw write. (Under
    DEBUG, Django's debug cursor calls the patched method in turn.)"""
    from django.db import connections

    connection = connections["default"]
    monkeypatch.setattr(connection, "force_debug_cursor", debug_cursor)
    agent_patching(monkeypatch)
    post = Post.objects.create(title="through an agent")
    post.title = "saved again"
    post.save()
    Post.objects.filter(pk=post.pk).update(body="updated")
    Post.objects.bulk_create([Post(title=f"bulk {n}", slug=f"bulk-{n}") for n in (1, 2)])
    Post.objects.filter(title__startswith="bulk").delete()
    with connection.cursor() as cursor:  # through the agent too: still raw SQL
        cursor.execute("UPDATE blog_post SET body = 'raw' WHERE id = %s", [post.pk])
    settle()
    found = [(e.signal, e.sender) for e in StoredEvent.objects.filter(signal__startswith="cursor.")]
    assert found == [("cursor.execute", "blog.Post")]


@pytest.mark.parametrize("patched", [False, True])
@pytest.mark.django_db(transaction=True)
def test_raw_writes_that_django_calls_back_are_shown_with_or_without_a_cursor_patch(
    monkeypatch, patched
):
    """Raw SQL of a package's that Django's own code calls back (on_commit), and of code
    with no file (a shell's `-c`), is shown, with a package's patch of the cursor or not:
    only the patch's own frames are passed over."""
    import functools

    from django.core.management import call_command
    from django.db import transaction

    package = agent_patching(monkeypatch) if patched else agent()
    post = Post.objects.create(title="called back")
    # Called by Django's transaction.py itself (autocommit: at once), no frame between.
    transaction.on_commit(functools.partial(package["raw_write"], post.pk))
    call_command("shell", command=(  # `manage.py shell -c`: code with no file, run by Django
        "from django.db import connection\n"
        f"connection.cursor().execute(\"UPDATE blog_post SET body = 'shell' WHERE id = {post.pk}\")"
    ))
    settle()
    statements = [e.payload["statement"] for e in StoredEvent.objects.filter(
        signal__startswith="cursor.").order_by("id")]  # fmt: skip
    assert statements == [
        "UPDATE blog_post SET body = '…' WHERE id = %s",
        f"UPDATE blog_post SET body = '…' WHERE id = {post.pk}",
    ]


@pytest.mark.django_db(transaction=True)
def test_loaddata_saves_are_marked_raw_in_their_rows():
    from django.core.management import call_command

    from blog.models import Tag

    call_command("loaddata", "playground_tags", verbosity=0)
    settle()
    assert Tag.objects.filter(name="from a fixture").exists()
    saved = StoredEvent.objects.get(signal="post_save", sender="blog.Tag")
    assert saved.payload["raw"] is True
    assert "raw: loaded from a fixture (loaddata)" in saved.summary


def test_a_trace_with_a_nested_save_copies_as_a_test_in_the_order_sent(staff_client):
    post = Post.objects.create(title="Commented", status="published")
    settle()
    staff_client.post(f"/blog/{post.slug}/comment/", {"name": "n", "body": "first!"})
    settle()
    comment_saved = StoredEvent.objects.get(signal="post_save", sender="blog.Comment")
    bumped = StoredEvent.objects.filter(signal="post_save", sender="blog.Post").latest("id")
    assert bumped.detail["cause"] == comment_saved.detail["cid"]  # the demo's nested save
    assert bumped.id < comment_saved.id  # stored as it ended: before its cause
    snippet = staff_client.get(f"/events/{comment_saved.key}/test.py").content.decode()
    assert snippet.index("'blog.Comment'),\n        ('post_save', 'blog.Comment')") < snippet.index(
        "('pre_save', 'blog.Post')"
    )
    namespace: dict = {}
    exec(compile(snippet.replace("{}", "{'name': 'n', 'body': 'again'}"), "snippet", "exec"),
         namespace)  # fmt: skip
    (test,) = [f for name, f in namespace.items() if name.startswith("test_")]
    test(staff_client)


def test_the_playground_shows_a_nested_save_a_raw_write_and_raw_saves(staff_client):
    def events_of(action: str) -> list[StoredEvent]:
        answer = staff_client.post(f"/blog/playground/{action}/", {"token": action}).json()
        settle()
        return list(StoredEvent.objects.filter(request_id=answer["request"]).order_by("id"))

    comment = events_of("comment")
    cause = next(e for e in comment if e.signal == "post_save" and e.sender == "blog.Comment")
    caused = [(e.signal, e.sender) for e in comment if e.detail.get("cause") == cause.detail["cid"]]
    assert caused == [("pre_save", "blog.Post"), ("post_save", "blog.Post")]

    (raw,) = [e for e in events_of("raw-sql") if e.signal == "cursor.execute"]
    assert (raw.family, raw.sender, raw.payload["rows"]) == ("model", "blog.Post", 1)
    assert raw.detail["origin"].startswith("blog/playground.py:")

    saves = [e for e in events_of("loaddata") if e.signal in ("pre_save", "post_save")]
    assert [e.sender for e in saves] == ["blog.Tag", "blog.Tag"]
    assert all(e.payload["raw"] is True and "raw: loaded" in e.summary for e in saves)


@pytest.mark.django_db(transaction=True)
def test_the_sql_counters_and_the_write_detector_pass_django_the_same_sql():
    """Observe, never alter: what reaches Django's executor, innermost, is the same with
    the dashboard's execute wrappers and without them (the diff's pre-read switched off)."""
    import re

    from django.db import connection
    from django.test import override_settings

    from dashboard.capture import dispatch

    def work(n: int) -> list[tuple[str, int]]:
        reached: list[tuple[str, int]] = []

        def innermost(execute, sql, params, many, context):
            reached.append((re.sub(r"\d+", "N", sql), len(params or ())))
            return execute(sql, params, many, context)

        with connection.execute_wrapper(innermost):
            post = Post.objects.create(title=f"same {n}", status="published")  # receivers' SQL
            with connection.cursor() as cursor:
                cursor.execute("UPDATE blog_post SET body = %s WHERE id = %s", ["raw", post.pk])
            post.delete()
        return reached

    with override_settings(DASHBOARD={"DIFFS": False}):
        connection.ensure_connection()
        assert writes.detect_write in connection.execute_wrappers
        with_them = work(1)
        writes.uninstall()
        dispatch.uninstall()
        try:
            assert writes.detect_write not in connection.execute_wrappers
            without = work(2)
        finally:
            dispatch.install()
            writes.install()
    settle()
    assert with_them == without and len(with_them) >= 5
    assert connection.execute_wrappers == [writes.detect_write]


def test_a_long_requests_waterfall_is_cut_and_says_how_much(staff_client, monkeypatch):
    from dashboard import views

    staff_client.post("/blog/playground/publish/", {"token": "long"})
    settle()
    published = StoredEvent.objects.get(signal="post_published")
    monkeypatch.setattr(views, "TRACE_LINES", 3)
    html = staff_client.get(f"/events/{published.key}/", **HTMX).content.decode()
    waterfall = html.split('<div class="waterfall"')[1].split("</div>")[0]
    assert waterfall.count('<span class="wf-bar"') == 3
    assert re.search(r"… and \d+ more lines", waterfall)


def test_a_selection_of_events_copies_as_a_test(staff_client):
    post = Post.objects.create(title="Selected")  # outside any request
    staff_client.get("/blog/error/")
    post.title = "Selected again"
    post.save()
    settle()
    snippet = staff_client.get("/export-test.py?signal=post_save&sender=post").content.decode()
    assert "...  # the code that sent them" in snippet  # no one request to replay
    assert snippet.count("('post_save', 'blog.Post')") == 2
    assert "got_request_exception" not in snippet and "pre_save" not in snippet

    def test_with(code: str):
        namespace: dict = {"Post": Post}
        filled = snippet.replace("...  # the code that sent them", code)
        exec(compile(filled, "snippet", "exec"), namespace)
        (test,) = [f for name, f in namespace.items() if name.startswith("test_")]
        return test

    # In this order among others (pre_save too): with the code filled in, it passes;
    # with code that sends them once, it fails.
    test_with("Post.objects.create(title='x').save()")()
    with pytest.raises(AssertionError):
        test_with("Post.objects.create(title='y')")()
    assert 'id="export-test" href="/export-test.py?' in staff_client.get("/").content.decode()
    assert staff_client.get("/export-test.py?signal=nothing").status_code == 200  # empty: ok


@pytest.mark.django_db(transaction=True)
def test_a_raw_writes_values_never_show_even_in_a_long_statement():
    from django.db import connection

    post = Post.objects.create(title="long")
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE blog_post SET body = '{'s3cret' * 500}' WHERE id = %s", [post.pk])
    settle()
    (event,) = StoredEvent.objects.filter(signal="cursor.execute")
    assert event.payload["statement"].startswith("UPDATE blog_post SET body = '…'")
    assert "s3cret" not in str(event.payload) + event.summary


@contextlib.contextmanager
def connected(signal, receiver, sender):
    """`receiver` connected for `sender` while the block runs."""
    signal.connect(receiver, sender=sender)
    try:
        yield
    finally:
        signal.disconnect(receiver, sender=sender)


def skipped(event, name: str) -> dict:
    """The event's entry for the receiver `name` among those that did not run."""
    [item] = [r for r in event.detail["not_run"] if r["name"].endswith(name)]
    return item


@pytest.fixture
def featured_post():
    """A proxy of blog.Post, registered for one test (a proxy has no table of its own)."""
    from django.apps import apps

    meta = type("Meta", (), {"proxy": True, "app_label": "blog"})
    model = type("FeaturedPost", (Post,), {"__module__": __name__, "Meta": meta})
    yield model
    del apps.all_models["blog"]["featuredpost"]
    apps.clear_cache()


@pytest.mark.django_db(transaction=True)
def test_a_receiver_connected_for_the_model_says_why_it_did_not_run_for_its_proxy(
    featured_post, staff_client
):
    from django.db.models.signals import post_save

    def on_post(sender, **kwargs):
        pass

    with connected(post_save, on_post, Post):
        featured_post.objects.create(title="through the proxy")
    settle()
    event = StoredEvent.objects.get(signal="post_save", sender="blog.FeaturedPost")
    item = skipped(event, "on_post")
    assert item["why"].startswith(
        "connected for blog.Post only, and this was sent for blog.FeaturedPost, a proxy of it"
    )
    assert "other" not in item
    # In the detail: in the table of surprises, not folded away with the unrelated ones.
    html = staff_client.get(f"/events/{event.key}/", **HTMX).content.decode()
    surprises, folded = html.split('<details class="other-senders">')
    assert "on_post" in surprises.split("did not run as you may expect")[1]
    assert "on_post" not in folded and "bump_post_on_comment" in folded  # for blog.Comment


@pytest.mark.django_db(transaction=True)
def test_a_string_sender_on_a_plain_signal_is_said_to_have_never_been_sent_with(staff_client):
    """The blog's mistake kept on purpose: notify_subscribers, connected for the string
    "blog.Post" on a plain Signal, never runs; each post_published says why, unfolded."""
    Post.objects.create(title="published", status="published")
    settle()
    event = StoredEvent.objects.get(signal="post_published")
    item = skipped(event, "notify_subscribers")
    assert item["why"].startswith(
        "connected for a sender this signal has not been sent with since start-up"
    )
    assert "other" not in item
    html = staff_client.get(f"/events/{event.key}/", **HTMX).content.decode()
    assert "notify_subscribers" in html.split("did not run as you may expect")[1]
    assert 'class="other-senders"' not in html  # nothing connected for another sender


def test_an_event_stored_before_the_fold_still_folds_its_other_senders(staff_client):
    Post.objects.create(title="older")
    settle()
    event = StoredEvent.objects.get(signal="post_save", sender="blog.Post")
    event.detail["not_run"] = [{"name": "app.old_receiver", "where": "",
                                "why": "connected for another sender"}]  # fmt: skip
    event.save()
    html = staff_client.get(f"/events/{event.key}/", **HTMX).content.decode()
    assert "did not run as you may expect" not in html
    folded = html.split('<details class="other-senders">')[1]
    assert "1 more receiver of post_save, connected for other senders" in folded
    assert "app.old_receiver" in folded


@pytest.mark.django_db(transaction=True)
def test_the_reasons_kept_per_receiver_do_not_grow_with_instance_senders():
    """A signal sent with a new instance each time: one reason kept for the receiver
    connected for another sender, not one per sender seen."""
    from django.dispatch import Signal

    from dashboard.core import payload

    ping = Signal()

    class Sender:
        pass

    def for_one(sender, **kwargs):
        pass

    one = Sender()
    ping.connect(for_one, sender=one)
    # First: whether `one` was ever sent is part of the reason, read as each event is
    # handed on, and a batch handed on before it was sent (a slow loop outlasting the
    # pump's window) made a second, rightly (1 run in about 30).
    ping.send(sender=one)
    for _ in range(50):
        ping.send(sender=Sender())
    settle()
    assert len(payload._another_sender[id(for_one)]) == 1


@pytest.mark.django_db(transaction=True)
def test_m2m_changed_connected_for_the_model_is_said_to_be_sent_with_the_through_model():
    from django.db.models.signals import m2m_changed

    from blog.models import Tag

    def on_tags(sender, **kwargs):
        pass

    with connected(m2m_changed, on_tags, Post):  # the classic slip: Post.tags.through it is
        post = Post.objects.create(title="tagged")
        post.tags.add(Tag.objects.create(name="through"))
    settle()
    item = skipped(StoredEvent.objects.filter(signal="m2m_changed").first(), "on_tags")
    assert item["why"] == (
        "connected for blog.Post, but m2m_changed is sent with the relation's through model, "
        "blog.Post_tags: connect it for blog.Post.<field>.through"
    )
    assert "other" not in item


def test_why_a_receiver_connected_for_an_abstract_swapped_or_related_model_did_not_run():
    from django.contrib.auth.models import User
    from django.db import models
    from django.test import override_settings
    from django.test.utils import isolate_apps

    from dashboard.core.senders import connected_class, why_not

    with isolate_apps("blog"):

        class Stamped(models.Model):
            class Meta:
                abstract = True
                app_label = "blog"

        class Place(Stamped):  # noqa: DJ008
            class Meta:
                app_label = "blog"

        class Restaurant(Place):  # noqa: DJ008  # multi-table: a table of its own, its parent's too
            class Meta:
                app_label = "blog"

        class Listed(Place):  # noqa: DJ008
            class Meta:
                proxy = True
                app_label = "blog"

        assert connected_class(id(Stamped), Place) is Stamped  # not installed: found by the MRO
        why, other = why_not("post_save", Stamped, Place, False)
        assert why.startswith("connected for blog.Stamped, an abstract model") and not other
        why, other = why_not("post_save", Place, Listed, False)
        assert "a proxy of it" in why and not other
        # A proxy's receiver not run for its model, nor a multi-table parent's or child's
        # (on delete, Django sends for the parent as well): as intended, folded.
        for connected, sent in ((Listed, Place), (Place, Restaurant), (Restaurant, Place)):
            assert why_not("post_save", connected, sent, False) == (
                f"connected for {connected._meta.label}", True
            )
    with override_settings(AUTH_USER_MODEL="blog.Writer"):
        why, other = why_not("post_save", User, Post, False)
    assert why.startswith("connected for auth.User, which AUTH_USER_MODEL swaps for blog.Writer")
    assert not other
    assert why_not("post_save", None, Post, True)[1] is False  # never sent with: said
    assert why_not("post_save", None, Post, False) == ("connected for another sender", True)


@pytest.mark.django_db(transaction=True)
def test_a_reason_that_cannot_be_found_leaves_the_plain_one_and_the_event_stored(
    monkeypatch, caplog
):
    from django.db.models.signals import post_save

    from blog.models import Tag
    from dashboard.core import payload, senders

    def for_tags(sender, **kwargs):
        pass

    def broken(*args):
        raise ValueError("the registry changed under us")

    monkeypatch.setattr(senders, "why_not", broken)
    monkeypatch.setattr(payload, "_reason_failed", [])  # said once a process: here
    with connected(post_save, for_tags, Tag):
        Post.objects.create(title="a reason lost")
        Post.objects.create(title="and another")
    settle()
    events = list(StoredEvent.objects.filter(signal="post_save", sender="blog.Post"))
    assert len(events) == 2  # stored, both
    for event in events:
        item = skipped(event, "for_tags")
        assert (item["why"], item["other"]) == ("connected for another sender", True)
    assert caplog.text.count("could not say why a receiver did not run") == 1


@pytest.mark.django_db(transaction=True)
def test_a_save_with_update_fields_says_it_changed_only_what_it_wrote():
    post = Post.objects.create(title="before", body="same")
    post.title, post.body = "after", "changed in memory only"
    post.save(update_fields=["title"])
    settle()
    event = StoredEvent.objects.filter(signal="post_save", sender="blog.Post").latest("id")
    assert [c["field"] for c in event.detail["diff"]] == ["title"]  # not body, not updated
    assert event.summary.endswith(" · fields title · changed title")
