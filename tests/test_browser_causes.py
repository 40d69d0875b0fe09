"""Issue 15 in a real browser, on the demo blog: what caused what (the cause tree with
each receiver's SQL, the request as a waterfall), writes that bypass signals, why a
receiver did not run, the diagnostics page, the failing lines, an object's timeline,
a trace as a test and file:line links that open the editor.

These run last (see conftest.py), like tests/test_browser.py.
"""

import re

import pytest

from blog.models import Post
from tests.browser import Server, open_dashboard, require_chromium
from tests.test_browser import add_post, post_row, row
from tests.test_look import axe_violations

pytestmark = pytest.mark.browser
EDITOR = "vscode://file/{path}:{line}"


@pytest.fixture
def editor_server(transactional_db, django_db_blocker):
    """The demo with DASHBOARD["EDITOR_URL"] set, as DASHBOARD_EDITOR_URL does."""
    require_chromium()
    with django_db_blocker.unblock():
        srv = Server(extra_env={"DASHBOARD_EDITOR_URL": EDITOR}).start()
    yield srv
    srv.stop()


def play(context, server: Server, action: str):
    """Press one of the playground's buttons; its card once it shows the events."""
    page = context.new_page()
    page.on("pageerror", lambda e: pytest.fail(f"page error: {e}"))
    page.goto(server.url + "/blog/playground/")
    card = page.locator(f'.card[data-action="{action}"]')
    card.locator("button.run").click()
    card.locator(".outcome").filter(has_text=re.compile(r"\d+ events?:")).wait_for(timeout=10_000)
    return card


def open_detail(dash, event_row):
    """Open a row's detail; its card (not the one shown before it)."""
    event_row.wait_for(timeout=5000)
    key = event_row.get_attribute("data-key")
    event_row.locator("a.open").click()
    card = dash.locator(f'.detail-card[data-event="{key}"]')
    card.wait_for(timeout=5000)
    return card


def test_the_cause_tree_with_each_receivers_sql_the_waterfall_and_bypassing_writes(
    context, editor_server
):
    server = editor_server
    dash = open_dashboard(context, server)
    play(context, server, "publish")
    card = open_detail(dash, row(dash, "post_published", "Playground post to publish").first)

    # Each receiver with its time and its own SQL; the one that never runs, and why.
    stamp = card.locator(".receivers-table tr", has_text="stamp_publication")
    assert re.fullmatch(r"1 q · [\d.]+ ms", stamp.locator("td.sql").inner_text())
    editor_link = stamp.locator(".where a.in-editor")
    assert editor_link.get_attribute("href").startswith("vscode://file/")
    assert "/blog/signals.py:" in editor_link.get_attribute("href")
    not_run = card.locator("table.not-run tr", has_text="notify_subscribers")
    assert "has not been sent with since start-up" in not_run.inner_text()

    # What it set off: under the receiver that ran it, the update that sent no signal.
    tree = card.locator("ol.cause-tree li")
    assert "stamp_publication" in tree.nth(1).inner_text() and "1 query" in tree.nth(1).inner_text()
    assert tree.nth(2).inner_text().startswith("QuerySet.update blog.Post")

    # The request as a waterfall: request start to finish, each line placed in time.
    lines = card.locator(".waterfall li")
    texts = lines.all_inner_texts()
    assert texts[0].startswith("request_started") and texts[-1].startswith("request_finished")
    at = next(i for i, t in enumerate(texts) if t.startswith("post_published"))
    assert "stamp_publication" in texts[at + 1] and texts[at + 2].startswith("QuerySet.update")
    boxes = [t.bounding_box() for t in card.locator(".waterfall .wf-track").all()]
    tracks = {(b["x"], b["width"]) for b in boxes}
    assert len(tracks) == 1  # one time scale for every line
    track = lines.first.locator(".wf-track").bounding_box()
    first, last = (lines.nth(i).locator(".wf-bar").bounding_box() for i in (0, len(texts) - 1))
    assert track["x"] - 0.5 <= first["x"] < last["x"] <= track["x"] + track["width"]
    assert first["width"] >= 2 and last["x"] + last["width"] <= track["x"] + track["width"] + 0.5

    # The write that bypassed the signals, a row of its own in the model family; raw SQL too.
    update = row(dash, "QuerySet.update", "no pre_save/post_save sent").first
    assert update.get_attribute("data-family") == "model"
    play(context, server, "raw-sql")
    raw = row(dash, "cursor.execute", "UPDATE blog_post").first
    raw.wait_for(timeout=5000)
    assert raw.get_attribute("data-sender") == "blog.Post"
    raw_card = open_detail(dash, raw)
    assert raw_card.locator(".origin a.in-editor").inner_text().startswith("blog/playground.py:")
    # Such writes are listed with the signals, counted, and filter the table as one does.
    listed = dash.locator('.counters .writes .pick-signal[data-signal="cursor.execute"]')
    assert int(dash.locator('.counters [data-count-for="cursor.execute"]').inner_text()) >= 1
    listed.click()
    dash.wait_for_function("location.search.includes('signal=cursor.execute')")
    dash.wait_for_function(
        "Array.from(document.querySelectorAll('#event-table tr.event'))"
        ".every(r => r.dataset.signal === 'cursor.execute')"
    )
    assert dash.locator("#pick-signals input[value='QuerySet.update']").count() == 1
    assert dash.evaluate("window.__notReloaded") is True


def test_failing_lines_an_objects_timeline_and_a_trace_as_a_test(context, server):
    dash = open_dashboard(context, server)
    failing = context.new_page()
    failing.goto(server.url + "/blog/error/")
    failed = row(dash, "got_request_exception", "RuntimeError").first
    failed.wait_for(timeout=5000)
    assert "error" in failed.get_attribute("class").split()  # marked as an error
    assert failed.locator(".badge.error").inner_text() == "error"
    card = open_detail(dash, failed)
    assert card.locator(".frame").first.inner_text().startswith("blog/views.py:")
    assert "raise RuntimeError" in card.locator("pre.source .here").first.inner_text()
    assert "in-editor" not in card.inner_html()  # EDITOR_URL is off by default

    admin = add_post(context, server, "Timeline me")
    post = Post.objects.get(title="Timeline me")
    admin.goto(f"{server.url}/admin/blog/post/{post.pk}/change/")
    admin.fill("#id_title", "Timeline me again")
    admin.click("input[name=_save]")
    admin.wait_for_selector(".messagelist .success")
    card = open_detail(dash, post_row(dash, "post_save", "Timeline me again"))

    with context.expect_page() as opened:
        card.locator("a", has_text="as a pytest test").click()
    snippet = opened.value
    snippet.wait_for_load_state()
    text = snippet.locator("body").inner_text()
    assert "with record_signals() as sent:" in text
    assert f"client.post('/admin/blog/post/{post.pk}/change/'" in text
    assert "('pre_save', 'blog.Post'),\n        ('post_save', 'blog.Post')," in text

    card.locator("a", has_text=f"every event about blog.Post #{post.pk}").click()
    dash.wait_for_url(f"**/objects/blog.Post/{post.pk}/")
    signals = dash.locator(".object-events .sig").all_inner_texts()
    assert signals[:2] == ["post_save", "pre_save"] and signals[-1] == "post_save"
    change = dash.locator(".object-events .changes li", has_text="title")
    assert change.inner_text() == "title: Timeline me → Timeline me again"


def test_the_diagnostics_page_from_the_header(context, server):
    dash = open_dashboard(context, server)
    dash.locator(".topnav a", has_text="Diagnostics").click()
    dash.wait_for_url("**/diagnostics/")
    unmatched = dash.locator("#diag-unmatched table").first
    assert "blog.signals.notify_subscribers" in unmatched.inner_text()
    assert "not a model" in unmatched.inner_text()
    never = dash.locator("#diag-never-sent")
    assert "blog.signals.post_published" in never.inner_text()  # nothing published yet

    play(context, server, "publish")
    dash.reload()
    assert "blog.signals.post_published" not in dash.locator("#diag-never-sent").inner_text()
    assert "notify_subscribers" in dash.locator("#diag-unmatched table").first.inner_text()
    assert axe_violations(dash) == []
