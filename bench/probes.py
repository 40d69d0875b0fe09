"""Timing probes on a few pipeline functions, inside the bench server only (diagnosis).

Each probe wraps a module attribute, if it exists, and counts calls and time;
`/__bench__/status` reports them per run, so the table can say where the
server's time went (describing, storing, rendering). A function that moved or
was renamed is simply not probed.
"""

import importlib
import threading
import time
from collections.abc import Callable
from typing import Any

# A name imported elsewhere before install() is probed there too (same stat, never twice).
PROBED = (
    "dashboard.payload.describe_event",
    "dashboard.history.store",
    "dashboard.render.render_frame",
    "dashboard.pipeline.describe_event",
    "dashboard.pipeline.render_frame",
    "dashboard.pipeline.prepare",
)

_lock = threading.Lock()
_stats: dict[str, list[float]] = {}  # name -> [calls, total seconds, max seconds]


def _timed(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            took = time.perf_counter() - started
            with _lock:
                stat = _stats.setdefault(name, [0, 0.0, 0.0])
                stat[0] += 1
                stat[1] += took
                stat[2] = max(stat[2], took)

    call.bench_probe = True  # type: ignore[attr-defined]
    return call


def install() -> list[str]:
    """Wrap every probed function that exists; return the names wrapped."""
    done = []
    for path in PROBED:
        module_name, attr = path.rsplit(".", 1)
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        func = getattr(module, attr, None)
        if callable(func) and not getattr(func, "bench_probe", False):
            setattr(module, attr, _timed(attr, func))
            done.append(attr)
    return done


def reset() -> None:
    with _lock:
        _stats.clear()


def report() -> dict[str, dict[str, float]]:
    with _lock:
        return {
            name: {"calls": calls, "total_ms": total * 1e3, "max_ms": most * 1e3}
            for name, (calls, total, most) in _stats.items()
        }
