"""What each piece of the capture costs: instructions with it switched off, in turn.

    .venv/bin/python -m bench.ablation                       # per create, every piece
    .venv/bin/python -m bench.ablation --pieces origin,snapshot
    .venv/bin/python -m bench.ablation --requests 20         # per request, by kind

Each piece runs in a process of its own under callgrind, as bench/instructions.py
counts (its `child` and `child_requests`), in the capture-only mode with that piece
replaced by a stand-in that does nothing; `off` and the whole `capture` run beside
them. A piece's cost is the whole capture's count less the count without it. This is
how the session of 2026-11-28 found where a create's capture went (the snapshot 63,000
instructions a create, the transaction's tracking 39,000, the stack walk for the origin
33,000, ...) and what each change took off.

A diagnosis, not a figure: the pieces do not add up to the whole (a piece off changes
what the others do: no snapshot, nothing for the crossing to copy), and a stand-in
does not do the piece's work cheaply, it does none of it. PYTHONHASHSEED is fixed: with
hashing random per process, the same code's count moved by about 5,000 a create from
one process to the next. The pieces are reached by name in the dashboard's modules; a
name that moved makes the child fail and say which, rather than measure something else.
"""

import argparse
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import instructions, procs


def _hook() -> None:
    from dashboard.capture import dispatch

    _replace(dispatch, "_begin", lambda signal, sender, named: None)


def _origin() -> None:
    from dashboard.capture import record

    _replace(record, "origin", lambda: None)


def _transactions() -> None:
    from dashboard.capture import transactions

    _replace(transactions, "track", lambda event, using: None)


def _timing() -> None:
    from dashboard.capture import timing

    _replace(timing, "timed", lambda result, timings: result)


def _diffs() -> None:
    from django.db.models.signals import pre_save

    from dashboard.capture import context, dispatch

    context.BEFORE.pop(id(pre_save))
    context.AFTER.pop(id(pre_save))
    dispatch.forget_plain()


def _execute_wrapper() -> None:
    from django.db import connections

    from dashboard.capture import writes

    _replace(writes, "watch", lambda connection: None)
    for connection in connections.all(initialized_only=True):
        writes.unwatch(connection)


def _publish() -> None:
    from dashboard.live.handoff import handoff

    _replace(handoff, "publish", lambda event: None)


def _snapshot() -> None:
    from dashboard.capture import record

    _replace(record, "snapshot", lambda value, *args: value)


# What each piece is, and its stand-in (applied once Django is set up, in the child).
PIECES: dict[str, tuple[str, Callable[[], None]]] = {
    "hook": ("everything after the hook: nothing captured (what is left is the send "
             "wrapper, the execute wrapper and the QuerySet wraps)", _hook),
    "origin": ("the walk up the stack for the project's frame", _origin),
    "transactions": ("watching the transaction an event is sent in", _transactions),
    "timing": ("timing each receiver, and counting its SQL", _timing),
    "diffs": ("the hooks around every pre_save (the update's read)", _diffs),
    "execute-wrapper": ("the wrapper on every query (raw writes, receivers' SQL)",
                        _execute_wrapper),
    "publish": ("the hand-off (and what follows it in this process)", _publish),
    "snapshot": ("copying what each kwarg holds (an instance's fields, its str())",
                 _snapshot),
}  # fmt: skip


def _replace(owner: Any, name: str, stand_in: Any) -> None:
    if not hasattr(owner, name):  # renamed since: say so, do not measure something else
        raise SystemExit(f"bench.ablation: {owner!r} has no {name!r}: update PIECES")
    setattr(owner, name, stand_in)


def child(mode: str, piece: str | None, creates: int, requests: int | None) -> None:
    """Inside valgrind: the piece switched off once Django is set up, then counted."""
    import django

    setup = django.setup

    def set_up(*args: Any, **kwargs: Any) -> None:
        setup(*args, **kwargs)
        if piece is not None:
            PIECES[piece][1]()

    django.setup = set_up  # type: ignore[assignment]
    if requests:
        instructions.child_requests(mode, requests)
    else:
        instructions.child(mode, creates)


def _count(
    tag: str, mode: str, piece: str | None, args: argparse.Namespace, workdir: Path,
    env: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    """Instructions per create, or per request of each kind, of one child."""
    flags = ["--child", mode, "--creates", str(args.creates)]
    if piece is not None:
        flags += ["--piece", piece]
    if args.requests:
        flags += ["--requests", str(args.requests)]
    files = instructions._valgrind(tag, workdir, env, flags, "bench.ablation", timeout=1800)
    if not args.requests:
        return {"create": instructions._per(files, args.creates, tag)}
    from bench import requests

    dumps = instructions._by_dump(files)
    return {
        kind: instructions._per(
            dumps[instructions._label(kind)], instructions._requests_of(kind, args.requests), kind
        )
        for kind in requests.KINDS
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ablation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pieces", default=",".join(PIECES),
                        help=f"comma-separated, of: {', '.join(PIECES)}")
    parser.add_argument("--creates", type=int, default=300)
    parser.add_argument("--requests", type=int, metavar="N",
                        help="per request of each kind of bench/requests.py instead")
    parser.add_argument("--child", choices=("off", "capture"), help=argparse.SUPPRESS)
    parser.add_argument("--piece", choices=tuple(PIECES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.piece, args.creates, args.requests)
        return
    if why := instructions.available():
        raise SystemExit(f"bench.ablation: {why}")
    pieces = [p for p in args.pieces.split(",") if p]
    if unknown := [p for p in pieces if p not in PIECES]:
        parser.error(f"unknown pieces {unknown}; known: {', '.join(PIECES)}")
    with tempfile.TemporaryDirectory(prefix="signals-ablation-") as tmp:
        workdir = Path(tmp)
        env = {**os.environ, **procs.bench_env(workdir / "bench.sqlite3"), "PYTHONHASHSEED": "0"}
        prepared = subprocess.run(procs.python("-m", "bench.prepare", str(workdir / "p.json")),
                                  cwd=procs.ROOT, env=env, capture_output=True, text=True,
                                  check=False)  # fmt: skip
        if prepared.returncode != 0:
            raise SystemExit(f"bench.prepare failed:\n{prepared.stderr[-2000:]}")
        runs = {"off": _count("off", "off", None, args, workdir, env),
                "capture": _count("capture", "capture", None, args, workdir, env)}
        for piece in pieces:
            runs[piece] = _count(piece, "capture", piece, args, workdir, env)
            _report(runs, args)  # as each comes: a full run takes minutes
    print(f"\n(per {'request' if args.requests else 'create'}, thousands of instructions; the "
          "sidecar, another process, is not counted; per request, --requests 20 or more: "
          "the heavy kinds run a tenth and a twentieth as many)")


def _report(runs: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    print()
    for unit in runs["off"]:
        off, whole = (runs[m][unit] for m in ("off", "capture"))
        for thread in THREADS:
            print(f"{unit}, {THREADS[thread]}: off {off[thread] / 1000:,.1f}k, capture "
                  f"{whole[thread] / 1000:,.1f}k (+{(whole[thread] - off[thread]) / 1000:,.1f}k,"
                  f" {whole[thread] / off[thread]:.4f}x)")
        print(f"  {'piece':16} {'main':>9}  {'all':>9}")
        for piece, counts in runs.items():
            if piece not in PIECES:
                continue
            main, every = (whole[t] - counts[unit][t] for t in THREADS)
            print(f"  {piece:16} {main / 1000:8,.1f}k {every / 1000:8,.1f}k  {PIECES[piece][0]}")


# The main thread (the creates, or the requests) counts what the piece does in the
# sender's call, and varies least; all threads add the pump's, whose batches fall as the
# pump's windows do under valgrind (per request, this moves by tens of thousands).
THREADS = {"saving_thread": "main thread", "all_threads": "all threads"}


if __name__ == "__main__":
    main()
