"""An event's key, `<process>.<seq>`: unique across processes, in rows, URLs and resuming.

The one place that formats and parses it (dashboard.js has its one mirror,
`parseKey`). The process part names this process (host, PID and a random
part: `web-1-4242-a3f09c`); it is renewed in a child
after `fork()`, so workers forked from a preloaded parent (gunicorn
`--preload`) never share keys, and so is the sequence.
"""

import itertools
import os
import re
import secrets
import socket
from collections.abc import Callable

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _name() -> str:
    # Host and PID, and a random part: PIDs come round again (at 32,768 by default), and a
    # process with an earlier one's PID numbered its events from 1 under that one's key,
    # which the history (unique by key) refused, every one, and open pages held already.
    return _UNSAFE.sub("-", f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}")


_process = _name()
# Numbered by the pump as it drains (one per process): sequence order is the
# order frames leave in, which resuming relies on.
next_seq: Callable[[], int] = itertools.count(1).__next__
# Numbered as captured (not as sent): an event's cause is named by it.
next_cid: Callable[[], int] = itertools.count(1).__next__


def process() -> str:
    """This process's name in event keys."""
    return _process


def format_key(process: str, seq: int) -> str:
    return f"{process}.{seq}"


def parse_key(key: str) -> tuple[str, int]:
    """(process, seq) of a key; ValueError if it is not one."""
    process, dot, seq = key.rpartition(".")
    if not dot or not process or not seq.isdigit():
        raise ValueError(f"not an event key: {key!r}")
    return process, int(seq)


def _renew() -> None:
    global _process, next_seq, next_cid
    _process = _name()
    next_seq = itertools.count(1).__next__
    next_cid = itertools.count(1).__next__


os.register_at_fork(after_in_child=_renew)
