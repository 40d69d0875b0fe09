"""Apply the history's retention now (the history writer also prunes as it stores)."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import router

from dashboard import conf
from dashboard.history import store
from dashboard.models import StoredEvent

RETENTION = ("HISTORY_MAX_EVENTS", "HISTORY_MAX_AGE", "HISTORY_FAMILY_MAX_EVENTS")


class Command(BaseCommand):
    help = (
        "Delete stored dashboard events beyond DASHBOARD['HISTORY_MAX_EVENTS'] (and each "
        "family's DASHBOARD['HISTORY_FAMILY_MAX_EVENTS']) or older than "
        "DASHBOARD['HISTORY_MAX_AGE'] seconds."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        # A limit that makes no sense (-1, "100") is refused, never read as "delete all"
        # nor replaced by the default behind the operator's back.
        invalid, _ = conf.problems(getattr(settings, "DASHBOARD", {}))
        if bad := [key for key in invalid if key in RETENTION]:
            raise CommandError(
                "; ".join(f"DASHBOARD[{key!r}] must be {invalid[key]}" for key in bad)
                + ". Nothing was deleted (manage.py check: dashboard.E005)."
            )
        if store.table_missing():
            alias = router.db_for_write(StoredEvent)
            raise CommandError(
                f"The history table is not in the '{alias}' database yet: run "
                f"`manage.py migrate --database {alias}`. Nothing was deleted."
            )
        deleted = store.prune()
        self.stdout.write(
            f"Deleted {deleted} events (keeping at most {conf.get('HISTORY_MAX_EVENTS')}, "
            f"none older than {conf.get('HISTORY_MAX_AGE')} s)."
        )
