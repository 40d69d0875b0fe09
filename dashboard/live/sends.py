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


def _libc_send() -> Any | None:
    """libc's send(2), called holding the GIL (`PyDLL`); None where it cannot be."""
    try:
        c_send = ctypes.PyDLL(None, use_errno=True).send
    except (OSError, AttributeError):  # no libc to call so (e.g. Windows)
        return None
    c_send.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int)
    c_send.restype = ctypes.c_ssize_t
    return c_send


_c_send = _libc_send()
# Never blocks; a peer that closed is an error for the caller to find, not a SIGPIPE.
_FLAGS = socket.MSG_DONTWAIT | getattr(socket, "MSG_NOSIGNAL", 0)


def keeping_the_gil(sock: Any, data: bytes) -> int:
    """Bytes the kernel took now (maybe fewer than given); OSError if none. `data` must
    be bytes: ctypes passes its buffer as is, and refuses anything else."""
    sent = _c_send(sock.fileno(), data, len(data), _FLAGS)
    if sent < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return sent


def letting_go(sock: Any, data: bytes) -> int:
    return sock.send(data)


KEEPS_GIL = _c_send is not None
send: Send = keeping_the_gil if KEEPS_GIL else letting_go
