"""Two servers on one PostgreSQL and one Redis, as a scaled-out site runs: pages open
on each while both serve and a third process saves, one server killed with kill -9
and started again. Every page ends up holding exactly what the history holds, once,
and the two servers' dashboards agree."""

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

import pytest

from tests.browser import PASSWORD, ROOT, Server, open_dashboard
from tests.test_exactly_once import page_keys
from tests.test_scale_out import PG_URL, REDIS_URL, manage, needs_postgres, needs_redis

pytestmark = [pytest.mark.browser, needs_postgres, needs_redis]

KEYS = (  # read quietly: the reading process's own events are not the site's
    "import json\nfrom dashboard.core.quiet import quiet_block\n"
    "from dashboard.models import StoredEvent\nwith quiet_block():\n"
    "    keys = [f'{p}.{s}' for p, s in StoredEvent.objects.values_list('process', 'seq')]\n"
    "print(json.dumps(keys))"
)


@pytest.fixture
def site():
    """A fresh PostgreSQL database, migrated, with the browser's staff user; the env
    of every process of the site (servers and the shell)."""
    name = f"twin_{uuid.uuid4().hex[:10]}"
    admin = PG_URL.rsplit("/", 1)[0]
    env = {
        "DATABASE_URL": f"{admin}/{name}",
        "REDIS_URL": REDIS_URL,
        "CHANNELS_REDIS_PREFIX": f"twin-{name}",
        # Room on a page for every event: the page views go on for as long as the test
        # runs, 456 events on a slow day (the default page holds 500).
        "DASHBOARD_MAX_ROWS": "2000",
    }
    manage("shell", env={"DATABASE_URL": PG_URL}, code=_sql(f'CREATE DATABASE "{name}"'))
    try:
        manage("migrate", "--noinput", env=env)
        manage("shell", env=env, code=(
            "from django.contrib.auth import get_user_model\n"
            f"get_user_model().objects.create_superuser('editor', password='{PASSWORD}')"
        ))  # fmt: skip
        yield env
    finally:
        manage("shell", env={"DATABASE_URL": PG_URL},
               code=_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))  # fmt: skip


def _sql(statement: str) -> str:
    return (
        "from django.db import connection\n"
        f"connection.cursor().execute('''{statement}''')"
    )


def test_two_servers_one_killed_every_page_holds_each_event_once(browser, site):
    servers = [Server(extra_env=site).start(), Server(extra_env=site).start()]
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    stop = threading.Event()

    def readers() -> None:  # both servers' own events: page views
        while not stop.is_set():
            for server in servers:
                with contextlib.suppress(OSError):  # down a moment (kill -9, restart)
                    urllib.request.urlopen(server.url + "/blog/", timeout=5).read()
            time.sleep(0.3)

    reading = threading.Thread(target=readers)
    saver = None
    roles = {servers[0].process.pid: "server 0", servers[1].process.pid: "server 1"}
    try:
        reading.start()
        command, options = _shell(site, (
            "import time\nfrom blog.models import Post\n"
            "for i in range(20):\n    Post.objects.create(title=f'shell {i}'); time.sleep(0.1)\n"
        ))  # fmt: skip
        saver = subprocess.Popen(command, **options)
        roles[saver.pid] = "the shell"
        pages = []
        for server in (*servers, *servers):  # opened on each while events flow
            pages.append(open_dashboard(context, server))
            time.sleep(0.3)
        killed = {k.rpartition(".")[0] for k in page_keys(pages[0])}
        servers[0].kill()  # kill -9 mid-flow, and back on the same port
        servers[0].start()
        roles[servers[0].process.pid] = "server 0 restarted"
        for page in pages:
            page.wait_for_selector("#ws-status[data-state=open]", timeout=15_000)
        pages += [open_dashboard(context, server) for server in servers]
        assert saver.wait(60) == 0
    finally:
        stop.set()
        if reading.is_alive():
            reading.join()
        if saver is not None and saver.poll() is None:
            saver.kill()
    try:
        time.sleep(1.5)  # the last page views stored and relayed
        expected = stored(site)
        assert 0 < len(expected) < 1800  # every event fits on a page: none trimmed
        assert len({k.rpartition(".")[0] for k in expected}) >= 4  # 2 servers, restart, shell
        held = []
        for n, page in enumerate(pages):
            deadline = time.monotonic() + 10
            while not expected <= set(page_keys(page)) and time.monotonic() < deadline:
                time.sleep(0.3)
                expected = stored(site)
            keys = page_keys(page)
            assert len(keys) == len(set(keys)), f"page {n}: a duplicate"
            missing = sorted(expected - set(keys))
            holes = describe(missing, expected, roles)
            assert not missing, f"page {n}: {len(missing)} holes: {holes}"
            # Shown live but never stored: only the killed server's last moments.
            extra = set(keys) - expected
            assert all(k.rpartition(".")[0] in killed for k in extra), f"page {n}: {extra}"
            assert len(extra) <= 10
            held.append(set(keys) & expected)
        # The dashboards of both servers agree: every stored event, on each.
        assert all(h == held[0] for h in held)
    finally:
        context.close()
        for server in servers:
            server.stop()


def describe(missing: list[str], stored: set[str], roles: dict[int, str]) -> str:
    """Whose the holes are (which process, and its last stored seq): the failure says
    which path lost them."""
    last: dict[str, int] = {}
    for key in stored:
        process, _, seq = key.rpartition(".")
        last[process] = max(last.get(process, 0), int(seq))
    def role(process: str) -> str:  # a process's key: "<host>-<pid>-<random>"
        pid = process.rsplit("-", 2)[-2] if process.count("-") >= 2 else ""
        return roles.get(int(pid), "?") if pid.isdigit() else "?"

    return ", ".join(
        f"{key} ({role(key.rpartition('.')[0])}, "
        f"its last stored: {last[key.rpartition('.')[0]]})"
        for key in missing[:5]
    )


def stored(env: dict[str, str]) -> set[str]:
    return set(json.loads(manage("shell", env=env, code=KEYS).strip().splitlines()[-1]))


def _shell(env: dict[str, str], code: str) -> tuple[list[str], dict]:
    clean = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    options = {"cwd": ROOT, "env": {**clean, **env}}
    return [sys.executable, "manage.py", "shell", "-c", code], options
