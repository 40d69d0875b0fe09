"""Every Signal the process sends, named and put in a family: no list to edit.

A signal is named by where it is defined: the module attribute that holds
it, found by scanning `sys.modules` (once at start-up, then again for
modules imported since, when a signal not seen before is sent). Its family
comes from that module: Django's own signals by their module (model,
request, database, settings), everything else by the app that defines it
(`auth`, `blog`, `allauth`, ...), or its top-level package.

Runs inside the sender's call (`spec_of` on every send), so the answers are
cached per signal; scanning happens once per new module.
"""

import inspect
import re
import sys
import threading
import weakref
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from django.apps import apps
from django.dispatch import Signal

from dashboard import conf
from dashboard.core.identity import ByIdentity
from dashboard.core.payload import receiver_info

# Django's own signal modules, by family; the rest are named by their app.
DJANGO_FAMILIES = {
    "django.db.models.signals": "model",
    "django.core.signals": "request",
    "django.db.backends.signals": "database",
    "django.test.signals": "settings",
}
FAMILY_OF = {"django.core.signals.setting_changed": "settings"}
FAMILY_ORDER = ("model", "request", "database", "settings", "auth")


@dataclass(frozen=True, slots=True)
class Spec:
    name: str  # "post_save"
    path: str  # "django.db.models.signals.post_save": where it is defined
    family: str  # "model", ..., or the app label of its module ("blog")

    @property
    def recorded(self) -> bool:
        """Not left out by SIGNALS / IGNORE_SIGNALS."""
        return _matches(self, conf.get("SIGNALS")) and not _matches(
            self, conf.get("IGNORE_SIGNALS")
        )


# Per signal: its spec, and the signal itself, weakly where it can be (the page's counters
# list them). By id, never by the signal: a subclass may define __eq__ and so be unhashable.
_specs: ByIdentity[tuple[Spec, "weakref.ref[Signal]"]] = ByIdentity()
_scanned: set[str] = set()
_lock = threading.Lock()


def spec_of(signal: Signal) -> Spec:
    """The signal's name and family; a signal not seen before is looked for first."""
    entry = _specs.get(id(signal))
    if entry is None:
        with _lock:
            _scan()
            entry = _specs.get(id(signal))
            if entry is None:  # defined outside any module's namespace (a class, a function)
                entry = _keep(signal, Spec(f"signal-{id(signal):x}", "", "other"))
    return entry[0]


def _keep(signal: Signal, spec: Spec) -> tuple[Spec, "weakref.ref[Signal]"]:
    return _specs.put(signal, (spec, weakref.ref(signal)))  # a Signal's class has __weakref__


def discovered() -> list[tuple[Signal, Spec]]:
    """Every signal found so far, family by family (the page's counters)."""
    with _lock:
        _scan()
        found = [(signal, spec) for spec, ref in list(_specs.values())
                 if (signal := ref()) is not None]  # fmt: skip
    return sorted(found, key=lambda item: (_family_rank(item[1].family), item[1].path))


def _scan() -> None:
    """Name the signals of every module imported since the last scan (lock held)."""
    candidates: dict[int, tuple[Signal, list[tuple[str, str]]]] = {}
    for module_name, module in list(sys.modules.items()):
        if module_name in _scanned or module is None:
            continue
        _scanned.add(module_name)
        try:
            # Not vars(): it asks the module for its __dict__, and a module loaded lazily
            # (importlib.util.LazyLoader), or an object of the host's in sys.modules, runs
            # its own code to answer (the lazy one loads). Read as the type keeps it.
            namespace = list(object.__getattribute__(module, "__dict__").items())
        except (AttributeError, TypeError):
            continue
        for attr, value in namespace:
            # type(), not isinstance(): isinstance() would evaluate a lazy object.
            if issubclass(type(value), Signal) and id(value) not in _specs:
                candidates.setdefault(id(value), (value, []))[1].append((module_name, attr))
    for signal, places in candidates.values():
        module_name, attr = min(places, key=_defining_first) if len(places) > 1 else places[0]
        path = f"{module_name}.{attr}"
        _keep(signal, Spec(attr, path, _family(module_name, path)))


def _defining_first(place: tuple[str, str]) -> tuple[bool, bool, int, str]:
    """Where a signal held by several modules is defined: the module whose source
    assigns it (the others import it), then a `signals` module, the shortest name."""
    module_name, attr = place
    return (
        not _assigns(module_name, attr),
        not module_name.endswith("signals"),
        len(module_name),
        module_name,
    )


def _assigns(module_name: str, attr: str) -> bool:
    try:
        source = inspect.getsource(sys.modules[module_name])
    except (OSError, TypeError, KeyError):
        return False
    return re.search(rf"^{re.escape(attr)}\s*(:[^=]*)?=", source, re.MULTILINE) is not None


def _family(module_name: str, path: str) -> str:
    if path in FAMILY_OF:
        return FAMILY_OF[path]
    if module_name in DJANGO_FAMILIES:
        return DJANGO_FAMILIES[module_name]
    app = apps.get_containing_app_config(module_name)
    return app.label if app is not None else module_name.partition(".")[0]


def _family_rank(family: str) -> tuple[int, str]:
    try:
        return FAMILY_ORDER.index(family), ""
    except ValueError:
        return len(FAMILY_ORDER), family


# -- what is recorded: SIGNALS and IGNORE_SIGNALS --------------------------------------

@conf.per_settings(by_identity=True)
def recorded(signal: Signal) -> Spec | None:
    """The signal's spec if SIGNALS and IGNORE_SIGNALS record it, else None. Asked on
    every send of every signal (pre_init: every row a query loads): one dict lookup."""
    spec = spec_of(signal)
    return spec if spec.recorded else None


def _matches(spec: Spec, patterns: Any) -> bool:
    names = (spec.name, spec.path, f"{spec.family}.{spec.name}")
    return any(fnmatchcase(name, pattern) for pattern in patterns for name in names)


def receivers_of(signal: Signal) -> list[dict[str, Any]]:
    """The live receivers of a signal, as the detail names them."""
    found = []
    for entry in signal.receivers:
        ref = entry[1]
        func = ref() if isinstance(ref, weakref.ReferenceType) else ref
        if func is not None:
            found.append(receiver_info(func))
    return found
