"""Every watched signal, caused the way a user causes it, reaches a staff socket."""

import inspect
import re

from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client, override_settings

from blog.models import Post, Tag
from dashboard.capture import signals
from tests.frames import Row, collect, rows
from tests.helpers import in_thread


def only(found: list[Row], signal: str, **match: str) -> Row:
    """The one row of `signal` (whose sender etc. match), failing if none or several."""
    hits = [
        r for r in found if r.signal == signal and all(getattr(r, k) == v for k, v in match.items())
    ]
    assert len(hits) == 1, f"{signal}: {len(hits)} rows in {[(r.signal, r.sender) for r in found]}"
    return hits[0]


async def test_admin_add_form_sends_save_signals(dashboard, staff_client):
    response = await in_thread(
        staff_client.post,
        "/admin/blog/post/add/",
        {
            "title": "From the admin",
            "slug": "",
            "body": "b",
            "status": "draft",
            "comments-TOTAL_FORMS": "0",
            "comments-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content[:500]
    found = rows(await collect(dashboard))

    pre = only(found, "pre_save", sender="blog.Post")
    assert pre.family == "model"
    assert pre.payload["instance"]["str"] == "From the admin"
    assert pre.payload["raw"] is False
    post = only(found, "post_save", sender="blog.Post")
    assert post.payload["created"] is True
    assert post.payload["instance"]["fields"]["slug"] == "from-the-admin"  # the blog's receiver
    assert post.payload["using"] == "default"
    # The request's own signals carry the same request id as its model events.
    req = only(found, "request_started")
    assert req.payload["request"] == {"method": "POST", "path": "/admin/blog/post/add/"}
    assert post.request_id and post.request_id == req.request_id
    assert found.index(pre) < found.index(post)


async def test_update_fields_delete_and_m2m(dashboard, staff_user):
    post = await Post.objects.acreate(title="Tagged", author=staff_user)
    tag = await Tag.objects.acreate(name="t1")
    await collect(dashboard)

    post.title = "Renamed"
    await post.asave(update_fields=["title"])
    await in_thread(post.tags.add, tag)
    await in_thread(post.delete)
    found = rows(await collect(dashboard))

    saved = only(found, "post_save", sender="blog.Post")
    assert saved.payload["created"] is False
    assert saved.payload["update_fields"] == ["title"]
    adds = [r for r in found if r.signal == "m2m_changed"]
    assert [r.payload["action"] for r in adds][:2] == ["pre_add", "post_add"]
    assert adds[1].payload["pk_set"] == [tag.pk]
    assert adds[1].payload["model"] == "blog.Tag"
    assert adds[1].sender == "blog.Post_tags"
    deleted = only(found, "post_delete", sender="blog.Post")
    assert deleted.payload["instance"]["str"] == "Renamed"
    assert only(found, "pre_delete", sender="blog.Post").payload["origin"]["model"] == "blog.Post"


async def test_page_view_sends_request_signals_and_post_viewed(dashboard, staff_client, staff_user):
    await Post.objects.acreate(title="Public", status="published", author=staff_user)
    await collect(dashboard)
    client = Client()
    response = await in_thread(client.get, "/blog/public/")
    assert response.status_code == 200
    found = rows(await collect(dashboard))

    viewed = only(found, "post_viewed")
    assert viewed.family == "blog"
    assert viewed.sender == "blog.Post"
    assert viewed.payload["post"]["str"] == "Public"
    assert viewed.payload["request"]["path"] == "/blog/public/"
    assert only(found, "request_started").payload["request"]["path"] == "/blog/public/"
    finished = only(found, "request_finished")
    assert finished.family == "request"
    assert finished.payload["request"]["path"] == "/blog/public/"


async def test_publishing_sends_post_published_once(dashboard, staff_user):
    post = await Post.objects.acreate(title="Soon", author=staff_user)
    await collect(dashboard)
    post.status = Post.Status.PUBLISHED
    await in_thread(post.save)
    await in_thread(post.save)  # already published: no second post_published
    found = rows(await collect(dashboard))

    published = only(found, "post_published")
    assert published.sender == "blog.Post"
    assert published.payload["post"]["str"] == "Soon"
    await post.arefresh_from_db()
    assert post.published_at is not None  # the blog's own receiver ran


async def test_failing_page_sends_got_request_exception(dashboard):
    response = await in_thread(Client(raise_request_exception=False).get, "/blog/error/")
    assert response.status_code == 500
    found = rows(await collect(dashboard))
    exc = only(found, "got_request_exception")
    assert exc.family == "request"
    assert exc.payload["exception"]["type"] == "RuntimeError"
    assert "fails on purpose" in exc.payload["exception"]["message"]
    assert any("blog/views.py" in frame for frame in exc.payload["exception"]["traceback"])
    assert exc.payload["request"]["path"] == "/blog/error/"


async def test_login_logout_and_failed_login(dashboard, staff_user):
    client = Client()
    await in_thread(
        client.post, "/admin/login/", {"username": "staff", "password": "wrong-password"}
    )
    await in_thread(
        client.post, "/admin/login/", {"username": "staff", "password": "staff-pass-123"}
    )
    await in_thread(client.post, "/admin/logout/")
    found = rows(await collect(dashboard))

    failed = only(found, "user_login_failed")
    assert failed.family == "auth"
    assert failed.sender == "django.contrib.auth"
    assert failed.payload["credentials"]["username"] == "staff"
    assert "wrong-password" not in failed.payload_text
    logged_in = only(found, "user_logged_in")
    assert logged_in.sender == "auth.User"
    assert logged_in.payload["user"]["str"] == "staff"
    assert only(found, "user_logged_out").payload["user"]["str"] == "staff"


async def test_override_settings_sends_setting_changed(dashboard):
    def change() -> None:
        with override_settings(BLOG_TITLE="Signals weekly"):
            pass

    await in_thread(change)
    found = rows(await collect(dashboard))
    enter, leave = [r for r in found if r.signal == "setting_changed"]
    assert enter.family == "settings"
    assert enter.payload["setting"] == "BLOG_TITLE"
    assert enter.payload["value"] == "Signals weekly"
    assert enter.payload["enter"] is True
    assert leave.payload["enter"] is False


async def test_new_database_connection_sends_connection_created(dashboard):
    def reconnect() -> None:
        connections["default"].close()
        connections["default"].ensure_connection()

    await in_thread(reconnect)
    found = rows(await collect(dashboard))
    created = only(found, "connection_created")
    assert created.family == "database"
    assert created.sender == "default (sqlite)"
    assert created.payload["connection"] == {"alias": "default", "vendor": "sqlite"}


# What the README promises to show, Django's and the demo's: each found with no list
# to edit, and each asserted on by name in a test of this module.
PROMISED = {
    "pre_save", "post_save", "pre_delete", "post_delete", "m2m_changed",
    "request_started", "request_finished", "got_request_exception",
    "connection_created", "setting_changed",
    "user_logged_in", "user_logged_out", "user_login_failed",
    "post_published", "post_viewed",
}  # fmt: skip


def test_every_promised_signal_is_discovered_and_covered_above():
    """A test removed, or a promised signal no longer found, fails this."""
    tests = [
        inspect.getsource(test)
        for name, test in globals().items()
        if name.startswith("test_") and "promised" not in name
    ]
    asserted = re.compile(r'(?:only\(found, |r\.signal == )"(\w+)"')
    covered = {name for source in tests for name in asserted.findall(source)}
    assert covered >= PROMISED
    assert {spec.name for _, spec in signals.discovered()} >= PROMISED


async def test_user_model_save_masks_the_password_hash(dashboard):
    await in_thread(get_user_model().objects.create_user, "ada", password="s3cret-pass")
    found = rows(await collect(dashboard))
    saved = only(found, "post_save", sender="auth.User")
    assert saved.payload["instance"]["fields"]["password"] == "•••••"
    assert "pbkdf2" not in saved.payload_text


def test_a_pre_save_sent_by_hand_with_no_model_instance_is_still_recorded(transactional_db):
    """The diff's read of the stored row needs a model instance; without one the event
    is recorded, without a diff (it was dropped, with a traceback logged per send)."""
    from django.db.models.signals import pre_save

    from dashboard.models import StoredEvent
    from tests.helpers import settle

    pre_save.send(sender=Tag, instance="not a model", raw=False, using="default")
    settle()
    assert StoredEvent.objects.filter(signal="pre_save", sender="blog.Tag").exists()


def test_a_signal_sent_by_a_function_or_method_names_it(transactional_db):
    """A sender that is a function or a bound method is named for what it is (its
    qualified name), not for its type ("function", "method"); a name past the history's
    column (PostgreSQL refuses a longer one, and the row with it) is cut."""
    from django.dispatch import Signal
    from django.utils.safestring import SafeString

    from dashboard.models import StoredEvent
    from tests.helpers import settle

    def nudge() -> None: ...

    class Shop:
        def restock(self) -> None: ...

    def deep() -> None: ...

    deep.__qualname__ = "outer.<locals>." * 30 + "deep"  # past the history's column

    restocked = Signal()  # found by no module: named "signal-<id>"
    restocked.send(sender=nudge)
    restocked.send(sender=Shop().restock)
    restocked.send(sender=Shop())
    restocked.send(sender=deep)
    restocked.send(sender=str.join, then=nudge, each=[Shop().restock, len])  # built-ins' too
    restocked.send(sender=SafeString("a shop"))  # a str of its own: as text, as a str is
    settle()
    stored = StoredEvent.objects.filter(signal__startswith="signal-").order_by("id")
    senders = list(stored.values_list("sender", flat=True))
    assert senders == [
        "test_a_signal_sent_by_a_function_or_method_names_it.<locals>.nudge",
        "test_a_signal_sent_by_a_function_or_method_names_it.<locals>.Shop.restock",
        "test_a_signal_sent_by_a_function_or_method_names_it.<locals>.Shop",
        deep.__qualname__[:200],  # cut to StoredEvent.sender's max_length
        "str.join",
        "a shop",
    ]
    # Functions passed as values are named too (where they live), not "<function>".
    payload = stored.get(sender="str.join").payload
    here = "tests.test_capture.test_a_signal_sent_by_a_function_or_method_names_it.<locals>"
    assert payload["then"] == f"<function {here}.nudge>"
    assert payload["each"] == [f"<method {here}.Shop.restock>", "<function builtins.len>"]
