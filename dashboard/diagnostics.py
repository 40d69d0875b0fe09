"""What may keep a receiver from running, for the whole project: the diagnostics page.

Read when the page is asked for, from this process as it is now: the apps'
modules (imported or not), every signal found and its receivers, and what the
dashboard's hook on Signal.send has seen since start-up (capture/seen.py
`senders()`: those each signal was sent with). What a dispatch found gone or
doubled (core/payload.py `not_run`) is read back from the history.
"""

import os
import sys
import weakref
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.dispatch import Signal

from dashboard.capture import seen
from dashboard.capture.origin import project_path
from dashboard.capture.signals import discovered
from dashboard.core.payload import NO_SENDER, receiver_info
from dashboard.core.senders import model_for
from dashboard.models import StoredEvent

MODULE_NAMES = ("signals", "receivers")
RECENT = 5000  # stored events read for what dispatches found


@dataclass
class Report:
    unimported: list[dict[str, Any]] = field(default_factory=list)
    never_sent: list[dict[str, Any]] = field(default_factory=list)
    twice: list[dict[str, Any]] = field(default_factory=list)
    unmatched: list[dict[str, Any]] = field(default_factory=list)  # not a model
    waiting: list[dict[str, Any]] = field(default_factory=list)  # a model, not sent yet
    gone: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=lambda: seen.STARTED)
    pid: int = field(default_factory=os.getpid)

    @property
    def problems(self) -> int:
        return sum(map(len, (self.unimported, self.never_sent, self.twice, self.unmatched,
                             self.gone)))  # fmt: skip


def report(events: Any = None) -> Report:
    """`events`: the stored events whose findings are read (default: all)."""
    found = discovered()
    unmatched = unmatched_senders(found)
    return Report(
        unimported=unimported_modules(),
        never_sent=never_sent(found),
        twice=connected_twice(found),
        unmatched=[r for r in unmatched if r["model"] is None],
        waiting=[r for r in unmatched if r["model"] is not None],
        gone=gone(found, events),
    )


def unimported_modules() -> list[dict[str, Any]]:
    """Apps with a signals.py (receivers.py, handlers.py) that nothing imported: its
    @receiver functions never connected (the usual fix: import it in ready())."""
    found = []
    for app in apps.get_app_configs():
        if app.name.startswith("django."):
            continue
        for name in MODULE_NAMES:
            module = f"{app.name}.{name}"
            path = os.path.join(app.path, f"{name}.py")
            if not os.path.exists(path):
                path = os.path.join(app.path, name, "__init__.py")
                if not os.path.exists(path):
                    continue
            if module in sys.modules:
                continue
            found.append({
                "app": app.label, "module": module, "where": project_path(path),
                "receivers": _connects(path), "config": type(app).__name__,
            })  # fmt: skip
    return found


def _connects(path: str) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            source = f.read()
    except (OSError, UnicodeDecodeError):
        return False
    return "@receiver" in source or ".connect(" in source


def _live(signal: Signal) -> list[tuple[Any, Any, Any]]:
    """(lookup key, receiver or None if garbage-collected, connected with dispatch_uid)."""
    entries = []
    for entry in list(signal.receivers):
        lookup, ref = entry[0], entry[1]
        func = ref() if isinstance(ref, weakref.ReferenceType) else ref
        entries.append((lookup, func, isinstance(lookup[0], str)))
    return entries


def _mine(func: Any) -> bool:
    """A receiver of the project's or a package's, not Django's own."""
    return not str(getattr(func, "__module__", "") or "").startswith("django.")


def never_sent(found: list[tuple[Signal, Any]]) -> list[dict[str, Any]]:
    """Custom signals (not Django's) with receivers that were not sent since start-up."""
    out = []
    for signal, spec in found:
        if spec.path.startswith("django.") or seen.senders(signal) is not None:
            continue
        receivers = [receiver_info(f) for _, f, _ in _live(signal) if f is not None]
        if receivers:
            out.append({"signal": spec.path, "receivers": receivers})
    return out


def connected_twice(found: list[tuple[Signal, Any]]) -> list[dict[str, Any]]:
    """The same function (same file:line, maybe imported under two module names)
    connected more than once for senders that overlap: it runs once per connection."""
    out = []
    for signal, spec in found:
        groups: dict[Any, list[tuple[Any, Any, bool]]] = {}
        for lookup, func, uid in _live(signal):
            if func is None or not _mine(func):
                continue
            where = receiver_info(func)["where"]
            owner = id(getattr(func, "__self__", None))  # a method: per instance
            key = (where, getattr(func, "__qualname__", None), owner) if where else id(func)
            groups.setdefault(key, []).append((lookup, func, uid))
        for entries in groups.values():
            senders = [lookup[1] for lookup, _, _ in entries]
            overlapping = [s for s in senders if s == NO_SENDER or senders.count(s) > 1]
            if len(entries) < 2 or (len(overlapping) < 2 and NO_SENDER not in senders):
                continue
            info = receiver_info(entries[0][1])
            out.append({
                "signal": spec.path, **info, "times": len(entries),
                "uids": sum(uid for _, _, uid in entries),
                "modules": sorted({str(getattr(f, "__module__", "")) for _, f, _ in entries}),
            })  # fmt: skip
    return out


def unmatched_senders(found: list[tuple[Signal, Any]]) -> list[dict[str, Any]]:
    """Receivers connected for one sender that the signal was never sent with since
    start-up: a string sender for a plain Signal ('app.Model' is resolved only by model
    signals), an instance where the class is sent, a proxy model, or simply not yet."""
    out = []
    for signal, spec in found:
        sent = seen.senders(signal) or set()
        for lookup, func, _ in _live(signal):
            sender_key = lookup[1]
            if func is None or sender_key == NO_SENDER or sender_key in sent or not _mine(func):
                continue
            model = (found := model_for(sender_key)) and found._meta.label
            out.append({
                "signal": spec.path, **receiver_info(func), "model": model,
                "sent": bool(sent),
            })  # fmt: skip
    out.sort(key=lambda r: (r["model"] is not None, r["signal"], r["name"]))
    return out


def gone(found: list[tuple[Signal, Any]], events: Any = None) -> list[dict[str, Any]]:
    """Weak receivers garbage-collected: found dead in a signal's list now, or by a
    dispatch (the history keeps what it found); and receivers a dispatch ran twice."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for signal, spec in found:
        # A method whose object was collected goes with it, as designed: not counted.
        dead = sum(1 for lookup, f, _ in _live(signal) if f is None
                   and not isinstance(lookup[0], tuple))  # fmt: skip
        if dead:
            out[(spec.path, "(gone)", "now")] = {"signal": spec.path, "name": "(gone)",
                                                "where": "", "why": _GONE, "seen": dead,
                                                "event": None}  # fmt: skip
    recent = (
        (StoredEvent.objects.all() if events is None else events)
        .exclude(detail__not_run=[])
        .order_by("-id")
        .only("id", "process", "seq", "signal", "detail")[:RECENT]
    )
    for event in recent:
        for item in event.detail.get("not_run") or []:
            why = str(item.get("why", ""))
            if item.get("name") != "(gone)" and not why.startswith("ran "):
                continue  # "connected for another sender": the list above says it once
            key = (event.signal, str(item.get("name")), why.split(":")[0])
            entry = out.setdefault(key, {"signal": event.signal, "name": item.get("name"),
                                         "where": item.get("where", ""), "why": why,
                                         "seen": 0, "event": event.key})  # fmt: skip
            entry["seen"] += 1
    return list(out.values())


_GONE = (
    "garbage-collected: connected by a weak reference that nothing else held (a function "
    "defined inside another?); Django drops it at the signal's next send or connect"
)
