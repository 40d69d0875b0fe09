"""Which request is being served, and whether the dashboard itself caused it.

Under ASGI, `RequestContextMiddleware` (below) sets these for the whole
life of a request or socket, so every signal sent while serving it (in the
handler's coroutine or in the thread sync code runs in) sees them. Django's
test client and WSGI have no such wrapper: hooks on request_started and
request_finished stand in for it (BEFORE and AFTER, below).
"""

import functools
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.signals import request_finished, request_started, setting_changed
from django.db.models.signals import post_migrate, pre_migrate

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


def _within(path: str, root: str) -> str:
    """The path below the ASGI root_path (the app's mount), as the quiet routes are."""
    return path[len(root):] or "/" if root and path.startswith(root) else path


def is_quiet_path(path: str) -> bool:
    """The dashboard's own requests (its page, detail, exports, socket, wherever
    its URLconf is mounted), static files and QUIET_PATHS: never captured."""
    exact, prefixes = _quiet_routes(settings.ROOT_URLCONF, settings.STATIC_URL or "")
    return path in exact or path.startswith(prefixes) or path.startswith(conf.get("QUIET_PATHS"))


@functools.lru_cache(maxsize=8)
def _quiet_routes(urlconf: str, static_url: str) -> tuple[frozenset[str], tuple[str, ...]]:
    """The dashboard's routes as this URLconf mounts them: exact paths, and the
    prefixes of those that take an argument (an event's key)."""
    from django.urls import NoReverseMatch, get_script_prefix, reverse

    from dashboard import urls  # the app's own routes, not a list kept here

    exact, prefixes = set(), ["/" + static_url.lstrip("/")] if static_url else []
    for pattern in urls.urlpatterns:
        if pattern.name in urls.SHOWN:
            continue
        arguments = getattr(pattern.pattern, "converters", {})
        try:
            path = reverse(
                f"{urls.app_name}:{pattern.name}",
                urlconf=urlconf,
                kwargs={name: "QUIET" for name in arguments},
            )
        except NoReverseMatch:  # not mounted in this URLconf
            continue
        # reverse() puts the script prefix of this thread's request first (SCRIPT_NAME,
        # root_path); requests are matched by their path below it, and this is cached.
        path = _within(path, get_script_prefix().rstrip("/"))
        if arguments:
            prefixes.append(path[: path.index("QUIET")])
        else:
            exact.add(path)
    return frozenset(exact), tuple(prefixes)


# -- standing in for the ASGI middleware where there is none (WSGI, the test
# client), and quiet while migrating: called by capture/dispatch.py around the
# sends of these signals, before and after they are recorded.


def _begin_wsgi_request(sender: Any, named: dict[str, Any]) -> None:
    """request_started under WSGI and the test client (ASGI sets context itself)."""
    environ = named.get("environ")
    if environ is None or current_request.get() is not None:
        return
    path = environ.get("PATH_INFO", "")  # without SCRIPT_NAME, as the quiet routes are
    current_request.set(RequestInfo(method=environ.get("REQUEST_METHOD", ""), path=path, wsgi=True))
    quiet.set(is_quiet_path(path))


def _end_wsgi_request() -> None:
    """After request_finished: undo the above."""
    info = current_request.get()
    if info is not None and info.wsgi:
        current_request.set(None)
        quiet.set(False)


def _begin_migrate(sender: Any, named: dict[str, Any]) -> None:
    """pre_migrate: tables (the dashboard's own among them) may not exist yet."""
    quiet.set(True)


def _end_migrate() -> None:
    """After post_migrate: capture again."""
    quiet.set(False)


def _settings_changed(sender: Any, named: dict[str, Any]) -> None:
    if named.get("setting") == "DASHBOARD":
        conf.forget()


# Keyed by id(signal), as every per-signal table the sends consult: a Signal subclass
# may define __eq__ and so be unhashable (Django never hashes a signal). The keys are
# Django's module-level signals, never collected, so their ids are never reused.
BEFORE: dict[int, Callable[[Any, dict[str, Any]], None]] = {
    id(request_started): _begin_wsgi_request,
    id(pre_migrate): _begin_migrate,
    id(setting_changed): _settings_changed,
}
AFTER: dict[int, Callable[[], None]] = {
    id(request_finished): _end_wsgi_request,
    id(post_migrate): _end_migrate,
}


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
        quiet.set(is_quiet_path(_within(info.path, scope.get("root_path") or "")))

        async def send_with_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                info.status = message["status"]
            await send(message)

        await self.app(scope, receive, send_with_status)
