"""ASGI middleware that gives each request and socket its dashboard context."""

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from dashboard.context import RequestInfo, current_request, is_quiet_path, quiet
from dashboard.publisher import publisher
from dashboard.sockets import SCOPE_KEY, socket_of

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestContextMiddleware:
    """Sets the request (id, method, path, status) and the quiet flag for its lifetime.

    Websockets are the dashboard's own, so they are quiet as a whole: the
    session lookup of their handshake must not show up as an event.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The server's loop is where the publisher belongs (a no-op once bound).
        publisher.bind_running_loop()
        if scope["type"] == "websocket":
            quiet.set(True)
            if (socket := socket_of(send)) is not None:  # daphne: frames may skip ASGI
                scope = {**scope, SCOPE_KEY: socket}
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        info = RequestInfo(method=scope.get("method", ""), path=scope.get("path", ""))
        current_request.set(info)
        quiet.set(is_quiet_path(info.path))

        async def send_with_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                info.status = message["status"]
            await send(message)

        await self.app(scope, receive, send_with_status)
