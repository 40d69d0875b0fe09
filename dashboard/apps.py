from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Signals dashboard"

    def ready(self) -> None:
        from django.core.signals import request_finished, request_started
        from django.db.models.signals import post_migrate, pre_migrate

        from dashboard import checks  # noqa: F401  (registers the system checks)
        from dashboard.capture import context, receivers, timing, transactions
        from dashboard.live import daphne

        # Each private API is checked once, here; a surprise switches its fallback on.
        timing.SEAM.check(timing.probe)
        transactions.SEAM.check(transactions.probe)
        daphne.SEAM.check(daphne.probe)

        # Order matters: the request context exists before the capture
        # receivers run, and is cleared after they have.
        request_started.connect(context.begin_wsgi_request, dispatch_uid="dashboard:begin")
        receivers.connect_all()
        request_finished.connect(context.end_wsgi_request, dispatch_uid="dashboard:end")
        pre_migrate.connect(context.begin_migrate, dispatch_uid="dashboard:migrate-begin")
        post_migrate.connect(context.end_migrate, dispatch_uid="dashboard:migrate-end")
