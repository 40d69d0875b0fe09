"""The ASGI side of the dashboard: one middleware around the host's application.

It gives every request its dashboard context (capture/context.py), runs the
pump on the server's own loop (live/handoff.py), and hands a websocket's
daphne connection to the consumer so frames can skip per-socket encoding
(live/daphne.py).
"""

from dashboard.capture.context import (
    ASGIApp,
    Receive,
    RequestContextMiddleware,
    Scope,
    Send,
)
from dashboard.live.daphne import SCOPE_KEY, socket_of
from dashboard.live.handoff import handoff


class DashboardMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = RequestContextMiddleware(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The server's loop is where the pump belongs (a no-op once bound).
        handoff.bind_running_loop()
        if scope["type"] == "websocket" and (socket := socket_of(send)) is not None:
            scope = {**scope, SCOPE_KEY: socket}  # daphne: frames may skip ASGI
        await self.app(scope, receive, send)
