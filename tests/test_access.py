"""The dashboard and its socket are for staff only, from our own origin."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

from tests.helpers import communicator, in_thread


async def refused(client: Client | None, origin: tuple[bytes, bytes] | None = None) -> bool:
    comm = communicator(client, origin) if origin else communicator(client)
    connected, _ = await comm.connect()
    await comm.disconnect()
    return not connected


async def test_staff_socket_is_accepted(staff_client):
    assert not await refused(staff_client)


async def test_anonymous_socket_is_refused(transactional_db):
    assert await refused(None)


async def test_non_staff_socket_is_refused(transactional_db):
    user = await in_thread(get_user_model().objects.create_user, "reader", password="reader-pass")
    client = Client()
    await in_thread(client.force_login, user)
    assert await refused(client)


async def test_inactive_staff_socket_is_refused(staff_user, staff_client):
    staff_user.is_active = False
    await staff_user.asave()
    assert await refused(staff_client)


async def test_inactive_staff_socket_is_refused_by_the_socket_itself(staff_user):
    """Django's default backend already turns an inactive user's session into an anonymous
    one; with a backend that does not (AllowAllUsersModelBackend), the socket's own check
    is what refuses it."""
    backend = "django.contrib.auth.backends.AllowAllUsersModelBackend"
    with override_settings(AUTHENTICATION_BACKENDS=[backend]):
        client = Client()
        await in_thread(client.force_login, staff_user, backend)
        assert not await refused(client)  # this backend's session gets in...
        staff_user.is_active = False
        await staff_user.asave()
        assert await refused(client)  # ...and the same session, once inactive, does not


async def test_foreign_origin_socket_is_refused(staff_client):
    assert await refused(staff_client, (b"origin", b"http://evil.example"))


@pytest.mark.django_db
def test_anonymous_page_redirects_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/")


@pytest.mark.django_db
def test_non_staff_page_redirects_to_login(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("reader2", password="x" * 12))
    assert client.get("/").status_code == 302


def test_staff_page_renders_table_socket_and_counters(staff_client):
    html = staff_client.get("/").content.decode()
    assert 'ws-connect="/socket/"' in html
    assert '<tbody id="events">' in html
    assert 'data-count-for="post_published"' in html
    assert "blog.signals.fill_slug" in html  # the blog's receiver, listed under pre_save
    assert "/static/django_htmx/ext/hx-ws-2" in html
