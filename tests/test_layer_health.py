"""The channel layer's health is visible: when it cannot be reached the page says so
(not "live"), the log says so once per outage, and it recovers by itself.

A real daphne on a real Redis server of this test's own, stopped and started again."""

import shutil
import subprocess
import time
import urllib.request
import uuid

import pytest

from tests.browser import Server, free_port, open_dashboard

pytestmark = pytest.mark.browser
REDIS = shutil.which("redis-server")


def start_redis(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while subprocess.run([shutil.which("redis-cli") or "redis-cli", "-p", str(port), "ping"],
                         capture_output=True, text=True).stdout.strip() != "PONG":  # fmt: skip
        assert time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.05)
    return process


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed on this machine")
def test_the_page_says_when_the_layer_is_down_and_recovers_by_itself(
    context, transactional_db, django_db_blocker
):
    port = free_port()
    redis = start_redis(port)
    env = {"REDIS_URL": f"redis://127.0.0.1:{port}/0", "CHANNELS_REDIS_PREFIX": uuid.uuid4().hex}
    with django_db_blocker.unblock():
        server = Server(extra_env=env).start()
    try:
        dash = open_dashboard(context, server)

        def visit() -> None:
            urllib.request.urlopen(server.url + "/blog/", timeout=5).read()

        visit()
        dash.wait_for_selector('#events tr[data-signal="request_finished"]', timeout=10_000)
        assert dash.locator("#ws-status").get_attribute("data-state") == "open"

        redis.terminate()
        redis.wait(5)
        for _ in range(3):  # the send that fails is noted; the frames after it say so
            visit()
            time.sleep(0.2)
        dash.wait_for_selector("#ws-status[data-state=degraded]", timeout=10_000)
        assert "this process only" in dash.locator("#ws-status").inner_text()

        redis = start_redis(port)
        deadline = time.monotonic() + 15
        while dash.locator("#ws-status").get_attribute("data-state") != "open":
            assert time.monotonic() < deadline, "the page did not see the layer come back"
            visit()
            time.sleep(0.3)
        said = [line for line in server.log.read_text().splitlines() if "WARNING  dash" in line]
        assert len([line for line in said if "until it is back" in line]) == 1  # once an outage
        assert len([line for line in said if "the channel layer is back" in line]) == 1
        assert "Traceback" not in server.log.read_text()
    finally:
        server.stop()
        redis.terminate()
        redis.wait(5)
