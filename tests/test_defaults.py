"""Safe defaults: the demo as `make run` serves it shows no debug page to anyone (DEBUG is
off unless DJANGO_DEBUG=1), still serves its static files, and no setting value reaches
a page."""

import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.browser import ROOT, Server

SECRET = "redis-pass-7f3a9"


def test_debug_is_off_unless_asked_for():
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_DEBUG",)}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    code = "import config.settings as s; print(s.DEBUG)"
    read = lambda e: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code], cwd=ROOT, env=e, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert read(env) == "False"
    assert read({**env, "DJANGO_DEBUG": "1"}) == "True"


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def demo(transactional_db, django_db_blocker, monkeypatch):
    """The demo served as `make run` serves it (daphne, config.asgi), with a password
    in REDIS_URL (a port nothing listens on: nothing connects to it here)."""
    monkeypatch.delenv("DJANGO_DEBUG", raising=False)
    with django_db_blocker.unblock():
        server = Server(extra_env={"REDIS_URL": f"redis://:{SECRET}@127.0.0.1:9/0"}).start()
    yield server
    server.stop()


def test_an_anonymous_visitor_of_a_failing_page_gets_no_traceback_nor_setting(demo):
    status, body = get(demo.url + "/blog/error/")
    assert status == 500
    assert SECRET.encode() not in body
    assert b"Traceback" not in body and b"CHANNEL_LAYERS" not in body
    status, css = get(demo.url + "/static/dashboard/dashboard.css")
    assert status == 200 and b".dash" in css  # static files are still served
    assert get(demo.url + "/static/django_htmx/ext/hx-ws-2.js")[0] == 200
