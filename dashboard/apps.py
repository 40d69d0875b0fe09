from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Signals dashboard"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import os

        from dashboard import checks, setup
        from dashboard.capture import (
            dispatch,
            filtered,
            signals,
            snapshot,
            stored,
            timing,
            transactions,
            writes,
        )
        from dashboard.live import daphne

        checks.register()
        if os.environ.get("DASHBOARD_SIDECAR"):  # the sidecar describes; it captures nothing
            return
        # Each private API is checked once, here; a surprise switches its fallback on.
        timing.SEAM.check(timing.probe)
        transactions.SEAM.check(transactions.probe)
        daphne.SEAM.check(daphne.probe)
        writes.SEAM.check(writes.probe)
        filtered.SEAM.check(filtered.probe)
        stored.READ.check(stored.probe)
        snapshot.LOG.check(snapshot.probe)
        dispatch.EMPTY.check(dispatch.probe_empty)
        if dispatch.SEAM.check(dispatch.probe):
            dispatch.install()
            writes.install()
        signals.discovered()  # name every signal imported so far, before any is sent
        setup.default_asgi_application()
