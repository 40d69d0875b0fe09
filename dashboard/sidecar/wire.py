"""What crosses the pipe between a capturing process and its sidecar.

Messages are pickled tuples, each prefixed by its length (4 bytes, big-endian).
Events cross nearly raw: only what cannot leave the process (receiver
functions, weak references, model state) is turned into names first. An event
whose values will not pickle (a host's own type) is described here instead,
and crosses as its Row: one odd value never costs a batch.
"""

import logging
import pickle
import struct
from typing import IO, Any

from dashboard.core.events import Event, InstanceSnapshot, RolledBack
from dashboard.core.payload import describe_event, name_receivers

logger = logging.getLogger("dashboard")

HEADER = struct.Struct("!I")
PROTOCOL = pickle.HIGHEST_PROTOCOL


def portable(event: Event) -> Event:
    """The event, ready to cross: receivers named, private instance state dropped."""
    event.named = name_receivers(event)
    event.timings, event.receivers_then = [], None
    for value in event.raw.values():
        if type(value) is InstanceSnapshot:
            value.fields = {k: v for k, v in value.fields.items() if k[0] != "_"}
    return event


def mark(item: RolledBack) -> RolledBack:
    """A rolled-back mark crosses as its key alone (the event itself crossed before)."""
    event = item.event
    stub = Event(signal=event.signal, family=event.family, sender="", raw={})
    stub.process, stub.seq = event.process, event.seq
    return RolledBack(stub)


def encode(message: tuple[Any, ...]) -> bytes:
    body = pickle.dumps(message, PROTOCOL)
    return HEADER.pack(len(body)) + body


def encode_batch(head: tuple[Any, ...], batch: list[Event | RolledBack]) -> bytes:
    """("batch", *head, items): events that will not pickle are described here."""
    items = [mark(item) if isinstance(item, RolledBack) else portable(item) for item in batch]
    try:
        return encode(("batch", *head, items))
    except Exception:  # pickling raises whatever a host's __reduce__ raises
        return encode(("batch", *head, [_picklable(item) for item in items]))


def _picklable(item: Event | RolledBack) -> Any:
    try:
        pickle.dumps(item, PROTOCOL)
        return item
    except Exception:
        return describe_event(item)  # type: ignore[arg-type]  # marks always pickle


def read(stream: IO[bytes]) -> tuple[Any, ...] | None:
    """The next message, or None at the end of the stream."""
    header = _exactly(stream, HEADER.size)
    if header is None:
        return None
    body = _exactly(stream, HEADER.unpack(header)[0])
    return None if body is None else pickle.loads(body)


def _exactly(stream: IO[bytes], size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
