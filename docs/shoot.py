"""Take the README's screenshots: `.venv/bin/python docs/shoot.py [demo causes host]`.

The demo (docs/dashboard.png, the requests view docs/requests.png, an update's
detail docs/detail.png, docs/playground.png, a phone docs/phone.png), a
publish's causes and waterfall (docs/causes.png) and the diagnostics page
(docs/diagnostics.png), and
tests/host/, the host project that uses the dashboard as any project would
(docs/host.png), each served on a free loopback port from a throwaway
database, driven as a person would.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PASSWORD = "shoot-pass-123"
PYTHON = sys.executable


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(command: list[str], cwd: Path, env: dict[str, str], port: int) -> subprocess.Popen:
    server = subprocess.Popen(command, cwd=cwd, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=1)
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit(f"{command} did not answer")


def log_in(page, url: str, next_path: str, live: bool = True) -> None:
    page.goto(f"{url}/admin/login/?next={next_path}")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    if live:
        page.wait_for_selector("#ws-status[data-state=open]", timeout=10_000)


def demo_server(db: Path) -> tuple[subprocess.Popen, str, dict[str, str]]:
    """The demo as `make run` sets it up (migrated, demo account, sample posts), on its
    own database, served by daphne on a free port: (server, its URL, its environment)."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}",
           "DJANGO_SUPERUSER_USERNAME": "admin", "DJANGO_SUPERUSER_PASSWORD": PASSWORD}  # fmt: skip
    subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run([PYTHON, "manage.py", "demo_setup"], cwd=ROOT, env=env, check=True)
    port = free_port()
    command = [PYTHON, "-m", "daphne", "-p", str(port), "config.asgi:application"]
    return serve(command, ROOT, env, port), f"http://127.0.0.1:{port}", env


def demo(browser, tmp: Path) -> None:
    server, url, env = demo_server(tmp / "demo.sqlite3")
    try:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        log_in(page, url, "/")
        admin = browser.new_page()
        admin.goto(f"{url}/admin/login/?next=/admin/blog/post/add/")
        admin.fill("#id_username", "admin")
        admin.fill("#id_password", PASSWORD)
        admin.click("input[type=submit]")
        admin.fill("#id_title", "Signals, seen live")
        admin.select_option("#id_status", "published")
        admin.click("input[name=_save]")
        admin.goto(f"{url}/blog/")
        admin.goto(f"{url}/blog/error/")
        # An edit: its post_save carries a field diff.
        admin.goto(f"{url}/admin/blog/post/")
        admin.click("text=Signals, seen live")
        admin.fill("#id_body", "Edited: the detail shows the diff.")
        admin.click("input[name=_save]")
        # Some traffic for the chart.
        subprocess.run([PYTHON, "manage.py", "simulate", "--url", url, "--rate", "15",
                        "--duration", "12", "--seed", "16"], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        page.wait_for_selector('#events tr[data-signal="post_published"]', timeout=10_000)
        time.sleep(1.5)  # the arrival highlight fades
        page.screenshot(path=DOCS / "dashboard.png")
        page.locator(".view-mode label", has_text="By request").click()
        page.locator(".group-toggle", has_text="POST /admin/blog/post/add/").first.click()
        time.sleep(0.5)
        page.screenshot(path=DOCS / "requests.png")
        page.locator(".view-mode label", has_text="Flat").click()
        page.fill("input[name=q]", "Edited: the detail")
        page.wait_for_function("location.search.includes('q=')")
        page.locator('#event-table tr[data-signal="post_save"][data-sender="blog.Post"] a.open')\
            .first.click()
        page.wait_for_selector(".detail-card .diff", timeout=10_000)
        time.sleep(0.5)
        page.screenshot(path=DOCS / "detail.png")

        play = browser.new_page(viewport={"width": 1280, "height": 1000})
        log_in(play, url, "/blog/playground/", live=False)
        for action in ("savepoint", "login-wrong"):
            card = play.locator(f'.card[data-action="{action}"]')
            card.locator("button.run").click()
            card.locator(".outcome").filter(has_text=re.compile(r"\d+ events?:")).wait_for()
        play.locator('.card[data-action="savepoint"]').scroll_into_view_if_needed()
        play.evaluate("window.scrollBy(0, -140)")
        time.sleep(1.5)
        play.screenshot(path=DOCS / "playground.png")

        phone = browser.new_context(
            viewport={"width": 390, "height": 844}, color_scheme="light",
            device_scale_factor=2, is_mobile=True, has_touch=True,
        )  # fmt: skip
        mobile = phone.new_page()
        log_in(mobile, url, "/")
        time.sleep(1.5)
        mobile.screenshot(path=DOCS / "phone.png")
    finally:
        server.terminate()
        server.wait(10)


def causes(browser, tmp: Path) -> None:
    """What caused what: a publish's detail (each receiver's SQL, the tree, the request's
    waterfall), and the diagnostics page (docs/causes.png, docs/diagnostics.png)."""
    server, url, _ = demo_server(tmp / "causes.sqlite3")
    try:
        page = browser.new_page(viewport={"width": 1440, "height": 1300})
        log_in(page, url, "/")
        play = browser.new_page()
        log_in(play, url, "/blog/playground/", live=False)
        card = play.locator('.card[data-action="publish"]')
        card.locator("button.run").click()
        card.locator(".outcome").filter(has_text=re.compile(r"\d+ events?:")).wait_for()
        page.locator('#events tr[data-signal="post_published"] a.open').first.click()
        page.wait_for_selector(".detail-card .waterfall", timeout=10_000)
        time.sleep(0.5)
        page.locator(".detail-card").screenshot(path=DOCS / "causes.png")
        page.set_viewport_size({"width": 1100, "height": 900})
        page.goto(f"{url}/diagnostics/")
        page.screenshot(path=DOCS / "diagnostics.png", full_page=True)
    finally:
        server.terminate()
        server.wait(10)


def host(browser, tmp: Path) -> None:
    project = tmp / "host"
    shutil.copytree(ROOT / "tests" / "host", project)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SUPERUSER_PASSWORD": PASSWORD}
    for command in (["migrate", "-v0"], ["createsuperuser", "--noinput", "--username", "admin",
                                          "--email", "a@example.com"]):  # fmt: skip
        subprocess.run([PYTHON, "manage.py", *command], cwd=project, env=env, check=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = serve([PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                   project, env, port)  # fmt: skip
    try:
        page = browser.new_page(viewport={"width": 1440, "height": 800})
        log_in(page, url, "/signals/")
        for title in ("Dune", "Solaris", "Dune"):
            urllib.request.urlopen(f"{url}/borrow/{title}/", timeout=5).read()
        page.wait_for_selector('#events tr[data-signal="book_borrowed"]', timeout=10_000)
        page.check("input[name=mine]")
        time.sleep(1.5)
        page.screenshot(path=DOCS / "host.png")
    finally:
        server.terminate()
        server.wait(10)


SHOTS = {"demo": demo, "causes": causes, "host": host}


def main() -> None:
    """Every shot, or those named (`docs/shoot.py causes`)."""
    names = sys.argv[1:] or list(SHOTS)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for name in names:
            SHOTS[name](browser, Path(tmp))
        browser.close()
    print("wrote", *(p.name for p in sorted(DOCS.glob("*.png"))))


if __name__ == "__main__":
    main()
