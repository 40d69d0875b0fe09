"""Answers kept per object, on hot paths: by its id, tied to its life.

A dict keyed by the object would hash it (a host's class may define its own
__hash__, or __eq__ and so none: a Signal subclass, a receiver that is a value
object, a MagicMock that records the call) and hold it (a class sent as a
sender, a model made in a test, code compiled at run time: kept for the
process's life). A WeakKeyDictionary does neither, but makes a weak reference
and runs Python code on every lookup. Here a lookup is `get(id(obj))`, one
dict lookup; an entry goes when its object is collected (a finalizer), so an
id is never reused while its entry is here.
"""

import weakref
from typing import Any, TypeVar

T = TypeVar("T")


class ByIdentity(dict[int, T]):
    """id(obj) → answer, each entry dropped when its object goes. An object that
    cannot be weakly referenced is not kept: `put()` returns its answer, and the
    next lookup works it out again."""

    def __init__(self) -> None:
        super().__init__()
        self._tied: set[int] = set()  # ids whose object will tell us when it goes

    def put(self, obj: Any, value: T, replace: bool = False) -> T:
        """Keep the answer for obj; the one kept (another thread may have put one
        first: theirs stays, so nothing noted into it is lost, unless `replace`)."""
        key = id(obj)
        if key not in self._tied:
            try:
                weakref.finalize(obj, self._forget, key).atexit = False
            except TypeError:  # cannot be weakly referenced: its id may be reused
                return value
            self._tied.add(key)
        if replace:
            self[key] = value
            return value
        return self.setdefault(key, value)

    def _forget(self, key: int) -> None:
        self._tied.discard(key)
        self.pop(key, None)
