"""Writes to local sockets that keep the GIL: a frame to a dashboard, a batch to the sidecar.

`socket.send` lets go of the GIL around the system call, as any call that may
block must. A non-blocking send to a local socket takes microseconds, but
getting the GIL back then waits for whichever thread took it meanwhile: a
thread saving flat out keeps it for the switch interval (5 ms). Once per
socket per frame, at 100 dashboards, that was a frame's latency beside a busy
producer (bench/: p50 at 2,000 posts/s, 119-140 ms, against 47-57 ms with
this). `ctypes.PyDLL` calls keep the GIL, and MSG_DONTWAIT makes sure the
call cannot block, whatever the socket's mode.

Where libc cannot be called so (not Linux or a BSD), `KEEPS_GIL` is False and
`send` is the socket's own, which callers use only on non-blocking sockets.
"""

import ctypes
import os
import socket
from collections.abc import Callable
from typing import Any

Send = Callable[[Any, bytes], int]


def _keeping_the_gil() -> Send | None:
    try:
        c_send = ctypes.PyDLL(None, use_errno=True).send
    except (OSError, AttributeError):  # no libc to call so (e.g. Windows)
        return None
    c_send.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int)
    c_send.restype = ctypes.c_ssize_t
    # A peer that closed is an error for the caller to find, not a SIGPIPE.
    flags = socket.MSG_DONTWAIT | getattr(socket, "MSG_NOSIGNAL", 0)

    def send(sock: Any, data: bytes) -> int:
        """Bytes the kernel took now (maybe fewer than given); OSError if none."""
        sent = c_send(sock.fileno(), data, len(data), flags)
        if sent < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))
        return sent

    return send


def letting_go(sock: Any, data: bytes) -> int:
    return sock.send(data)


_kept = _keeping_the_gil()
KEEPS_GIL = _kept is not None
send: Send = _kept or letting_go
