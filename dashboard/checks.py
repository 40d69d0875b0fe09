"""`manage.py check` for the dashboard: what a host is missing, and the
private-API seams that fell back. Ids: dashboard.E0xx errors, dashboard.W0xx warnings."""

import difflib
import os
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.urls import NoReverseMatch, reverse

from dashboard import conf
from dashboard.seams import SEAMS

REQUIRED_APPS = (
    ("daphne", "runserver serves ASGI, with websockets"),
    ("channels", "the dashboard's live socket"),
    ("django_htmx", "htmx and its websocket extension for the page"),
    ("template_partials", "the page's partials"),
    ("django.contrib.staticfiles", "the page's script and stylesheet"),
    ("django.contrib.auth", "who may see the dashboard"),
    ("django.contrib.sessions", "logging in to see it"),
)


def register() -> None:
    checks.register(private_apis)
    checks.register(installed_apps)
    checks.register(urls, checks.Tags.urls)
    checks.register(asgi_application)
    checks.register(dashboard_setting)
    checks.register(history_database)
    checks.register(history_file_shared)


def private_apis(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return [
        checks.Warning(
            f"The dashboard cannot use {seam.uses}: {seam.reason}.",
            hint=f"Everything else works; {seam.fallback}. A release of the dashboard "
            "for this version would bring it back.",
            id=seam.id,
        )
        for seam in SEAMS.values()
        if not seam.ok
    ]


def installed_apps(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = [
        checks.Error(
            f"'{name}' is not in INSTALLED_APPS; the dashboard needs it for {why}.",
            hint=f"Add '{name}' to INSTALLED_APPS.",
            id="dashboard.E001",
        )
        for name, why in REQUIRED_APPS
        if not apps.is_installed(name)
    ]
    names = list(settings.INSTALLED_APPS)
    if "daphne" in names and names[0] != "daphne":
        errors.append(
            checks.Error(
                "'daphne' must come first in INSTALLED_APPS, before "
                f"'{names[0]}', or runserver is not daphne's (no websockets).",
                hint="Move 'daphne' to the top of INSTALLED_APPS.",
                id="dashboard.E002",
            )
        )
    return errors


def urls(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        reverse("dashboard:index")
    except NoReverseMatch:
        return [
            checks.Error(
                "The dashboard's URLs are not in the URLconf.",
                hint='Add path("signals/", include("dashboard.urls")) (any prefix) to '
                "your urlpatterns.",
                id="dashboard.E003",
            )
        ]
    return []


def asgi_application(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if hasattr(settings, "ASGI_APPLICATION"):
        return []
    return [
        checks.Error(
            "ASGI_APPLICATION is not set, and there is no asgi.py beside WSGI_APPLICATION "
            "to take it from: runserver cannot serve the dashboard's socket.",
            hint="Set ASGI_APPLICATION = '<project>.asgi.application', whose application "
            "is dashboard.asgi.wrap(get_asgi_application()).",
            id="dashboard.E004",
        )
    ]


def dashboard_setting(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every DASHBOARD key typed and range-checked; unknown keys (typos) named."""
    invalid, unknown = conf.problems(getattr(settings, "DASHBOARD", {}))
    found: list[checks.CheckMessage] = [
        checks.Error(
            f"DASHBOARD[{key!r}] must be {must}." if key else f"DASHBOARD must be {must}.",
            hint=(
                f"Fix it, or remove it for the default ({conf.DEFAULTS[key]!r}); "
                "meanwhile the dashboard uses the default."
                if key
                else "Set DASHBOARD = {...} with the keys to override, or remove it."
            ),
            id="dashboard.E005",
        )
        for key, must in invalid.items()
    ]
    for key in unknown:
        close = difflib.get_close_matches(str(key), conf.DEFAULTS, n=1)
        found.append(
            checks.Warning(
                f"DASHBOARD[{key!r}] is not a setting of the dashboard; it is ignored.",
                hint=f"Did you mean {close[0]!r}?" if close else (
                    "The settings are: " + ", ".join(conf.DEFAULTS) + "."
                ),
                id="dashboard.W005",
            )
        )
    return found


def history_database(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """DATABASES["dashboard"], but the history is not routed there (by HistoryRouter or
    any router of the project's)."""
    from django.db import router

    from dashboard.models import StoredEvent
    from dashboard.routers import ALIAS

    used = router.db_for_write(StoredEvent)
    if ALIAS not in settings.DATABASES or used == ALIAS:
        return []
    return [
        checks.Warning(
            f"DATABASES has a '{ALIAS}' database, but the dashboard's history is not "
            f"routed there: it is stored in '{used}'.",
            hint='Add "dashboard.routers.HistoryRouter" to DATABASE_ROUTERS, then run '
            f"`manage.py migrate --database {ALIAS}`.",
            id="dashboard.W007",
        )
    ]


def history_file_shared(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The history stored in the SQLite file of the project's own data. SQLite locks the
    whole file for a write: each store then waits for the project's transactions, and a
    transaction of the project's that reads, then writes, while a store is under way fails
    at once with "database is locked" (Django's default, deferred, transactions cannot
    wait for it): a new user's admin saves failed so, 6 edits in 20."""
    from django.db import router

    from dashboard.models import StoredEvent
    from dashboard.routers import ALIAS

    used = router.db_for_write(StoredEvent)
    if not shares_a_sqlite_file(settings.DATABASES, used):
        return []
    return [
        checks.Warning(
            f"The dashboard's history is stored in '{used}', the SQLite file of your own "
            "data: while it stores, your transactions wait, and one that reads then writes "
            'can fail with "database is locked".',
            hint=f'Give the history a file of its own: DATABASES["{ALIAS}"] = '
            f'{{**DATABASES["{used}"], "NAME": BASE_DIR / "db-history.sqlite3"}}, '
            'DATABASE_ROUTERS = ["dashboard.routers.HistoryRouter"], then '
            f"`manage.py migrate --database {ALIAS}`.",
            id="dashboard.W012",
        )
    ]


def shares_a_sqlite_file(databases: dict[str, dict[str, Any]], used: str) -> bool:
    """Is the history's database (`used`) a SQLite file that holds the project's data too:
    the default database, or another alias's file (however its name is written)?"""
    from django.db import DEFAULT_DB_ALIAS

    file = _sqlite_file(databases.get(used, {}))
    if file is None:
        return False
    return used == DEFAULT_DB_ALIAS or any(
        alias != used and _sqlite_file(other) == file for alias, other in databases.items()
    )


def _sqlite_file(database: dict[str, Any]) -> str | None:
    """The file a SQLite (or SpatiaLite) database is kept in, as one path; None for
    another engine or a database in memory."""
    engine, name = database.get("ENGINE", ""), str(database.get("NAME") or "")
    if not ("sqlite3" in engine or "spatialite" in engine) or not name:
        return None
    if ":memory:" in name or "mode=memory" in name:  # also as a URI, shared or not
        return None
    if name.startswith("file:"):  # a URI: file:/srv/db.sqlite3?mode=rwc
        name = name.removeprefix("file:").split("?", 1)[0]
    return os.path.realpath(name)
