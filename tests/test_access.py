"""The dashboard and its socket: for users with its permission, from our own origin, for
as long as they have it; each shown what they may see."""

import time

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
    assert response["Location"].startswith("/login/?next=/")


@pytest.mark.django_db(transaction=True)
def test_a_user_without_the_permission_is_refused_the_page(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("reader2", password="x" * 12))
    response = client.get("/")
    assert response.status_code == 403
    page = response.content.decode()  # says why, and what to do: not a bare "403 Forbidden"
    assert "reader2" in page and "<code>dashboard.view_storedevent</code>" in page
    assert 'href="/login/?next=' not in page and 'href="/login/"' in page


@pytest.mark.django_db(transaction=True)
def test_a_viewer_who_is_not_staff_logs_in_at_the_dashboards_own_page(client, django_user_model):
    """The admin's login turns away whoever is not staff; the permission needs no staff."""
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", password="viewer-pass-123")
    viewer.user_permissions.add(Permission.objects.get(codename="view_storedevent"))
    login = client.get("/").headers["Location"]
    assert login == "/login/?next=/"
    form = client.get(login)
    assert form.status_code == 200 and 'name="password"' in form.content.decode()
    wrong = client.post(login, {"username": "viewer", "password": "nope", "next": "/"})
    assert wrong.status_code == 200 and 'role="alert"' in wrong.content.decode()
    done = client.post(login, {"username": "viewer", "password": "viewer-pass-123", "next": "/"})
    assert done.status_code == 302 and done.headers["Location"] == "/"
    assert client.get("/").status_code == 200
    # Logged out through the dashboard's own button (a POST), back to its login.
    out = client.post("/logout/")
    assert out.status_code == 302 and out.headers["Location"] == "/login/"
    assert client.get("/").status_code == 302
    # Not quiet, as the dashboard's own pages are: the project's authentication.
    from dashboard.models import StoredEvent
    from tests.helpers import settle

    settle()
    signals = set(StoredEvent.objects.filter(family="auth").values_list("signal", flat=True))
    assert signals >= {"user_login_failed", "user_logged_in", "user_logged_out"}


def _user(django_user_model, name: str, viewer: bool):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user(name, password="user-pass-123")
    if viewer:
        user.user_permissions.add(Permission.objects.get(codename="view_storedevent"))
    return user


@pytest.mark.django_db(transaction=True)
def test_a_login_page_of_the_projects_own_is_used_where_there_is_one(client, django_user_model):
    """Single sign-on, a second factor: the dashboard's form is no way around it."""
    _user(django_user_model, "someone", viewer=True)
    with override_settings(LOGIN_URL="/blog/"):
        assert client.get("/").headers["Location"] == "/blog/?next=/"
        response = client.post("/login/", {"username": "someone", "password": "user-pass-123"})
        assert response.status_code == 302 and response.headers["Location"].startswith("/blog/")
        assert "_auth_user_id" not in client.session


@pytest.mark.django_db(transaction=True)
def test_the_dashboards_login_lets_in_only_who_may_view_it(client, django_user_model):
    """Not a way into the rest of the site for every account (the admin's lets in staff
    only): a customer's password there gets no session."""
    _user(django_user_model, "customer", viewer=False)
    response = client.post("/login/", {"username": "customer", "password": "user-pass-123"})
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    assert "may not view the signals dashboard" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_viewer_already_in_is_sent_on_from_the_login(client, django_user_model):
    client.force_login(_user(django_user_model, "viewer5", viewer=True))
    response = client.get("/login/?next=/diagnostics/")
    assert response.status_code == 302 and response.headers["Location"] == "/diagnostics/"


@pytest.mark.django_db(transaction=True)
@override_settings(ROOT_URLCONF="tests.urls_login_kwargs")
def test_a_projects_login_page_routed_with_extra_arguments_is_its_login(client):
    """Its match carries the route's own keyword arguments: not a catch-all's capture."""
    response = client.get("/login/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db(transaction=True)
@override_settings(ROOT_URLCONF="tests.urls_catch_all")
def test_a_catch_all_url_is_not_taken_for_a_login_page(client):
    """A CMS's catch-all answers /accounts/login/ too, with its 404: not a login page."""
    login = client.get("/signals/").headers["Location"]
    assert login == "/signals/login/?next=/signals/"
    page = client.get(login)
    assert page.status_code == 200 and 'name="password"' in page.content.decode()


def test_staff_page_renders_table_socket_and_counters(staff_client):
    html = staff_client.get("/").content.decode()
    assert 'ws-connect="/socket/"' in html
    assert '<tbody id="events">' in html
    assert 'data-count-for="post_published"' in html
    assert "blog.signals.fill_slug" in html  # the blog's receiver, listed under pre_save
    assert "/static/django_htmx/ext/hx-ws-2" in html


# -- origins, exactly: scheme, host and port ------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        b"http://127.0.0.1:8001",  # another service on another port of the same host
        b"https://127.0.0.1:8000",  # another scheme
        b"http://127.0.0.1",  # port 80
        b"http://localhost:8000",  # an allowed host, but not the one asked
        b"null",
        b"http://127.0.0.1:8000.evil.example",
    ],
)
async def test_a_page_of_any_other_origin_is_refused(staff_client, origin):
    assert await refused(staff_client, (b"origin", origin))


def refusals(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "refused the socket" in r.getMessage()]


async def test_a_refused_socket_is_said_in_the_log_once(staff_client, caplog, monkeypatch):
    """The refused page only shows 'offline': the log says why, once per origin, its
    control characters escaped; a scanner's many origins cannot fill the log, nor keep
    the next real one out of it for good."""
    from dashboard import origins

    origins._refused.clear()
    origins._said_at.clear()
    for _ in range(2):
        assert await refused(staff_client, (b"origin", b"http://127.0.0.1:8001"))
    said = refusals(caplog)
    assert said == [
        "dashboard: refused the socket of a page from origin 'http://127.0.0.1:8001' to host "
        "'127.0.0.1:8000': the host must be in ALLOWED_HOSTS and the origin the same scheme, "
        "host and port (or in CSRF_TRUSTED_ORIGINS)"
    ]
    scope = {"headers": [(b"host", b"127.0.0.1:8000"), (b"origin", b"http://e\x08\x1b[2J")]}
    origins._said_once(scope)
    assert refusals(caplog)[-1].startswith(
        "dashboard: refused the socket of a page from origin 'http://e\\x08\\x1b[2J'"
    )
    for n in range(40):  # a scan: 8 more lines this minute, 32 counted
        origins._said_once({"headers": [(b"host", b"h"), (b"origin", f"http://{n}".encode())]})
    assert len(refusals(caplog)) == origins.SAID_PER_MINUTE
    later = time.monotonic() + 61
    monkeypatch.setattr(origins.time, "monotonic", lambda: later)
    origins._said_once({"headers": [(b"host", b"h"), (b"origin", b"http://real.example")]})
    assert refusals(caplog)[-1].endswith("; 32 more refused, not logged")
    assert "'http://real.example'" in refusals(caplog)[-1]


async def test_a_socket_without_an_origin_is_refused(staff_client):
    from channels.testing import WebsocketCommunicator

    from config.asgi import application
    from tests.helpers import session_headers

    headers = [h for h in session_headers(staff_client) if h[0] != b"origin"]
    comm = WebsocketCommunicator(application, "/socket/", headers=headers)
    connected, _ = await comm.connect()
    await comm.disconnect()
    assert not connected


def proxied(origin: str, host: str = "dash.example.com", proto: str | None = "https"):
    from dashboard.origins import allowed

    headers = [(b"host", host.encode()), (b"origin", origin.encode())]
    if proto:
        headers.append((b"x-forwarded-proto", proto.encode()))
    return allowed({"type": "websocket", "scheme": "ws", "headers": headers})


@override_settings(
    ALLOWED_HOSTS=["dash.example.com"],
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
)
def test_behind_a_tls_proxy_the_https_origin_is_the_sockets_own():
    assert proxied("https://dash.example.com")
    assert not proxied("http://dash.example.com")  # what the proxy did not say
    assert not proxied("https://dash.example.com", proto=None)
    assert not proxied("https://dash.example.com:8443")


def test_with_use_x_forwarded_host_the_forwarded_host_is_the_sockets_own():
    from dashboard.origins import allowed

    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"x-forwarded-host", b"dash.example.com"),
        (b"x-forwarded-proto", b"https"),
        (b"origin", b"https://dash.example.com"),
    ]
    scope = {"type": "websocket", "headers": headers}
    proxy = {"ALLOWED_HOSTS": ["dash.example.com"],
             "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https")}  # fmt: skip
    with override_settings(**proxy, USE_X_FORWARDED_HOST=True):
        assert allowed(scope)
    with override_settings(**proxy):  # not trusted unless the project says so
        assert not allowed(scope)


def test_a_new_startproject_s_empty_allowed_hosts_in_debug_is_read_as_django_reads_it():
    """startproject writes ALLOWED_HOSTS = [] with DEBUG = True: Django then serves the
    local names, and the socket was refused on them (the page stayed 'offline')."""
    local = [("http://127.0.0.1:8000", "127.0.0.1:8000"), ("http://localhost:8000",
             "localhost:8000"), ("http://[::1]:8000", "[::1]:8000")]  # fmt: skip
    with override_settings(ALLOWED_HOSTS=[], DEBUG=True):
        assert all(proxied(origin, host=host, proto=None) for origin, host in local)
        assert not proxied("http://dash.example.com", host="dash.example.com", proto=None)
        assert not proxied("http://evil.example:8000", host="127.0.0.1:8000", proto=None)
    with override_settings(ALLOWED_HOSTS=[], DEBUG=False):  # Django serves nothing then
        assert not proxied("http://127.0.0.1:8000", host="127.0.0.1:8000", proto=None)


@override_settings(
    ALLOWED_HOSTS=["127.0.0.1"],
    CSRF_TRUSTED_ORIGINS=["https://dash.example.com", "https://*.tools.example"],
)
def test_csrf_trusted_origins_are_trusted_with_their_scheme_and_port():
    assert proxied("https://dash.example.com", host="127.0.0.1:8000", proto=None)
    assert proxied("https://a.tools.example", host="127.0.0.1:8000", proto=None)
    assert not proxied("http://dash.example.com", host="127.0.0.1:8000", proto=None)
    assert not proxied("https://dash.example.com:444", host="127.0.0.1:8000", proto=None)
    assert not proxied("https://evil.example", host="127.0.0.1:8000", proto=None)


@override_settings(ALLOWED_HOSTS=["127.0.0.1"])
def test_a_host_outside_allowed_hosts_is_refused_even_from_its_own_origin():
    assert not proxied("http://evil.example:8000", host="evil.example:8000", proto=None)
    assert proxied("http://127.0.0.1:8000", host="127.0.0.1:8000", proto=None)


# -- access that follows the user, live ---------------------------------------------

RECHECK = {"ACCESS_RECHECK": 0.2}


async def closes_with(comm) -> int:
    """The code the server closes this socket with, within a few re-checks."""
    while True:
        output = await comm.receive_output(timeout=3)  # fails if it stays open
        if output["type"] == "websocket.close":
            return output["code"]


async def open_socket(client):
    from tests.helpers import resumed

    comm = communicator(client)
    assert (await comm.connect())[0]
    await resumed(comm)
    return comm


def _logout(client):
    client.logout()  # the session is flushed: its key is gone


def _expire(client):
    from datetime import timedelta

    from django.contrib.sessions.models import Session
    from django.utils import timezone

    Session.objects.filter(session_key=client.session.session_key).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )


def _deactivate(client, user):
    user.is_active = False
    user.save()


@pytest.mark.parametrize("end", ["logout", "expire", "deactivate", "flush_all"])
async def test_a_socket_closes_4401_when_its_session_ends(staff_user, staff_client, end):
    from django.contrib.sessions.models import Session

    from dashboard.live.fanout import fanout

    with override_settings(DASHBOARD=RECHECK):
        comm = await open_socket(staff_client)
        if end == "logout":
            await in_thread(_logout, staff_client)
        elif end == "expire":
            await in_thread(_expire, staff_client)
        elif end == "deactivate":
            await in_thread(_deactivate, staff_client, staff_user)
        else:
            await in_thread(lambda: Session.objects.all().delete())  # e.g. clearsessions
        assert await closes_with(comm) == 4401
    assert not fanout.subscribers


async def test_a_socket_closes_4403_when_the_permission_is_taken_away(transactional_db):
    from django.contrib.auth.models import Permission

    def viewer():
        user = get_user_model().objects.create_user("viewer", password="x" * 12)
        perm = Permission.objects.get(codename="view_storedevent")
        user.user_permissions.add(perm)
        client = Client()
        client.force_login(user)
        return user, perm, client

    user, perm, client = await in_thread(viewer)
    with override_settings(DASHBOARD=RECHECK):
        comm = await open_socket(client)
        await in_thread(user.user_permissions.remove, perm)
        assert await closes_with(comm) == 4403


async def test_a_socket_whose_user_keeps_access_stays_open(staff_client):
    with override_settings(DASHBOARD=RECHECK):
        comm = await open_socket(staff_client)
        assert await comm.receive_nothing(timeout=1)  # five re-checks, nothing said
        await comm.disconnect()


@pytest.mark.django_db
def test_an_htmx_request_of_an_ended_session_redirects_the_whole_page(client):
    response = client.get(
        "/events/host-1.1/", headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/?family=auth"}
    )
    assert response.status_code == 200 and "Location" not in response
    assert response["HX-Redirect"] == "/login/?next=/%3Ffamily%3Dauth"
    assert b"<form" not in response.content  # never the login form inside a panel


@pytest.mark.django_db(transaction=True)
def test_an_htmx_request_without_the_permission_says_so_in_a_fragment(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("reader3", password="x" * 12))
    response = client.get("/?family=auth", headers={"HX-Request": "true", "HX-Target": "history"})
    assert response.status_code == 403
    assert b'id="session-ended"' in response.content and b"<form" not in response.content


@pytest.mark.django_db(transaction=True)
def test_the_sockets_address_over_http_says_why_a_handshake_would_be_refused(
    client, django_user_model
):
    assert client.get("/socket/").status_code == 401
    client.force_login(django_user_model.objects.create_user("reader4", password="x" * 12))
    assert client.get("/socket/").status_code == 403
    client.force_login(django_user_model.objects.create_superuser("boss", password="x" * 12))
    assert client.get("/socket/").status_code == 200


async def test_the_sockets_of_one_session_share_one_recheck(monkeypatch, transactional_db):
    import asyncio

    from dashboard.live import consumer

    calls = []

    def access_now(key, pk):
        calls.append(key)
        return 0, None

    monkeypatch.setattr(consumer, "access_now", access_now)
    monkeypatch.setattr(consumer, "_checks", {})
    with override_settings(DASHBOARD={"ACCESS_RECHECK": 60}):
        answers = await asyncio.gather(*[consumer.shared_check("s1", 1) for _ in range(300)])
        await consumer.shared_check("s2", 2)
    assert answers == [(0, None)] * 300
    assert calls == ["s1", "s2"]
