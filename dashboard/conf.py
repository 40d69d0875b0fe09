"""The dashboard's settings, read from `settings.DASHBOARD` with defaults.

Read on hot paths (per event, per payload value), so they are merged once
and cached. A change of DASHBOARD (override_settings in tests) is seen by
the capture itself, which observes every `setting_changed` it is sent
(capture/dispatch.py calls `forget()`): the dashboard connects no receiver.
"""

import functools
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Seconds one frame may coalesce events for under load; an idle pipeline
    # sends the first event at once.
    "BATCH_WINDOW": 0.05,
    # Events waiting for the pump; past it they are dropped and counted.
    "QUEUE_SIZE": 10_000,
    # Rows the browser keeps, and so the most rows one frame carries.
    "MAX_ROWS": 500,
    # Longest text shown for one payload value.
    "VALUE_LIMIT": 200,
    # Query the stored row on pre_save of an update, so post_save can show a diff.
    "DIFFS": True,
    # History: the newest events kept, and for how long (seconds).
    "HISTORY_MAX_EVENTS": 10_000,
    "HISTORY_MAX_AGE": 7 * 24 * 3600,
    # The channel-layer group every dashboard socket joins.
    "GROUP": "signals-dashboard",
    # Path prefixes never captured, besides the dashboard's own routes and
    # STATIC_URL (derived from the URLconf): browsers ask every site for these.
    "QUIET_PATHS": ("/favicon.ico",),
    # Signals recorded, and those left out: shell-style patterns matched against
    # a signal's name ("post_save"), its path ("django.db.models.signals.post_save")
    # and "family.name" ("model.post_save"). pre_init and post_init are sent for
    # every row a query loads: listed on the page, recorded only if taken out here.
    "SIGNALS": ("*",),
    "IGNORE_SIGNALS": ("pre_init", "post_init"),
    # Senders left out, by label pattern ("sessions.*", "admin.LogEntry").
    "IGNORE_SENDERS": (),
    # Extra links for the dashboard's navigation bar: (label, URL) pairs.
    "LINKS": (),
    # Open file:line links (call sites, receivers, traceback frames) in the developer's
    # editor: a URL with {path} and {line}, e.g. "vscode://file/{path}:{line}". Off: None.
    "EDITOR_URL": None,
    # Describe, render and store in a process of the dashboard's own beside each
    # capturing one (dashboard/sidecar/), off the host's GIL. False: all in-process.
    "SIDECAR": True,
}


_merged: dict[str, Any] | None = None
generation = 0  # grows whenever the settings are read anew: caches of derived answers key on it


def get(name: str) -> Any:
    merged = _merged
    if merged is None:
        merged = _merge()
    return merged[name]


def _merge() -> dict[str, Any]:
    global _merged, generation
    _merged = {**DEFAULTS, **getattr(settings, "DASHBOARD", {})}
    generation += 1
    return _merged


def current_generation() -> int:
    """The generation of the settings now in force (read anew if they changed)."""
    if _merged is None:
        _merge()
    return generation


def forget() -> None:
    """DASHBOARD changed: read it anew on next use."""
    global _merged
    _merged = None


T = TypeVar("T")


def per_settings(func: Callable[[Any], T]) -> Callable[[Any], T]:
    """Memoize a one-argument function of the settings until DASHBOARD changes
    (hot paths ask the same question per signal or sender again and again)."""
    answers: dict[Hashable, T] = {}
    read = [-1]  # the generation the answers are for

    @functools.wraps(func)
    def cached(arg: Hashable) -> T:
        if read[0] != current_generation():
            answers.clear()
            read[0] = generation
        try:
            return answers[arg]
        except KeyError:
            answer = answers[arg] = func(arg)
            return answer

    return cached
