"""The dashboard's settings, read from `settings.DASHBOARD` with defaults.

Read on hot paths (per event, per payload value), so they are merged once
and cached. A change of DASHBOARD (override_settings in tests) is seen by
the capture itself, which observes every `setting_changed` it is sent
(capture/dispatch.py calls `forget()`): the dashboard connects no receiver.
"""

import functools
import logging
import re
import string
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from django.conf import settings

from dashboard.core.identity import ByIdentity

logger = logging.getLogger("dashboard")

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
    # History per family: the most events of each family named here that are kept
    # (within HISTORY_MAX_EVENTS), so request and connection noise cannot push model
    # and auth events out. Merged with these defaults; "*" caps every other family.
    "HISTORY_FAMILY_MAX_EVENTS": {"request": 2_000, "database": 500},
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
    # Seconds between checks that an open socket's user may still see the dashboard
    # (logged in, active, with the permission); it closes within this long after not.
    "ACCESS_RECHECK": 3.0,
}


# -- what each key may be: (what it must be, check). manage.py check reports the
# rest (checks.py, dashboard.E005); at run time an invalid value is the default.


def _number(low: float, high: float, integer: bool = False) -> tuple[str, Callable[[Any], bool]]:
    kind = "an integer" if integer else "a number"
    types = (int,) if integer else (int, float)
    return (
        f"{kind} from {low:,} to {high:,}",
        lambda v: isinstance(v, types) and not isinstance(v, bool) and low <= v <= high,
    )


def _strings(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v)


def _links(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and all(
        isinstance(x, (list, tuple)) and len(x) == 2 and all(isinstance(y, str) for y in x)
        for x in v
    )


def _editor_url(v: Any) -> bool:
    """None, or a URL whose only placeholders are {path} and {line} ({file} would fail
    on the first link drawn)."""
    if v is None:
        return True
    if not isinstance(v, str):
        return False
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion
                  in string.Formatter().parse(v) if name is not None]  # fmt: skip
    except ValueError:  # "{path"
        return False
    names = {name for name, _, _ in fields}
    # As in_editor() fills it: strings, so no format spec ({line:d}) nor conversion.
    plain = all(not spec and conversion is None for _, spec, conversion in fields)
    return plain and "path" in names and names <= {"path", "line"}


def _family_caps(v: Any) -> bool:
    return isinstance(v, dict) and all(
        isinstance(k, str) and type(n) is int and 1 <= n <= 100_000_000 for k, n in v.items()
    )


GROUP_NAME = re.compile(r"[a-zA-Z0-9_.\-]{1,99}")  # what channels' layers accept

SPECS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "BATCH_WINDOW": _number(0.001, 5),
    "QUEUE_SIZE": _number(1, 10_000_000, integer=True),
    "MAX_ROWS": _number(1, 100_000, integer=True),
    "VALUE_LIMIT": _number(1, 100_000, integer=True),
    "DIFFS": ("True or False", lambda v: isinstance(v, bool)),
    "HISTORY_MAX_EVENTS": _number(1, 100_000_000, integer=True),
    "HISTORY_MAX_AGE": _number(1, 10 * 365 * 24 * 3600),
    "HISTORY_FAMILY_MAX_EVENTS": (
        "a dict of family name to an integer from 1 to 100,000,000",
        _family_caps,
    ),
    "GROUP": (
        "a channel-layer group name: 1 to 99 letters, digits, '.', '_' or '-'",
        lambda v: isinstance(v, str) and GROUP_NAME.fullmatch(v) is not None,
    ),
    "QUIET_PATHS": ("a list of path prefixes (strings)", _strings),
    "SIGNALS": ("a list of shell-style patterns (strings)", _strings),
    "IGNORE_SIGNALS": ("a list of shell-style patterns (strings)", _strings),
    "IGNORE_SENDERS": ("a list of shell-style patterns (strings)", _strings),
    "LINKS": ("a list of (label, URL) pairs of strings", _links),
    "EDITOR_URL": ("None or a URL with {path} and, if it wants one, {line} (no other "
                   "placeholder)", _editor_url),
    "ACCESS_RECHECK": _number(0.1, 3600),
    "SIDECAR": ("True or False", lambda v: isinstance(v, bool)),
}


def problems(configured: Any) -> tuple[dict[str, str], list[str]]:
    """The invalid keys of a DASHBOARD setting (key → what it must be), and its unknown
    keys. A DASHBOARD that is not a dict is reported under the key ''."""
    if not isinstance(configured, dict):
        return {"": "a dict"}, []
    invalid = {
        key: SPECS[key][0]
        for key, value in configured.items()
        if key in SPECS and not SPECS[key][1](value)
    }
    return invalid, [key for key in configured if key not in DEFAULTS]


_merged: dict[str, Any] | None = None
generation = 0  # grows whenever the settings are read anew: caches of derived answers key on it


def get(name: str) -> Any:
    merged = _merged
    if merged is None:
        merged = _merge()
    return merged[name]


def _merge() -> dict[str, Any]:
    """The defaults, overridden by each valid value of DASHBOARD. An invalid one is
    the default (logged once: this runs once per DASHBOARD; manage.py check reports
    it too), never an error in a save nor a bound switched off."""
    global _merged, generation
    configured = getattr(settings, "DASHBOARD", {})
    invalid, _ = problems(configured)
    if "" in invalid:
        configured = {}
    merged = {**DEFAULTS}
    for key, value in configured.items():
        if key in invalid:  # the value itself is not logged: it may be a secret
            logger.error(
                "dashboard: DASHBOARD[%r] must be %s; using the default, %r "
                "(manage.py check: dashboard.E005)", key, invalid[key], DEFAULTS[key]
            )
        elif key == "HISTORY_FAMILY_MAX_EVENTS":
            merged[key] = {**DEFAULTS[key], **value}
        else:
            merged[key] = value
    if "" in invalid:
        logger.error("dashboard: DASHBOARD must be a dict; using the defaults")
    _merged = merged
    generation += 1
    return _merged


def current_generation() -> int:
    """The generation of the settings now in force (read anew if they changed)."""
    if _merged is None:
        _merge()
    return generation


_forget_hooks: list[Callable[[], None]] = []


# Times DASHBOARD was forgotten: caches asked on every send compare it (a list's item
# read, not a call) and start anew when it moved (per_settings, signals.recorded).
forgotten = [0]


def forget() -> None:
    """DASHBOARD changed: read it anew on next use, and tell the caches that do not
    look at the generation (on_forget)."""
    global _merged
    _merged = None
    forgotten[0] += 1
    for hook in _forget_hooks:
        hook()


def on_forget(hook: Callable[[], None]) -> None:
    """Call `hook` whenever DASHBOARD changes (a cache too hot to check the generation)."""
    _forget_hooks.append(hook)


T = TypeVar("T")


def per_settings(
    func: Callable[[Any], T] | None = None, *, by_identity: bool = False
) -> Any:
    """Memoize a one-argument function of the settings until DASHBOARD changes
    (hot paths ask the same question per signal or sender again and again).
    `by_identity`: the argument is the host's object (a class, a signal), kept by its
    id and for its life only, never hashed nor held (core/identity.py)."""

    def decorate(func: Callable[[Any], T]) -> Callable[[Any], T]:
        answers: dict[Any, T] = ByIdentity() if by_identity else {}
        read = [-1]  # `forgotten` when the answers began

        def fresh() -> None:
            answers.clear()
            read[0] = forgotten[0]

        if by_identity:

            @functools.wraps(func)
            def cached(arg: Any) -> T:
                if read[0] != forgotten[0]:
                    fresh()
                try:
                    return answers[id(arg)]
                except KeyError:
                    return _work_out(func, arg, id(arg), answers, read)

        else:

            @functools.wraps(func)
            def cached(arg: Any) -> T:
                if read[0] != forgotten[0]:
                    fresh()
                try:
                    return answers[arg]
                except KeyError:
                    return _work_out(func, arg, arg, answers, read)

        cached.answers = answers  # type: ignore[attr-defined]  # for tests
        return cached

    return decorate if func is None else decorate(func)


def _work_out(
    func: Callable[[Any], T], arg: Any, key: Hashable, answers: dict[Any, T], read: list[int]
) -> T:
    """per_settings' miss: the answer, kept unless DASHBOARD changed in another thread while
    this one worked it out under the old settings (and cleared the answers before the put:
    put, then look again)."""
    began = read[0]
    answer = func(arg)
    if isinstance(answers, ByIdentity):
        answers.put(arg, answer)
    else:
        answers[key] = answer
    if began != forgotten[0]:
        answers.pop(key, None)
    return answer
