"""An event explained: detail panel, diff, receivers and their times, origin, trace,
rolled-back transactions, filters and export."""

import csv
import io
import json

import pytest
from django.db import transaction
from django.test import Client, override_settings

from blog.models import Post
from dashboard.history.export import CSV_COLUMNS
from dashboard.models import StoredEvent
from tests.helpers import sent, settle, wait_for

HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "detail"}


def stored(signal: str, **filters) -> StoredEvent:
    settle()
    return StoredEvent.objects.filter(signal=signal, **filters).latest("id")


def test_detail_panel_is_an_htmx_fragment_and_a_shareable_page(staff_client):
    Post.objects.create(title="Detailed")
    event = stored("post_save", sender="blog.Post")
    url = f"/events/{event.key}/"

    fragment = staff_client.get(url, **HTMX).content.decode()
    assert fragment.lstrip().startswith('<div class="detail-card')
    assert "&quot;str&quot;: &quot;Detailed&quot;" in fragment  # pretty payload, escaped
    assert "<html" not in fragment

    page = staff_client.get(url).content.decode()  # the URL pushed by htmx, opened anew
    assert "<html" in page and f'data-event="{event.key}"' in page
    assert staff_client.get("/events/nowhere.999999/").status_code == 404
    assert staff_client.get("/events/not-a-key/").status_code == 404


def test_detail_is_staff_only(transactional_db):
    Post.objects.create(title="Private")
    event = stored("post_save", sender="blog.Post")
    response = Client().get(f"/events/{event.key}/")
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")


def test_update_shows_the_field_diff(staff_client):
    post = Post.objects.create(title="Old title", body="same")
    post.title = "New title"
    post.save()
    event = stored("post_save", sender="blog.Post", payload__created=False)
    changes = {c["field"]: (c["old"], c["new"]) for c in event.detail["diff"]}
    assert set(changes) == {"title", "updated"}  # `updated` is auto_now
    assert changes["title"] == ("Old title", "New title")
    assert event.summary.endswith(" · changed title, updated")  # the table's line too
    html = staff_client.get(f"/events/{event.key}/", **HTMX).content.decode()
    assert '<td class="old">Old title</td><td class="new">New title</td>' in html


def test_receivers_are_listed_with_their_times_and_origin_is_project_code(transactional_db):
    Post.objects.create(title="Timed")
    event = stored("pre_save", sender="blog.Post")
    receivers = {r["name"]: r for r in event.detail["receivers"]}
    slug = receivers["blog.signals.fill_slug"]
    assert "/blog/signals.py:" in slug["where"]
    assert slug["ms"] >= 0 and "raised" not in slug
    assert [name for name in receivers if name.startswith("dashboard.")] == []  # none of ours
    # The innermost frame of the project's own code: Post.save (not Django's).
    assert event.detail["origin"].startswith("blog/models.py:")
    assert event.detail["origin"].endswith(" in save")

    from blog.models import Tag

    Tag.objects.create(name="origin")  # no project code between here and Django
    tag_event = stored("post_save", sender="blog.Tag")
    assert tag_event.detail["origin"].startswith("tests/test_detail.py:")
    assert "in test_receivers_are_listed" in tag_event.detail["origin"]


def test_origin_names_each_call_site_of_a_function_by_its_own_line(transactional_db):
    """Origins are remembered per call site: two sends from one function, and the
    same site sending again, each name their own line."""
    import inspect

    from blog.models import Tag

    origins = []
    for name in ("first", "again"):
        line = inspect.currentframe().f_lineno + 1
        Tag.objects.create(name=f"site {name}")
        origins.append((stored("post_save", sender="blog.Tag").detail["origin"], line))
        line = inspect.currentframe().f_lineno + 1
        Tag.objects.create(name=f"other site {name}")
        origins.append((stored("post_save", sender="blog.Tag").detail["origin"], line))
    function = "test_origin_names_each_call_site_of_a_function_by_its_own_line"
    assert origins == [(f"tests/test_detail.py:{line} in {function}", line) for _, line in origins]


def test_events_of_one_request_form_a_trace(staff_client):
    Post.objects.create(title="Traced", status="published")
    Client().get("/blog/traced/")
    viewed = stored("post_viewed")
    trace = list(StoredEvent.objects.filter(request_id=viewed.request_id).order_by("id"))
    signals = [e.signal for e in trace]
    assert signals[0] == "request_started" and signals[-1] == "request_finished"
    assert "post_viewed" in signals

    html = staff_client.get(f"/events/{viewed.key}/", **HTMX).content.decode()
    assert "<code>GET /blog/traced/</code>" in html
    assert f"?request={viewed.request_id}" in html
    filtered = staff_client.get(f"/?request={viewed.request_id}").content.decode()
    history = filtered.split('id="history"')[1]
    assert history.count("<tr ") == len(trace)


def test_rolled_back_transaction_marks_its_events(transactional_db):
    with pytest.raises(RuntimeError), transaction.atomic():
        Post.objects.create(title="Never existed")
        raise RuntimeError("abort")
    with transaction.atomic():
        Post.objects.create(title="Committed")
        with pytest.raises(RuntimeError), transaction.atomic():  # a savepoint
            Post.objects.create(title="Inner, rolled back")
            raise RuntimeError("abort inner")
    settle()
    marks = {
        e.payload["instance"]["str"]: e.rolled_back
        for e in StoredEvent.objects.filter(signal="post_save", sender="blog.Post")
    }
    assert marks == {"Never existed": True, "Committed": False, "Inner, rolled back": True}


def test_a_save_inside_a_pre_save_receiver_has_its_own_origin_and_transaction(transactional_db):
    """A save's post_save takes the origin and transaction its pre_save found
    (capture/record.py): one a receiver saves in between, in a savepoint that rolls
    back, keeps its own, a post_save sent by hand in between too, and so does the outer
    save."""
    import inspect

    from django.db.models.signals import post_save, pre_save

    from blog.models import Tag

    def save_another(sender, instance, **kwargs):
        if instance.name == "outer":
            # As some packages do: a post_save sent by hand, of another instance.
            post_save.send(sender=Tag, instance=Tag(name="by hand"), created=False)
            with pytest.raises(RuntimeError), transaction.atomic():
                Tag.objects.create(name="inner")
                raise RuntimeError("the inner save's savepoint rolls back")

    by_hand_line = inspect.getsourcelines(save_another)[1] + 3
    inner_line = by_hand_line + 2
    pre_save.connect(save_another, sender=Tag, weak=False)
    try:
        with transaction.atomic():
            outer_line = inspect.currentframe().f_lineno + 1
            Tag.objects.create(name="outer")
    finally:
        pre_save.disconnect(save_another, sender=Tag)
    settle()
    saved = {
        e.payload["instance"]["str"]: (e.detail["origin"].split(" in ")[0], e.rolled_back)
        for e in StoredEvent.objects.filter(signal="post_save", sender="blog.Tag")
    }
    assert saved == {
        "outer": (f"tests/test_detail.py:{outer_line}", False),
        "inner": (f"tests/test_detail.py:{inner_line}", True),
        "by hand": (f"tests/test_detail.py:{by_hand_line}", False),
    }


def test_a_save_that_raised_leaves_nothing_to_the_next_ones_post_save(transactional_db):
    """A save that raised after its pre_save sends no post_save: what its pre_save found
    is dropped by the next pre_save sent, recorded or not, so that a post_save whose
    frame happens to reuse the raised save's address cannot take it."""
    import inspect

    from django.db.models.signals import pre_save

    from blog.models import Tag
    from dashboard.capture import record

    def refuse(sender, instance, **kwargs):
        raise RuntimeError("refused")

    tag = Tag.objects.create(name="again")
    pre_save.connect(refuse, sender=Tag, weak=False)
    try:
        with pytest.raises(RuntimeError):
            tag.save()
    finally:
        pre_save.disconnect(refuse, sender=Tag)
    assert record._saving.get() is not None  # what the raised save's pre_save found

    left = []

    def look(sender, instance, **kwargs):
        left.append(record._saving.get())

    pre_save.connect(look, sender=Tag, weak=False)
    try:
        with override_settings(DASHBOARD={"IGNORE_SIGNALS": ("pre_save", "pre_init", "post_init")}):
            line = inspect.currentframe().f_lineno + 1
            tag.save()
    finally:
        pre_save.disconnect(look, sender=Tag)
    assert left == [None]
    settle()
    latest = StoredEvent.objects.filter(signal="post_save", sender="blog.Tag").latest("id")
    assert latest.detail["origin"].split(" in ")[0] == f"tests/test_detail.py:{line}"


def test_a_save_signal_sent_with_no_frame_above_it_is_recorded(transactional_db):
    """pre_save sent as a bare thread's target (no Python frame calls the send): the
    look for the save that sent it finds none, and the event is recorded."""
    import _thread
    import threading

    from django.db.models.signals import pre_save

    from blog.models import Tag

    ran = threading.Event()

    def note(sender, **kwargs):
        ran.set()

    pre_save.connect(note, sender=Tag, weak=False)
    try:
        _thread.start_new_thread(
            pre_save.send, (Tag,), {"instance": None, "raw": False, "using": "default"}
        )
        assert ran.wait(5), "the thread's send never ran its receivers"
    finally:
        pre_save.disconnect(note, sender=Tag)

    def stored() -> bool:  # the thread hands it on after its receivers, maybe after this
        settle()
        return StoredEvent.objects.filter(signal="pre_save", sender="blog.Tag").exists()

    wait_for(stored, what="the thread's pre_save, stored")
    assert StoredEvent.objects.filter(signal="pre_save", sender="blog.Tag").count() == 1


async def test_rolled_back_mark_reaches_open_dashboards(dashboard):
    from asgiref.sync import sync_to_async

    from tests.frames import collect, rows

    @sync_to_async
    def fail_after_a_pause() -> int:
        with pytest.raises(RuntimeError), transaction.atomic():
            Post.objects.create(title="Doomed")
            sent()  # the rows are out before the rollback
            raise RuntimeError("abort")
        settle()
        return StoredEvent.objects.get(signal="post_save", sender="blog.Post").key

    event_key = await fail_after_a_pause()
    frames = await collect(dashboard)
    assert [r.signal for r in rows(frames) if r.sender == "blog.Post"] == ["pre_save", "post_save"]
    marked = [f.raw.split('data-rolled-back="')[1].split('"')[0].split(",") for f in frames
              if 'data-rolled-back="' in f.raw]
    assert any(event_key in keys for keys in marked)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("family=blog", {"post_published"}),
        ("signal=pre_save", {"pre_save"}),
        ("sender=blog.Tag", {"pre_save", "post_save"}),
        ("q=needle", {"pre_save", "post_save", "post_published"}),
    ],
)
def test_history_filters(staff_client, query, expected):
    from blog.models import Tag

    Post.objects.create(title="needle in a haystack", status="published")
    Tag.objects.create(name="hay")
    settle()
    html = staff_client.get(f"/?{query}").content.decode()
    history = html.split('id="history"')[1].split("</tbody>")[0]
    shown = {part.split('"')[0] for part in history.split('data-signal="')[1:]}
    assert shown == expected


def test_export_ndjson_and_csv_follow_the_filters_and_mask_secrets(staff_client):
    Post.objects.create(title="=cmd|' /C calc'!A0")
    settle()
    response = staff_client.get("/export.ndjson?sender=blog.Post")
    assert response["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(x) for x in b"".join(response.streaming_content).decode().splitlines()]
    assert [x["signal"] for x in lines] == ["pre_save", "post_save"]
    assert lines[1]["payload"]["instance"]["str"] == "=cmd|' /C calc'!A0"

    response = staff_client.get("/export.csv?signal=post_save&sender=blog.Post")
    table = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert table[0] == CSV_COLUMNS
    assert [(line[2], line[4]) for line in table[1:]] == [("post_save", "blog.Post")]
    everything = b"".join(staff_client.get("/export.ndjson").streaming_content)
    assert b'"sender": "auth.User"' in everything  # the staff user's save is exported...
    assert b"pbkdf2" not in everything  # ...but not its password hash


def test_csv_export_defuses_cells_a_spreadsheet_would_run(staff_client):
    from blog.signals import post_viewed

    formula = '=HYPERLINK("http://evil.example")'
    post = Post.objects.create(title="plain")
    post_viewed.send(sender=formula, post=post, request=None)  # a sender named like a formula
    settle()
    response = staff_client.get("/export.csv?signal=post_viewed")
    table = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    sender = table[0].index("sender")
    assert [line[sender] for line in table[1:]] == ["'" + formula]


def test_the_project_s_files_are_shown_from_its_root_and_opened_by_their_full_path():
    import os

    from django.test import override_settings

    from dashboard.capture.origin import PROJECT_ROOT
    from dashboard.templatetags.dashboard_rows import in_editor

    where = os.path.join(PROJECT_ROOT, "blog", "signals.py") + ":28"
    assert in_editor(where) == "blog/signals.py:28"  # as "Sent from" names it
    assert in_editor("/usr/lib/python3/x.py:3") == "/usr/lib/python3/x.py:3"
    assert in_editor("no line here") == "no line here"
    # An installed package's file: from its package, the whole path in a tooltip.
    package = "/srv/app/.venv/lib/python3.11/site-packages/django/db/__init__.py:47"
    assert in_editor(package) == f'<span title="{package}">django/db/__init__.py:47</span>'
    debian = "/usr/lib/python3/dist-packages/redis/client.py:9"  # Debian's python3-redis
    assert in_editor(debian) == f'<span title="{debian}">redis/client.py:9</span>'
    with override_settings(DASHBOARD={"EDITOR_URL": "vscode://file/{path}:{line}"}):
        link = in_editor(where)
    assert f'href="vscode://file/{PROJECT_ROOT}/blog/signals.py:28"' in link
    assert ">blog/signals.py:28</a>" in link
    with override_settings(DASHBOARD={"EDITOR_URL": "vscode://file/{path}:{line}"}):
        link = in_editor(package)
    assert f'href="vscode://file/{package.removesuffix(":47")}:47"' in link
    assert ">django/db/__init__.py:47</a>" in link


def test_a_receiver_s_dotted_name_wraps_after_a_dot_only():
    from dashboard.templatetags.dashboard_rows import dotted_breaks

    assert dotted_breaks("django.db.close_old_connections") == (
        "django.<wbr>db.<wbr>close_old_connections"
    )
    assert dotted_breaks("a.<b>") == "a.<wbr>&lt;b&gt;"  # escaped
