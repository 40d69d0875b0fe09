"""Under daphne a frame is framed once and written at once to every socket (sockets.py)."""

import asyncio
import functools
import socket

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet.testing import StringTransport

from dashboard.live.daphne import Frame, socket_of, write_now
from tests.helpers import received


def server_factory() -> WebSocketServerFactory:
    factory = WebSocketServerFactory()
    factory.protocol = WebSocketServerProtocol  # what daphne's protocol derives from
    return factory


def open_socket(factory: WebSocketServerFactory) -> tuple[WebSocketServerProtocol, StringTransport]:
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.state = protocol.STATE_OPEN  # as after the handshake
    transport.clear()
    return protocol, transport


def test_daphne_style_send_reveals_its_socket_and_nothing_else_does():
    protocol = server_factory().buildProtocol(None)

    async def handle_reply(protocol, message):  # daphne's Server.handle_reply
        return None

    assert socket_of(functools.partial(handle_reply, protocol)) is protocol
    assert socket_of(functools.partial(handle_reply, object())) is None
    assert socket_of(handle_reply) is None  # e.g. channels' test communicator


def test_one_frame_is_framed_once_for_every_open_socket(monkeypatch):
    factory = server_factory()
    prepared = []
    original = factory.prepareMessage
    monkeypatch.setattr(factory, "prepareMessage", lambda *a: prepared.append(a) or original(*a))
    sockets = [open_socket(factory) for _ in range(3)]
    html = "<tbody id=\"events\"></tbody>" * 20  # 540 bytes: a 16-bit length header

    frame = Frame({"html": html})
    assert all(frame.send_to(protocol) for protocol, _ in sockets)

    assert len(prepared) == 1
    for _, transport in sockets:
        data = transport.value()
        assert data[0] == 0x81  # FIN, text frame
        assert data[1] == 126 and int.from_bytes(data[2:4], "big") == len(html)
        assert data[4:] == html.encode()


def test_a_socket_that_is_not_open_is_left_to_asgi():
    protocol, transport = open_socket(server_factory())
    protocol.state = protocol.STATE_CLOSING
    assert Frame({"html": "<p>late</p>"}).send_to(protocol) is False
    assert transport.value() == b""


async def test_daphne_still_hands_applications_its_socket():
    """The contract socket_of() relies on: if daphne changes it, frames fall back to the
    ASGI send (slower, still correct), and this test says so."""
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol

    sends = []

    async def application(scope, receive, send):
        sends.append(send)

    server = Server(application, endpoints=["tcp:port=0:interface=127.0.0.1"])  # never run
    protocol = WebSocketProtocol()
    server.connections = {protocol: {}}
    server.create_application(protocol, {"type": "websocket", "path": "/socket/"})
    await asyncio.sleep(0)
    assert socket_of(sends[0]) is protocol


class Reactor:
    """What a twisted connection asks of its reactor when it has to buffer."""

    def __init__(self) -> None:
        self.writers: list[object] = []

    def addWriter(self, writer: object) -> None:  # twisted's name
        self.writers.append(writer)

    def removeWriter(self, writer: object) -> None:
        self.writers.remove(writer)


def tcp_connection(send_buffer: int | None = None):
    """A twisted TCP connection over a real socket pair, and the peer's end."""
    from twisted.internet import tcp

    ours, peer = socket.socketpair()
    if send_buffer:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, send_buffer)
    ours.setblocking(False)
    reactor = Reactor()
    connection = tcp.Connection(ours, None, reactor)
    connection.connected = 1  # as tcp.Server does once accepted
    return connection, peer, reactor


def test_with_nothing_buffered_the_bytes_are_sent_at_once():
    connection, peer, reactor = tcp_connection()
    write_now(connection, b"frame")
    assert received(peer, 5) == b"frame"  # no reactor pass was needed
    assert reactor.writers == [] and not connection._tempDataBuffer


def test_bytes_never_jump_what_twisted_still_holds():
    connection, peer, _ = tcp_connection()
    connection.write(b"first ")  # buffered until the reactor finds the socket writable
    write_now(connection, b"second")
    assert connection._tempDataBuffer == [b"first ", b"second"]
    connection.doWrite()  # the reactor's pass
    assert received(peer, 12) == b"first second"


def test_what_the_kernel_does_not_take_is_left_to_twisted_in_order():
    connection, peer, reactor = tcp_connection(send_buffer=4096)
    data = bytes(range(256)) * 4096  # 1 MiB: far more than the socket takes at once
    write_now(connection, data)
    assert reactor.writers == [connection]  # the rest waits for the reactor
    got = b""
    peer.settimeout(2)
    while len(got) < len(data):
        connection.doWrite()
        got += peer.recv(1 << 20)
    assert got == data


def test_other_transports_are_written_their_own_way():
    transport = StringTransport()  # e.g. TLS, or a test's transport
    write_now(transport, b"frame")
    assert transport.value() == b"frame"
