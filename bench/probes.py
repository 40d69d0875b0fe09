"""Timing probes on a few pipeline functions, inside the bench server only (diagnosis).

Each probe wraps a module attribute, if it exists, and counts calls, items
(the rows or events a call handled) and time; `/__bench__/status` reports them
per run, so the table can say where the server's time went (describing,
rendering, storing). A function that moved or was renamed is simply not probed:
install() never raises for a missing module or name.

The pipeline sends first and stores afterwards: `live.frames.prepare(batch,
dropped)` describes each event (`describe_event`) and renders one frame
(`render_frame`), on the loop or the render worker; later, on the store
worker, the history writer describes what nobody watched and calls
`history.store.write(rows, marks)` (the write), at most once per 20 ms for
every frame sent meanwhile.

Besides the probes, `thread_cpu()` reads each thread's CPU clock, so the status
can tell the event loop (daphne's sockets, the consumers, the pump) from the
render and store workers and the producer, all under one GIL (bench/saves.py
reads the saving process's threads the same way).
"""

import importlib
import resource
import threading
import time
from collections.abc import Callable
from typing import Any

# (label, module attribute). A name a module imported before install() is probed
# there too, under the same label; a function is never wrapped twice.
PROBED = (
    ("prepare", "dashboard.live.frames.prepare"),
    ("describe_event", "dashboard.core.payload.describe_event"),
    ("render_frame", "dashboard.core.render.render_frame"),
    ("render_frame", "dashboard.live.frames.render_frame"),
    ("history.store", "dashboard.history.store.write"),
)

_lock = threading.Lock()
_stats: dict[str, list[float]] = {}  # label -> [calls, items, total seconds, max seconds]


def _items(args: tuple[Any, ...]) -> int:
    """Rows or events the call handled: the length of its first argument, if a list."""
    first = args[0] if args else None
    return len(first) if isinstance(first, (list, tuple)) else 1


def _timed(label: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            took = time.perf_counter() - started
            items = _items(args)
            with _lock:
                stat = _stats.setdefault(label, [0, 0, 0.0, 0.0])
                stat[0] += 1
                stat[1] += items
                stat[2] += took
                stat[3] = max(stat[3], took)

    call.bench_probe = True  # type: ignore[attr-defined]
    call.__wrapped__ = func  # type: ignore[attr-defined]
    return call


def install() -> list[str]:
    """Wrap every probed function that exists; return the paths wrapped."""
    done = []
    for label, path in PROBED:
        module_name, attr = path.rsplit(".", 1)
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        func = getattr(module, attr, None)
        if callable(func) and not getattr(func, "bench_probe", False):
            setattr(module, attr, _timed(label, func))
            done.append(path)
    return done


def reset() -> None:
    with _lock:
        _stats.clear()


def report() -> dict[str, dict[str, float]]:
    with _lock:
        return {
            label: {"calls": calls, "items": items, "total_ms": total * 1e3, "max_ms": most * 1e3}
            for label, (calls, items, total, most) in _stats.items()
        }


# Thread name prefix → what it does in the bench server (first match wins).
SERVER_THREADS = (
    ("MainThread", "loop"),  # daphne's reactor and asyncio loop: sockets, consumers, the pump
    ("dashboard-render", "render"),
    ("dashboard-store", "store"),
    ("bench-producer", "producer"),
)

CpuReading = dict[threading.Thread, tuple[str, float]]


def thread_cpu(groups: tuple[tuple[str, str], ...] = SERVER_THREADS) -> CpuReading:
    """CPU seconds so far of each live thread of this process: {thread: (group, s)}.

    Keyed by the thread object, since a thread started later may reuse an ended
    one's ident. Threads that ended are missing (the producer records its own).
    """
    found = {}
    for thread in threading.enumerate():
        group = next((g for prefix, g in groups if thread.name.startswith(prefix)), "other")
        try:
            clock = time.pthread_getcpuclockid(thread.ident)  # type: ignore[arg-type]
            found[thread] = (group, time.clock_gettime(clock))
        except (OSError, TypeError):  # ended meanwhile, or not started
            continue
    return found


def preemptions() -> int:
    """Involuntary context switches so far of this process, its ended threads included:
    each one a thread taken off its core while it could run (another task woken there,
    or its time slice over)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw


def cpu_spent(before: CpuReading, now: CpuReading | None = None) -> dict[str, float]:
    """CPU seconds per group between two readings (threads started since count whole)."""
    spent: dict[str, float] = {}
    for thread, (group, seconds) in (thread_cpu() if now is None else now).items():
        spent[group] = spent.get(group, 0.0) + seconds - before.get(thread, (group, 0.0))[1]
    return spent
