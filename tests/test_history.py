"""Every event stored, bounded, and handed back to a page exactly once."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.test import override_settings

from blog.models import Post
from dashboard.history import reads
from dashboard.models import StoredEvent
from tests.frames import collect, parse, rows
from tests.helpers import communicator, in_thread, settle


def make_posts(n: int, prefix: str = "p") -> None:
    for i in range(n):
        Post.objects.create(title=f"{prefix} {i}")
    settle()


@pytest.mark.django_db(transaction=True)
@override_settings(DASHBOARD={"HISTORY_MAX_EVENTS": 50})
def test_history_never_grows_past_its_cap():
    for _ in range(4):
        make_posts(30)  # 60 events a round
        assert StoredEvent.objects.count() <= 50
    assert StoredEvent.objects.count() == 50
    newest = StoredEvent.objects.first()
    assert newest.signal == "post_save" and newest.summary.startswith("blog.Post")


@pytest.mark.django_db(transaction=True)
@override_settings(DASHBOARD={"HISTORY_MAX_AGE": 3600})
def test_prune_by_age_and_the_management_command(capsys):
    make_posts(3)
    old = list(StoredEvent.objects.values_list("id", flat=True)[:2])
    StoredEvent.objects.filter(id__in=old).update(time=datetime.now(UTC) - timedelta(hours=2))
    before = StoredEvent.objects.count()
    call_command("prune_events")
    assert StoredEvent.objects.count() == before - 2
    assert not StoredEvent.objects.filter(id__in=old).exists()
    assert "Deleted 2 events" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_the_dashboard_is_never_stored_about_itself():
    """A StoredEvent saved through the ORM sends pre_save and post_save like any model
    (the history's own INSERT is plain SQL and sends none): the capture ignores the
    dashboard's models, or storing one could cause another."""
    StoredEvent.objects.create(
        time=datetime.now(UTC), signal="post_save", family="model", sender="blog.Post",
        summary="saved by hand", process="by-hand", seq=1, search_text="",
    )  # fmt: skip
    make_posts(1)  # the pipeline is live, and stores what it captures
    senders = set(StoredEvent.objects.exclude(process="by-hand").values_list("sender", flat=True))
    assert "blog.Post" in senders
    assert not {s for s in senders if s.startswith("dashboard.")}


def test_page_opens_with_stored_history(staff_client):
    make_posts(3, prefix="stored")
    html = staff_client.get("/").content.decode()
    assert "stored 2" in html and "stored 0" in html
    assert html.index("stored 2") < html.index("stored 0")  # newest first
    last = StoredEvent.objects.order_by("-id").first().pk
    assert f'data-last-id="{last}"' in html


async def test_resume_returns_exactly_what_was_missed_then_live(staff_client):
    await in_thread(make_posts, 2, "before")
    await in_thread(settle)
    after = await in_thread(reads.last_id)
    await in_thread(make_posts, 3, "missed")  # while no page is connected

    comm = communicator(staff_client)
    assert (await comm.connect())[0]
    await comm.send_to(text_data=json.dumps({"type": "resume", "after": after, "filters": {}}))
    backfill = parse(await comm.receive_from(timeout=5))
    missed = [(r.signal, r.payload["instance"]["str"]) for r in reversed(backfill.rows)]
    assert missed == [
        (signal, f"missed {i}") for i in range(3) for signal in ("pre_save", "post_save")
    ]
    assert backfill.counts == {"pre_save": 3, "post_save": 3}

    await in_thread(Post.objects.create, title="live one")
    live = rows(await collect(comm))
    assert [r.payload["instance"]["str"] for r in live] == ["live one", "live one"]
    await comm.disconnect()


async def test_nothing_is_sent_before_the_page_asks_then_everything_once(staff_client):
    """Frames that come before the page's resume are held, not sent: the page's own
    history and its "seen" marks decide what it is sent, once, in order."""
    await in_thread(settle)
    after = await in_thread(reads.last_id)
    comm = communicator(staff_client)
    assert (await comm.connect())[0]
    await in_thread(Post.objects.create, title="before the page asked")
    assert await comm.receive_nothing(timeout=0.3)  # held
    await comm.send_to(text_data=json.dumps({"type": "resume", "after": after}))
    got = rows(await collect(comm))
    keys = [(r.signal, r.payload["instance"]["str"]) for r in got if r.sender == "blog.Post"]
    assert keys == [("pre_save", "before the page asked"), ("post_save", "before the page asked")]
    await comm.disconnect()


async def test_resume_applies_the_page_filters(staff_client):
    await in_thread(settle)  # the login's own events are stored before `after`
    after = await in_thread(reads.last_id)
    await in_thread(make_posts, 2, "f")
    comm = communicator(staff_client)
    assert (await comm.connect())[0]
    message = {"type": "resume", "after": after, "filters": {"signal": "pre_save", "q": "f 1"}}
    await comm.send_to(text_data=json.dumps(message))
    frame = parse(await comm.receive_from(timeout=5))
    assert [(r.signal, r.payload["instance"]["str"]) for r in frame.rows] == [("pre_save", "f 1")]
    # Counters count every missed event, whatever the filters show.
    assert frame.counts["pre_save"] == frame.counts["post_save"] == 2
    assert frame.total == sum(frame.counts.values())
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
def test_a_management_command_s_events_are_stored_when_it_exits():
    """Another process, no explicit flush: the publisher stores its backlog at exit."""
    from django.conf import settings

    from tests.test_scale_out import manage

    env = {"DATABASE_URL": f"sqlite:///{settings.DATABASES['default']['NAME']}"}
    manage("shell", env=env, code="from blog.models import Tag; Tag.objects.create(name='exiting')")
    stored = StoredEvent.objects.filter(sender="blog.Tag").order_by("id")
    assert [e.signal for e in stored] == ["pre_save", "post_save"]
    assert stored[1].payload["instance"]["str"] == "exiting"


def _noise_after_model_events(n_model: int, n_noise: int) -> None:
    from dashboard.history import store
    from tests.helpers import make_row

    now = datetime.now(UTC)
    store.write([make_row(seq=i, family="model", time=now) for i in range(1, n_model + 1)])
    for start in range(0, n_noise, 50):  # batches, as the writer stores them
        store.write([
            make_row(process="noisy", seq=i, family=("request", "database")[i % 2],
                     signal="request_finished", sender="ASGIHandler", time=now)
            for i in range(start + 1, start + 51)
        ])  # fmt: skip


@pytest.mark.django_db(transaction=True)
@override_settings(
    DASHBOARD={
        "HISTORY_MAX_EVENTS": 100,
        "HISTORY_FAMILY_MAX_EVENTS": {"request": 20, "database": 30},
    }
)
def test_request_and_connection_noise_cannot_push_model_events_out():
    _noise_after_model_events(10, 400)  # four times the whole cap
    kept = StoredEvent.objects.filter(process__in=["host-1", "noisy"])
    assert kept.filter(family="model").count() == 10  # none pushed out
    assert kept.filter(family="request").count() == 20  # its own cap
    assert kept.filter(family="database").count() == 30


@pytest.mark.django_db(transaction=True)
def test_prune_events_applies_the_family_caps():
    with override_settings(DASHBOARD={"HISTORY_FAMILY_MAX_EVENTS": {"request": 1000}}):
        _noise_after_model_events(3, 100)
    assert StoredEvent.objects.filter(family="request").count() == 50
    caps = {"request": 5, "database": 3, "*": 2}
    with override_settings(DASHBOARD={"HISTORY_FAMILY_MAX_EVENTS": caps}):
        call_command("prune_events")
    kept = StoredEvent.objects.filter(process__in=["host-1", "noisy"])
    assert kept.filter(family="request").count() == 5
    assert kept.filter(family="model").count() <= 2  # "*": every other family
    assert kept.filter(family="model", seq=3).exists()  # the newest kept
    assert kept.filter(family="database").count() == 3


def test_the_history_has_a_database_of_its_own_with_nothing_else_in_it():
    """The demo's settings: a second SQLite file (its own write lock), routed to."""
    from django.db import router

    from blog.models import Post

    assert router.db_for_write(StoredEvent) == router.db_for_read(StoredEvent) == "dashboard"
    assert router.db_for_write(Post) == "default"
    assert router.allow_migrate("dashboard", "dashboard") is True
    assert router.allow_migrate("dashboard", "blog") is False
    assert router.allow_migrate("default", "blog") is True


@pytest.mark.django_db(transaction=True)
def test_rows_the_tests_store_are_not_pruned_by_their_own_write():
    """A write prunes by age once per PRUNE_EVERY ids: rows the tests store (make_row) must
    be younger than HISTORY_MAX_AGE, or a test reading its row back fails whenever its id
    lands there (a fixed January date did, from the week after it)."""
    from dashboard.history import store
    from tests.helpers import make_row

    store.write([make_row(seq=i) for i in range(1, store.PRUNE_EVERY + 1)])
    assert StoredEvent.objects.filter(process="host-1").count() == store.PRUNE_EVERY


def test_prune_events_before_the_history_is_migrated_says_what_to_run(tmp_path):
    """A history database not migrated yet (its own alias, `migrate` not run there): the
    command says so and which migrate to run, where it printed a traceback."""
    import os
    import subprocess
    import sys

    from tests.test_scale_out import ROOT

    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run([sys.executable, "manage.py", "prune_events"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "CommandError: The history table is not in the 'dashboard' database yet: run "
        "`manage.py migrate --database dashboard`. Nothing was deleted."
    )
