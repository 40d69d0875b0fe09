"""Subprocess: µs per `Post.objects.create` with the dashboard's hook installed vs not.

Run as `python -m bench.saves OUT.json --tx N --auto N --repeats R` against the bench
database (prepared). Runs interleave the modes (MODES below) in R rounds; µs figures
are medians, ratios the median of each round's ratio to its own 'off' run, and each
run records its threads' CPU per create (where the time went).
Connected runs pay the price of a process nobody watches: events go to the
pump's daemon-thread loop, which, with no socket to show them to, keeps them
for the store thread to describe and store (at most one write per 20 ms).
Watched runs pay the price of a dashboard open in the saving process: every frame
is described and rendered as the saves go, handed to the socket, then stored.
Between runs the pipeline is flushed, waited on until its last store has finished
(so no write of one run overlaps the next), and reset, so its queue cap never turns
a later run into cheap drops. Disconnected runs check that the dashboard is really
gone (Django's own Signal methods), and say so. A diagnostic mode keeps
the hook installed but makes the pump hand nothing on, to tell the capture's
own cost from the rest of the pipeline's (describe, render, store), which runs in
the same process and GIL.
"""

import argparse
import contextlib
import gc
import itertools
import json
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import django

from bench import probes

_runs = itertools.count(1)
# Interleaved, in an order shuffled each round (shuffled()). "connected": receivers
# on, nobody watching (no socket here, the in-memory layer), so no frame is made and
# events are described when stored. "watched": the same with a dashboard open in this
# process (a socket that takes each frame and drops it), so every frame is described
# and rendered as the saves go. "capture-only" is a diagnosis: connected, nothing
# handed on.
DASHBOARD_MODES = ("connected", "watched", "capture-only")
# Peers (bench/peers.py), each with the dashboard's hook off: Django's dispatch with
# no-op receivers (the floor), our lean same-record reference, the same piped to another
# process, sentry-sdk; and nothing listening while the other core is busy (what work
# beside the host costs it here).
PEER_MODES = ("floor", "reference", "piped", "sentry", "busy")
MODES = ("connected", "disconnected", "watched", "capture-only", "floor", "reference", "piped",
         "sentry", "busy")  # fmt: skip


def modes() -> tuple[str, ...]:
    from bench import peers

    return tuple(m for m in MODES if m != "sentry" or peers.sentry_available())


def set_receivers(connected: bool) -> None:
    """The dashboard's hooks on (its Signal.send wrappers and receiver timing, its
    QuerySet wraps and raw-write detector) or off: "off" is the project without it."""
    from dashboard.capture import dispatch, writes

    if connected:
        dispatch.install()
        writes.install()
    else:
        writes.uninstall()
        dispatch.uninstall()


def dashboard_left() -> list[str]:
    """What of the dashboard is still hooked into Django (empty: nothing)."""
    from django.db import connections
    from django.dispatch import Signal

    from dashboard.capture import dispatch, writes

    names = (*dispatch.METHODS, "_live_receivers")
    ours = [
        f"Signal.{name}"
        for name in names
        if hasattr(getattr(Signal, name), "__wrapped__")  # functools.wraps
        or getattr(Signal, name).__module__.startswith("dashboard")
    ]
    ours += [f"{cls.__name__}.{name}" for cls, name in writes.WRAPS
             if hasattr(getattr(cls, name), "__wrapped__")]  # fmt: skip
    ours += [f"{c.alias}.execute_wrappers" for c in connections.all(initialized_only=True)
             if writes.detect_write in c.execute_wrappers]  # fmt: skip
    return ours


def shuffled(modes: tuple[str, ...], round_: int) -> tuple[str, ...]:
    """A round's order: the modes shuffled, seeded by the round (the same plan every
    run). What a run follows moves its figure here (the previous run's heap, caches, the
    other core's last work): in one fixed order, or that order rotated, each mode
    followed the same one nearly every round, a bias no number of rounds took out."""
    return tuple(random.Random(round_).sample(modes, len(modes)))


def even_start() -> None:
    """Before a timed (or counted) run: a full collection, outside the timing. Otherwise
    the process's next full collection (70-75 ms with Django loaded, about one per 300
    blog-post GETs) lands in whichever run reaches its threshold: +15 % on a 0.5 s run
    of one mode, charged to that mode by chance. Collections that a run's own garbage
    calls for still fall inside it, and count."""
    gc.collect()


def settle(handoff: Any, timeout: float = 30.0) -> bool:
    """Until the pipeline has nothing queued, in flight or left to store."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if getattr(handoff, "idle", True):
            return True
        time.sleep(0.005)
    return False


# Thread name prefix → what it does while the saves run (one GIL for all of them).
THREADS = (
    ("MainThread", "saves"),  # the creates, with the capture in their receivers
    ("dashboard-publisher", "pump"),  # the pump's loop: drains, describes and renders frames
    ("dashboard-render", "pump"),  # ... big frames' describe and render
    ("dashboard-store", "store"),  # history writes (and, unwatched, describing)
    ("dashboard-sidecar", "pump"),  # to the sidecar and back (writer and reader threads)
    ("bench-piped", "pump"),  # the piped reference's drains (bench/peers.py)
)


def sidecar_cpu() -> float:
    """CPU seconds the sidecar process has used (0 if none runs)."""
    from dashboard.sidecar.link import link

    proc = link.proc
    if proc is None:
        return 0.0
    try:
        stat = Path(f"/proc/{proc.pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # utime, stime: the 14th and 15th fields
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_creates(n: int, atomic: bool) -> float:
    """Seconds for n creates, in one transaction or each in autocommit."""
    from django.db import transaction

    from blog.models import Post

    run = next(_runs)
    titles = [f"save {run} {i}" for i in range(n)]
    start = time.perf_counter()
    if atomic:
        with transaction.atomic():
            for title in titles:
                Post.objects.create(title=title)
    else:
        for title in titles:
            Post.objects.create(title=title)
    return time.perf_counter() - start


UPDATED = 50  # posts the update runs save in turn
_updated: list[Any] = []


def timed_updates(n: int, atomic: bool) -> float:
    """Seconds for n updates (saves of stored posts, UPDATED of them in turn), in one
    transaction or each in autocommit: with the dashboard, each runs its diff read."""
    from django.db import transaction

    from blog.models import Post

    if not _updated:  # outside any timing: the first call is measure()'s warm-up
        _updated.extend(Post.objects.create(title=f"updated {i}") for i in range(UPDATED))
    run = next(_runs)
    start = time.perf_counter()
    with transaction.atomic() if atomic else contextlib.nullcontext():
        for i in range(n):
            post = _updated[i % UPDATED]
            post.title = f"update {run} {i}"
            post.save()
    return time.perf_counter() - start


Work = Callable[[int, bool], float]


@contextlib.contextmanager
def capture_only() -> Iterator[None]:
    """Diagnosis only: the pump runs, but sends nothing (no describe, render,
    store or layer), so what remains is the capture and the hand-off. Each event
    lets go of its snapshots, as crossing to the sidecar makes it (sidecar/wire.py):
    an open transaction holds its events until it ends, and the pipeline itself never
    holds thousands of snapshots so."""
    from dashboard.core.events import Event
    from dashboard.live.handoff import handoff

    async def discard(batch: list[Any]) -> bool:
        for item in batch:
            if isinstance(item, Event):
                item.described()
        return False

    handoff._hand_on = discard  # type: ignore[method-assign]
    handoff._onward = False  # nor do the senders hand on (the pump sets it anew: False)
    try:
        yield
    finally:
        del handoff._hand_on  # the class's method again


class DroppingSocket:
    """A dashboard open in this process that drops what it gets (no socket I/O)."""

    async def deliver(self, frame: Any) -> None:
        return None


@contextlib.contextmanager
def watched() -> Iterator[None]:
    from dashboard.live.fanout import fanout

    socket = DroppingSocket()
    fanout.subscribers[socket] = None  # as fanout.subscribe() would, minus the relay
    try:
        yield
    finally:
        fanout.unsubscribe(socket)


def in_mode(mode: str) -> contextlib.AbstractContextManager[Any]:
    """The dashboard's hook on or off as MODES says, and what runs beside it while the
    returned context is entered (every bench that runs these modes asks here)."""
    from bench import peers

    set_receivers(mode in DASHBOARD_MODES)
    return {
        "capture-only": capture_only,
        "watched": watched,
        "floor": peers.floor,
        "reference": peers.reference,
        "piped": peers.piped,
        "sentry": peers.sentry,
        "busy": peers.busy,
    }.get(mode, contextlib.nullcontext)()


def one_run(n: int, atomic: bool, mode: str, work: Work = timed_creates) -> dict[str, Any]:
    """One timed run: the creates, then until the pipeline has settled (a store or a
    frame the creates left behind is their cost too)."""
    from dashboard.live.frames import frames
    from dashboard.live.handoff import handoff

    context = in_mode(mode)
    left = dashboard_left() if mode == "disconnected" else []
    handoff.reset()
    with context as settle_peer:
        even_start()
        preempted_before = probes.preemptions()
        cpu_before, sidecar_before = probes.thread_cpu(THREADS), sidecar_cpu()
        start, process_before = time.perf_counter(), time.process_time()
        work(n, atomic)
        dropped, queued = handoff.dropped, len(handoff.queue)
        handoff.flush(timeout=10)  # what the pump had not sent or stored yet
        settled = settle(handoff)
        if callable(settle_peer):  # a peer's own deferred work (bench/peers.py piped)
            settle_peer()
        seconds, process_cpu = time.perf_counter() - start, time.process_time() - process_before
        spent = probes.cpu_spent(cpu_before, probes.thread_cpu(THREADS))
        # Wall time less the CPU of the whole process (threads that ended meanwhile too):
        # its threads waiting for the disk or a wake-up, or taken off a core while
        # runnable (one holding the GIL then stalls them all), net of the time two of
        # them ran at once (one outside the GIL), which can take it below 0.
        off_cpu = seconds - process_cpu
        preempted = probes.preemptions() - preempted_before
        spent["sidecar"] = max(0.0, sidecar_cpu() - sidecar_before)
        cpu = {g: s / n * 1e6 for g, s in spent.items()}  # µs a create, in the timed window
    sent = frames.sent
    handoff.reset()
    return {
        "us_per_save": seconds / n * 1e6,
        "cpu_us": cpu,
        "off_cpu_us": off_cpu / n * 1e6,
        "preempted_per_1k": preempted / n * 1000,
        "dropped": dropped,
        "queued_at_end": queued,
        "batches": sent,
        "settled": settled,
        "dashboard_left": left,
    }


def measure(n: int, atomic: bool, repeats: int, work: Work = timed_creates) -> dict[str, Any]:
    measured = modes()
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in measured}
    work(min(n, 200), atomic)  # warm-up: imports, statements, the file's pages
    for round_ in range(repeats):
        for mode in shuffled(measured, round_):
            runs[mode].append(one_run(n, atomic, mode, work))
    set_receivers(True)
    med = {m: statistics.median(r["us_per_save"] for r in rs) for m, rs in runs.items()}

    def paired(mode: str) -> float:
        """The median of each run's ratio to the 'off' run of its own round: the
        machine's speed drifts (x2 seen between minutes here), and a round's
        runs are seconds apart, so a slow spell slows both sides of a ratio."""
        off = runs["disconnected"]
        return statistics.median(
            r["us_per_save"] / o["us_per_save"] for r, o in zip(runs[mode], off, strict=True)
        )

    def cpu(mode: str) -> dict[str, float]:
        groups = {g for r in runs[mode] for g in r["cpu_us"]}
        return {g: statistics.median(r["cpu_us"].get(g, 0.0) for r in runs[mode]) for g in groups}

    return {
        "creates_per_run": n,
        "repeats": repeats,
        "connected_us": med["connected"],
        "disconnected_us": med["disconnected"],
        "ratio": paired("connected"),
        "ratio_of_medians": med["connected"] / med["disconnected"],
        "watched_us": med["watched"],
        "watched_ratio": paired("watched"),
        "watched_ratio_of_medians": med["watched"] / med["disconnected"],
        "watched_runs_us": [r["us_per_save"] for r in runs["watched"]],
        "capture_only_us": med["capture-only"],
        "capture_only_ratio": paired("capture-only"),
        "cpu_us": {mode: cpu(mode) for mode in measured},
        "off_cpu_us": {m: statistics.median(r["off_cpu_us"] for r in runs[m]) for m in measured},
        "preempted_per_1k": {
            m: statistics.median(r["preempted_per_1k"] for r in runs[m]) for m in measured
        },
        "peers": {
            mode: {"us": med[mode], "ratio": paired(mode)}
            for mode in PEER_MODES
            if mode in measured
        },
        "connected_runs_us": [r["us_per_save"] for r in runs["connected"]],
        "disconnected_runs_us": [r["us_per_save"] for r in runs["disconnected"]],
        "dropped": sum(r["dropped"] for r in runs["connected"]),
        "batches_per_run": statistics.median(r["batches"] for r in runs["connected"]),
        "unsettled_runs": sum(not r["settled"] for rs in runs.values() for r in rs),
        # "off" must be the project without the dashboard: what was still hooked in.
        "off_dashboard_left": sorted(
            {x for r in runs["disconnected"] for x in r["dashboard_left"]}
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--tx", type=int, default=3000)
    parser.add_argument("--auto", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--updates", type=int, default=1000, help="0: none")
    args = parser.parse_args()
    django.setup()
    result = {
        "transaction": measure(args.tx, atomic=True, repeats=args.repeats),
        "autocommit": measure(args.auto, atomic=False, repeats=args.repeats),
    }
    if args.updates:  # context, no target: each update's diff read (capture/stored.py)
        result["update"] = measure(args.updates, atomic=True, repeats=args.repeats,
                                   work=timed_updates)  # fmt: skip
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
