from django.db import models

from dashboard.core.events import SENDER_MAX_LENGTH


class StoredEvent(models.Model):
    """One captured signal, as shown: the dashboard's history.

    Never captured itself (capture/ ignores the dashboard app's models), and
    bounded by count and age (history/store.py prunes it).
    """

    time = models.DateTimeField(db_index=True)
    signal = models.CharField(max_length=64, db_index=True)
    family = models.CharField(max_length=100, db_index=True)
    sender = models.CharField(max_length=SENDER_MAX_LENGTH, db_index=True)
    summary = models.TextField()
    payload = models.JSONField(default=dict)
    # Field diff, receivers with timings, origin frame: see payload.describe_event.
    detail = models.JSONField(default=dict)
    request_id = models.CharField(max_length=32, blank=True, db_index=True)
    # (process, seq) is the event's key: sequence numbers grow per process.
    process = models.CharField(max_length=100)
    seq = models.BigIntegerField()
    rolled_back = models.BooleanField(default=False)
    # The framework's bookkeeping, which "my project" hides (core/filters.py).
    plumbing = models.BooleanField(default=False)
    # Lower-cased sender, summary and payload: what ?q= searches.
    search_text = models.TextField()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["process", "seq"], name="dashboard_event_key"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.signal} {self.sender}"

    @property
    def key(self) -> str:
        return f"{self.process}.{self.seq}"
