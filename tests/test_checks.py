"""`manage.py check` names what a host is missing, with an id and a hint;
the dashboard's routes are quiet wherever they are mounted."""

import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.test import override_settings

from dashboard import checks, setup
from dashboard.capture.context import is_quiet_path


def ids() -> list[str]:
    return [m.id for m in run_checks() if m.id and m.id.startswith("dashboard.")]


def test_the_demo_is_set_up_as_the_readme_says():
    assert ids() == []


class Installed:
    """The app registry of a host that left out some of the dashboard's apps."""

    def __init__(self, missing: set[str]) -> None:
        self.missing = missing

    def is_installed(self, name: str) -> bool:
        return name not in self.missing


def test_each_missing_app_is_named_with_a_hint(monkeypatch):
    monkeypatch.setattr(checks, "apps", Installed({"channels", "template_partials"}))
    found = checks.installed_apps()
    assert [m.id for m in found] == ["dashboard.E001", "dashboard.E001"]
    assert "'channels' is not in INSTALLED_APPS" in found[0].msg
    assert found[1].hint == "Add 'template_partials' to INSTALLED_APPS."


def test_daphne_must_come_first():
    apps = [a for a in settings.INSTALLED_APPS if a != "daphne"]
    with override_settings(INSTALLED_APPS=[apps[0], "daphne", *apps[1:]]):
        found = checks.installed_apps()
    assert [m.id for m in found] == ["dashboard.E002"]
    assert "Move 'daphne' to the top" in found[0].hint


def test_a_history_in_the_projects_own_sqlite_file_is_warned_about(monkeypatch):
    """A new user's admin saves failed with "database is locked" (6 edits in 20)."""
    from django.db import router

    default = {"ENGINE": "django.db.backends.sqlite3", "NAME": "/srv/app/db.sqlite3"}
    history = {**default, "NAME": "/srv/app/db-history.sqlite3"}
    postgres = {"ENGINE": "django.db.backends.postgresql", "NAME": "app"}
    shared = checks.shares_a_sqlite_file
    assert shared({"default": default}, "default")
    assert shared({"default": default, "dashboard": default}, "dashboard")  # one file
    assert not shared({"default": default, "dashboard": history}, "dashboard")
    assert not shared({"default": postgres}, "default")
    assert not shared({"default": {**default, "NAME": ":memory:"}}, "default")
    for memory in ("file::memory:?cache=shared", "file:m?mode=memory&cache=shared"):
        assert not shared({"default": {**default, "NAME": memory}}, "default")
    # The same file written another way: relative, with "./", as a URI; SpatiaLite.
    import os
    from pathlib import Path

    here = {**default, "NAME": os.path.join(os.getcwd(), "db.sqlite3")}
    for same in ("db.sqlite3", "./db.sqlite3", f"file:{os.getcwd()}/db.sqlite3?mode=rwc",
                 Path("db.sqlite3")):  # fmt: skip
        assert shared({"default": here, "dashboard": {**default, "NAME": same}}, "dashboard")
    spatial = {**default, "ENGINE": "django.contrib.gis.db.backends.spatialite"}
    assert shared({"default": spatial}, "default")
    assert checks.history_file_shared() == []  # this project's: a file of its own
    monkeypatch.setattr(router, "db_for_write", lambda model, **hints: "default")
    (warning,) = checks.history_file_shared()
    assert warning.id == "dashboard.W012" and "'default'" in warning.msg
    assert "migrate --database dashboard" in warning.hint


def test_a_history_database_the_history_is_not_routed_to_is_warned_about():
    assert settings.DATABASE_ROUTERS == ["dashboard.routers.HistoryRouter"]  # the demo's
    assert "dashboard" in settings.DATABASES
    with override_settings(DATABASE_ROUTERS=[]):
        (warning,) = checks.history_database()
    assert warning.id == "dashboard.W007"
    assert "DATABASE_ROUTERS" in warning.hint and "--database dashboard" in warning.hint


@override_settings(ROOT_URLCONF="tests.urls_without_dashboard")
def test_a_urlconf_without_the_dashboard_is_reported():
    (error,) = checks.urls()
    assert error.id == "dashboard.E003" and 'include("dashboard.urls")' in error.hint


@override_settings(WSGI_APPLICATION="nowhere.wsgi.application")
def test_no_asgi_application_and_none_to_guess_is_reported():
    del settings.ASGI_APPLICATION
    assert setup.asgi_application_guess() is None
    (error,) = checks.asgi_application()
    assert error.id == "dashboard.E004"


@override_settings(WSGI_APPLICATION="config.wsgi.application")
def test_runserver_gets_the_asgi_py_beside_wsgi_application():
    del settings.ASGI_APPLICATION
    setup.default_asgi_application()
    assert settings.ASGI_APPLICATION == "config.asgi.application"
    assert checks.asgi_application() == []


@pytest.mark.parametrize(
    ("urlconf", "quiet", "captured"),
    [
        (
            "config.urls",
            ["/", "/events/host-1.7/", "/export.csv", "/socket/", "/static/x.js", "/favicon.ico"],
            # The dashboard's login is the project's authentication: captured.
            ["/blog/", "/admin/", "/export.csv/x", "/eventsx/", "/login/", "/logout/"],
        ),
        (
            "tests.urls_mounted",
            ["/tools/signals/", "/tools/signals/events/h.1/", "/tools/signals/socket/"],
            ["/", "/blog/", "/tools/", "/events/h.1/", "/tools/signals/login/"],
        ),
    ],
)
def test_the_dashboards_own_routes_are_quiet_wherever_mounted(urlconf, quiet, captured):
    with override_settings(ROOT_URLCONF=urlconf):
        assert [p for p in quiet if not is_quiet_path(p)] == []
        assert [p for p in captured if is_quiet_path(p)] == []


# -- the DASHBOARD setting: typed, range-checked, never raising into a save ---------

BROKEN = [
    ("QUEUE_SIZE", "100"),  # made every save raise TypeError
    ("QUEUE_SIZE", -1),  # dropped every event in silence
    ("BATCH_WINDOW", "x"),  # killed the pump after one frame
    ("VALUE_LIMIT", 0),  # switched truncation off
    ("HISTORY_MAX_EVENTS", -1),  # prune_events deleted the whole history
    ("HISTORY_FAMILY_MAX_EVENTS", {"request": 0}),
    ("MAX_ROWS", True),
    ("ACCESS_RECHECK", 0),
    ("LINKS", [("Blog",)]),
    ("EDITOR_URL", "vscode://file/{file}:{line}"),  # every detail page answered 500
    ("EDITOR_URL", "idea://open?line={line}"),  # no {path}: every link the same
    ("EDITOR_URL", "x://{path"),
    ("EDITOR_URL", "vscode://file/{path}:{line:d}"),  # the line is text: 500 again
    ("EDITOR_URL", "x://{path!r}:{line:03}"),
]


@pytest.mark.parametrize(("key", "value"), BROKEN)
def test_an_invalid_dashboard_value_is_an_error_with_a_hint_and_the_default_is_used(
    key, value, caplog
):
    from dashboard import conf

    with override_settings(DASHBOARD={key: value}):
        (error,) = checks.dashboard_setting()
        assert conf.get(key) == conf.DEFAULTS[key]
    assert error.id == "dashboard.E005"
    assert f"DASHBOARD[{key!r}] must be" in error.msg
    assert "default" in error.hint
    assert [r.getMessage() for r in caplog.records if key in r.getMessage()], "logged"


def test_an_unknown_dashboard_key_is_warned_about_with_the_likely_one():
    with override_settings(DASHBOARD={"QUEUE_SIZ": 100}):
        (warning,) = checks.dashboard_setting()
    assert warning.id == "dashboard.W005"
    assert "'QUEUE_SIZ'" in warning.msg and "'QUEUE_SIZE'" in warning.hint


def test_editor_urls_with_path_and_line_are_taken():
    from dashboard import conf

    for url in ("vscode://file/{path}:{line}", "pycharm://open?file={path}&line={line}",
                "subl://open?url=file://{path}", None):  # fmt: skip
        with override_settings(DASHBOARD={"EDITOR_URL": url}):
            assert checks.dashboard_setting() == [] and conf.get("EDITOR_URL") == url


def test_valid_dashboard_values_are_taken_and_family_caps_merge_with_the_defaults():
    from dashboard import conf

    settings_ = {"QUEUE_SIZE": 5, "BATCH_WINDOW": 0.2, "HISTORY_FAMILY_MAX_EVENTS": {"auth": 9}}
    with override_settings(DASHBOARD=settings_):
        assert checks.dashboard_setting() == []
        assert conf.get("QUEUE_SIZE") == 5 and conf.get("BATCH_WINDOW") == 0.2
        caps = conf.get("HISTORY_FAMILY_MAX_EVENTS")
    assert caps == {**conf.DEFAULTS["HISTORY_FAMILY_MAX_EVENTS"], "auth": 9}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("value", ["100", -1])
def test_an_invalid_queue_size_never_raises_into_a_save_nor_drops_events(value):
    from blog.models import Post
    from dashboard.live.handoff import handoff
    from dashboard.models import StoredEvent
    from tests.helpers import settle

    with override_settings(DASHBOARD={"QUEUE_SIZE": value}):
        Post.objects.create(title="still saved")
        settle()
    assert Post.objects.filter(title="still saved").exists()
    assert handoff.dropped == 0
    assert StoredEvent.objects.filter(signal="post_save", sender="blog.Post").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("value", [-1, 0, "10"])
def test_prune_events_refuses_a_nonsensical_limit(value):
    from django.core.management import CommandError, call_command

    from dashboard.history import store
    from dashboard.models import StoredEvent
    from tests.helpers import make_row

    store.write([make_row(seq=1), make_row(seq=2)])
    with (
        override_settings(DASHBOARD={"HISTORY_MAX_EVENTS": value}),
        pytest.raises(CommandError, match="HISTORY_MAX_EVENTS"),
    ):
        call_command("prune_events")
    assert StoredEvent.objects.filter(process="host-1").count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_dashboards_own_requests_are_quiet_under_a_script_prefix(staff_client):
    """Deployed under SCRIPT_NAME (WSGI) or an ASGI root_path: the quiet routes are the
    paths below it (reverse() had put this thread's prefix first, and the answer was
    cached with it)."""
    import asyncio

    from django.core.handlers.wsgi import WSGIHandler
    from django.core.signals import request_started
    from django.test import RequestFactory
    from django.urls import set_script_prefix

    from dashboard.capture import context
    from dashboard.core.quiet import quiet

    seen = []

    def spy(**kwargs):
        seen.append(quiet.get())

    context._quiet_routes.cache_clear()
    request_started.connect(spy, weak=False, dispatch_uid="script-prefix")
    try:
        environ = RequestFactory().get("/", SCRIPT_NAME="/app").environ
        environ["HTTP_COOKIE"] = f"sessionid={staff_client.cookies['sessionid'].value}"
        status = []
        b"".join(WSGIHandler()(environ, lambda s, h, *a: status.append(s)))
        assert status == ["200 OK"]  # the page, served under /app/
    finally:
        request_started.disconnect(dispatch_uid="script-prefix")
        set_script_prefix("/")  # the handler set this thread's: later tests' STATIC_URL
    assert seen == [True]

    async def app(scope, receive, send):
        seen.append(quiet.get())

    middleware = context.RequestContextMiddleware(app)
    for path, quiet_there in (("/app/socket/", True), ("/app/blog/", False)):
        scope = {"type": "http", "method": "GET", "path": path, "root_path": "/app"}
        asyncio.run(middleware(scope, None, None))
        assert seen[-1] is quiet_there, path
    context._quiet_routes.cache_clear()
