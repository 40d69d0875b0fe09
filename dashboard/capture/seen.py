"""What the hook on Signal.send has seen since start-up: each signal's senders.

Noted by capture/dispatch.py on every send (one dict lookup and a set add);
read by the diagnostics page (a custom signal never sent, a receiver whose sender
never came). Per signal, the ids of at most MAX_SENDERS senders: a signal sent with
ever new instances as senders stops growing there.
"""

import time

from django.dispatch import Signal

from dashboard.core.identity import ByIdentity
from dashboard.core.senders import MAX_SENDERS  # one definition, read where events are described

_sent: ByIdentity[set[int]] = ByIdentity()
STARTED = time.time()  # what "since start-up" means


def note(signal: Signal, sender: object) -> set[int]:
    """Note the send; the signal's senders so far (capture/dispatch.py notes into them
    itself for signals it has nothing else to do for)."""
    senders = _sent.get(id(signal))
    if senders is None:
        senders = _sent.put(signal, set())
    if len(senders) < MAX_SENDERS:
        senders.add(id(sender))
    return senders


def senders(signal: Signal) -> set[int] | None:
    """The ids of the senders it was sent with, or None if never sent since start-up."""
    return _sent.get(id(signal))
