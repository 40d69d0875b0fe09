"""Helpers the tests share (fixtures stay in conftest.py)."""

import socket
import time
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from dashboard.core.rows import Row
from dashboard.live.handoff import handoff

ORIGIN = (b"origin", b"http://127.0.0.1:8000")
HOST = (b"host", b"127.0.0.1:8000")


def session_headers(client: Client | None, origin: tuple[bytes, bytes] = ORIGIN):
    headers = [HOST, origin]
    if client is not None and "sessionid" in client.cookies:
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return headers


def communicator(client: Client | None, origin: tuple[bytes, bytes] = ORIGIN):
    from config.asgi import application

    return WebsocketCommunicator(
        application, "/socket/", headers=session_headers(client, origin)
    )


# A package of another's, as sentry-sdk or an APM agent is: `instrumented` wraps a function
# with functools.wraps (sentry-sdk's `ensure_integration_enabled` runner around Django's
# cursor methods, its signal spans around every receiver); `raw_write` is its own raw SQL.
AGENT = """
import functools

def instrumented(real):
    @functools.wraps(real)
    def runner(*args, **kwargs):
        return real(*args, **kwargs)
    return runner

def raw_write(pk):
    from django.db import connection
    with connection.cursor() as cursor:
        cursor.execute("UPDATE blog_post SET body = 'package' WHERE id = %s", [pk])
"""
AGENT_FILE = "/usr/lib/python3/site-packages/apm_agent/django.py"  # neither Django's nor ours


def agent() -> dict:
    """AGENT's functions, their code in a file of a package (AGENT_FILE)."""
    namespace: dict = {}
    exec(compile(AGENT, AGENT_FILE, "exec"), namespace)
    return namespace


def in_thread(fn, *args, **kwargs):
    """Run sync Django code (test client, ORM) from an async test, as a server would."""
    return sync_to_async(fn)(*args, **kwargs)


def settle(timeout: float = 5.0) -> None:
    """Wait (in a thread, never the loop's) until every captured event is stored and
    sent; fail if that takes longer than `timeout`."""
    handoff.flush()
    deadline = time.monotonic() + timeout
    while not handoff.idle:
        if time.monotonic() > deadline:
            raise AssertionError(f"the pipeline did not settle within {timeout} s")
        time.sleep(0.01)


def sent(timeout: float = 5.0) -> None:
    """Wait until every captured event has gone out in a frame (not for the store:
    inside a transaction on SQLite, the store waits for it to end)."""
    wait_for(lambda: handoff.drained, timeout, "the pump to send what it holds")


def wait_for(condition, timeout: float = 5.0, what: str = "the condition") -> None:
    """Poll `condition()` until true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def make_row(**values) -> Row:
    """A row as the pipeline makes one; `values` override the defaults. Its time is now:
    a row older than HISTORY_MAX_AGE that a test stores can be pruned by that very write
    (the history prunes by age once per PRUNE_EVERY ids: history/store.py)."""
    base = dict(
        process="host-1", seq=7, time=datetime.now(UTC), signal="post_save",
        family="model", sender="blog.Post", summary="a summary", payload={}, payload_json="{}",
        detail={}, request_id="", rolled_back=False,
    )  # fmt: skip
    return Row(**{**base, **values})


async def resumed(comm) -> None:
    """Ask to resume from the newest stored event, as the page does on open (a socket
    is sent nothing before that), and take the answer: what the set-up caused."""
    import json

    from dashboard.history import reads
    from tests.frames import collect

    after = await in_thread(reads.last_id)
    await in_thread(settle)  # reading it may have opened a connection: an event too
    await comm.send_to(text_data=json.dumps({"type": "resume", "after": after}))
    await collect(comm, quiet_for=0.15)


def received(peer: socket.socket, size: int) -> bytes:
    """Exactly `size` bytes from a socket (at most 2 s between reads)."""
    peer.settimeout(2)
    data = b""
    while len(data) < size:
        data += peer.recv(size - len(data))
    return data


def with_and_without(work):
    """work(1) with the dashboard's hooks installed, then work(2) without them (the
    project as if the dashboard were not there)."""
    from dashboard.capture import dispatch, writes

    with_it = work(1)
    writes.uninstall()
    dispatch.uninstall()
    try:
        without = work(2)
    finally:
        dispatch.install()
        writes.install()
    settle()
    return with_it, without
