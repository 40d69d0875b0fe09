"""The contract of "Add it to your project", as a host project meets it.

tests/host/ is a small project of its own (a `catalog` app with Author, Book
and a custom signal, `book_borrowed`) set up exactly as the README says:
five INSTALLED_APPS, one include() and asgi.py's wrap(). This test builds the
distribution, installs it into a fresh virtual environment, runs the host's
check and migrate there, serves it with runserver, and watches a model save
and the host's own signal arrive on an open page in a real browser.
"""

import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.browser import free_port, require_chromium

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parent.parent
HOST = ROOT / "tests" / "host"
PASSWORD = "host-pass-123"


def run(*args: str | Path, cwd: Path, timeout: float = 300, env: dict | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment with the built distribution, and a copy of the host."""
    require_chromium()
    tmp = tmp_path_factory.mktemp("dropin")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp / "dist", ROOT, cwd=tmp)
    (wheel,) = (tmp / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {
        "dashboard"
    }
    for expected in (
        "dashboard/templates/dashboard/index.html",
        "dashboard/static/dashboard/dashboard.js",
        "dashboard/migrations/0001_initial.py",
    ):
        assert expected in names
    python = tmp / "venv" / "bin" / "python"
    run(sys.executable, "-m", "venv", tmp / "venv", cwd=tmp)
    # The wheel (its dependencies from the index), and uvicorn to serve it with too.
    run(python, "-m", "pip", "install", "-q", wheel, *pins("uvicorn", "websockets"), cwd=tmp,
        timeout=600)  # fmt: skip
    host = tmp / "host"
    shutil.copytree(HOST, host)  # away from this repository's own dashboard/
    where = run(python, "-c", "import dashboard; print(dashboard.__file__)", cwd=host, env=ENV)
    assert str(tmp / "venv") in where  # the installed package, not this repository's
    checked = run(python, "manage.py", "check", cwd=host, env=ENV)
    assert "System check identified no issues" in checked
    run(python, "manage.py", "migrate", "--noinput", cwd=host, env=ENV)
    run(python, "manage.py", "migrate", "--database", "dashboard", "--noinput", cwd=host, env=ENV)
    run(python, "manage.py", "createsuperuser", "--noinput", "--username", "librarian",
        "--email", "l@example.com", cwd=host, env=ENV)  # fmt: skip
    return tmp


def pins(*names: str) -> list[str]:
    """This repository's pins of these packages (requirements*.txt)."""
    lines = [
        line.split("#")[0].strip()
        for path in ROOT.glob("requirements*.txt")
        for line in path.read_text().splitlines()
    ]
    return [line for line in lines if line.split("==")[0].lower() in names]


ENV = {"PATH": "/usr/bin:/bin", "DJANGO_SUPERUSER_PASSWORD": PASSWORD}
APP = "hostsite.asgi:application"
SERVERS = {
    "runserver": ["manage.py", "runserver", "{address}:{port}", "--noreload"],  # daphne's
    "daphne": ["-m", "daphne", "-b", "{address}", "-p", "{port}", APP],
    "uvicorn": ["-m", "uvicorn", "--host", "{address}", "--port", "{port}", APP],
}


@pytest.mark.parametrize("serve", SERVERS)
def test_a_host_project_sees_its_saves_and_its_own_signal_live(installed, browser, serve):
    python, host = installed / "venv" / "bin" / "python", installed / "host"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (installed / f"{serve}.log").open("wb")
    server = subprocess.Popen(
        [python, *(a.format(address="127.0.0.1", port=port) for a in SERVERS[serve])],
        cwd=host, env=ENV, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/admin/login/", timeout=1)
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, (installed / f"{serve}.log").read_text()
                assert time.monotonic() < deadline, f"{serve} did not answer in 30 s"
                time.sleep(0.2)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        context.on("weberror", lambda e: errors.append(str(e.error)))
        page = context.new_page()
        page.goto(url + "/admin/login/?next=/signals/")
        page.fill("#id_username", "librarian")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url(url + "/signals/")
        page.wait_for_selector("#ws-status[data-state=open]", timeout=10_000)

        reply = urllib.request.urlopen(f"{url}/borrow/Dune-{serve}/", timeout=5).read()
        assert reply == f"Dune-{serve}: 1 loans".encode()
        book = page.locator('#events tr[data-signal="post_save"][data-sender="catalog.Book"]')
        book.first.wait_for(timeout=10_000)
        borrowed = page.locator('#events tr[data-signal="book_borrowed"][data-family="catalog"]')
        borrowed.first.wait_for(timeout=10_000)
        assert f"Dune-{serve}" in borrowed.first.inner_text()
        # The host's own signal is listed under its app, with the host's project file.
        assert page.locator('.family.fam-catalog li[data-signal="book_borrowed"]').count() == 1
        # The dashboard's own page, socket and static files, mounted at /signals/, are quiet.
        paths = page.locator('#events tr[data-signal="request_finished"]').all_inner_texts()
        assert paths and not [p for p in paths if "/signals/" in p or "/static/" in p]
        assert page.get_attribute(".topnav a[target=_blank]", "href") == "/admin/"
        context.close()
        assert errors == []
    finally:
        server.terminate()
        server.wait(10)
        log.close()
