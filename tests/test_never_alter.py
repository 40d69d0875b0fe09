"""Observe, never alter: inside a sender's call the dashboard runs none of the host's
code but a model instance's own __str__, and that without any query it would run; it
evaluates nothing lazy, pickles nothing of the host's, and holds no receiver past the
send. Each test runs the same work with the dashboard's hooks and without them.
(has_listeners, fast delete, the SQL of saves and deletes: tests/test_discovery.py.)"""

import enum
import gc
import weakref
from collections import deque

import pytest
from django.contrib.auth.models import Permission
from django.db import connection, connections
from django.db.backends.signals import connection_created
from django.db.models.signals import pre_save
from django.dispatch import Signal
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils.functional import SimpleLazyObject

from blog.models import Post, Tag
from dashboard.capture import snapshot
from dashboard.capture.timing import NoQueries
from dashboard.models import StoredEvent
from tests.helpers import settle, with_and_without

NO_DIFFS = {"DIFFS": False}  # the diff's read of the stored row: the one query allowed


class HostsWrapper:
    """The host's own execute wrapper: what reaches the database, whatever the log says."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    def __call__(self, execute, sql, params, many, context):
        self.sql.append(sql)
        return execute(sql, params, many, context)


def queries_of(work) -> tuple[list[str], int]:
    """What work() ran, as the host's execute wrapper saw it (its statements), and how
    many queries a debug cursor logged (DEBUG, assertNumQueries)."""
    host = HostsWrapper()
    with connection.execute_wrapper(host), CaptureQueriesContext(connection) as logged:
        work()
    return host.sql, len(logged.captured_queries)


@pytest.mark.django_db(transaction=True)
@override_settings(DASHBOARD=NO_DIFFS)
def test_a_str_that_would_load_a_deferred_field_runs_no_query_and_leaves_it_deferred():
    def work(n: int):
        created = Post.objects.create(title=f"deferred {n}", slug=f"deferred-{n}")
        post = Post.objects.only("id", "status").get(pk=created.pk)  # Post.__str__: title

        def save():
            post.body = "changed"
            post.save()

        return queries_of(save), sorted(post.get_deferred_fields())

    with_it, without = with_and_without(work)
    assert with_it == without
    (host, logged), deferred = with_it
    # The blog's pre_save receiver reads the slug (deferred too): the host's own query.
    assert [sql.split()[0] for sql in host] == ["SELECT", "UPDATE"] and logged == 2
    assert "title" in deferred
    saved = StoredEvent.objects.filter(signal="post_save").order_by("seq").last()
    assert saved.payload["instance"]["str"] == snapshot.QUERIES
    assert saved.payload["instance"]["fields"]["body"] == "changed"


@pytest.mark.django_db(transaction=True)
@override_settings(DASHBOARD=NO_DIFFS)
def test_a_str_that_would_fetch_a_related_object_runs_no_query_nor_caches_it():
    """Django's own Permission.__str__ reads its content type."""

    def work(n: int):
        permission = Permission.objects.get(codename="add_post")

        def save():
            permission.name = "Can add a post"
            permission.save()

        sql = queries_of(save)
        return sql, Permission.content_type.is_cached(permission)

    with_it, without = with_and_without(work)
    assert with_it == without
    (host, logged), cached = with_it
    assert len(host) == logged == 1 and not cached


@pytest.mark.django_db(transaction=True)
def test_lazy_values_and_lazy_senders_are_not_evaluated():
    signal = Signal()
    made: list[int] = []

    def make() -> Post:
        made.append(1)
        return Post(title="made")

    def work(n: int) -> int:
        made.clear()
        signal.send(sender=SimpleLazyObject(make), user=SimpleLazyObject(make))
        signal.send(sender=None, within={"user": SimpleLazyObject(make)})
        return len(made)

    assert with_and_without(work) == (0, 0)
    stored = StoredEvent.objects.filter(sender="SimpleLazyObject").get()
    assert stored.payload["user"] == "<lazy SimpleLazyObject>"


class Loud:
    """A value whose every conversion the host would notice."""

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def __str__(self) -> str:
        self.calls.append("str")
        return "loud"

    def __repr__(self) -> str:
        self.calls.append("repr")
        return "loud"

    def __bool__(self) -> bool:
        self.calls.append("bool")
        return True

    def __iter__(self):
        self.calls.append("iter")
        return iter(())


@pytest.mark.django_db(transaction=True)
def test_the_hosts_values_are_named_by_their_type_not_converted():
    """No str() of a dict's keys, no repr() to sort a set, no truth test of a kwarg
    named `connection`."""
    signal = Signal()

    def work(n: int) -> list[str]:
        calls: list[str] = []
        signal.send(sender=None, mapping={Loud(calls): 1, "plain": 2}, members={Loud(calls)},
                    listed=[Loud(calls)], connection=Loud(calls))  # fmt: skip
        return calls

    assert with_and_without(work) == ([], [])
    payload = StoredEvent.objects.filter(payload__has_key="members").first().payload
    assert payload["mapping"] == {"<Loud #0>": 1, "plain": 2}
    assert payload["members"] == ["<Loud>"] and payload["listed"] == ["<Loud>"]


@pytest.mark.django_db(transaction=True)
def test_a_queryset_kept_on_an_instance_is_never_evaluated_by_the_dashboard():
    """Pickled to cross to the sidecar, a QuerySet evaluates itself: on the host's
    connection, in its transaction, freezing the host's results."""

    def work(n: int):
        post = Post.objects.create(title=f"holds {n}", slug=f"holds-{n}")
        post.matching = Tag.objects.filter(name__startswith=f"new{n}")
        for _ in range(3):
            post.save()
        settle()  # every event crossed and stored
        return post.matching._result_cache

    assert with_and_without(work) == (None, None)
    saved = StoredEvent.objects.filter(signal="post_save", payload__instance__str="holds 1")
    assert saved.first().payload["instance"]["fields"]["matching"] == "QuerySet<blog.Tag>"


@pytest.mark.django_db(transaction=True)
def test_a_receiver_connected_weakly_goes_with_its_object_as_without_the_dashboard():
    """Its event, waiting in the queue, named it and let go of it when the send ended."""
    signal = Signal()
    calls: list[int] = []

    class Listener:
        def on(self, **kwargs) -> None:
            calls.append(1)

    def work(n: int) -> tuple[bool, int]:
        calls.clear()
        listener = Listener()
        signal.connect(listener.on)
        signal.send(sender=None)
        gone = weakref.ref(listener)
        del listener
        gc.collect()
        signal.send(sender=None)  # nobody left to run
        return gone() is None, len(calls)

    assert with_and_without(work) == ((True, 1), (True, 1))
    sends = StoredEvent.objects.filter(sender="None").order_by("seq")
    assert [[r["name"].rsplit(".", 2)[-2:] for r in e.detail["receivers"]] for e in sends] == [
        [["Listener", "on"]], []]  # fmt: skip


# -- a model's __str__ that does more than read (a second hostile review) ---------------


@pytest.mark.django_db(transaction=True)
@override_settings(DASHBOARD=NO_DIFFS)
def test_a_str_that_writes_sends_nothing_and_runs_no_receiver(monkeypatch):
    """Its write's pre_save is refused before any receiver runs: no host receiver called,
    no query of one, no row for a save that never was."""
    heard: list[str] = []

    def on_tag(sender, instance, **kwargs) -> None:
        heard.append(instance.name)
        Tag.objects.filter(name=instance.name).exists()

    def noted(post: Post) -> str:
        Tag.objects.create(name=f"seen {post.pk}")  # a __str__ that writes
        return post.title

    monkeypatch.setattr(Post, "__str__", noted)

    def work(n: int):
        heard.clear()
        post = Post.objects.create(title=f"noting {n}", slug=f"noting-{n}")
        return queries_of(post.save), list(heard)

    pre_save.connect(on_tag, sender=Tag, weak=False, dispatch_uid="on_tag")
    try:
        (with_it, heard_with), (without, heard_without) = with_and_without(work)
    finally:
        pre_save.disconnect(sender=Tag, dispatch_uid="on_tag")
    assert with_it == without and heard_with == heard_without == []
    assert not StoredEvent.objects.filter(sender="blog.Tag").exists()


@pytest.mark.django_db(transaction=True)
@override_settings(DASHBOARD=NO_DIFFS)
def test_a_connection_a_str_would_open_is_opened_by_the_host_with_its_own_setup(monkeypatch):
    """connection_created is refused, and the connection closed again: the host's next
    query opens it, and its own connection_created receiver sets it up, as without us."""
    other = connections["dashboard"]  # any alias this thread has not opened yet
    set_up: list[str] = []

    def setup(sender, connection, **kwargs) -> None:
        if connection.alias == "dashboard":
            set_up.append("setup")
            with connection.cursor() as cursor:
                cursor.execute("CREATE TEMP TABLE IF NOT EXISTS host_setup (x int)")

    def peeking(post: Post) -> str:
        with other.cursor() as cursor:
            cursor.execute("SELECT 1")
        return post.title

    monkeypatch.setattr(Post, "__str__", peeking)

    def work(n: int) -> tuple[list[str], int]:
        set_up.clear()
        other.close()
        Post.objects.create(title=f"peeks {n}", slug=f"peeks-{n}")
        with other.cursor() as cursor:  # the host's own query, later
            cursor.execute("SELECT count(*) FROM temp.sqlite_master WHERE name = 'host_setup'")
            return list(set_up), cursor.fetchone()[0]

    connection_created.connect(setup, weak=False, dispatch_uid="host_setup")
    try:
        with_it, without = with_and_without(work)
    finally:
        connection_created.disconnect(dispatch_uid="host_setup")
        other.close()
    assert with_it == without == (["setup"], 1)


def test_a_refused_query_is_taken_back_from_the_log_and_nothing_else():
    """What a debug cursor logged of a refused query goes, whatever was logged after it:
    on PostgreSQL, a __str__'s own atomic() logs its ROLLBACK after the refused query
    (debug_transaction, outside the execute wrappers), and the ROLLBACK happened."""

    class Connection:
        queries_log = deque([{"sql": "SELECT before"}], maxlen=9000)

    guard = NoQueries()
    guard.refuse(Connection)  # as the execute wrapper does, before the debug cursor logs
    Connection.queries_log.extend([{"sql": None}, {"sql": "ROLLBACK"}])
    snapshot._take_back(guard.refused)
    assert [q["sql"] for q in Connection.queries_log] == ["SELECT before", "ROLLBACK"]


class Shout(str):
    """A host's own str, whose pickling the host would notice."""

    calls: list[str] = []

    def __reduce__(self):
        Shout.calls.append("reduce")
        return (str, (str(self),))


class Hue(enum.StrEnum):
    RED = "r"
    BLUE = "b"

    def __repr__(self) -> str:
        Hue.calls.append("repr")
        return "hue"


Hue.calls = []


class Money:
    """A field value of the host's own type (django-money's, a phone number's)."""

    def __init__(self, amount: str) -> None:
        self.amount = amount

    def __str__(self) -> str:
        return f"{self.amount} EUR"


class HostDict(dict):
    def items(self):
        HostDict.calls.append("items")
        return super().items()

    def __len__(self) -> int:
        HostDict.calls.append("len")
        return super().__len__()


HostDict.calls = []


@pytest.mark.django_db(transaction=True)
def test_subclasses_of_plain_types_and_containers_cross_as_built_ins():
    """No host __reduce__, __repr__, items() or __len__ runs; a field's value of the host's
    own type reads as its text."""
    signal = Signal()

    def work(n: int) -> list[str]:
        Shout.calls.clear()
        Hue.calls.clear()
        HostDict.calls.clear()
        signal.send(sender=None, shouted=Shout("hey"), hue=Hue.RED, hues={Hue.RED, Hue.BLUE},
                    mapping=HostDict(a=1))  # fmt: skip
        post = Post(title=Money("12.00"), slug=f"priced-{n}")
        post.save()
        settle()  # every event crossed and stored
        return Shout.calls + Hue.calls + HostDict.calls

    assert with_and_without(work) == ([], [])
    payload = StoredEvent.objects.filter(payload__has_key="shouted").get().payload
    assert payload["shouted"] == "hey" and payload["mapping"] == {"a": 1}
    assert payload["hue"] == "r" and sorted(payload["hues"]) == ["b", "r"]
    saved = StoredEvent.objects.filter(signal="post_save", sender="blog.Post").last()
    assert saved.payload["instance"]["fields"]["title"] == "12.00 EUR"
