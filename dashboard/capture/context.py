"""Which request is being served, and whether the dashboard itself caused it.

Under ASGI, `RequestContextMiddleware` (below) sets these for the whole
life of a request or socket, so every signal sent while serving it (in the
handler's coroutine or in the thread sync code runs in) sees them. Django's
test client and WSGI have no such wrapper: the receivers below stand in for it.
"""

import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from dashboard import conf
from dashboard.core.quiet import quiet


@dataclass(slots=True)
class RequestInfo:
    method: str
    path: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started: float = field(default_factory=time.perf_counter)
    status: int | None = None
    wsgi: bool = False  # set by the fallback receivers, which must also clear it

    @property
    def duration_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000


current_request: ContextVar[RequestInfo | None] = ContextVar("dashboard_request", default=None)


def is_quiet_path(path: str) -> bool:
    static = "/" + settings.STATIC_URL.lstrip("/")
    return path == "/" or path.startswith((static, *conf.get("QUIET_PATHS")))


def begin_wsgi_request(sender: Any, environ: dict | None = None, **kwargs: Any) -> None:
    """request_started receiver for WSGI and the test client (ASGI sets context itself)."""
    if environ is None or current_request.get() is not None:
        return
    path = environ.get("PATH_INFO", "")
    current_request.set(RequestInfo(method=environ.get("REQUEST_METHOD", ""), path=path, wsgi=True))
    quiet.set(is_quiet_path(path))


def end_wsgi_request(sender: Any, **kwargs: Any) -> None:
    """request_finished receiver, connected after the capture ones, that undoes the above."""
    info = current_request.get()
    if info is not None and info.wsgi:
        current_request.set(None)
        quiet.set(False)


def begin_migrate(sender: Any, **kwargs: Any) -> None:
    """pre_migrate: tables (the dashboard's own among them) may not exist yet."""
    quiet.set(True)


def end_migrate(sender: Any, **kwargs: Any) -> None:
    """post_migrate (sent once every migration has run): capture again."""
    quiet.set(False)


# Not listed among a signal's receivers on the dashboard: they are its plumbing.
begin_wsgi_request.dashboard_internal = True  # type: ignore[attr-defined]
end_wsgi_request.dashboard_internal = True  # type: ignore[attr-defined]
begin_migrate.dashboard_internal = True  # type: ignore[attr-defined]
end_migrate.dashboard_internal = True  # type: ignore[attr-defined]


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
        if scope["type"] == "websocket":
            quiet.set(True)
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
