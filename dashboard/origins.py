"""Which pages may open the dashboard's socket: its own origin, exactly.

A browser sends the page's origin with a websocket handshake, and no same-origin
policy applies to sockets. So the origin must be the one the socket was asked of,
scheme, host and port alike: `http://127.0.0.1:8000` for a socket at
`ws://127.0.0.1:8000/…` (an `https` page for `wss`). The host must be in
ALLOWED_HOSTS. Behind a reverse proxy, what Django's CSRF check trusts is trusted
here too: SECURE_PROXY_SSL_HEADER says the browser saw https, USE_X_FORWARDED_HOST
which host it asked for, and CSRF_TRUSTED_ORIGINS names other origins
(`https://dash.example.com`, or `https://*.example.com` for its subdomains), with
their scheme and port.
channels' AllowedHostsOriginValidator compares host names only: a page on any other
port of an allowed host (another local service) could read the stream.
"""

import logging
import time
from collections import OrderedDict, deque
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

DEFAULT_PORTS = {"http": 80, "https": 443}
logger = logging.getLogger("dashboard")


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            try:
                return value.decode("latin1")
            except UnicodeDecodeError:
                return None
    return None


def _parts(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin or a URL, ports made explicit."""
    try:
        parsed = urlsplit(url)
        port = parsed.port
    except ValueError:
        return None
    scheme, host = parsed.scheme.lower(), (parsed.hostname or "").lower()
    if scheme not in DEFAULT_PORTS or not host:
        return None
    return scheme, host, port or DEFAULT_PORTS[scheme]


def _scheme(scope: dict[str, Any]) -> str:
    """The scheme the browser used for the socket's page: https for wss, or when the
    proxy says so the way Django's request.is_secure() trusts (SECURE_PROXY_SSL_HEADER)."""
    if scope.get("scheme") in ("wss", "https"):
        return "https"
    if proxy := getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        name, secure = proxy
        header = name.removeprefix("HTTP_").lower().replace("_", "-").encode("latin1")
        if (_header(scope, header) or "").split(",")[0].strip() == secure:
            return "https"
    return "http"


def allowed(scope: dict[str, Any]) -> bool:
    """May the page that opened this socket read it?"""
    origin = _header(scope, b"origin")
    if origin is None or (found := _parts(origin)) is None:
        return False  # browsers always send one; anything else is not a page of ours
    host = _header(scope, b"host") or ""
    if settings.USE_X_FORWARDED_HOST and (forwarded := _header(scope, b"x-forwarded-host")):
        host = forwarded.split(",")[0].strip()  # as Django's request.get_host() reads it
    domain, _ = split_domain_port(host)
    if (
        domain
        and validate_host(domain, allowed_hosts())
        and found == _parts(f"{_scheme(scope)}://{host}")
    ):
        return True
    return any(_trusted(found, pattern) for pattern in settings.CSRF_TRUSTED_ORIGINS)


def allowed_hosts() -> list[str]:
    """ALLOWED_HOSTS as Django's request.get_host() reads it: empty in DEBUG (a new
    startproject's), the local names."""
    if settings.DEBUG and not settings.ALLOWED_HOSTS:
        return [".localhost", "127.0.0.1", "[::1]"]
    return settings.ALLOWED_HOSTS


def _trusted(found: tuple[str, str, int], pattern: str) -> bool:
    """CSRF_TRUSTED_ORIGINS as Django's CSRF check reads it: scheme and port exactly,
    the host exactly or, for `*.example.com`, any subdomain of it."""
    wildcard = "://*." in pattern
    wanted = _parts(pattern.replace("://*.", "://", 1))
    if wanted is None:
        return False
    scheme, host, port = found
    if (scheme, port) != (wanted[0], wanted[2]):
        return False
    return host == wanted[1] or (wildcard and is_same_domain(host, "." + wanted[1]))


# The refusals said: each origin and host once (the newest REMEMBERED pairs), at most
# SAID_PER_MINUTE lines (a scanner's thousand origins), the others counted in the next.
REMEMBERED, SAID_PER_MINUTE = 64, 10
_refused: OrderedDict[tuple[str | None, str | None], None] = OrderedDict()
_said_at: deque[float] = deque()
_unsaid = 0


def _said_once(scope: dict[str, Any]) -> None:
    """A refused page stays "offline" and cannot know why: the log says."""
    global _unsaid
    pair = (_header(scope, b"origin"), _header(scope, b"host"))
    if pair in _refused:
        _refused.move_to_end(pair)
        return
    now = time.monotonic()
    while _said_at and _said_at[0] <= now - 60:
        _said_at.popleft()
    if len(_said_at) >= SAID_PER_MINUTE:
        _unsaid += 1
        return
    _refused[pair] = None
    if len(_refused) > REMEMBERED:
        _refused.popitem(last=False)
    _said_at.append(now)
    unsaid, _unsaid = _unsaid, 0
    logger.warning(
        "dashboard: refused the socket of a page from origin %r to host %r: the host must "
        "be in ALLOWED_HOSTS and the origin the same scheme, host and port (or in "
        "CSRF_TRUSTED_ORIGINS)%s", *pair,  # %r: the headers' control characters escaped
        f"; {unsaid} more refused, not logged" if unsaid else "",
    )


class OriginValidator:
    """Refuses the handshake of a socket whose page is not of an allowed origin."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket" and not allowed(scope):
            from channels.security.websocket import WebsocketDenier

            _said_once(scope)

            return await WebsocketDenier()(scope, receive, send)
        return await self.app(scope, receive, send)
