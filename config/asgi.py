"""ASGI entry point: HTTP through Django, /ws/ through channels, both in context."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()  # sets Django up before the imports below

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from dashboard.asgi import DashboardMiddleware  # noqa: E402
from dashboard.routing import websocket_urlpatterns  # noqa: E402

# daphne serves no static files by itself; in development we do.
http_app = ASGIStaticFilesHandler(django_asgi_app) if settings.DEBUG else django_asgi_app

application = DashboardMiddleware(
    ProtocolTypeRouter(
        {
            "http": http_app,
            "websocket": AllowedHostsOriginValidator(
                AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
            ),
        }
    )
)

# Django and every app are loaded: keep those objects (a few hundred thousand)
# out of the cyclic collector's full passes, which the event pipeline's
# allocations trigger every few seconds under load (bench/: p99 at 100
# dashboards, 1,000 posts/s, fell by about a quarter).
gc.freeze()
