"""What the hook on Signal.send has seen since start-up: each signal's senders.

Noted by capture/dispatch.py on every send (one weak-dict lookup and a set add);
read by the diagnostics page (a custom signal never sent, a receiver whose sender
never came). Per signal, the ids of at most MAX_SENDERS senders: a signal sent with
ever new instances as senders stops growing there.
"""

import time
import weakref

from django.dispatch import Signal

SENT: "weakref.WeakKeyDictionary[Signal, set[int]]" = weakref.WeakKeyDictionary()
MAX_SENDERS = 1000
STARTED = time.time()  # what "since start-up" means


def note(signal: Signal, sender: object) -> None:
    senders = SENT.get(signal)
    if senders is None:
        senders = SENT[signal] = set()
    if len(senders) < MAX_SENDERS:
        senders.add(id(sender))
