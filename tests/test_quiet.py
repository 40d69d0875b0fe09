"""Showing an event never causes one: the dashboard's own traffic is not captured."""

from asgiref.testing import ApplicationCommunicator
from django.test import Client

from config.asgi import application
from tests.frames import collect, rows
from tests.helpers import communicator, in_thread, session_headers


async def asgi_get(client: Client | None, path: str) -> int:
    """A GET through the real ASGI stack (context middleware, static handler, Django).

    Waits for the application to finish: request_finished is sent after the body.
    """
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": b"",
        "headers": session_headers(client),
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
    }
    comm = ApplicationCommunicator(application, scope)
    await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await comm.receive_output(timeout=5)
    while (await comm.receive_output(timeout=5)).get("more_body"):
        pass
    await comm.wait(timeout=5)
    return start["status"]


async def test_dashboard_page_static_files_and_sockets_send_nothing(dashboard, staff_client):
    assert await asgi_get(staff_client, "/") == 200
    assert await asgi_get(staff_client, "/static/css/site.css") == 200
    assert await asgi_get(staff_client, "/static/django_htmx/htmx-2.min.js") == 200
    assert await asgi_get(None, "/favicon.ico") == 302
    await in_thread(staff_client.get, "/")  # the test client's (WSGI-like) path too
    second = communicator(staff_client)  # another dashboard connects and leaves
    assert (await second.connect())[0]
    await second.disconnect()
    assert await collect(dashboard, quiet_for=0.6) == []

    # The pipeline is live: a blog page through the same stack does show up.
    assert await asgi_get(None, "/blog/") == 200
    found = rows(await collect(dashboard))
    paths = {r.payload["request"]["path"] for r in found if "request" in r.payload}
    assert paths == {"/blog/"}
    assert {"request_started", "request_finished"} <= {r.signal for r in found}
    finished = next(r for r in found if r.signal == "request_finished")
    assert finished.payload["status"] == 200
    assert finished.payload["duration_ms"] >= 0


async def test_request_events_share_the_request_id(dashboard):
    assert await asgi_get(None, "/blog/error/") == 500
    found = rows(await collect(dashboard))
    ids = {r.request_id for r in found if r.family == "request"}
    assert len(ids) == 1 and None not in ids
    assert next(r for r in found if r.signal == "request_finished").payload["status"] == 500
