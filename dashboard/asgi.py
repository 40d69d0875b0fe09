"""The ASGI side of the dashboard: `wrap()` for a host's asgi.py, or the pieces.

    from django.core.asgi import get_asgi_application
    from dashboard.asgi import wrap

    application = wrap(get_asgi_application())

`wrap` routes the dashboard's websocket (logged-in, same-origin: channels'
`AuthMiddlewareStack` and `origins.OriginValidator`, exact), serves static files
in DEBUG as runserver does (or always, `static=True`), and puts `DashboardMiddleware`
around it all. A
host with its own `ProtocolTypeRouter` composes the same pieces (README).

Importable before Django is set up (an asgi.py imports it first): what needs
the app registry is imported when `wrap()` and the others are called, after
`get_asgi_application()` has set Django up.
"""

from typing import Any

# Safe before set-up: the request context needs settings only when called.
from dashboard.capture.context import ASGIApp, Receive, RequestContextMiddleware, Scope, Send


class DashboardMiddleware:
    """Around the whole ASGI application: each request's dashboard context
    (capture/context.py), the pump on the server's own loop (live/handoff.py),
    and daphne's connection for the consumer, so frames can skip per-socket
    encoding (live/daphne.py)."""

    def __init__(self, app: ASGIApp) -> None:
        from dashboard.live.daphne import SCOPE_KEY, socket_of
        from dashboard.live.handoff import handoff

        self.app = RequestContextMiddleware(app)
        self.bind, self.socket_of, self.scope_key = handoff.bind_running_loop, socket_of, SCOPE_KEY

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The server's loop is where the pump belongs (a no-op once bound).
        self.bind()
        if scope["type"] == "websocket" and (socket := self.socket_of(send)) is not None:
            scope = {**scope, self.scope_key: socket}  # daphne: frames may skip ASGI
        await self.app(scope, receive, send)


def websocket_urlpatterns() -> list[Any]:
    """The dashboard's socket, at its URLconf's `socket` address (under its prefix)."""
    from django.urls import path, reverse

    from dashboard.live.consumer import EventsConsumer

    return [path(reverse("dashboard:socket").lstrip("/"), EventsConsumer.as_asgi())]


def socket_app(extra: list[Any] | None = None) -> ASGIApp:
    """The websocket side: the dashboard's route (and a host's `extra` routes),
    for logged-in users of an allowed origin (scheme, host and port: origins.py)."""
    from channels.auth import AuthMiddlewareStack
    from channels.routing import URLRouter

    from dashboard.origins import OriginValidator

    return OriginValidator(
        AuthMiddlewareStack(URLRouter([*websocket_urlpatterns(), *(extra or [])]))
    )


def wrap(http_app: ASGIApp, static: bool | None = None) -> ASGIApp:
    """The host's Django ASGI application, with the dashboard's socket and context.

    `static`: serve static files from the finders, as runserver does; by default in
    DEBUG only. A project served without a web server or whitenoise in front (the
    demo's `make run`, DEBUG off) passes True."""
    from channels.routing import ProtocolTypeRouter
    from django.apps import apps
    from django.conf import settings
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    from dashboard.sidecar.link import link

    if static is None:
        static = settings.DEBUG
    if static and apps.is_installed("django.contrib.staticfiles"):
        http_app = ASGIStaticFilesHandler(http_app)  # as runserver does, for any server
    # A server is loading: its sidecar sets Django up meanwhile, not at the first event.
    link.warm()
    return DashboardMiddleware(ProtocolTypeRouter({"http": http_app, "websocket": socket_app()}))
