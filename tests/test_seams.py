"""Each private API behind its seam (dashboard/seams.py): a canary that says it is
still as expected on the pinned versions, and its fallback, which never raises
into the host and says so once, in the log and in `manage.py check`."""

import asyncio
import contextlib
import os
import select
import signal
import time

import django
import pytest
from django.core.checks import run_checks
from django.db.models import QuerySet
from django.dispatch import Signal
from django.test import override_settings

from blog.models import Post
from blog.signals import post_published
from dashboard.capture import dispatch, filtered, snapshot, stored, timing, transactions, writes
from dashboard.core import keys
from dashboard.history import store
from dashboard.live import daphne
from dashboard.models import StoredEvent
from dashboard.seams import SEAMS
from dashboard.sidecar.link import link
from tests.helpers import settle, with_and_without
from tests.test_sockets import open_socket, server_factory


def dashboard_checks() -> list[str]:
    return [m.id for m in run_checks() if m.id.startswith("dashboard.")]


def test_every_private_api_is_as_expected_on_the_pinned_versions():
    """The canaries: an upgrade that changes one fails here first, not on a host's site."""
    assert timing.probe() is None
    assert transactions.probe() is None
    assert daphne.probe() is None
    assert dispatch.probe() is None
    assert dispatch.probe_empty() is None
    assert writes.probe() is None
    assert filtered.probe() is None
    assert stored.probe() is None
    assert snapshot.probe() is None
    assert all(seam.ok for seam in SEAMS.values())
    ids = {f"dashboard.W{n:03}" for n in (1, 2, 3, 4, 6, 8, 9, 10, 11)}
    assert {s.id for s in SEAMS.values()} == ids
    assert dashboard_checks() == []


# -- Signal's send methods and _live_receivers: capture and receiver timing ------------


def receivers_of(responses) -> list:
    return [receiver for receiver, _ in responses]


def django_send(signal, sender, **named):
    """What Django's own send() returns: the dashboard's hook taken out for one call."""
    return dispatch.ORIGINAL["send"](signal, sender, **named)


@pytest.mark.django_db(transaction=True)
def test_send_and_send_robust_return_what_django_returns(caplog):
    post = Post.objects.create(title="identity")

    def broken(sender, **kwargs):
        raise ValueError("receiver bug")

    post_published.connect(broken)
    try:
        connected = Signal._live_receivers(post_published, Post)[0]  # as has_listeners sees
        assert connected == dispatch.ORIGINAL["_live_receivers"](post_published, Post)[0]
        assert broken in connected and len(connected) == 2  # the blog's and this one: none of ours
        robust = post_published.send_robust(sender=Post, post=post)
        assert receivers_of(robust) == connected
        assert isinstance(dict(robust)[broken], ValueError)
        # Django's log names the receiver that failed, not a wrapper of ours.
        logged = [r.getMessage() for r in caplog.records if r.name == "django.dispatch"]
        assert logged == [f"Error calling {broken.__qualname__} in Signal.send_robust() "
                          "(receiver bug)"]  # fmt: skip
        post_published.disconnect(broken)
        assert post_published.send(sender=Post, post=post) == django_send(
            post_published, Post, post=post
        )
        assert post_published.has_listeners(Post)
    finally:
        post_published.disconnect(broken)


@pytest.mark.django_db(transaction=True)
async def test_asend_returns_the_receivers_the_caller_connected():
    from asgiref.sync import sync_to_async

    post = await sync_to_async(Post.objects.create)(title="async identity")

    async def mine(sender, **kwargs):
        return "mine"

    post_published.connect(mine)
    try:
        responses = await post_published.asend(sender=Post, post=post)
        assert ("mine" in dict(responses).values()) and mine in receivers_of(responses)
        assert all(type(r) not in (timing.Timed, timing.ATimed) for r in receivers_of(responses))
        robust = await post_published.asend_robust(sender=Post, post=post)
        assert mine in receivers_of(robust)
    finally:
        post_published.disconnect(mine)


@pytest.mark.django_db(transaction=True)
def test_a_dispatch_whose_receiver_raised_still_shows():
    """Under send(), a raising receiver ends the dispatch: the event was captured
    before the receivers ran, and shows which one raised."""
    post = Post.objects.create(title="raised")
    settle()

    def broken(sender, **kwargs):
        raise ValueError("receiver bug")

    post_published.connect(broken)
    try:
        with pytest.raises(ValueError, match="receiver bug"):
            post_published.send(sender=Post, post=post)
    finally:
        post_published.disconnect(broken)
    settle()
    event = StoredEvent.objects.get(signal="post_published")
    assert event.payload["post"]["str"] == "raised"
    timed = {r["name"].rsplit(".", 1)[-1]: r for r in event.detail["receivers"]}
    assert timed["broken"]["raised"] is True
    assert "stamp_publication" in timed and "raised" not in timed["stamp_publication"]


@pytest.mark.django_db(transaction=True)
def test_a_new_shape_of_live_receivers_falls_back_to_untimed_capture(caplog, monkeypatch):
    """A Django whose _live_receivers returned something else: sends work as Django
    makes them, recorded without timings; said once."""
    assert timing.timed(["a", "new", "shape"], []) == ["a", "new", "shape"]  # handed back
    assert not timing.SEAM.ok
    post = Post.objects.create(title="untimed")
    settle()
    event = StoredEvent.objects.filter(signal="post_save", sender="blog.Post").get()
    assert event.payload["instance"]["str"] == "untimed"
    assert event.detail["receivers"] == []
    warnings = [r for r in caplog.records if "_live_receivers" in r.getMessage()]
    assert len(warnings) == 1
    assert dashboard_checks() == ["dashboard.W001"]
    assert post.pk


def test_the_start_up_probes_refuse_an_unknown_django_or_shape(monkeypatch):
    monkeypatch.setattr(django, "VERSION", (9, 0, 0, "final", 0))
    assert "is not among the versions" in timing.probe()
    monkeypatch.undo()
    monkeypatch.setattr(Signal, "_live_receivers", lambda self, sender: [])
    assert "not a (sync, async) pair" in timing.probe()
    monkeypatch.undo()
    monkeypatch.setattr(Signal, "send_robust", lambda self, *args: [])
    assert "no longer takes (sender, **named)" in dispatch.probe()
    monkeypatch.undo()
    monkeypatch.setitem(dispatch.ORIGINAL, "send", lambda self, sender, **named: ())
    assert "Signal.send returns () without receivers" in dispatch.probe_empty()
    monkeypatch.undo()

    async def waits(self, sender, **named):
        await asyncio.sleep(0)
        return []

    monkeypatch.setitem(dispatch.ORIGINAL, "asend", waits)
    assert "Signal.asend awaits something without receivers" in dispatch.probe_empty()


def test_a_signal_is_not_left_on_the_fast_path_by_a_change_made_while_it_was_judged():
    """Another thread changes DASHBOARD (or opens record_signals()) between a send's
    finding that its signal needs only noting and its remembering so: the answer is
    not kept. And a hook added or taken away (capture/writes.py's on
    connection_created) makes every signal judged anew."""
    from django.db.models.signals import pre_init

    senders: set[int] = set()
    stale = dispatch._forgotten[0]
    dispatch.forget_plain()
    dispatch._keep_plain(pre_init, senders, stale)  # decided before the change
    assert id(pre_init) not in dispatch._plain

    now, put = dispatch._forgotten[0], dispatch._plain.put

    def changed_meanwhile(signal, value):  # the other thread's change, just before the put
        dispatch.forget_plain()
        return put(signal, value)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dispatch._plain, "put", changed_meanwhile)
        dispatch._keep_plain(pre_init, senders, now)
    assert id(pre_init) not in dispatch._plain

    dispatch._keep_plain(pre_init, senders, dispatch._forgotten[0])
    assert id(pre_init) in dispatch._plain
    writes.uninstall()
    try:
        assert id(pre_init) not in dispatch._plain
    finally:
        writes.install()


@contextlib.contextmanager
def hook_around(methods: dict, empty_ok: bool):
    """The dashboard's hook installed anew around `methods` as Django's send methods,
    with dispatch.W008 as `empty_ok` says; Django's own and the usual hook again after."""
    dispatch.uninstall()
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, method in methods.items():
                patch.setattr(Signal, name, method)
            patch.setattr(dispatch.EMPTY, "ok", empty_ok)
            dispatch.install()
            try:
                yield
            finally:
                dispatch.uninstall()
    finally:
        dispatch.install()


@pytest.mark.django_db(transaction=True)
def test_a_signal_nobody_records_or_hears_is_sent_as_django_would_for_a_lookup():
    """pre_init and post_init come with every row a query loads: unrecorded and without
    receivers, a send returns [] as Django's would, without calling it (W008); noted
    all the same. A receiver connected meanwhile is sent to; a change of DASHBOARD that
    records the signal records it; with W008 off, Django's method is called."""
    from django.db.models.signals import pre_init

    from dashboard.capture import seen

    django_send, django_asend, calls = dispatch.ORIGINAL["send"], dispatch.ORIGINAL["asend"], []

    def counted(self, sender, **named):
        calls.append(self)
        return django_send(self, sender, **named)

    async def acounted(self, sender, **named):
        calls.append(self)
        return await django_asend(self, sender, **named)

    spies = {"send": counted, "asend": acounted}
    with hook_around(spies, empty_ok=True):
        for _ in range(3):
            assert pre_init.send(sender=Post, args=(), kwargs={}) == []
        assert calls == [pre_init]  # the first, which found it has nothing to do
        assert asyncio.run(pre_init.asend(sender=Post, args=(), kwargs={})) == []
        assert pre_init.send_robust(sender=Post, args=(), kwargs={}) == []
        assert asyncio.run(pre_init.asend_robust(sender=Post, args=(), kwargs={})) == []
        assert calls == [pre_init]  # asend too returned [] without Django's method
        assert id(Post) in seen.senders(pre_init)
        assert Post(title="loaded").title == "loaded"

        def heard(**named):
            return "heard"

        pre_init.connect(heard, sender=Post, weak=False)
        try:
            responses = pre_init.send(sender=Post, args=(), kwargs={})
        finally:
            pre_init.disconnect(heard, sender=Post)
        assert responses == [(heard, "heard")]
        assert calls[-1] is pre_init

        with override_settings(DASHBOARD={"IGNORE_SIGNALS": ["post_init"]}):
            pre_init.send(sender=Post, args=(), kwargs={})
        calls.clear()
        pre_init.send(sender=Post, args=(), kwargs={})
        pre_init.send(sender=Post, args=(), kwargs={})
        assert calls == [pre_init]  # ignored again: one look, then the lookup
        settle()
        assert StoredEvent.objects.filter(signal="pre_init").count() == 1

    with hook_around(spies, empty_ok=False):
        calls.clear()
        for _ in range(3):
            assert pre_init.send(sender=Post, args=(), kwargs={}) == []
        assert asyncio.run(pre_init.asend(sender=Post, args=(), kwargs={})) == []
        assert calls == [pre_init] * 4


@pytest.mark.django_db(transaction=True)
def test_without_its_hook_the_dashboard_records_nothing_and_alters_nothing():
    """dispatch.W004: the send methods changed shape, so the hook stays out."""
    settle()
    before = set(StoredEvent.objects.values_list("id", flat=True))
    dispatch.uninstall()
    try:
        assert not hasattr(Signal.send, "__wrapped__")  # Django's own
        Post.objects.create(title="unseen")
        settle()
        new = StoredEvent.objects.exclude(id__in=before).values_list("signal", "sender")
        assert not [event for event in new if event[1] == "blog.Post"]
    finally:
        dispatch.install()
    assert Signal.send.__wrapped__ is dispatch.ORIGINAL["send"]


# -- connection.savepoint_ids: rollback marks -------------------------------------------


class NoSavepoints:
    """A connection of a Django that keeps its savepoints some other way."""

    alias = "default"
    in_atomic_block = True


def test_no_savepoint_ids_means_no_rollback_marks_and_no_error(monkeypatch, caplog):
    monkeypatch.setattr(transactions, "connections", {"default": NoSavepoints()})
    event = object()
    transactions.track(event, "default")  # never raises into the save
    transactions.track(event, "default")
    assert not transactions.SEAM.ok
    assert len([r for r in caplog.records if "savepoint_ids" in r.getMessage()]) == 1
    assert dashboard_checks() == ["dashboard.W002"]
    monkeypatch.setattr(transactions, "connections", {"default": NoSavepoints()})
    assert "not a list" in transactions.probe()


# -- daphne, autobahn, twisted: the fast path ----------------------------------------


def test_a_changed_daphne_socket_falls_back_to_the_asgi_send(caplog):
    protocol, transport = open_socket(server_factory())
    del protocol._perMessageCompress  # as if autobahn renamed it
    frame = daphne.Frame({"html": "<p>hello</p>"})
    assert frame.send_to(protocol) is False  # the consumer sends it through ASGI
    assert transport.value() == b""  # nothing half-written before it
    assert not daphne.SEAM.ok
    assert daphne.socket_of(lambda message: None) is None
    healthy, _ = open_socket(server_factory())
    assert frame.send_to(healthy) is False  # off for good, every socket
    assert len([r for r in caplog.records if "ASGI" in r.getMessage()]) == 1
    assert dashboard_checks() == ["dashboard.W003"]


# -- the process key: renewed after fork ---------------------------------------------


@pytest.mark.django_db  # so the sidecar may run (conftest.py)
def test_a_forked_child_gets_a_process_key_of_its_own():
    link.warm()
    link.flush(timeout=10)  # answered: its reader thread waits on the next answer as we fork
    parent = keys.process()
    keys.next_seq()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its key and first seq, then leave at once
        try:
            os.write(write, f"{keys.process()} {keys.next_seq()}".encode())
        finally:
            os._exit(0)
    os.close(write)
    # The fork handlers run in the child first (keys, the link to the sidecar, the hand-off):
    # one that waits on a lock another thread held at the fork hangs it for ever.
    ready, _, _ = select.select([read], [], [], 10)
    if not ready:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung in a fork handler")
    child, seq = os.read(read, 200).decode().split()
    os.close(read)
    os.waitpid(pid, 0)
    assert child != parent and f"-{pid}-" in child
    assert seq == "1"
    assert keys.process() == parent


def test_a_process_with_an_earlier_one_s_pid_gets_a_key_of_its_own(monkeypatch):
    """PIDs come round again: the later process's events must not take the earlier's keys
    (the history refused them all as duplicates, and pages held them already)."""
    monkeypatch.setattr(os, "getpid", lambda: 4242)
    earlier, later = keys._name(), keys._name()
    assert earlier != later
    assert "-4242-" in earlier and "-4242-" in later


def test_keys_round_trip_and_bad_ones_are_refused():
    assert keys.parse_key(keys.format_key("host-1.example", 42)) == ("host-1.example", 42)
    for bad in ("", "nodot", "host.", ".7", "host.x7", "host.-1"):
        with pytest.raises(ValueError):
            keys.parse_key(bad)


@pytest.mark.django_db(transaction=True)
@override_settings(DASHBOARD={"HISTORY_MAX_EVENTS": 4})
def test_the_history_is_kept_bounded_without_private_queryset_api(monkeypatch):
    """The store deletes with plain SQL: a Django without QuerySet._raw_delete
    (or with a new one) changes nothing."""
    monkeypatch.delattr(QuerySet, "_raw_delete")
    for i in range(5):
        Post.objects.create(title=f"bounded {i}")
    settle()
    assert StoredEvent.objects.count() == 4
    assert store.prune(now=time.time() + 10 * 365 * 86400) == 4  # all past HISTORY_MAX_AGE


# -- connection.execute_wrappers: the raw-SQL write detector ---------------------------


class TupleWrappers:
    """A connection whose execute_wrappers is no longer a list."""

    execute_wrappers = ()


@pytest.mark.django_db(transaction=True)
def test_no_list_of_execute_wrappers_means_no_raw_write_rows_and_no_error(caplog):
    from django.db import connection

    writes.watch(TupleWrappers())  # as on connection_created: never raises
    writes.watch(TupleWrappers())
    assert not writes.SEAM.ok
    assert len([r for r in caplog.records if "execute_wrappers" in r.getMessage()]) == 1
    assert dashboard_checks() == ["dashboard.W006"]
    writes.unwatch(connection)
    writes.watch(connection)  # off for good: nothing is put on a connection any more
    assert writes.detect_write not in connection.execute_wrappers
    post = Post.objects.create(title="raw, unseen")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE blog_post SET body = 'x' WHERE id = %s", [post.pk])
        assert cursor.rowcount == 1
    settle()
    assert not StoredEvent.objects.filter(signal__startswith="cursor.").exists()
    writes.SEAM.ok = True
    writes.watch(connection)  # as the next test finds it


@pytest.mark.django_db(transaction=True)
def test_a_new_shape_of_filter_names_no_object_and_raises_nothing(monkeypatch, caplog):
    """W011: an update by pk is still shown, and still updates, without its object named."""
    def new_shape(queryset):  # as a Django that moved the lookups would have it
        raise AttributeError("'WhereNode' object has no attribute 'children'")

    post = Post.objects.create(title="by pk")
    monkeypatch.setattr(filtered, "_pks", new_shape)
    try:
        assert Post.objects.filter(pk=post.pk).update(body="still updated") == 1
        assert not filtered.SEAM.ok
        assert dashboard_checks() == ["dashboard.W011"]
        assert len([r for r in caplog.records if "query.where" in r.getMessage()]) == 1
        assert Post.objects.filter(pk=post.pk).update(body="by pk again") == 1
        settle()
        updates = StoredEvent.objects.filter(signal="QuerySet.update").order_by("seq")
        assert [u.payload.get("objects") for u in updates] == [None, None]
    finally:
        filtered.SEAM.ok, filtered.SEAM.reason = True, ""


@pytest.mark.django_db(transaction=True)
@override_settings(DASHBOARD={"DIFFS": False})  # the diff's read: a query of its own
def test_without_the_query_log_a_refused_query_still_never_runs(monkeypatch, caplog):
    """W010: a query a model's __str__ would run is refused either way; only the entry a
    debug cursor logs for it stays (listed, though it never reached the database)."""
    from django.db import connection, connections
    from django.test.utils import CaptureQueriesContext

    monkeypatch.setattr(connections["default"], "queries_log", [])
    assert snapshot.probe() == "it is a list, not a deque"
    monkeypatch.undo()
    snapshot.LOG.fail("as a test")
    assert dashboard_checks() == ["dashboard.W010"]
    def work(n: int) -> tuple[list[str], int]:
        created = Post.objects.create(title=f"Deferred {n}", slug=f"deferred-{n}")
        post = Post.objects.only("id", "slug", "status").get(pk=created.pk)
        reached: list[str] = []

        def host(execute, sql, params, many, context):
            reached.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(host), CaptureQueriesContext(connection) as logged:
            post.body = "changed"
            post.save()  # its __str__ reads the deferred title
        return reached, len(logged.captured_queries)

    (reached, logged), (reached_without, logged_without) = with_and_without(work)
    assert reached == reached_without and reached[-1].startswith("UPDATE")
    assert logged == logged_without + 2  # pre_save's str() and post_save's
