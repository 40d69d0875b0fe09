"""A permission of the dashboard's own, and what each viewer may see of other users'
data (history/access.py): checked for the page, detail, exports, object timeline,
as-test and socket alike, and for history and live rows in one place."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from blog.models import Post
from dashboard.history.access import VIEW
from dashboard.models import StoredEvent
from tests.frames import collect, rows
from tests.helpers import communicator, in_thread, resumed, settle


def user_with(username: str, *perms: str, staff: bool = True):
    user = get_user_model().objects.create_user(username, password="x" * 12, is_staff=staff)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return get_user_model().objects.get(pk=user.pk)  # no cached permissions


def client_of(user) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def some_events(author) -> StoredEvent:
    """A post saved, a failed login, a user saved; the post's post_save."""
    from django.contrib.auth import authenticate

    Post.objects.create(title="a draft", author=author)
    authenticate(username="failed-login-name", password="wrong")
    author.email = "private@example.com"
    author.save()
    settle()
    return StoredEvent.objects.get(signal="post_save", sender="blog.Post")


URLS = ["/", "/events/{key}/", "/events/{key}/test.py", "/export.ndjson", "/export.csv",
        "/objects/blog.Post/{pk}/"]  # fmt: skip


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("url", URLS)
def test_staff_without_the_dashboards_permission_is_refused_everywhere(url, staff_user):
    saved = some_events(staff_user)
    client = client_of(user_with("plain-staff"))
    response = client.get(url.format(key=saved.key, pk=saved.payload["instance"]["pk"]))
    assert response.status_code == 403


@pytest.mark.django_db(transaction=True)
def test_the_permission_without_staff_is_enough():
    viewer = user_with("viewer", VIEW, staff=False)
    assert client_of(viewer).get("/").status_code == 200


async def test_the_socket_needs_the_permission_too(transactional_db):
    staff = await in_thread(user_with, "plain-staff")
    comm = communicator(await in_thread(client_of, staff))
    connected, _ = await comm.connect()
    assert not connected
    viewer = await in_thread(user_with, "viewer", VIEW, staff=False)
    comm = communicator(await in_thread(client_of, viewer))
    connected, _ = await comm.connect()
    assert connected
    await comm.disconnect()


def seen_by(client: Client) -> dict[str, bytes]:
    return {
        "page": client.get("/").content,
        "export": b"".join(client.get("/export.ndjson").streaming_content),
        "csv": b"".join(client.get("/export.csv").streaming_content),
    }


@pytest.mark.django_db(transaction=True)
def test_a_viewer_sees_only_what_their_model_permissions_allow(staff_user):
    saved = some_events(staff_user)
    viewer = client_of(user_with("viewer", VIEW))
    for what, body in seen_by(viewer).items():
        assert b"a draft" not in body, what  # blog.Post needs blog.view_post
        assert b"private@example.com" not in body, what  # auth.User needs auth.view_user
        assert b"failed-login-name" not in body, what  # auth's signals need auth.view_user
    assert viewer.get(f"/events/{saved.key}/").status_code == 404
    assert viewer.get(f"/objects/blog.Post/{saved.payload['instance']['pk']}/").status_code == 404

    may_view_posts = client_of(user_with("editor", VIEW, "blog.view_post"))
    for what, body in seen_by(may_view_posts).items():
        assert b"a draft" in body, what
        assert b"private@example.com" not in body, what
    assert may_view_posts.get(f"/events/{saved.key}/").status_code == 200

    may_view_users = client_of(user_with("admin2", VIEW, "auth.view_user"))
    body = seen_by(may_view_users)["export"]
    assert b"private@example.com" in body and b"failed-login-name" in body
    assert b"a draft" not in body
    for body in seen_by(client_of(staff_user)).values():  # a superuser sees everything
        assert b"a draft" in body and b"private@example.com" in body


async def test_live_rows_a_viewer_may_not_see_do_not_reach_their_socket(staff_user):
    viewer = await in_thread(user_with, "viewer", VIEW, "blog.view_tag")
    comm = communicator(await in_thread(client_of, viewer))
    assert (await comm.connect())[0]
    await resumed(comm)

    def act() -> None:
        from blog.models import Tag

        Post.objects.create(title="a live draft", author=staff_user)
        Tag.objects.create(name="shown-tag")

    await in_thread(act)
    await in_thread(settle)
    frames = await collect(comm, quiet_for=0.5)
    raw = "".join(f.raw for f in frames)
    assert "a live draft" not in raw
    got = rows(frames)
    assert "blog.Tag" in {r.sender for r in got}  # what it may see still comes, once
    assert [r.signal for r in got if r.sender == "blog.Tag"] == ["pre_save", "post_save"]
    assert not {r.sender for r in got} & {"blog.Post", "auth.User"}
    counts = {k: v for f in frames for k, v in f.counts.items()}
    assert counts.get("pre_save") == 1  # the hidden post's save is not counted either
    await comm.disconnect()


async def test_a_superuser_gets_the_live_frame_as_it_is(dashboard, staff_user):
    await in_thread(Post.objects.create, title="for the superuser", author=staff_user)
    assert "for the superuser" in "".join(f.raw for f in await collect(dashboard))


def test_resume_of_a_viewer_is_filtered_too(transactional_db, staff_user):
    # The resume's backfill goes through the same reads (history/reads.py).
    from dashboard.core.filters import EventFilter
    from dashboard.history import access, reads

    viewer = user_with("viewer", VIEW)
    some_events(staff_user)  # and everything before it stored
    missed = reads.backfill(0, EventFilter.from_query({}), {}, 500, access.allowed(viewer))
    assert not {r.sender for r in missed.rows} & {"blog.Post", "auth.User", "sessions.Session"}
    assert not {r.family for r in missed.rows} & {"auth"}
    everything = reads.backfill(0, EventFilter.from_query({}), {}, 500)
    assert missed.highest == everything.highest  # the page need not wait for hidden ones
    assert json.dumps(missed.counts) != json.dumps(everything.counts)
