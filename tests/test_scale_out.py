"""Scale-out for real: channels-redis carries events between processes, and the
history works on PostgreSQL. Each skips, saying why, only where its server is
not reachable on this machine."""

import contextlib
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


@contextlib.contextmanager
def a_postgres_database():
    """A database of its own on the real PostgreSQL, migrated: the env that points at it."""
    import psycopg

    name = f"signals_test_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(PG_URL, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        env = {"DATABASE_URL": PG_URL.rsplit("/", 1)[0] + f"/{name}"}
        manage("migrate", "--noinput", env=env)
        yield env
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


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
    with a_postgres_database() as env:
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
                "from dashboard.core.rows import Row\n"
                "stored = StoredEvent.objects.get(signal='post_viewed').payload['post']\n"
                "shown = Row.from_stored(StoredEvent.objects.get(signal='post_viewed'))\n"
                "shown = shown.payload['post']\n"
                "print('JSONB', list(stored), list(stored['fields'])[:3])\n"
                "print('SHOWN', list(shown), list(shown['fields'])[:3])\n"
                "print('PRUNED', store.prune(now=time.time() + 10 * 365 * 86400) > 0)\n"
            ),
        )
        # jsonb keeps keys shortest first; shown as described, the model's fields in order.
        assert "JSONB ['pk', 'str', 'model', 'fields'] ['id', 'body', 'slug']" in out
        assert "SHOWN ['model', 'pk', 'str', 'fields'] ['id', 'title', 'slug']" in out
        assert "DIFF ['title', 'updated']" in out
        assert "VENDOR default (postgresql)" in out
        assert "FOUND 1" in out or "FOUND 2" in out
        assert "NUL /blog/\\x00/" in out  # stored, written out, with its batch
        assert "PRUNED True" in out


# A producing process whose frames never leave it (its relay to the layer cut, as a
# kill -9 between its sidecar's answer and the layer would), killed once its events
# are stored; or the same process ending as processes do.
_LAST_WORDS = (
    "import os, signal, time\n"
    "from blog.models import Post\n"
    "from dashboard.live.fanout import fanout\n"
    "from dashboard.live.handoff import handoff\n"
    "from dashboard.sidecar.link import link\n"
    "{cut}"
    "Post.objects.create(title='last words')\n"
    "deadline = time.monotonic() + 20\n"
    "while not (handoff.drained and link.kept_seq and link.stored_seq >= link.kept_seq):\n"
    "    assert time.monotonic() < deadline, 'never stored'\n"
    "    time.sleep(0.01)\n"
    "{end}"
)


async def _frames_on_the_layer(prefix: str, code: str, until: str, wait: float) -> list[dict]:
    """Every frame the group carries while `code` runs in another process: until one
    holds `until` (at most `wait` seconds), then what follows within half a second."""
    import asyncio

    from asgiref.sync import sync_to_async
    from channels_redis.core import RedisChannelLayer

    from dashboard import conf

    layer = RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix)
    channel = await layer.new_channel()
    await layer.group_add(conf.get("GROUP"), channel)
    env = {
        "REDIS_URL": REDIS_URL,
        "DATABASE_URL": f"sqlite:///{settings.DATABASES['default']['NAME']}",
        "CHANNELS_REDIS_PREFIX": prefix,
    }
    clean = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    command = [sys.executable, "manage.py", "shell", "-c", code]
    found: list[dict] = []
    try:
        await sync_to_async(subprocess.run)(
            command, cwd=ROOT, env={**clean, **env}, capture_output=True, timeout=60
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while not any(until in m.get("html", "") for m in found):
            left = deadline - loop.time()
            assert left > 0, f"no frame holding {until!r} in {wait} s: {len(found)} others"
            with contextlib.suppress(TimeoutError):
                found.append(await asyncio.wait_for(layer.receive(channel), left))
        with contextlib.suppress(TimeoutError):
            while True:
                found.append(await asyncio.wait_for(layer.receive(channel), 0.5))
    finally:
        await layer.flush()
    return found


@needs_redis
async def test_a_killed_processs_last_frames_still_reach_other_processes(transactional_db):
    """Killed before its last frames left it, a process's events are stored by its sidecar,
    which sends those frames to the layer for it: dashboards elsewhere show them, as
    they show the frames of a process that ended well (and only once, then)."""
    killed = _LAST_WORDS.format(
        cut="async def cut(message):\n    pass\nfanout.publish = cut\n",
        end="os.kill(os.getpid(), signal.SIGKILL)\n",
    )
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    found = await _frames_on_the_layer(prefix, killed, "last words", wait=20)
    assert all(m["process"] == found[0]["process"] for m in found)

    ended = _LAST_WORDS.format(cut="", end="")
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    found = await _frames_on_the_layer(prefix, ended, "last words", wait=20)
    spans = [(m["first_seq"], m["last_seq"]) for m in found]
    assert len(spans) == len(set(spans)), f"a frame sent twice: {spans}"


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
            assert await asyncio.wait_for(delivered.get(), 2) == "after quiet"
            assert not [r for r in caplog.records if "channel layer" in r.getMessage()]
        finally:
            fanout.reset()
            await get_channel_layer().flush()


@needs_redis
async def test_a_redis_that_stops_answering_is_found_out_by_a_relay_that_only_listens(
    transactional_db, caplog
):
    """Its reads end in time-outs as a quiet spell's do: after a few in a row the relay
    asks the layer something, which fails, and says the layer is down (the page shows
    "this process only") instead of listening to nothing for ever."""
    import asyncio

    from asgiref.sync import sync_to_async

    from dashboard.live import fanout as fanout_module
    from dashboard.live.fanout import fanout

    cut = asyncio.Event()  # from now on nothing passes, as on a network that drops it

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if not cut.is_set():
                    writer.write(data)

    async def proxy(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", 6379)
        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    db = REDIS_URL.rsplit("/", 1)[1]
    through = {"default": {**REDIS_LAYER["default"], "CONFIG": {
        "hosts": [{"address": f"redis://127.0.0.1:{port}/{db}", "socket_timeout": 0.3}],
        "prefix": prefix,
    }}}  # fmt: skip

    class Socket:
        async def deliver(self, frame) -> None:
            pass

    handoff.bind_running_loop()
    await sync_to_async(settle)()
    with override_settings(CHANNEL_LAYERS=through):
        fanout.subscribe(Socket())
        try:
            await fanout.listening()
            await asyncio.sleep(0.2)
            assert not fanout.layer_down
            cut.set()
            # QUIET_CHECK reads of 0.3 s, then the check's own time-out: about 2.4 s.
            deadline = asyncio.get_running_loop().time() + 3 * fanout_module.QUIET_CHECK * 0.3
            while not fanout.layer_down:
                assert asyncio.get_running_loop().time() < deadline, "never found out"
                await asyncio.sleep(0.1)
            assert any("could not join" in r.getMessage() for r in caplog.records)
        finally:
            fanout.reset()
            server.close()


_TAKING_TURNS = (
    "import threading\n"
    "from django.utils import timezone\n"
    "from dashboard.history import store\n"
    "from dashboard.models import StoredEvent\n"
    "from tests.helpers import make_row\n"
    "gate, inside = threading.Event(), threading.Event()\n"
    "last_id = store._last_id\n"
    "def held(cursor, connection):  # after A's insert, before its commit\n"
    "    if threading.current_thread().name == 'A':\n"
    "        inside.set(); gate.wait(10)\n"
    "    return last_id(cursor, connection)\n"
    "store._last_id = held\n"
    "def write(process):\n"
    "    store.write([make_row(process=process, seq=1, time=timezone.now())])\n"
    "a = threading.Thread(target=write, args=('a',), name='A')\n"
    "b = threading.Thread(target=write, args=('b',), name='B')\n"
    "a.start(); inside.wait(10); b.start(); b.join(1.0)\n"
    "print('B_BEFORE_A', not b.is_alive())\n"
    "gate.set(); a.join(10); b.join(10)\n"
    "print('STORED', sorted(StoredEvent.objects.filter(process__in='ab')\n"
    "      .values_list('process', flat=True)))\n"
)


_FAILING_DIFF_READ = """
import re
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from blog.models import Post

post = Post.objects.create(title="before")
READ = re.compile(r'SELECT [^;]*WHERE "blog_post"."id" = %s LIMIT 1')


failed = []


def fail_the_diff_read(execute, sql, params, many, context):
    # The update's diff read (alone, or between its savepoint and its release), as the
    # database might refuse it (a statement timeout, a serialization failure): a
    # statement that fails in PostgreSQL itself.
    sql, found = READ.subn("SELECT 1/0 WHERE 0 <> %s", sql)
    failed.extend([sql] * found)
    return execute(sql, params, many, context)


post.title = "first"
with transaction.atomic(), CaptureQueriesContext(connection) as queries:
    post.save()  # the transaction's first statement: not read (capture/begun.py)
print("FIRST", [q["sql"].split()[0] for q in queries.captured_queries])
post.title = "read"
with transaction.atomic(), CaptureQueriesContext(connection) as queries:
    Post.objects.count()  # the transaction has begun: the read changes nothing of it
    post.save()
print("STATEMENTS", [q["sql"].split()[0] for q in queries.captured_queries])
with connection.execute_wrapper(fail_the_diff_read), transaction.atomic():
    Post.objects.count()
    post.title = "after"
    post.save()
    print("AFTER", Post.objects.filter(title="after").count())
print("COMMITTED", Post.objects.filter(title="after").count())
print("FAILED READS", len(failed))
"""


@needs_postgres
def test_on_postgresql_a_diff_read_that_fails_leaves_the_host_s_transaction_going():
    """PostgreSQL aborts a transaction in which a statement failed: every later query in
    it fails. A diff read that failed inside the host's transaction made the host's own
    update fail there, where without the dashboard it succeeds."""
    with a_postgres_database() as env:
        out = manage("shell", env=env, code=_FAILING_DIFF_READ)
    # The savepoint, the read and its release in one round trip (psycopg 3's client-side
    # binding), then the update: in a transaction, not three more. None as the
    # transaction's first statement: it would take the transaction's snapshot.
    assert "FIRST ['UPDATE']" in out, out
    assert "STATEMENTS ['SELECT', 'SAVEPOINT', 'UPDATE']" in out, out
    assert "FAILED READS 1" in out, out
    assert "AFTER 1" in out and "COMMITTED 1" in out


@needs_postgres
def test_on_postgresql_history_ids_are_committed_in_order():
    """A page resumes from the newest id it was rendered with. Two processes' history
    writes on PostgreSQL could commit out of id order, and a row committed after the
    page was rendered, with an id below the page's, was missed for good (CI: a page
    with one hole in the middle of another server's events). Writes take turns: one
    whose insert is held open makes the next wait until it commits."""
    with a_postgres_database() as env:
        out = manage("shell", env=env, code=_TAKING_TURNS)
    assert "B_BEFORE_A False" in out, out
    assert "STORED ['a', 'b']" in out, out
