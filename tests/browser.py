"""Real-browser support: a daphne subprocess serving the test database, and Chromium.

Debian's Chromium through Playwright's Python package (never a downloaded browser).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "browser-pass-123"  # the `context` fixture's staff user, "editor"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> str:
    if CHROMIUM:
        return CHROMIUM
    reason = "Debian's chromium is not installed (make test installs it where it may)"
    if os.environ.get("DASHBOARD_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests are required here but cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """daphne serving config.asgi against the test database, stopped by its PID."""

    def __init__(self, port: int | None = None, extra_env: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.log = ROOT / "test-artifacts" / f"daphne-{self.port}.log"

    def start(self) -> "Server":
        db = settings.DATABASES["default"]["NAME"]  # the test database, once set up
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings",
            DATABASE_URL=f"sqlite:///{db}",
        )
        env.update(self.extra_env)  # e.g. another database, a channel layer
        self.log.parent.mkdir(exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "daphne",
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "config.asgi:application",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited: see {self.log}")
            try:
                urllib.request.urlopen(self.url + "/blog/", timeout=1)
                return self
            except urllib.error.HTTPError:
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"daphne did not answer on {self.url}: see {self.log}")

    def kill(self) -> None:
        """kill -9: no flush, no goodbye."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


def open_dashboard(context, server: Server):
    page = context.new_page()
    page.on("pageerror", lambda e: pytest.fail(f"page error: {e}"))
    page.goto(server.url + "/")
    if page.url != server.url + "/":  # the login page; a second page of the context is in
        page.fill("#id_username", "editor")
        page.fill("#id_password", PASSWORD)
        page.click("form [type=submit]")  # the login page: the dashboard's own, or a project's
        page.wait_for_url(server.url + "/")
    page.wait_for_selector("#ws-status[data-state=open]", timeout=10_000)
    page.evaluate("window.__notReloaded = true")
    return page
