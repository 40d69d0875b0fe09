"""What caused what, exceptions that point at the project's code, and a request's
trace as a test: dashboard.testing.record_signals and the snippet built on it."""

import pytest

from blog.models import Post
from blog.signals import post_published
from dashboard.models import StoredEvent
from dashboard.testing import record_signals
from tests.helpers import settle


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
    assert why["for_tags"] == "connected for another sender"
    assert why["twice"].startswith("ran 2 times")
    assert why["(gone)"].startswith("garbage-collected")


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
    assert "3 rows of body, no pre_save/post_save sent" in found["QuerySet.update"][2]
    assert found["QuerySet.bulk_update"][:2] == ("blog.Post", 3)
    assert found["QuerySet.delete"][:2] == ("blog.Comment", 4)
    assert "no pre_delete/post_delete sent" in found["QuerySet.delete"][2]
    assert {e.family for e in StoredEvent.objects.filter(signal__startswith="QuerySet.")} == {
        "model"
    }
    origins = StoredEvent.objects.filter(signal="QuerySet.update").values_list("detail", flat=True)
    assert all(d["origin"].startswith("tests/test_causes.py:") for d in origins)


def test_an_objects_timeline_lists_every_event_about_it_with_its_changes(staff_client):
    post = Post.objects.create(title="First title")
    post.title = "Second title"
    post.save()
    post_published.send(sender=Post, post=post)
    Post.objects.create(title="Another post")
    settle()
    html = staff_client.get(f"/objects/blog.Post/{post.pk}/").content.decode()
    shown = [part.split("<")[0] for part in html.split('<span class="sig">')[1:]]
    # (its first pre_save came before it had a pk)
    assert shown == ["post_save", "pre_save", "post_save", "post_published"]
    assert '<code>title</code>: <span class="old">First title</span>' in html
    assert "Another post" not in html
    assert staff_client.get("/objects/blog.Post/99999/").status_code == 200


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
