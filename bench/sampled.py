"""Where a create's time goes, by sampling: the capture's cost, told apart from the noise.

    .venv/bin/py-spy record -r 400 -f raw -o /tmp/creates.txt -- \\
        .venv/bin/python -m bench.sampled run --seconds 60
    .venv/bin/python -m bench.sampled report /tmp/creates.txt

`run` creates posts in one process, in rounds of 500 (one transaction each), the
modes taking turns: `off` (the dashboard's hook uninstalled), `capture`
(connected; the pump drops what it drains, as bench.saves' capture-only) and
`watched` (a dashboard open in this process). Each mode runs under a function of
its own name, so every sample's stack says which mode it was taken in; the
rounds interleave, so the machine's drifts in speed (2x between minutes on
these machines) fall on all modes alike. `report` prints, per mode, the
samples of the functions that differ most from `off`, inclusive, as a % of
`off`'s samples in its creates (`(creates)` is the whole create).

Wall-clock figures of such small differences are noise here; these are not:
with ~20,000 creates a mode, a function's count is good to about ±2 %. The
sampler (py-spy, in requirements-dev.txt) counts a thread only when it runs, not
when it waits (for the GIL, for SQLite's lock), and the report reads the saving
thread's samples only: the pump's own work (describing, rendering) is not in
`watched`, only what it costs the saves around it.
"""

import argparse
import collections
import json
import os
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import django

from bench import procs

ROUND = 500  # creates per round and per mode


def mode_off() -> None:
    from bench import saves

    saves.set_receivers(False)
    saves.timed_creates(ROUND, atomic=True)


def mode_capture() -> None:
    from bench import saves

    _connected(saves.capture_only)


def mode_watched() -> None:
    from bench import saves

    _connected(saves.watched)


def _connected(context: Callable[[], AbstractContextManager[None]]) -> None:
    from bench import saves
    from dashboard.live.handoff import handoff

    saves.set_receivers(True)
    with context():
        saves.timed_creates(ROUND, atomic=True)
        handoff.flush(timeout=10)
    handoff.reset()


MODES = {"off": mode_off, "capture": mode_capture, "watched": mode_watched}


def run(seconds: float) -> None:
    """On a throwaway SQLite file, with the bench's settings (DEBUG off)."""
    with tempfile.TemporaryDirectory(prefix="signals-sampled-") as tmp:
        os.environ.update(procs.bench_env(Path(tmp) / "db.sqlite3"))
        django.setup()
        from django.core.management import call_command
        from django.db import connections

        for alias in connections:  # the history may have a database of its own
            call_command("migrate", database=alias, interactive=False, verbosity=0)
        _rounds(seconds)


def _rounds(seconds: float) -> None:
    from bench import saves

    saves.timed_creates(300, atomic=True)  # warm-up
    rounds = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for mode in MODES.values():
            mode()
        rounds += 1
    saves.set_receivers(True)
    print(json.dumps({"creates_per_mode": rounds * ROUND}))


def report(path: Path, top: int) -> None:
    """Each function's samples (inclusive, saving thread) per mode, as a % of all of
    `off`'s samples in its creates, from py-spy's raw output."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            stacks.append((stack.split(";"), int(count)))
    per_mode: dict[str, collections.Counter[str]] = {}
    for mode in MODES:
        marker = f"mode_{mode} ("
        counter: collections.Counter[str] = collections.Counter()
        for frames, count in stacks:
            if not any(f.startswith(marker) for f in frames):
                continue
            # The creates only (not the flush between rounds), from timed_creates down.
            below = [i for i, f in enumerate(frames) if f.startswith("timed_creates (")]
            if below:
                counter["(creates)"] += count
                for name in {f.split(" (")[0] for f in frames[below[0] + 1 :]}:
                    counter[name] += count
        per_mode[mode] = counter
    # The same number of rounds ran in each mode: counts compare as they are.
    base = per_mode["off"]["(creates)"] or 1
    names = sorted(
        {n for c in per_mode.values() for n in c},
        key=lambda n: -abs(per_mode["capture"][n] - per_mode["off"][n]),
    )[:top]
    print(f"{'function':70} " + " ".join(f"{m:>9}" for m in MODES) + "   (% of off's samples)")
    for name in names:
        cells = " ".join(f"{100 * per_mode[m][name] / base:9.1f}" for m in MODES)
        print(f"{name[:70]:70} {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sampled")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="the creates to sample (run under py-spy record)")
    run_p.add_argument("--seconds", type=float, default=60)
    report_p = sub.add_parser("report", help="read py-spy's raw output")
    report_p.add_argument("path", type=Path)
    report_p.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    if args.command == "run":
        run(args.seconds)
    else:
        report(args.path, args.top)


if __name__ == "__main__":
    main()
