"""What a person sees: the admin in one tab, the live dashboard in another.

These run last (see conftest.py): Playwright's sync API keeps an event loop
running in this thread, which Django's async-safety checks would trip over.
"""

import re

import pytest
from django.contrib.auth import get_user_model

from blog.models import Post
from tests.browser import PASSWORD, Server, open_dashboard
from tests.helpers import settle

pytestmark = pytest.mark.browser


def add_post(context, server: Server, title: str):
    """Create a post with the admin's add form, in a tab of its own."""
    admin = context.new_page()
    admin.goto(server.url + "/admin/blog/post/add/")
    admin.fill("#id_title", title)
    admin.click("input[name=_save]")
    admin.wait_for_selector(".messagelist .success")
    return admin


def row(page, signal: str, text: str | re.Pattern[str]):
    return page.locator(f'#events tr[data-signal="{signal}"]', has_text=text)


def post_row(page, signal: str, title: str):
    """The row about the Post itself, not e.g. the admin's LogEntry that quotes its title."""
    return row(page, signal, re.compile(rf"blog\.Post (#\w+|\(new\)) “{re.escape(title)}”"))


def test_admin_edits_and_a_failing_page_appear_live(context, server):
    dash = open_dashboard(context, server)
    admin = add_post(context, server, "Seen from the browser")
    post_row(dash, "pre_save", "Seen from the browser").wait_for(timeout=5000)
    created = post_row(dash, "post_save", "Seen from the browser")
    created.wait_for(timeout=5000)
    assert "created" in created.inner_text()
    assert created.locator(".sender").inner_text() == "blog.Post"

    post = Post.objects.get(title="Seen from the browser")
    admin.goto(f"{server.url}/admin/blog/post/{post.pk}/delete/")
    admin.click("input[type=submit]")
    admin.wait_for_selector(".messagelist .success")
    post_row(dash, "pre_delete", "Seen from the browser").wait_for(timeout=5000)
    post_row(dash, "post_delete", "Seen from the browser").wait_for(timeout=5000)

    admin.goto(server.url + "/blog/error/")
    row(dash, "got_request_exception", "RuntimeError").first.wait_for(timeout=5000)

    # Newest on top, counters counted, and no reload happened on the way.
    assert dash.locator("#events tr").first.get_attribute("data-signal") in {
        "request_finished",
        "got_request_exception",
        "connection_created",
    }
    assert int(dash.locator('[data-count-for="post_delete"]').inner_text()) == 1
    assert dash.evaluate("window.__notReloaded") is True
    # The dashboard's own page and socket added nothing about "/" to the feed.
    summaries = dash.eval_on_selector_all("#events summary", "els => els.map(e => e.textContent)")
    assert summaries and not [s for s in summaries if s.startswith("GET / ") or s == "GET /"]


def test_indicator_shows_a_dropped_socket_and_recovers(
    browser, transactional_db, django_db_blocker
):
    """Stop the server under an open dashboard: it says so, reconnects, and goes on."""
    get_user_model().objects.create_superuser("editor", password=PASSWORD)
    with django_db_blocker.unblock():
        srv = Server().start()
    ctx = browser.new_context()
    try:
        dash = open_dashboard(ctx, srv)
        srv.stop()
        dash.wait_for_selector("#ws-status[data-state=closed]", timeout=5000)
        with django_db_blocker.unblock():
            srv.start()
        dash.wait_for_selector("#ws-status[data-state=open]", timeout=15_000)
        other = ctx.new_page()
        other.goto(srv.url + "/blog/error/")
        row(dash, "got_request_exception", "RuntimeError").first.wait_for(timeout=5000)
        assert dash.evaluate("window.__notReloaded") is True
    finally:
        ctx.close()
        srv.stop()


def test_bulk_delete_burst_keeps_row_cap_and_exact_counts(context, server):
    """A bulk delete of 5,000 posts (10,000 model events): the page stays capped and exact."""
    author = get_user_model().objects.get(username="editor")
    Post.objects.bulk_create(
        Post(title=f"bulk {i}", slug=f"bulk-{i}", author=author) for i in range(5000)
    )
    dash = open_dashboard(context, server)
    admin = context.new_page()
    admin.goto(server.url + "/admin/blog/post/")
    admin.check("#action-toggle")
    admin.click(".question")  # "Select all 5000 posts"
    admin.select_option("select[name=action]", "delete_selected")
    admin.click("button[name=index]")
    admin.click("input[type=submit]")  # "Yes, I'm sure"
    try:
        admin.wait_for_selector(".messagelist .success", timeout=60_000)
    except Exception:
        admin.screenshot(path="test-artifacts/bulk.png")
        raise

    dash.wait_for_function(
        "document.querySelector('[data-count-for=post_delete]').textContent === '5000'",
        timeout=30_000,
    )
    assert dash.locator('[data-count-for="pre_delete"]').inner_text() == "5000"
    max_rows = int(dash.locator(".dash").get_attribute("data-max-rows"))
    assert dash.locator("#events tr").count() <= max_rows
    assert int(dash.locator("#row-count").inner_text()) <= max_rows
    assert int(dash.locator("#total-count").inner_text()) >= 10_000
    # Still responsive: a click toggles a row's payload at once.
    dash.locator("#events tr summary").first.click()
    assert dash.locator("#events tr details").first.get_attribute("open") is not None


def test_reconnect_backfills_what_happened_while_the_server_was_down(
    context, server, django_db_blocker
):
    dash = open_dashboard(context, server)
    server.stop()
    dash.wait_for_selector("#ws-status[data-state=closed]", timeout=5000)
    for i in range(3):  # from another process while no server runs: stored, not sent
        Post.objects.create(title=f"while down {i}")
    settle()
    with django_db_blocker.unblock():
        server.start()
    dash.wait_for_selector("#ws-status[data-state=open]", timeout=15_000)
    for i in range(3):
        post_row(dash, "post_save", f"while down {i}").wait_for(timeout=5000)
    shown = dash.eval_on_selector_all(
        "#events tr[data-signal=post_save] summary, #events tr[data-signal=pre_save] summary",
        "els => els.map(e => e.textContent)",
    )
    mine = [s for s in shown if "while down" in s and s.startswith("blog.Post")]
    # Each event once; newest on top, so reversed they are in the order they happened.
    assert [s.split("“")[1].split("”")[0] for s in reversed(mine)] == [
        f"while down {i}" for i in range(3) for _ in ("pre_save", "post_save")
    ]
    assert int(dash.locator('[data-count-for="post_save"]').inner_text()) >= 3
    assert dash.evaluate("window.__notReloaded") is True


def test_clicking_a_row_opens_its_detail_with_a_shareable_url(context, server):
    dash = open_dashboard(context, server)
    add_post(context, server, "Open me")
    created = post_row(dash, "post_save", "Open me")
    created.wait_for(timeout=5000)
    created.locator("td.sender").click()  # the row itself, not only its detail link
    dash.wait_for_selector(".detail-card", timeout=5000)
    card = dash.locator(".detail-card")
    assert "post_save" in card.locator("h2").inner_text()
    assert card.locator(".origin").inner_text().startswith("blog/models.py:")  # Post.save
    assert "blog.signals.fill_slug" not in card.inner_text()  # a pre_save receiver, not this
    assert "Open me" in card.locator("pre").inner_text()
    assert "/events/" in dash.url  # pushed: the URL can be shared
    shared = context.new_page()
    shared.goto(dash.url)
    assert "Open me" in shared.locator(".detail-card pre").inner_text()
    assert dash.evaluate("window.__notReloaded") is True


def test_live_rows_follow_the_filters_and_pause(context, server):
    dash = open_dashboard(context, server)
    dash.click("#pick-signals summary")
    dash.check('#pick-signals input[value="post_save"]')
    dash.wait_for_function("location.search === '?signal=post_save'")
    dash.evaluate("window.__notReloaded = true")
    blog = context.new_page()
    blog.goto(server.url + "/blog/")
    add_post(context, server, "Filtered live")
    post_row(dash, "post_save", "Filtered live").wait_for(timeout=5000)
    signals = set(dash.eval_on_selector_all("#events tr", "els => els.map(e => e.dataset.signal)"))
    assert signals == {"post_save"}
    # Counters still count everything.
    assert int(dash.locator('[data-count-for="request_started"]').inner_text()) >= 2

    dash.click("#pause")
    add_post(context, server, "While paused")
    dash.wait_for_function("document.getElementById('paused-count').textContent !== '0'")
    assert not post_row(dash, "post_save", "While paused").is_visible()
    dash.click("#pause")
    assert post_row(dash, "post_save", "While paused").is_visible()


def test_losses_reported_by_each_process_add_up_and_show(context, server):
    """Frames carry each process's running counts of events dropped by a full queue and
    of events the history could not keep; the page shows their sums, only when not 0.
    (No server here can be made to lose events on demand: the frames are swapped in as
    the socket's would be, and the page's own handler applies them.)"""
    dash = open_dashboard(context, server)
    assert dash.locator("#dropped-box").is_hidden() and dash.locator("#unstored-box").is_hidden()

    def frame_from(process: str, dropped: int, unstored: int) -> None:
        dash.evaluate(
            """([process, dropped, unstored]) => {
                document.dispatchEvent(new CustomEvent("htmx:wsBeforeMessage"));
                const batch = document.getElementById("batch");
                batch.dataset.counts = "{}";
                batch.dataset.process = process;
                batch.dataset.dropped = dropped;
                batch.dataset.unstored = unstored;
                document.dispatchEvent(new CustomEvent("htmx:wsAfterMessage"));
            }""",
            [process, dropped, unstored],
        )

    frame_from("host-1", 0, 4)
    assert dash.locator("#unstored-box").is_visible() and dash.locator("#dropped-box").is_hidden()
    frame_from("host-2", 2, 3)
    frame_from("host-1", 0, 6)  # running counts: the newest replaces that process's last
    assert dash.locator("#unstored-count").inner_text() == "9"
    assert dash.locator("#dropped-count").inner_text() == "2"


def test_a_page_whose_session_ended_says_so_and_offers_to_log_in(context, server):
    from django.contrib.sessions.models import Session

    dash = open_dashboard(context, server)
    add_post(context, server, "Seen before the logout").close()
    created = post_row(dash, "post_save", "Seen before the logout")
    created.wait_for(timeout=5000)
    Session.objects.all().delete()  # logged out everywhere (a flush, clearsessions, …)
    banner = dash.locator("#session-ended")
    banner.wait_for(timeout=10_000)  # the socket re-checks every ACCESS_RECHECK (3 s)
    assert "session ended" in banner.inner_text()
    assert dash.locator("#ws-status").get_attribute("data-state") == "ended"
    assert banner.locator("a").get_attribute("href") == "/login/?next=%2F"
    # The header no longer says who is logged in, nor offers to log out.
    assert not dash.locator(".topnav .who").is_visible()
    assert not dash.get_by_role("button", name="Log out").is_visible()
    # A click that asks the server now takes the whole page to the login form, never
    # puts the form inside the detail panel.
    created.locator("a.open").click()
    dash.wait_for_url(re.compile(r"//[^/]+/login/\?next="), timeout=5000)
    assert dash.locator("#id_username").count() == 1
    assert dash.locator(".detail-card").count() == 0


def test_load_older_after_the_session_ended_goes_to_the_login(context, server):
    from django.contrib.sessions.models import Session

    dash = open_dashboard(context, server)
    Session.objects.all().delete()
    dash.locator("#load-older").click()  # before the socket noticed: the request does
    dash.wait_for_url(re.compile(r"//[^/]+/login/\?next="), timeout=5000)
    assert dash.locator("#id_username").count() == 1


def test_a_session_that_ended_while_the_server_was_down_is_said_on_reconnect(
    context, server, django_db_blocker
):
    from django.contrib.sessions.models import Session

    dash = open_dashboard(context, server)
    server.stop()
    dash.wait_for_selector("#ws-status[data-state=closed]", timeout=5000)
    Session.objects.all().delete()
    with django_db_blocker.unblock():
        server.start()
    # The handshake is refused (it cannot say why); the socket's address over HTTP can.
    dash.locator("#session-ended").wait_for(timeout=15_000)
    assert "session ended" in dash.locator("#session-ended").inner_text()
