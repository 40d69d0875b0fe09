"""Instructions per create under callgrind: what the capture costs, without the drift.

    .venv/bin/python -m bench.instructions OUT.json [--creates 300]
    .venv/bin/python -m bench.instructions OUT.json --requests 100

The second counts per request instead, for the four kinds of bench/requests.py,
in one process per mode that dumps its counts once per kind (`python -m bench`
runs it with 20: about two and a half minutes).

This kind of machine's speed moves by up to 2x between minutes, so timed ratios
of a few percent need many rounds and still wander. Callgrind counts
instructions instead: the same count twice, within about 0.2 %, whatever else
the machine does. Each mode runs in a process of its own under
`valgrind --tool=callgrind`, with counting switched on (`callgrind_control -i`)
only around the counted creates, in one transaction, after a warm-up. The
figure is instructions per `Post.objects.create`, on the saving thread and in
all the process's threads (the pump and the sidecar link's threads); the
sidecar is another process and runs outside valgrind, uncounted. Valgrind
makes a create about 50x slower, so the pump's window (BATCH_WINDOW) is made
50x longer too: its batches hold about as many events as in the timed runs.

Instructions are not time (a cache miss costs no instruction), so this tells
whose code does more work, not the whole cost: the timed tables stay the
figures; this one says where a change moved the work.

Modes: off (the dashboard's hook out), floor, reference, piped and sentry
(bench/peers.py; sentry when installed), capture (the hook in, the pump
dropping what it drains), unwatched and watched (as bench/saves.py runs them:
the sidecar describes and stores; watched, a frame comes back for a socket
that drops it).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

SLOWER = 50  # about how much slower a create runs under callgrind
# Request kinds that take many more instructions (the blog list ~8x a blog post's, the
# changelist ~20x): counted over that many times fewer requests (--requests).
HEAVY = {"blog list": 10, "admin changelist": 20}
MODES = ("off", "floor", "reference", "piped", "sentry", "capture", "unwatched", "watched")
# The same modes' names in bench/saves.py, which says what each one is.
SAVES_MODE = {"off": "disconnected", "capture": "capture-only", "unwatched": "connected"}


def available() -> str | None:
    """Why this cannot run here, or None."""
    missing = [tool for tool in ("valgrind", "callgrind_control") if shutil.which(tool) is None]
    return f"{' and '.join(missing)} not found" if missing else None


def _switch(on: bool) -> None:
    """Counting on or off; raises if callgrind did not take it (the count would be wrong)."""
    done = subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(os.getpid())],
                          capture_output=True, text=True, check=False, timeout=60)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"callgrind_control failed: {done.stdout}{done.stderr}")


def stretch_windows() -> None:
    """Valgrind makes a create ~50x slower: the pump's window (and the piped reference's)
    is stretched as much, so their batches hold about as many events as in timed runs."""
    from django.conf import settings

    from bench import peers
    from dashboard import conf

    settings.DASHBOARD = {**getattr(settings, "DASHBOARD", {}),
                          "BATCH_WINDOW": SLOWER * conf.get("BATCH_WINDOW")}  # fmt: skip
    conf.forget()
    peers.PIPED_WINDOW *= SLOWER


def child(mode: str, creates: int) -> None:
    """Inside valgrind: warm up, then count `creates` creates in one transaction."""
    import django

    django.setup()
    from django.db import transaction

    from bench import saves
    from blog.models import Post
    from dashboard.live.handoff import handoff

    stretch_windows()
    context = saves.in_mode(SAVES_MODE.get(mode, mode))

    # Titles unique to this process: a title seen before makes fill_slug query again.
    prefix = f"instructions {uuid.uuid4().hex[:8]} {mode}"

    def run(tag: str) -> None:
        with transaction.atomic():
            for i in range(creates):
                Post.objects.create(title=f"{prefix} {tag} {i}")

    with context as settle_peer:
        run("warm-up")  # imports, statements, the sidecar started and set up
        handoff.flush(timeout=60)
        saves.settle(handoff, timeout=60)
        saves.even_start()
        _switch(True)
        run("counted")
        handoff.flush(timeout=60)  # what the creates left queued is their cost too
        if callable(settle_peer):  # the piped reference's last batch, likewise
            settle_peer()
        _switch(False)
        saves.settle(handoff, timeout=60)


def child_requests(mode: str, n: int) -> None:
    """Inside valgrind: per kind of bench/requests.py, warm up, then count `n` requests
    (fewer of the heavy ones: HEAVY), each dumped under its label (`_label`; its
    files: `_by_dump`)."""
    import django

    django.setup()
    from bench import requests, saves
    from dashboard.live.handoff import handoff

    stretch_windows()
    client, slug = requests.setup()
    with saves.in_mode(SAVES_MODE.get(mode, mode)) as settle_peer:
        for kind in requests.KINDS:
            for _ in range(5):
                requests.request(client, kind, slug)
            handoff.flush(timeout=60)
            saves.settle(handoff, timeout=60)
            saves.even_start()
            _switch(True)
            for _ in range(_requests_of(kind, n)):
                requests.request(client, kind, slug)
            handoff.flush(timeout=60)
            if callable(settle_peer):  # the piped reference's last batch
                settle_peer()
            _switch(False)
            _dump(_label(kind))
            saves.settle(handoff, timeout=60)


def _requests_of(kind: str, n: int) -> int:
    return max(1, n // HEAVY.get(kind, 1))


def _label(kind: str) -> str:
    return "kind-" + kind.replace(" ", "-")


def _dump(label: str) -> None:
    """Write what was counted so far to files of its own, labelled, and count anew."""
    done = subprocess.run(["callgrind_control", "-d", label, str(os.getpid())],
                          capture_output=True, text=True, check=False, timeout=60)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"callgrind_control failed: {done.stdout}{done.stderr}")


def _by_dump(paths: list[Path]) -> dict[str, list[Path]]:
    """The files of each labelled dump (callgrind writes `desc: Trigger: dump <label>`)."""
    found: dict[str, list[Path]] = {}
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("desc: Trigger: dump "):
                found.setdefault(line.split()[-1], []).append(path)
                break
    return found


def _totals(paths: list[Path]) -> dict[str, int]:
    """Instructions per thread file (callgrind's `totals:` line)."""
    found = {}
    for path in paths:
        text = path.read_text(errors="replace")
        if not text:  # the process's own file, beside its threads' (--separate-threads)
            continue
        for line in text.splitlines():
            if line.startswith("totals:"):
                found[path.name] = int(line.split()[1])
                break
        else:
            raise RuntimeError(f"no totals in {path.name}: callgrind wrote it incompletely")
    return found


def _valgrind(
    tag: str, workdir: Path, env: dict[str, str], child: list[str],
    module: str = "bench.instructions", timeout: float = 900,
) -> list[Path]:  # fmt: skip
    """Run a child (`python -m module *child`) under callgrind; its files (one per
    thread, and per dump)."""
    out = workdir / f"callgrind.{tag}"
    args = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes",
            f"--callgrind-out-file={out}.%p", sys.executable, "-m", module, *child]  # fmt: skip
    done = subprocess.run(args, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip
    files = sorted(workdir.glob(f"callgrind.{tag}.*"))
    if done.returncode != 0 or not files:
        raise RuntimeError(f"{tag}: callgrind run failed ({done.returncode}):\n"
                           f"{done.stderr[-2000:]}")  # fmt: skip
    return files


def _per(files: list[Path], n: int, tag: str) -> dict[str, Any]:
    """Instructions per create (or request): on the saving thread, and in all threads."""
    totals = _totals(files)
    if not any(totals.values()):
        raise RuntimeError(f"{tag}: callgrind counted nothing ({len(files)} files)")
    main = next((c for name, c in sorted(totals.items()) if name.endswith("-01")), None)
    if main is None:
        raise RuntimeError(f"{tag}: no count for the main thread in {sorted(totals)}")
    return {"saving_thread": main / n, "all_threads": sum(totals.values()) / n,
            "threads": len(totals)}  # fmt: skip


def count(mode: str, creates: int, workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    """Instructions per create (`creates` of them)."""
    files = _valgrind(mode, workdir, env, ["--child", mode, "--creates", str(creates)])
    return _per(files, creates, mode)


def count_requests(
    mode: str, n: int, workdir: Path, env: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """Instructions per request, by kind: one process, one dump per kind."""
    tag = f"{mode}.requests"
    dumps = _by_dump(_valgrind(tag, workdir, env, ["--child", mode, "--requests", str(n)]))
    from bench import requests

    if missing := [_label(kind) for kind in requests.KINDS if _label(kind) not in dumps]:
        raise RuntimeError(f"{tag}: no dump labelled {missing}; found {sorted(dumps)}")
    return {
        kind: _per(dumps[_label(kind)], _requests_of(kind, n), f"{tag} {kind}")
        for kind in requests.KINDS
    }


def _ratios(result: dict[str, dict[str, Any]]) -> None:
    if "off" in result:
        base = result["off"]
        for r in result.values():
            r["saving_ratio"] = r["saving_thread"] / base["saving_thread"]
            r["all_ratio"] = r["all_threads"] / base["all_threads"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("--creates", type=int, default=300)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--child", choices=MODES)
    parser.add_argument("--requests", type=int, metavar="N",
                        help="instead of creates: N requests of each kind of bench/requests.py "
                             "(fewer of the heavy ones: HEAVY), modes off,reference,unwatched,"
                             "watched unless --modes says")  # fmt: skip
    args = parser.parse_args()
    if args.child:
        if args.requests:
            child_requests(args.child, args.requests)
        else:
            child(args.child, args.creates)
        return
    if args.out is None:
        parser.error("OUT.json is required")
    from bench import peers, requests

    if args.requests and args.modes == parser.get_default("modes"):
        args.modes = "off,reference,unwatched,watched"
    modes = [m for m in args.modes.split(",") if m and (m != "sentry" or peers.sentry_available())]
    if "off" not in modes:
        parser.error("--modes needs off: every ratio is to it")
    with tempfile.TemporaryDirectory(prefix="callgrind-") as tmp:
        if args.requests:
            by_mode = {m: count_requests(m, args.requests, Path(tmp), dict(os.environ))
                       for m in modes}  # fmt: skip
            found = {kind: {m: by_mode[m][kind] for m in modes} for kind in requests.KINDS}
            for kind, result in found.items():
                _ratios(result)
                print(f"{kind}: " + ", ".join(
                    f"{m} {r['saving_ratio']:.3f} (all threads {r['all_ratio']:.3f})"
                    for m, r in result.items()), flush=True)  # fmt: skip
            geomeans = {
                m: statistics.geometric_mean(found[kind][m]["all_ratio"] for kind in found)
                for m in modes
            }
            args.out.write_text(json.dumps({"requests": args.requests, "kinds": found,
                                            "geomean_all_threads": geomeans}))  # fmt: skip
            return
        result = {m: count(m, args.creates, Path(tmp), dict(os.environ)) for m in modes}
    _ratios(result)
    args.out.write_text(json.dumps({"creates": args.creates, "modes": result}))


if __name__ == "__main__":
    main()
