"""Writes that keep the GIL (live/sends.py): to dashboards' sockets, and to the sidecar."""

import socket
import sys

import pytest

from dashboard.live import sends


def received(peer: socket.socket, size: int) -> bytes:
    peer.settimeout(2)
    data = b""
    while len(data) < size:
        data += peer.recv(size - len(data))
    return data


@pytest.mark.skipif(sys.platform != "linux", reason="libc is called so on Linux")
def test_the_bytes_are_sent_keeping_the_gil():
    """`socket.send` lets go of the GIL; getting it back waited for the host's saving
    thread, per socket, per frame (bench/: p50 at 2,000 posts/s to 100 dashboards,
    119-140 ms against 47-57 ms)."""
    assert sends.send is not sends.letting_go


def test_a_send_says_what_the_kernel_took_and_why_not_more():
    ours, peer = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    data = b"x" * (1 << 20)
    taken = sends.send(ours, data)  # never blocks, even on a blocking socket
    assert 0 < taken < len(data)
    with pytest.raises(BlockingIOError):
        sends.send(ours, data)  # full: twisted keeps the rest
    assert received(peer, taken) == data[:taken]
    peer.close()
    with pytest.raises((BrokenPipeError, ConnectionResetError)):  # not a SIGPIPE
        while True:
            sends.send(ours, data)
    ours.close()
