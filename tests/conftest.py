import asyncio
import contextlib
import json
import os
from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from dashboard.core import keys
from dashboard.history import reads
from dashboard.history.writer import writer
from dashboard.live.handoff import handoff
from dashboard.seams import SEAMS
from dashboard.sidecar.link import link
from tests.browser import CHROMIUM_ARGS, PASSWORD, Server, require_chromium
from tests.frames import collect
from tests.helpers import communicator, in_thread, settle


# Nothing stored before the test databases exist, nor open on them once they are gone.
# Events captured at collection (config.asgi, imported by test modules, warms a sidecar)
# were stored in the development history database, by the sidecar or the store thread:
# an empty db-history.sqlite3 left in the checkout; and a sidecar still open on the test
# history as it was destroyed left its -wal and -shm files behind.
class _StoreHeld:
    """The history writer held (no write starts) until the test databases exist."""

    def __init__(self) -> None:
        self._held = writer.held()
        self._held.__enter__()
        self.on = True

    def release(self) -> None:
        if self.on:
            self.on = False
            self._held.__exit__(None, None, None)


link.enabled = lambda: False  # type: ignore[method-assign]
_before_databases = _StoreHeld()


@pytest.fixture(scope="session", autouse=True)
def stored_only_in_the_test_databases(django_db_setup) -> Iterator[None]:
    handoff.reset()  # what came before the test databases: nobody's business
    _before_databases.release()
    del link.enabled  # the method again
    yield
    link.enabled = lambda: False  # type: ignore[method-assign]
    link.flush(timeout=5.0, final=True)  # the sidecar stores what it holds, and ends
    # What the last test's teardown caused (its flush's post_migrate saves) goes nowhere:
    # stored once the databases are gone, it went to the development one.
    handoff.reset()


def pytest_sessionfinish(session) -> None:
    """What SQLite's write-ahead log left of a test database removed while threads of this
    process (the store thread, asgiref's, the tail's) still had it open: its -wal and -shm
    files, beside the checkout's. Only where the database itself is gone."""
    from django.conf import settings

    _before_databases.release()
    for database in settings.DATABASES.values():
        name = str((database.get("TEST") or {}).get("NAME") or "")
        if "sqlite3" in database.get("ENGINE", "") and name and not os.path.exists(name):
            for left in (f"{name}-wal", f"{name}-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(left)


@pytest.fixture(autouse=True)
def fresh_pipeline(request):
    """Each test starts with an empty queue and no loop bound from an earlier test.

    A test without the database keeps the pipeline in this process: the sidecar
    (another process, beyond pytest-django's guard) would store its events in the
    test database, for later tests to find."""
    if not uses_database(request):  # (not through settings: a test may override DASHBOARD)
        request.getfixturevalue("monkeypatch").setattr(link, "enabled", lambda: False)
    handoff.reset()
    # A process of its own to the history: the reset pipeline counts nothing stored, and
    # the flushed database holds none of the earlier tests' events, so under the same key
    # a page would resume from seq 0 and wait for events gone for good (fill_gap).
    keys._renew()
    yield
    handoff.reset()


DATABASE_FIXTURES = {"db", "transactional_db", "live_server"}  # pytest-django's


def uses_database(request) -> bool:
    return request.node.get_closest_marker("django_db") is not None or bool(
        DATABASE_FIXTURES & set(request.fixturenames)
    )


@pytest.fixture
def in_process(settings):
    """The whole pipeline in this process (live/frames.py, history/writer.py), for a
    test that reaches into the writer or the store; the sidecar runs the same code."""
    settings.DASHBOARD = {**getattr(settings, "DASHBOARD", {}), "SIDECAR": False}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """No history write runs while a test's fixtures are torn down. A write the store
    thread began before the database is flushed and blocked again (pytest-django) was
    cut off half-way, its transaction left open and SQLite's write lock taken: every
    later test then failed with "database is locked". One due now waits, and then
    fails cleanly (logged) if the database is gone."""
    link.reset()  # the sidecar's pending writes dropped, its write under way done
    if _before_databases.on:  # held already (the databases never came: a skip, an error)
        yield
        return
    with writer.held():
        yield


@pytest.fixture(autouse=True)
def seams_as_found():
    """A test that makes a private-API seam fall back leaves the others theirs."""
    before = {id: (seam.ok, seam.reason) for id, seam in SEAMS.items()}
    yield
    for id, (ok, reason) in before.items():
        SEAMS[id].ok, SEAMS[id].reason = ok, reason


@pytest.fixture
def staff_user(transactional_db):
    return get_user_model().objects.create_superuser("staff", password="staff-pass-123")


@pytest.fixture
def staff_client(staff_user):
    client = Client(raise_request_exception=False)
    client.force_login(staff_user)
    return client


@pytest.fixture
async def dashboard(staff_client):
    """A connected staff dashboard socket that has asked to resume, as the page does
    on open (until then it is sent nothing); the pump is bound to this test's loop.

    Events from the set-up (the login) are out of the way first.
    """
    after = await in_thread(reads.last_id)
    await in_thread(settle)  # reading it may have opened a connection: an event too
    comm = communicator(staff_client)
    connected, _ = await comm.connect()
    assert connected
    await comm.send_to(text_data=json.dumps({"type": "resume", "after": after}))
    await collect(comm, quiet_for=0.15)  # its answer: what the set-up itself caused
    yield comm
    await comm.disconnect()
    handoff.reset()  # while this loop runs, so its pump task ends cleanly
    await asyncio.sleep(0.01)


# -- real browser: Debian's Chromium, a daphne subprocess (tests/browser.py) --


@pytest.fixture
def server(transactional_db, django_db_blocker) -> Iterator[Server]:
    """A server per test (about a second): the test database is flushed between
    tests, and a long-lived server would keep stale caches (content-type ids)."""
    require_chromium()
    with django_db_blocker.unblock():
        srv = Server().start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # this process only; never the server's
    pw = sync_playwright().start()
    chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()
    pw.stop()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def context(browser, transactional_db):
    get_user_model().objects.create_superuser("editor", password=PASSWORD)
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    ctx.on("weberror", lambda e: errors.append(str(e.error)))
    yield ctx
    ctx.close()
    assert errors == [], f"JavaScript errors: {errors}"


def pytest_collection_modifyitems(items):
    """Browser tests last: Playwright's event loop must not overlap the others. A test
    with the database has every database: the history has one of its own (a second
    SQLite file, config/settings.py), which the capture writes to whatever the test
    asked for."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
    for item in items:
        marker = item.get_closest_marker("django_db")
        if marker is not None and "databases" not in marker.kwargs:
            item.add_marker(pytest.mark.django_db(*marker.args, **marker.kwargs,
                                                  databases="__all__"), append=False)
        elif marker is None and DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.django_db(databases="__all__"), append=False)
