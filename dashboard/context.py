"""Which request is being served, and whether the dashboard itself caused it.

Under ASGI, `dashboard.asgi.RequestContextMiddleware` sets these for the whole
life of a request or socket, so every signal sent while serving it (in the
handler's coroutine or in the thread sync code runs in) sees them. Django's
test client and WSGI have no such wrapper: the receivers below stand in for it.
"""

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from dashboard import conf


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
# True while the dashboard serves itself: its page, its socket, its pipeline.
# Receivers return at once when it is set, so showing an event never causes one.
quiet: ContextVar[bool] = ContextVar("dashboard_quiet", default=False)


@contextmanager
def quiet_block() -> Iterator[None]:
    """Mute capture for the dashboard's own work done outside the publisher's loop."""
    token = quiet.set(True)
    try:
        yield
    finally:
        quiet.reset(token)


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
