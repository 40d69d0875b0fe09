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
            ["/blog/", "/admin/", "/export.csv/x", "/eventsx/"],
        ),
        (
            "tests.urls_mounted",
            ["/tools/signals/", "/tools/signals/events/h.1/", "/tools/signals/socket/"],
            ["/", "/blog/", "/tools/", "/events/h.1/"],
        ),
    ],
)
def test_the_dashboards_own_routes_are_quiet_wherever_mounted(urlconf, quiet, captured):
    with override_settings(ROOT_URLCONF=urlconf):
        assert [p for p in quiet if not is_quiet_path(p)] == []
        assert [p for p in captured if is_quiet_path(p)] == []
