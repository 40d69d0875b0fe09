"""The history in a database of its own: `DATABASES["dashboard"]`, when a project has one.

On SQLite the whole file has one write lock. With the history in the application's
file, storing events waits for every transaction the host holds open (and a host's
save can wait for a store): the history then costs the host time it does not show.
A second file has a lock of its own. Add the alias and this router to use it:

    DATABASES["dashboard"] = {"ENGINE": "django.db.backends.sqlite3",
                              "NAME": BASE_DIR / "db-history.sqlite3"}
    DATABASE_ROUTERS = ["dashboard.routers.HistoryRouter"]

and migrate it with `manage.py migrate --database dashboard`. Without the alias the
router routes nothing (the history lives in the default database, as without it).
"""

from typing import Any

from django.conf import settings
from django.db.models import Model

ALIAS = "dashboard"
APP_LABEL = "dashboard"


def history_alias() -> str | None:
    """The alias the history lives in when it has one of its own, else None."""
    return ALIAS if ALIAS in settings.DATABASES else None


class HistoryRouter:
    """The dashboard's models to `DATABASES["dashboard"]`; nothing else there."""

    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        return history_alias() if model._meta.app_label == APP_LABEL else None

    db_for_write = db_for_read

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        if db == ALIAS:
            return app_label == APP_LABEL
        return None
