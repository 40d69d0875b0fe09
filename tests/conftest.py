import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from dashboard.publisher import publisher

ORIGIN = (b"origin", b"http://127.0.0.1:8000")
HOST = (b"host", b"127.0.0.1:8000")


@pytest.fixture(autouse=True)
def fresh_publisher():
    """Each test starts with an empty queue and no loop bound from an earlier test."""
    publisher.reset()
    yield
    publisher.reset()


@pytest.fixture
def staff_user(transactional_db):
    return get_user_model().objects.create_superuser("staff", password="staff-pass-123")


@pytest.fixture
def staff_client(staff_user):
    client = Client(raise_request_exception=False)
    client.force_login(staff_user)
    return client


def session_headers(client: Client | None, origin: tuple[bytes, bytes] = ORIGIN):
    headers = [HOST, origin]
    if client is not None and "sessionid" in client.cookies:
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return headers


def communicator(client: Client | None, origin: tuple[bytes, bytes] = ORIGIN):
    from config.asgi import application

    return WebsocketCommunicator(
        application, "/ws/events/", headers=session_headers(client, origin)
    )


@pytest.fixture
async def dashboard(staff_client):
    """A connected staff dashboard socket; the publisher is bound to this test's loop.

    Events from the set-up (the login) are out of the way first.
    """
    await in_thread(settle)
    comm = communicator(staff_client)
    connected, _ = await comm.connect()
    assert connected
    yield comm
    await comm.disconnect()
    publisher.reset()  # while this loop runs, so its pump task ends cleanly
    await asyncio.sleep(0.01)


def in_thread(fn, *args, **kwargs):
    """Run sync Django code (test client, ORM) from an async test, as a server would."""
    return sync_to_async(fn)(*args, **kwargs)


def pytest_collection_modifyitems(items):
    """Browser tests last: Playwright's event loop must not overlap the others."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


def settle(timeout: float = 5.0) -> None:
    """Wait (in a thread, never the loop's) until every captured event is stored and sent."""
    import time

    publisher.flush()
    deadline = time.monotonic() + timeout
    while not publisher.idle and time.monotonic() < deadline:
        time.sleep(0.01)
