"""Writes that keep the GIL (live/sends.py): to dashboards' sockets, and to the sidecar."""

import socket
import subprocess
import sys

import pytest

from dashboard.live import sends
from tests.helpers import received


@pytest.mark.skipif(sys.platform != "linux", reason="libc is called so on Linux")
def test_the_bytes_are_sent_keeping_the_gil():
    """`socket.send` lets go of the GIL; getting it back waited for the host's saving
    thread, per socket, per frame (bench/: p50 at 2,000 posts/s to 100 dashboards,
    119-140 ms against 47-57 ms). A `PyDLL` function keeps it (a `CDLL` one would not)."""
    import ctypes

    assert sends.send is sends.keeping_the_gil
    assert sends._c_send._flags_ & ctypes._FUNCFLAG_PYTHONAPI


def test_a_peer_that_closed_is_an_error_not_a_sigpipe():
    """Python ignores SIGPIPE, but a host may not (a server restoring the default):
    the send must say EPIPE rather than kill the process."""
    code = (
        "import signal, socket\n"
        "signal.signal(signal.SIGPIPE, signal.SIG_DFL)\n"
        "from dashboard.live import sends\n"
        "ours, peer = socket.socketpair()\n"
        "peer.close()\n"
        "try:\n"
        "    sends.send(ours, b'x')\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "BrokenPipeError"


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
    with pytest.raises((BrokenPipeError, ConnectionResetError)):
        while True:
            sends.send(ours, data)
    ours.close()
