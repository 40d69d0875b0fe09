"""Every event exactly once, on every dashboard, from every process: pages opened while
events flow, from the server itself and from another process, and a server killed
with kill -9 and started again, each end up holding exactly what the history holds
(the embedded default: SQLite, no Redis)."""

import contextlib
import os
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from django.conf import settings

from dashboard.models import StoredEvent
from tests.browser import ROOT, open_dashboard

pytestmark = pytest.mark.browser


def page_keys(page) -> list[str]:
    return page.eval_on_selector_all("#events tr, #history tr", "rs => rs.map(r => r.dataset.key)")


def stored_keys() -> set[str]:
    return {f"{p}.{s}" for p, s in StoredEvent.objects.values_list("process", "seq")}


def shell(code: str) -> subprocess.Popen:
    """Another process saving posts, as a shell or a command would."""
    db = settings.DATABASES["default"]["NAME"]
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update(DATABASE_URL=f"sqlite:///{db}", DJANGO_SETTINGS_MODULE="config.settings")
    return subprocess.Popen([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env)


VIEWS = 100  # page views at most (~3 events each): with the shell's, under a page's 500 rows


def test_pages_opened_while_events_flow_hold_each_event_once(context, server, django_db_blocker):
    stop = threading.Event()

    def readers() -> None:  # the server's own events: page views, ~15 a second
        # At most VIEWS of them: on a slow machine the test runs longer, and every event
        # must still fit on a page.
        for _ in range(VIEWS):
            if stop.is_set():
                return
            with contextlib.suppress(OSError):  # down a moment (kill -9, restart)
                urllib.request.urlopen(server.url + "/blog/", timeout=5).read()
            time.sleep(0.06)

    reading = threading.Thread(target=readers)
    reading.start()
    saver = shell(
        "import time\nfrom blog.models import Post\n"
        "for i in range(30):\n    Post.objects.create(title=f'shell {i}'); time.sleep(0.08)\n"
    )
    try:
        pages = []
        for _ in range(3):  # opened while both flow
            pages.append(open_dashboard(context, server))
            time.sleep(0.4)
        killed = {  # the server's process, whose keys the pages hold so far
            k.rpartition(".")[0] for k in page_keys(pages[-1])
            if f"-{saver.pid}-" not in k.rpartition(".")[0]
        }
        server.kill()  # kill -9 mid-flow, and back on the same port
        with django_db_blocker.unblock():
            server.start()
        for page in pages:
            page.wait_for_selector("#ws-status[data-state=open]", timeout=15_000)
        pages.append(open_dashboard(context, server))
        assert saver.wait(60) == 0
    finally:
        stop.set()
        reading.join()
    time.sleep(1.5)  # the last page views stored, the tail's last look
    expected = stored_keys()
    assert len(expected) < 450  # every event fits on a page: none trimmed
    processes = {key.rpartition(".")[0] for key in expected}
    assert len(processes) >= 3  # the server before and after the kill, and the shell
    for n, page in enumerate(pages):
        deadline = time.monotonic() + 10
        while not expected <= set(page_keys(page)) and time.monotonic() < deadline:
            time.sleep(0.2)
            expected = stored_keys()
        keys = page_keys(page)
        assert len(keys) == len(set(keys)), f"page {n}: a duplicate"
        missing = sorted(expected - set(keys))
        assert not missing, f"page {n}: {len(missing)} holes, e.g. {missing[:5]}"
        # kill -9 gives a server no time to store what it had just sent: a page that saw
        # those live keeps them (at most the last store interval's, of that server only).
        extra = set(keys) - expected
        for key in extra:
            process, _, seq = key.rpartition(".")
            stored = [int(k.rpartition(".")[2]) for k in expected if k.startswith(process + ".")]
            assert process in killed and int(seq) > max(stored), f"page {n}: {key} never stored"
        assert len(extra) <= 10
