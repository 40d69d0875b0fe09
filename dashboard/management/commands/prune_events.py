"""Apply the history's retention now (the publisher also prunes as it stores)."""

from typing import Any

from django.core.management.base import BaseCommand

from dashboard import conf, history


class Command(BaseCommand):
    help = (
        "Delete stored dashboard events beyond DASHBOARD['HISTORY_MAX_EVENTS'] "
        "or older than DASHBOARD['HISTORY_MAX_AGE'] seconds."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = history.prune()
        self.stdout.write(
            f"Deleted {deleted} events (keeping at most {conf.get('HISTORY_MAX_EVENTS')}, "
            f"none older than {conf.get('HISTORY_MAX_AGE')} s)."
        )
