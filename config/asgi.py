"""ASGI entry point: the demo's Django app with the dashboard wrapped around it."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()  # sets Django up before the import below

from dashboard.asgi import wrap  # noqa: E402

# DEBUG is off unless DJANGO_DEBUG=1, and nothing else serves the demo's static files.
application = wrap(django_asgi_app, static=True)

# Django and every app are loaded: keep those objects (a few hundred thousand)
# out of the cyclic collector's full passes, which the event pipeline's
# allocations trigger every few seconds under load (bench/: p99 at 100
# dashboards, 1,000 posts/s, fell by about a quarter).
gc.freeze()
