"""One frame to many sockets, framed once: autobahn's broadcast API under daphne.

Through ASGI, every socket's `websocket.send` makes daphne encode the text and
autobahn frame it again: the same bytes, copied twice per socket. At 100
dashboards that per-socket work was the ceiling (bench/: 1,000 posts/s went
from p99 ≈ 200 ms to ≈ 65 ms without it). autobahn has an API for exactly
this, `prepareMessage()` once and `sendPreparedMessage()` per socket.

daphne hands each application `send = functools.partial(server.handle_reply,
protocol)`; `socket_of()` finds the autobahn protocol there when it is one.
Anywhere else (channels' test communicator, another server) it finds none,
and frames go through the ASGI send as usual.
"""

import functools
from collections.abc import Callable
from typing import Any

from autobahn.websocket.protocol import WebSocketServerProtocol  # daphne's websocket layer

SCOPE_KEY = "dashboard.socket"  # where dashboard/asgi.py leaves the protocol


def socket_of(send: Callable[..., Any]) -> Any | None:
    """daphne's autobahn protocol behind an ASGI `send`, if that is what it is."""
    if not isinstance(send, functools.partial):
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
        """Write the frame to an open socket; False if it is not open (use ASGI then)."""
        if protocol.state != protocol.STATE_OPEN:
            return False
        factory = protocol.factory
        prepared = self._prepared.get(factory)
        if prepared is None:
            # Frames are ASCII (render.py): encoding is a copy, done once.
            prepared = self._prepared[factory] = factory.prepareMessage(self.html.encode())
        protocol.sendPreparedMessage(prepared)
        return True
