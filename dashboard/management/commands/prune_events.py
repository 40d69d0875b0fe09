"""Apply the history's retention now (the history writer also prunes as it stores)."""

from typing import Any

from django.core.management.base import BaseCommand

from dashboard import conf
from dashboard.history import store


class Command(BaseCommand):
    help = (
        "Delete stored dashboard events beyond DASHBOARD['HISTORY_MAX_EVENTS'] "
        "or older than DASHBOARD['HISTORY_MAX_AGE'] seconds."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = store.prune()
        self.stdout.write(
            f"Deleted {deleted} events (keeping at most {conf.get('HISTORY_MAX_EVENTS')}, "
            f"none older than {conf.get('HISTORY_MAX_AGE')} s)."
        )
