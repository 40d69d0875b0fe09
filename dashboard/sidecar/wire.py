"""What crosses between a capturing process and its sidecar (its stdin and stdout).

Messages are pickled tuples, each prefixed by its length (4 bytes, big-endian).
Events cross nearly raw, as the capture made them (receivers already named,
instances' state already copied safely: capture/, core/payload.py name_now). An event
whose values will not pickle (a host's own type) is described here instead,
and crosses as its Row: one odd value never costs a batch.
"""

import dataclasses
import logging
import operator
import pickle
import struct
from typing import IO, Any

from dashboard.core.events import Event, InstanceSnapshot, RequestSnapshot, RolledBack
from dashboard.core.payload import describe_event
from dashboard.core.rows import Row

logger = logging.getLogger("dashboard")

HEADER = struct.Struct("!I")
PROTOCOL = pickle.HIGHEST_PROTOCOL


EVENT_FIELDS = tuple(f.name for f in dataclasses.fields(Event))
_RAW = EVENT_FIELDS.index("raw")
_values = operator.attrgetter(*EVENT_FIELDS)  # one C call for every field, in order


# Events and snapshots cross as plain tuples: pickling a slots dataclass goes through
# copyreg per object, about ten times the cost (31 µs an event against 3, measured).
def flat(event: Event) -> tuple[Any, ...]:
    """The event, ready to cross: its snapshots as tuples. Its receivers were named, and
    let go of, when its send ended (core/payload.py name_now)."""
    values = list(_values(event))
    values[_RAW] = {
        k: ("I", v.label, v.pk, v.text, v.fields) if type(v) is InstanceSnapshot
        else ("Q", v.method, v.path) if type(v) is RequestSnapshot
        else v
        for k, v in event.raw.items()
    }  # fmt: skip
    return ("E", *values)


def unflat(item: tuple[Any, ...]) -> Event:
    event = Event(*item[1:])
    event.raw = {
        k: (InstanceSnapshot(*v[1:]) if v[0] == "I" else RequestSnapshot(*v[1:]))
        if type(v) is tuple
        else v
        for k, v in event.raw.items()
    }
    return event


def mark(item: RolledBack) -> tuple[str, str, int]:
    """A rolled-back mark crosses as its key alone (the event itself crossed before)."""
    return ("R", item.event.process, item.event.seq)


def unmark(item: tuple[str, str, int]) -> RolledBack:
    stub = Event(signal="", family="", sender="", raw={})
    stub.process, stub.seq = item[1], item[2]
    return RolledBack(stub)


def encode(message: tuple[Any, ...]) -> bytes:
    body = pickle.dumps(message, PROTOCOL)
    return HEADER.pack(len(body)) + body


def encode_batch(head: tuple[Any, ...], batch: list[Event | RolledBack]) -> bytes:
    """("batch", *head, items): events that will not pickle are described here."""
    items = [mark(item) if isinstance(item, RolledBack) else _crossing(item) for item in batch]
    try:
        return encode(("batch", *head, items))
    except Exception:  # pickling raises whatever a host's __reduce__ raises
        return encode(("batch", *head, [_picklable(item) for item in items]))


def _crossing(event: Event) -> tuple[Any, ...]:
    item = flat(event)
    # Crossed: its snapshots go now. The event stays referenced until its transaction
    # ends (capture/transactions.py), and a long one holds thousands, all of which
    # the collector would otherwise walk again and again.
    event.described()
    return item


def decode_batch(items: list[Any]) -> list[Event | Row | RolledBack]:
    """The sidecar's side: events, rows (described where captured) and marks."""
    return [
        unflat(item) if type(item) is tuple and item[0] == "E"
        else unmark(item) if type(item) is tuple
        else item
        for item in items
    ]  # fmt: skip


def _picklable(item: tuple[Any, ...]) -> Any:
    try:
        pickle.dumps(item, PROTOCOL)
        return item
    except Exception:
        return describe_event(unflat(item))


def read(stream: IO[bytes]) -> tuple[Any, ...] | None:
    """The next message, or None at the end of the stream."""
    header = _exactly(stream, HEADER.size)
    if header is None:
        return None
    body = _exactly(stream, HEADER.unpack(header)[0])
    return None if body is None else pickle.loads(body)


class Reader:
    """Messages from an unbuffered stream, each read taking whatever has come: a message
    and the next in one system call, so one turn of the GIL (each read lets it go), not
    a header's and a body's. No lock, unlike io.BufferedReader: a child forked while the
    reading thread waits can close the stream (sidecar/link.py after_fork)."""

    def __init__(self, stream: IO[bytes], chunk: int = 1 << 16) -> None:
        self.stream, self.chunk = stream, chunk
        self.buffer = bytearray()

    def read(self) -> tuple[Any, ...] | None:
        """The next message, or None at the end of the stream."""
        buffer = self.buffer
        while True:
            if len(buffer) >= HEADER.size:
                end = HEADER.size + HEADER.unpack_from(buffer)[0]
                if len(buffer) >= end:
                    body = bytes(buffer[HEADER.size : end])
                    del buffer[:end]
                    return pickle.loads(body)
            data = self.stream.read(self.chunk)
            if not data:
                return None
            buffer += data


def _exactly(stream: IO[bytes], size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
