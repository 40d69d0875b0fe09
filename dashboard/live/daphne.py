"""One frame to many sockets, framed once: autobahn's broadcast API under daphne.

Through ASGI, every socket's `websocket.send` makes daphne encode the text and
autobahn frame it again: the same bytes, copied twice per socket. At 100
dashboards that per-socket work was the ceiling (bench/: 1,000 posts/s went
from p99 ≈ 200 ms to ≈ 65 ms without it). autobahn has an API for exactly
this, `prepareMessage()` once and `sendPreparedMessage()` per socket.

daphne hands each application `send = functools.partial(server.handle_reply,
protocol)`; `socket_of()` finds the autobahn protocol there when it is one.
Anywhere else (channels' test communicator, uvicorn, another server) it
finds none, and frames go through the ASGI send as usual.

The bytes are then written at once when nothing is buffered before them
(`write_now`): twisted's `transport.write` only buffers, and costs a
register and an unregister with the selector and a reactor pass per write,
per socket (with autobahn's eager debug logging, about 5x a plain send; at
100 dashboards that was most of the loop's time), keeping the GIL
(live/sends.py).

All of this leans on daphne's, autobahn's and twisted's internals, so it is
one seam (seams.py): `probe()` checks them at start-up, and any surprise
later turns the fast path off for good, with one warning: frames then go
through the ASGI send, as on any other server.
"""

import functools
from collections.abc import Callable
from typing import Any

from dashboard.live.sends import send
from dashboard.seams import seam

SCOPE_KEY = "dashboard.socket"  # where dashboard/asgi.py leaves the protocol

SEAM = seam(
    "dashboard.W003",
    "daphne's autobahn protocol and twisted transport (framing once, writing at once)",
    "frames go through the ASGI websocket.send, encoded per socket",
)

try:  # daphne's websocket layer; absent or moved: the ASGI path only
    from autobahn.websocket.protocol import WebSocketServerProtocol
    from twisted.internet.tcp import Connection
except ImportError as exc:  # pragma: no cover - depends on what is installed
    WebSocketServerProtocol = Connection = None  # type: ignore[assignment,misc]
    _IMPORT_ERROR: str | None = f"{exc}"
else:
    _IMPORT_ERROR = None

# What the fast path reads of an open socket, besides its transport's buffers.
PROTOCOL_ATTRS = ("factory", "_perMessageCompress", "send_queue", "transport")


def socket_of(send: Callable[..., Any]) -> Any | None:
    """daphne's autobahn protocol behind an ASGI `send`, if that is what it is."""
    if not SEAM.ok or not isinstance(send, functools.partial):
        return None
    protocol = send.args[0] if send.args else None
    return protocol if isinstance(protocol, WebSocketServerProtocol) else None


class Frame:
    """A frame on its way to every socket: the group message, framed at most once."""

    __slots__ = ("_prepared", "message")

    def __init__(self, message: dict[str, Any]) -> None:
        self.message = message
        self._prepared: dict[Any, Any] = {}  # per autobahn factory (one per server)

    @property
    def html(self) -> str:
        return self.message["html"]

    def send_to(self, protocol: Any) -> bool:
        """Write the frame to an open socket; False if not (use the ASGI send then)."""
        if not SEAM.ok:
            return False
        try:
            if protocol.state != protocol.STATE_OPEN:
                return False
            if missing := [a for a in PROTOCOL_ATTRS if not hasattr(protocol, a)]:
                SEAM.fail(f"no {', '.join(missing)} on an open socket")
                return False
            factory = protocol.factory
            prepared = self._prepared.get(factory)
            if prepared is None:
                # Frames are ASCII (core/render.py): encoding is a copy, done once.
                prepared = self._prepared[factory] = factory.prepareMessage(self.html.encode())
            if protocol._perMessageCompress is None and not protocol.send_queue:
                write_now(protocol.transport, prepared.payloadHybi)
            else:  # compressed per socket, or autobahn has queued writes: its own way
                protocol.sendPreparedMessage(prepared)
        except Exception as exc:
            # Raised before any byte is written (write_now reads the transport's
            # buffers first): nothing went out, and the ASGI send sends it.
            SEAM.fail(f"{type(exc).__name__}: {exc}")
            return False
        return True


def write_now(transport: Any, data: bytes) -> None:
    """Send what the kernel takes now; twisted buffers the rest, in order.

    Only when twisted holds nothing unsent for this socket (else the bytes
    would jump the queue), and only on a plain TCP connection (TLS encrypts
    in `write`). A socket error is left to twisted, whose next write finds it.
    """
    if (
        Connection is None
        or not isinstance(transport, Connection)  # e.g. TLS wraps the connection
        or transport.TLS
        or transport._tempDataBuffer
        or transport.offset != len(transport.dataBuffer)
        or not transport.connected
        or transport.disconnecting
    ):
        transport.write(data)
        return
    try:
        sent = send(transport.socket, data)
    except OSError:  # EAGAIN: the buffer is full; anything else: twisted's to report
        sent = 0
    if sent < len(data):
        transport.write(data[sent:])


def probe() -> str | None:
    """At start-up: are the pieces the fast path uses where it expects them?"""
    if _IMPORT_ERROR is not None:
        return f"cannot import them ({_IMPORT_ERROR})"
    try:
        from daphne.server import Server
    except ImportError as exc:
        return f"cannot import daphne's server ({exc})"
    expected = {
        Server: ("handle_reply",),
        WebSocketServerProtocol: ("sendPreparedMessage", "STATE_OPEN"),
        Connection: ("TLS", "offset", "dataBuffer", "write", "connected"),
    }
    from autobahn.websocket.protocol import WebSocketServerFactory

    expected[WebSocketServerFactory] = ("prepareMessage",)
    missing = [f"{cls.__name__}.{a}" for cls, attrs in expected.items() for a in attrs
               if not hasattr(cls, a)]  # fmt: skip
    return f"missing {', '.join(missing)}" if missing else None
