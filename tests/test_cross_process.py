"""Every process's events reach an open dashboard live, in the embedded default too
(SQLite, no Redis): a shell's save shows within a second (live/tail.py)."""

import time

from asgiref.sync import sync_to_async
from django.conf import settings

from dashboard.core import keys
from dashboard.live import tail
from tests.frames import collect, rows
from tests.test_scale_out import manage


async def test_a_shells_events_reach_an_open_dashboard_live_without_a_layer(dashboard):
    db = settings.DATABASES["default"]["NAME"]
    code = "from blog.models import Post; Post.objects.create(title='from a shell')"
    await sync_to_async(manage)("shell", env={"DATABASE_URL": f"sqlite:///{db}"}, code=code)
    exited = time.monotonic()
    found = []
    while not found and time.monotonic() < exited + 2 * tail.TAIL_EVERY + 1.0:
        got = rows(await collect(dashboard, quiet_for=0.1))
        found = [r for r in got if r.sender == "blog.Post"]
    took = time.monotonic() - exited
    assert [r.signal for r in found] == ["pre_save", "post_save"], found
    assert found[1].payload["instance"]["str"] == "from a shell"
    assert took < 1.0  # within a second of the shell's exit (it stores as it goes, at exit last)
    # Not this process's: the shell's own key, sent on by the tail.
    assert all(r.key.rpartition(".")[0] != keys.process() for r in found)
