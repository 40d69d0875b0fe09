"""Scale-out for real: channels-redis carries events between processes, and the
history works on PostgreSQL. Each skips, saying why, only where its server is
not reachable on this machine."""

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

from dashboard.live.handoff import handoff
from tests.frames import collect, rows
from tests.helpers import communicator, resumed, settle

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def manage(*args: str, env: dict[str, str], code: str | None = None) -> str:
    command = [sys.executable, "manage.py", *args]
    if code is not None:
        command += ["-c", code]
    clean = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    done = subprocess.run(
        command, cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


needs_redis = pytest.mark.skipif(
    not reachable("127.0.0.1", 6379), reason="Redis is not reachable on 127.0.0.1:6379"
)
needs_postgres = pytest.mark.skipif(
    not reachable("127.0.0.1", 5432), reason="PostgreSQL is not reachable on 127.0.0.1:5432"
)
REDIS_LAYER = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [{"address": REDIS_URL}], "prefix": f"test-{uuid.uuid4().hex[:8]}"},
    }
}


@needs_redis
async def test_events_from_a_management_command_reach_the_dashboard_through_redis(
    staff_client,
):
    from asgiref.sync import sync_to_async

    env = {
        "REDIS_URL": REDIS_URL,
        "DATABASE_URL": f"sqlite:///{settings.DATABASES['default']['NAME']}",
        "CHANNELS_REDIS_PREFIX": REDIS_LAYER["default"]["CONFIG"]["prefix"],
    }
    code = "from blog.models import Post; Post.objects.create(title='from another process')"
    # The login's events out of the way, and the pump on this test's loop, before the
    # layer is Redis: channels-redis makes a loop that used it flush on close, and only
    # this loop is closed (the pump's own daemon loops are stopped, and collected later).
    handoff.bind_running_loop()
    await sync_to_async(settle)()
    with override_settings(CHANNEL_LAYERS=REDIS_LAYER):
        comm = communicator(staff_client)
        assert (await comm.connect())[0]
        try:
            await resumed(comm)
            await sync_to_async(manage)("shell", env=env, code=code)
            found = [r for r in rows(await collect(comm, quiet_for=1.0)) if r.sender == "blog.Post"]
            assert [r.signal for r in found] == ["pre_save", "post_save"]
            assert found[1].payload["instance"]["str"] == "from another process"
        finally:
            await comm.disconnect()


@needs_postgres
def test_history_and_capture_work_on_postgresql():
    import psycopg

    name = f"signals_test_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(PG_URL, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
        env = {"DATABASE_URL": url}
        manage("migrate", "--noinput", env=env)
        out = manage(
            "shell",
            env=env,
            code=(
                "import time\n"
                "from blog.models import Post\n"
                "from dashboard.models import StoredEvent\n"
                "from dashboard.history import store\n"
                "from tests.helpers import settle\n"
                "post = Post.objects.create(title='on postgres')\n"
                "from blog.signals import post_viewed\n"
                "post_viewed.send(sender=Post, post=post, request=None, path='/blog/\\x00/')\n"
                "post.title = 'renamed on postgres'; post.save()\n"
                "settle(10)\n"  # stored, or the command fails
                "e = StoredEvent.objects.filter(signal='post_save', sender='blog.Post')"
                ".latest('id')\n"
                "print('DIFF', [c['field'] for c in e.detail['diff']])\n"
                "print('VENDOR', StoredEvent.objects.filter(signal='connection_created')"
                ".values_list('sender', flat=True).first())\n"
                "print('FOUND', StoredEvent.objects"
                ".filter(search_text__contains='renamed on').count())\n"
                "print('NUL', StoredEvent.objects.get(signal='post_viewed').payload['path'])\n"
                "print('PRUNED', store.prune(now=time.time() + 10 * 365 * 86400) > 0)\n"
            ),
        )
        assert "DIFF ['title', 'updated']" in out
        assert "VENDOR default (postgresql)" in out
        assert "FOUND 1" in out or "FOUND 2" in out
        assert "NUL /blog/\\x00/" in out  # stored, written out, with its batch
        assert "PRUNED True" in out
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@needs_redis
async def test_the_relay_listens_on_through_quiet_spells_on_redis(transactional_db, caplog):
    """channels-redis's blocking read ends with redis-py's own TimeoutError after its
    socket_timeout of quiet (5 s by default; half a second here): the relay reads
    again at once. It is not the layer down: no warning, no "this process only",
    and the next frame is not held back by a retry's pause."""
    import asyncio

    from channels.layers import get_channel_layer

    from dashboard import conf
    from dashboard.live.fanout import fanout

    quick = {"default": {**REDIS_LAYER["default"], "CONFIG": {
        "hosts": [{"address": REDIS_URL, "socket_timeout": 0.5}],
        "prefix": f"test-{uuid.uuid4().hex[:8]}",
    }}}  # fmt: skip
    delivered: asyncio.Queue = asyncio.Queue()

    class Socket:
        async def deliver(self, frame) -> None:
            if frame.message.get("process") == "elsewhere-3":  # not the settings change
                delivered.put_nowait(frame.html)

    from asgiref.sync import sync_to_async

    handoff.bind_running_loop()  # as in the first test of this module
    await sync_to_async(settle)()
    with override_settings(CHANNEL_LAYERS=quick):
        fanout.subscribe(Socket())
        try:
            await fanout.listening()
            await asyncio.sleep(1.6)  # three reads end in quiet
            assert not fanout.layer_down
            message = {"type": "events.batch", "process": "elsewhere-3", "html": "after quiet"}
            await get_channel_layer().group_send(conf.get("GROUP"), message)
            assert await asyncio.wait_for(delivered.get(), 0.4) == "after quiet"
            assert not [r for r in caplog.records if "channel layer" in r.getMessage()]
        finally:
            fanout.reset()
            await get_channel_layer().flush()
