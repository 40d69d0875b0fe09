"""Look, don't read (issue #16): the live chart, requests as groups, finding things,
the detail as a panel, any screen, the playground. Real Chromium, real clicks.

These run last (see conftest.py), like tests/test_browser.py.
"""

import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.dispatch import Signal

from blog.models import Post
from dashboard.models import StoredEvent
from tests.browser import PASSWORD, Server, open_dashboard, require_chromium
from tests.helpers import settle
from tests.test_browser import add_post, post_row

pytestmark = pytest.mark.browser


def rows_of(page, attribute: str) -> list[str]:
    return page.eval_on_selector_all(
        "#event-table tr.event", f"els => els.map(e => e.dataset.{attribute})"
    )


def visible_rows(page, attribute: str) -> list[str]:
    return page.eval_on_selector_all(
        "#event-table tr.event",
        f"els => els.filter(e => e.offsetParent !== null).map(e => e.dataset.{attribute})",
    )


def wait_query(page, query: str) -> None:
    page.wait_for_function(f"location.search === {query!r}")


# -- 1. live charts ------------------------------------------------------------


def test_chart_draws_families_live_and_a_click_filters_to_one(context, server):
    dash = open_dashboard(context, server)
    path = dash.locator('#rate-chart path[data-family="request"]')
    path.wait_for(state="attached", timeout=5000)  # the login's requests, from the history
    legend = dash.locator('#chart-legend .legend-item[data-family="request"]')

    def in_window() -> int:  # the legend's count of the family's events in the chart
        return int(re.search(r"(\d+) events", legend.get_attribute("title"))[1])

    before = in_window()
    other = context.new_page()
    for _ in range(3):
        other.goto(server.url + "/blog/")
    # Live: three requests, each a request_started and a request_finished.
    dash.wait_for_function(
        "n => Number(document.querySelector('.legend-item[data-family=request]')"
        ".title.match(/(\\d+) events/)[1]) >= n",
        arg=before + 6,
        timeout=5000,
    )
    # The newest column is at the right edge: "now".
    xs = [int(x) for x in re.findall(r"M(\d+),", path.get_attribute("d"))]
    assert max(xs) >= 295
    assert re.search(r"\d+(\.\d)?/s", legend.inner_text())

    legend.click()
    wait_query(dash, "?family=request")
    dash.wait_for_function(
        "[...document.querySelectorAll('#event-table tr.event')]"
        ".every(r => r.dataset.family === 'request')"
    )
    assert set(rows_of(dash, "family")) == {"request"}
    assert legend.get_attribute("aria-pressed") == "true"
    assert "family: request" in dash.locator("#chips").inner_text()

    # A signal in the counters: it joins the filters; clicked again, it leaves them.
    dash.locator('.pick-signal[data-signal="request_finished"]').click()
    wait_query(dash, "?family=request&signal=request_finished")
    dash.wait_for_function(
        "[...document.querySelectorAll('#event-table tr.event')]"
        ".every(r => r.dataset.signal === 'request_finished')"
    )
    assert set(rows_of(dash, "signal")) == {"request_finished"}
    dash.locator('.pick-signal[data-signal="request_finished"]').click()
    wait_query(dash, "?family=request")
    # A family heading in the counters does the same as the chart's legend.
    dash.locator('.pick-family[data-family="request"]').click()
    wait_query(dash, "")
    assert dash.evaluate("window.__notReloaded") is True


looked_at = Signal()  # family "tests": the module's top package (no app holds it)


def test_an_apps_own_family_takes_a_colour_of_its_own_by_name(context, server):
    """Every app's family had the one --other colour: catalog's rows looked like django's."""
    dash = open_dashboard(context, server)
    looked_at.send(sender=Post)
    settle()
    row = dash.locator('#events tr[data-family="tests"]')
    row.wait_for(timeout=5000)

    def fam(selector: str) -> str:
        return dash.evaluate(
            f"getComputedStyle(document.querySelector('{selector}')).getPropertyValue('--fam')"
        ).strip()

    def var(name: str) -> str:
        return dash.evaluate(
            f"getComputedStyle(document.documentElement).getPropertyValue('{name}')"
        ).strip()

    # By name: "blog" the first of the other colours, "tests" the third.
    assert fam(".family.fam-blog") == var("--other")
    assert fam('#events tr[data-family="tests"]') == var("--other-3") != var("--other")
    assert fam(".family.fam-model") == var("--model")  # Django's own, as they were


# -- 2. requests as groups -------------------------------------------------------


def test_requests_view_makes_each_request_one_collapsible_row(context, server):
    Post.objects.create(title="Saved by a script")  # this process: no request, no server
    settle()
    dash = open_dashboard(context, server)
    add_post(context, server, "Grouped post")
    post_row(dash, "post_save", "Grouped post").wait_for(timeout=5000)

    dash.locator(".view-mode label", has_text="By request").click()
    wait_query(dash, "?view=requests")
    saved = dash.locator(
        "tr.event[data-signal=post_save][data-sender='blog.Post']", has_text="Grouped post"
    )
    group = dash.locator("tbody.group", has=saved)
    head = group.locator(".group-toggle")
    text = head.inner_text()
    assert "POST /admin/blog/post/add/" in text and "→ 302" in text
    assert re.search(r"\d+(\.\d+)? ms", text) and re.search(r"\d+ events", text)
    assert head.get_attribute("aria-expanded") == "false"
    # One line at this width: the request, its answer, its events cut short, when it began
    # (its duration is there: no range), and "only this request" at the end of the line.
    box, only = head.bounding_box(), group.locator(".only-request").bounding_box()
    assert box["height"] < 30 and abs(only["y"] - box["y"]) < 8, (box, only)
    assert "\u2013" not in head.locator(".when").inner_text()
    assert not saved.is_visible()  # collapsed: its events are inside
    head.click()
    assert head.get_attribute("aria-expanded") == "true" and saved.is_visible()
    # Indented under its head, a row's time is still whole (it was cut to "08:06:36.2...").
    assert saved.locator("td.t").evaluate("td => td.scrollWidth <= td.clientWidth")
    requests = group.locator("tr.event").evaluate_all("els => els.map(e => e.dataset.request)")
    assert len(set(requests)) == 1 and len(requests) >= 4

    # The script's work: a group of its process, outside any request.
    script = dash.locator("tbody.group", has=dash.locator("tr.event", has_text="Saved by a script"))
    assert "outside any request" in script.locator(".group-toggle").inner_text()

    # A request made now arrives as a new group, on top.
    other = context.new_page()
    other.goto(server.url + "/blog/")
    dash.locator("tbody.group .group-toggle", has_text="GET /blog/").first.wait_for(timeout=5000)
    top = dash.locator("#events + tbody.group .group-toggle")
    top.filter(has_text="GET /blog/").wait_for(timeout=5000)

    dash.locator(".view-mode label", has_text="Flat").click()
    wait_query(dash, "")
    assert dash.locator("tbody.group").count() == 0 and saved.is_visible()
    assert dash.evaluate("window.__notReloaded") is True


# -- 3. finding things ------------------------------------------------------------


def test_several_families_a_partial_sender_chips_and_an_empty_state(context, server):
    Post.objects.create(title="Findable")
    settle()
    dash = open_dashboard(context, server)
    dash.click("#pick-families summary")
    dash.check('#pick-families input[value="model"]')
    dash.check('#pick-families input[value="auth"]')
    wait_query(dash, "?family=model&family=auth")
    dash.wait_for_function(
        "[...document.querySelectorAll('#event-table tr.event')]"
        ".every(r => ['model', 'auth'].includes(r.dataset.family))"
    )
    families = set(rows_of(dash, "family"))
    assert families == {"model", "auth"}  # the login's user_logged_in, and saves
    chips = dash.locator("#chips .chip").all_inner_texts()
    assert [c.split("✕")[0].strip() for c in chips] == [
        "family: model", "family: auth", "Clear all filters"
    ]  # fmt: skip
    dash.keyboard.press("Escape")  # closes the picker

    # Sender: a case-insensitive part, with the senders seen suggested.
    options = dash.eval_on_selector_all("#senders option", "els => els.map(e => e.value)")
    assert "blog.Post" in options and "auth.User" in options
    dash.fill('input[name="sender"]', "POST")
    wait_query(dash, "?family=model&family=auth&sender=POST")
    dash.wait_for_function(
        "[...document.querySelectorAll('#event-table tr.event')]"
        ".every(r => r.dataset.sender.toLowerCase().includes('post'))"
    )
    assert "blog.Post" in set(rows_of(dash, "sender"))
    assert "sender contains “POST”" in dash.locator("#chips").inner_text()

    # Removing a chip removes its filter.
    dash.locator("#chips .chip", has_text="family: auth").click()
    wait_query(dash, "?family=model&sender=POST")
    assert not dash.locator('#pick-families input[value="auth"]').is_checked()

    # Nothing matches: the page says so, and offers the way out.
    dash.fill('input[name="q"]', "no row says this")
    dash.locator("#empty-filtered").wait_for(timeout=5000)
    assert "No events match these filters" in dash.locator("#empty-state").inner_text()
    assert dash.locator("#empty-waiting").is_hidden()
    dash.click("#empty-clear")
    wait_query(dash, "")
    assert dash.locator("#chips .chip").count() == 0
    assert dash.locator("#empty-state").is_hidden()

    # The request filter is a chip too, named by its method and path.
    add_post(context, server, "One request")
    post_row(dash, "post_save", "One request").wait_for(timeout=5000)
    rid = post_row(dash, "post_save", "One request").get_attribute("data-request")
    dash.goto(f"{server.url}/?request={rid}")
    chip = dash.locator("#chips .chip", has_text="request:")
    assert "POST /admin/blog/post/add/" in chip.inner_text()
    assert set(rows_of(dash, "request")) == {rid}
    chip.click()
    wait_query(dash, "")
    assert dash.locator('input[name="request"]').input_value() == ""


@pytest.fixture
def small_server(transactional_db, django_db_blocker):
    """A server whose page keeps 20 rows: quickly past MAX_ROWS."""
    require_chromium()
    with django_db_blocker.unblock():
        srv = Server(extra_env={"DASHBOARD_MAX_ROWS": "20"}).start()
    yield srv
    srv.stop()


def hover_a_new_post(dash, titles: list[str], hovered: str):
    """Posts made with these titles, shown; the pointer on the post_save row of one:
    that row and its place on the page."""
    for title in titles:
        Post.objects.create(title=title)
    settle()
    target = post_row(dash, "post_save", hovered)
    target.wait_for(timeout=5000)
    target.hover()
    return target, target.bounding_box()["y"]


def test_rows_being_read_are_not_trimmed_from_under_the_reader(context, small_server):
    """Rows kept past the cap while the page is scrolled down (at most twice over, then
    the newest wait): at 100 events/s the rows a person hovered or scrolled to were trimmed
    within seconds, and the page slid to the end of the list. "↑ N newer rows" takes them
    back to the top, where the cap applies again."""
    dash = open_dashboard(context, small_server)
    target, y = hover_a_new_post(dash, [f"Read {i}" for i in range(10)], "Read 9")
    before = int(dash.locator("#total-count").inner_text())
    newer = dash.locator("#newer")
    for first in (0, 10):  # two frames (one carries the newest MAX_ROWS rows at most)
        for i in range(first, first + 10):
            Post.objects.create(title=f"Above {i}")
        settle()
        come = before + 2 * first + 20  # these 20 events too
        dash.wait_for_function(f"+document.getElementById('total-count').textContent >= {come}")
    assert target.count() == 1 and abs(target.bounding_box()["y"] - y) <= 1
    # Twice the cap of 20 kept; the newest beyond it held back, not the read ones trimmed.
    assert dash.locator("#event-table tr.event").count() == 40
    assert dash.locator("#row-cap").inner_text() == "40"
    assert post_row(dash, "post_save", "Above 9").count() == 1
    assert post_row(dash, "post_save", "Above 19").count() == 0  # held
    assert re.fullmatch(r"\u2191 \d+ newer rows", newer.inner_text())
    newer.click()
    post_row(dash, "post_save", "Above 19").wait_for(timeout=1000)
    assert dash.evaluate("scrollY") == 0
    assert dash.locator("#event-table tr.event").count() == 20 and target.count() == 0
    assert newer.is_hidden()


def test_load_older_pages_back_through_the_history_past_max_rows(context, small_server):
    for i in range(30):
        Post.objects.create(title=f"old {i}")  # 60 events
    settle()
    dash = open_dashboard(context, small_server)
    assert dash.locator("#event-table tr.event").count() == 20
    stored = list(StoredEvent.objects.order_by("-id").values_list("process", "seq", "time"))
    for pages in (2, 3):
        dash.click("#load-older")
        dash.wait_for_function(
            f"document.querySelectorAll('#event-table tr.event').length === {20 * pages}"
        )
        assert int(dash.locator("#row-count").inner_text()) == 20 * pages
    keys = rows_of(dash, "key")
    assert len(set(keys)) == len(keys) == 60
    # The newest 60 stored, no gap, newest first by the time each row shows: the login's
    # save of its user (sent from user_logged_in's receiver, so stored before it) below it.
    shown = sorted(stored[:60], key=lambda row: row[2], reverse=True)  # stable: ties by id
    assert keys == [f"{p}.{s}" for p, s, _ in shown]
    assert shown != stored[:60]  # there is such a case here
    assert "older rows added" in dash.locator("#older-note").inner_text()
    # Past the beginning: said so, and the button rests.
    while not dash.locator("#load-older").is_disabled():
        dash.click("#load-older")
        dash.wait_for_function("document.getElementById('older-note').textContent !== 'loading…'")
    assert len(rows_of(dash, "key")) == StoredEvent.objects.count()
    # Filtered: older rows of the filters only.
    dash.goto(small_server.url + "/?signal=pre_save")
    dash.click("#load-older")
    dash.wait_for_function("document.querySelectorAll('#event-table tr.event').length > 20")
    assert set(rows_of(dash, "signal")) == {"pre_save"}


def test_a_live_row_older_than_the_history_sinks_into_it_and_outlives_a_filter(context, server):
    """A live row (a process's event that came late) older than the history's newest goes
    below it, in time order; a filter change that renders the history anew keeps it."""
    for i in range(3):
        Post.objects.create(title=f"History {i}")
    settle()
    dash = open_dashboard(context, server)
    dash.evaluate(
        """() => {
            const newest = document.querySelector('#history tr.event');
            const late = newest.cloneNode(true);
            const t = new Date(Date.parse(newest.querySelector('time').getAttribute('datetime')));
            t.setSeconds(t.getSeconds() - 1);  // began a second before the history's newest
            late.querySelector('time').setAttribute('datetime', t.toISOString());
            late.dataset.key = 'late-proc.1';
            late.dataset.signal = 'post_save';
            late.dataset.family = 'model';
            late.className = 'event fam-model';
            document.dispatchEvent(new Event('htmx:wsBeforeMessage'));
            document.getElementById('batch').dataset.counts = '{}';
            document.getElementById('events').prepend(late);
            document.dispatchEvent(new Event('htmx:wsAfterMessage'));
        }"""
    )
    late = dash.locator('#event-table tr[data-key="late-proc.1"]')
    assert late.evaluate("r => r.parentNode.id") == "history"
    keys = rows_of(dash, "key")
    assert keys.index("late-proc.1") > 0  # below the newest
    dash.click("#pick-families summary")
    dash.locator('#pick-families input[value="model"]').check()
    wait_query(dash, "?family=model")
    dash.wait_for_function("!document.querySelector('#history').classList.contains('htmx-request')")
    assert late.count() == 1


@pytest.fixture
def rollback_server(transactional_db, django_db_blocker):
    """A server with /slow-rollback/ (tests/urls_slow_rollback.py)."""
    require_chromium()
    with django_db_blocker.unblock():
        srv = Server(extra_env={"DJANGO_SETTINGS_MODULE": "tests.settings_slow_rollback"})
        srv.start()
    yield srv
    srv.stop()


def test_a_live_row_marked_rolled_back_gets_the_badge_a_stored_one_has(context, rollback_server):
    """Shown before its transaction rolled back, then marked: it was struck through with no
    badge until a reload."""
    dash = open_dashboard(context, rollback_server)
    other = context.new_page()
    other.goto(rollback_server.url + "/slow-rollback/")
    assert other.locator("body").inner_text() == "rolled back"
    saved = post_row(dash, "post_save", "Shown, then rolled back")
    dash.locator("#event-table tr.rolled-back[data-signal=post_save]").wait_for(timeout=5000)
    assert saved.locator(".badge").inner_text() == "rolled back"
    live = saved.inner_html()
    dash.reload()
    dash.wait_for_selector("#ws-status[data-state=open]")
    stored = dash.locator("#history tr[data-signal=post_save]", has_text="then rolled back")
    assert stored.inner_html() == live  # as the history renders it


def test_pause_holds_rows_back_and_counts_them_without_calling_them_shown(context, server):
    dash = open_dashboard(context, server)
    shown = int(dash.locator("#row-count").inner_text())
    dash.click("#pause")
    add_post(context, server, "Held back")
    dash.wait_for_function("Number(document.getElementById('paused-count').textContent) >= 2")
    held = int(dash.locator("#paused-count").inner_text())
    assert "held back" in dash.locator("#paused-box").inner_text()
    assert int(dash.locator("#row-count").inner_text()) == shown  # not counted as shown
    assert dash.locator("#event-table tr.event", has_text="Held back").count() == 0
    dash.click("#pause")
    post_row(dash, "post_save", "Held back").wait_for(timeout=2000)
    assert int(dash.locator("#row-count").inner_text()) == shown + held
    assert dash.locator("#paused-box").is_hidden()


def test_the_row_under_the_pointer_stays_put_as_new_rows_come_in_above(context, server):
    """At 100 events/s the row a person reached for had moved down by the time they
    clicked; away from the table, new rows still push the others down."""
    dash = open_dashboard(context, server)
    titles = [f"Under the pointer {i}" for i in range(3)]
    target, y = hover_a_new_post(dash, titles, "Under the pointer 0")
    for i in range(6):
        Post.objects.create(title=f"Came in above {i}")
    settle()
    post_row(dash, "post_save", "Came in above 5").wait_for(timeout=5000)
    assert rows_of(dash, "key").index(target.get_attribute("data-key")) >= 12
    assert abs(target.bounding_box()["y"] - y) <= 1 and dash.evaluate("scrollY") > 0

    # Back at the top, the pointer on the top bar: the new row shows on top.
    dash.evaluate("scrollTo(0, 0)")
    dash.mouse.move(600, 10)
    y = target.bounding_box()["y"]
    Post.objects.create(title="Came in with the pointer away")
    settle()
    post_row(dash, "post_save", "Came in with the pointer away").wait_for(timeout=5000)
    assert dash.evaluate("scrollY") == 0 and target.bounding_box()["y"] > y + 20


# -- 4. the detail as a real panel -------------------------------------------------


def test_detail_opens_and_closes_in_place_moves_focus_and_keeps_its_url(context, server):
    dash = open_dashboard(context, server)
    add_post(context, server, "Look closer")
    row = post_row(dash, "post_save", "Look closer")
    # One line, cut to fit; opened, the whole of it (an update's changed fields end it).
    summary = row.locator("td.payload summary")
    assert summary.evaluate("s => getComputedStyle(s).whiteSpace") == "nowrap"
    summary.click()
    assert summary.evaluate("s => getComputedStyle(s).whiteSpace") == "normal"
    summary.click()
    link = row.locator("a.open")
    link.click()
    dash.wait_for_selector(".detail-card")
    assert re.search(r"/events/[\w.-]+/$", dash.url)
    assert dash.evaluate("document.activeElement.id") == "detail-title"
    assert "Look closer" in dash.locator(".detail-card pre").inner_text()
    # The heading names the event by the key in the address; its row stands out.
    key = row.get_attribute("data-key")
    assert dash.url.endswith(f"/events/{key}/")
    assert dash.locator("#detail-title small").inner_text() == key
    selected = dash.locator("#event-table tr.event.selected")
    assert selected.count() == 1 and selected.get_attribute("data-key") == key
    assert selected.get_attribute("aria-current") == "true"

    dash.keyboard.press("Escape")
    dash.wait_for_selector(".detail-card", state="detached")
    assert dash.url == server.url + "/"
    assert dash.locator("#event-table tr.event.selected").count() == 0
    focused = dash.evaluate("document.activeElement.getAttribute('href')")
    assert focused == link.get_attribute("href")  # back where it was

    link.click()
    dash.wait_for_selector(".detail-card")
    dash.click(".detail-card .close")
    dash.wait_for_selector(".detail-card", state="detached")
    assert dash.url == server.url + "/"

    # Back and Forward follow the address.
    link.click()
    dash.wait_for_selector(".detail-card")
    dash.go_back()
    dash.wait_for_selector(".detail-card", state="detached")
    dash.go_forward()
    dash.wait_for_selector(".detail-card")
    assert dash.evaluate("window.__notReloaded") is True  # never reloaded

    # On a phone the panel takes the screen, and nothing scrolls sideways.
    dash.set_viewport_size({"width": 390, "height": 800})
    box = dash.locator("#detail").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert dash.evaluate("document.documentElement.scrollWidth") <= 390
    # The whole screen and no Esc key: ✕ stays in reach however far the panel scrolls.
    dash.locator("#detail").evaluate("d => d.scrollTo(0, d.scrollHeight)")
    assert dash.locator("#detail").evaluate("d => d.scrollTop") > 0
    close = dash.locator(".detail-card .close").bounding_box()
    assert 0 <= close["y"] < 100
    dash.click(".detail-card .close")
    dash.wait_for_selector(".detail-card", state="detached")

    # Opened by its address (a shared link, a reload): its row is marked all the same.
    dash.set_viewport_size({"width": 1400, "height": 900})
    dash.goto(f"{server.url}/events/{key}/")
    dash.wait_for_selector(".detail-card")
    selected = dash.locator("#event-table tr.event.selected")
    assert selected.count() == 1 and selected.get_attribute("data-key") == key
    # Filtered while it is open: the history comes anew, its row marked again.
    dash.fill('input[name="q"]', "Look closer")
    dash.wait_for_function("location.search === '?q=Look+closer'")
    dash.wait_for_function("document.querySelectorAll('#event-table tr.event.selected').length")
    assert dash.locator("#event-table tr.event.selected").get_attribute("data-key") == key


# -- 5. any screen ---------------------------------------------------------------------


def test_no_sideways_scrolling_on_a_phone_and_every_column_at_720(browser, server):
    get_user_model().objects.create_superuser("editor", password=PASSWORD)
    Post.objects.create(title="A title long enough to be cut short somewhere on a narrow screen")
    with pytest.raises(RuntimeError), transaction.atomic():  # the longest signal names first
        m2m = Post.objects.create(title="tagged")
        m2m.tags.create(name="a tag")
        raise RuntimeError
    settle()
    for width in (390, 720):
        ctx = browser.new_context(viewport={"width": width, "height": 800})
        try:
            dash = open_dashboard(ctx, server)
            assert dash.evaluate("document.documentElement.scrollWidth") <= width
            first = dash.locator("#event-table tr.event").first
            for cell in ("td.t", "td .sig", "td.sender", "td.payload summary", "a.open"):
                box = first.locator(cell).bounding_box()
                assert box and box["width"] > 0 and box["x"] >= 0, (width, cell)
                assert box["x"] + box["width"] <= width, (width, cell)
            if width == 390:  # a card per row: the signal's name is never cut
                clipped = first.locator(".sig").evaluate("e => e.scrollWidth > e.clientWidth")
                cell = first.locator("td:nth-child(2)").evaluate(
                    "e => e.scrollWidth > e.clientWidth"
                )
                assert not clipped and not cell
            if width == 720:  # side by side: the table's four columns, on one line each
                heads = dash.locator("#event-table thead th")
                assert all(h.is_visible() for h in heads.all())
                assert first.locator("td.sender").bounding_box()["width"] >= 100
            dash.locator(".view-mode label", has_text="By request").click()
            assert dash.evaluate("document.documentElement.scrollWidth") <= width
        finally:
            ctx.close()


def test_wide_the_counters_stay_in_view_and_the_detail_leaves_signal_names_whole(browser, server):
    """1400 px: scrolled down a long table, the counters are still beside it; with a
    detail open beside the table, no row's signal name is cut, each row's link shrinks
    to its arrow (its name kept for screen readers), and a package's file is named from
    its package."""
    get_user_model().objects.create_superuser("editor", password=PASSWORD)
    for i in range(40):
        Post.objects.create(title=f"Long table {i}")
    settle()
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        dash = open_dashboard(ctx, server)
        dash.mouse.move(900, 600)  # over the table: a wheel scrolls what is under the mouse
        dash.mouse.wheel(0, 2500)
        dash.wait_for_function("window.scrollY > 1000")
        counters = dash.locator(".counters").bounding_box()
        nav = dash.locator(".topnav").bounding_box()
        assert counters and nav and counters["y"] == pytest.approx(nav["height"], abs=2)
        assert dash.locator(".counters .totals").is_visible()
        dash.evaluate("window.scrollTo(0, 0)")
        dash.locator("#event-table tr.event[data-signal=request_started] td.sender").first.click()
        dash.wait_for_selector(".detail-card")
        clipped = dash.eval_on_selector_all(
            "#event-table tr.event td:nth-child(2)",
            "cells => cells.filter(c => c.scrollWidth > c.clientWidth).map(c => c.innerText)",
        )
        assert clipped == []
        link = dash.locator("#event-table tr.event a.open").first
        assert link.bounding_box()["width"] < 20
        assert link.evaluate("a => a.textContent").strip() == "detail \u203a"
        where = dash.locator(".receivers-table .where").first.inner_text()
        assert where.startswith("django/db/") and "site-packages" not in where
    finally:
        ctx.close()


def test_at_1100_the_detail_over_the_table_leaves_the_top_bar_in_reach(browser, server):
    get_user_model().objects.create_superuser("editor", password=PASSWORD)
    ctx = browser.new_context(viewport={"width": 1100, "height": 800})
    try:
        dash = open_dashboard(ctx, server)
        dash.locator("#event-table tr.event td.sender").first.click()
        dash.wait_for_selector(".detail-card")
        nav = dash.locator(".topnav").bounding_box()
        assert dash.locator("#detail").bounding_box()["y"] >= nav["y"] + nav["height"] - 1
        live = dash.locator("#ws-status").bounding_box()  # not under the panel
        on_top = dash.evaluate(
            "([x, y]) => document.elementFromPoint(x, y).closest('.topnav') !== null",
            [live["x"] + live["width"] / 2, live["y"] + live["height"] / 2],
        )
        assert on_top
    finally:
        ctx.close()


@pytest.mark.parametrize(("scheme", "light"), [("light", True), ("dark", False)])
def test_the_theme_follows_the_systems_preference(browser, server, scheme, light):
    get_user_model().objects.create_superuser("editor", password=PASSWORD)
    ctx = browser.new_context(color_scheme=scheme)
    try:
        dash = open_dashboard(ctx, server)
        rgb = dash.evaluate("getComputedStyle(document.body).backgroundColor")
        channels = [int(c) for c in re.findall(r"\d+", rgb)[:3]]
        assert (sum(channels) / 3 > 200) is light, rgb
    finally:
        ctx.close()


def axe_violations(page) -> list[dict]:
    """axe-core (from the axe-playwright-python package's copy, no network) on the page."""
    import axe_playwright_python

    page.add_script_tag(path=str(Path(axe_playwright_python.__file__).parent / "axe.min.js"))
    return page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ["violations"]});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
        }"""
    )


@pytest.mark.parametrize("scheme", ["dark", "light"])
def test_axe_finds_no_violation_of_any_impact(browser, server, scheme):
    get_user_model().objects.create_superuser("editor", password=PASSWORD)
    with pytest.raises(RuntimeError), transaction.atomic():
        Post.objects.create(title="rolled back")  # a badge
        raise RuntimeError
    settle()
    found = {}
    for width in (1400, 390):
        ctx = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
        try:
            dash = open_dashboard(ctx, server)
            add_post(ctx, server, "Accessible")
            post_row(dash, "post_save", "Accessible").wait_for(timeout=5000)
            dash.wait_for_timeout(1300)  # the arrival highlight has faded
            found[f"{width} flat"] = axe_violations(dash)
            dash.click("#pick-signals summary")
            found[f"{width} picker"] = axe_violations(dash)
            dash.keyboard.press("Escape")
            dash.locator(".view-mode label", has_text="By request").click()
            dash.locator(".group-toggle").first.click()
            found[f"{width} grouped"] = axe_violations(dash)
            dash.locator("#event-table a.open").first.click()
            dash.wait_for_selector(".detail-card")
            found[f"{width} detail"] = axe_violations(dash)
            dash.goto(server.url + "/blog/playground/")
            dash.locator('.card[data-action="create"] button.run').click()
            dash.locator('.card[data-action="create"] tr.event').first.wait_for(timeout=10_000)
            found[f"{width} playground"] = axe_violations(dash)
        finally:
            ctx.close()
    violations = {k: v for k, v in found.items() if v}
    assert violations == {}, json.dumps(violations, indent=1)


# -- 6. the playground -------------------------------------------------------------------


def test_playground_buttons_show_their_events_here_and_on_the_dashboard(context, server):
    dash = open_dashboard(context, server)
    assert dash.locator(".topnav a", has_text="Playground").count() == 1  # DASHBOARD["LINKS"]
    play = context.new_page()
    play.on("pageerror", lambda e: pytest.fail(f"page error: {e}"))
    play.goto(server.url + "/blog/playground/")

    def run(action: str):
        card = play.locator(f'.card[data-action="{action}"]')
        assert card.locator(".doc").inner_text()  # what the signal is for, and its arguments
        card.locator("button.run").click()
        card.locator(".outcome").filter(has_text=re.compile(r"\d+ events?:")).wait_for(
            timeout=10_000
        )
        return card

    card = run("create")
    created = card.locator("tr.event[data-signal=post_save]")
    assert "created" in created.inner_text()
    signals = card.locator("tr.event").evaluate_all("els => els.map(e => e.dataset.signal)")
    assert signals.index("pre_save") < signals.index("post_save")  # in the order sent
    key = created.get_attribute("data-key")
    dash.locator(f'#events tr[data-key="{key}"]').wait_for(timeout=5000)  # and live
    # Its detail opens on the dashboard in a tab of its own: the playground keeps its results.
    with play.context.expect_page() as opened:
        created.locator("a.open").click()
    assert opened.value.url.endswith(f"/events/{key}/")
    opened.value.close()
    assert play.url.endswith("/blog/playground/")

    # A comment's post_save sets off a save of its post (blog.signals.bump_post_on_comment):
    # the card lists them in the order they were sent, not the order their sends ended.
    card = run("comment")
    sent = card.locator("tr.event").evaluate_all(
        "els => els.map(e => [e.dataset.signal, e.dataset.sender,"
        " e.querySelector('time').getAttribute('datetime')])"
    )
    at = [datetime.fromisoformat(t) for _, _, t in sent]
    assert at == sorted(at)
    pairs = [(signal, sender) for signal, sender, _ in sent]
    comment = pairs.index(("post_save", "blog.Comment"))
    assert ("pre_save", "blog.Post") in pairs[comment + 1 :]  # the save it set off, after it

    card = run("rollback")
    assert card.locator("tr.event.rolled-back[data-signal=post_save]").count() == 1

    card = run("savepoint")
    saves = card.locator("tr.event[data-signal=post_save]")
    assert saves.count() == 2
    assert card.locator("tr.event.rolled-back[data-signal=post_save]").count() == 1

    card = run("setting")
    assert card.locator("tr.event[data-signal=setting_changed]").count() == 2

    card = run("login-wrong")
    assert card.locator("tr.event[data-signal=user_login_failed]").count() == 1

    card = run("error")
    assert card.locator("tr.event[data-signal=got_request_exception]").count() == 1

    card = run("update-queryset")
    assert "no model signal" in card.locator(".outcome").inner_text()
    sent = set(card.locator("tr.event").evaluate_all("els => els.map(e => e.dataset.signal)"))
    assert "QuerySet.update" in sent  # the write, as a row of its own (capture/writes.py)
    assert not sent & {"pre_save", "post_save"}
    assert dash.evaluate("window.__notReloaded") is True
