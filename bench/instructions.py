"""Instructions per create under callgrind: what the capture costs, without the drift.

    .venv/bin/python -m bench.instructions OUT.json [--creates 300]
    .venv/bin/python -m bench.instructions OUT.json --requests 100

The second counts per request instead, for the four kinds of bench/requests.py
(not part of `python -m bench`: about ten minutes).

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

Modes: off (the dashboard's hook out), floor, reference and sentry
(bench/peers.py; sentry when installed), capture (the hook in, the pump
dropping what it drains), unwatched and watched (as bench/saves.py runs them:
the sidecar describes and stores; watched, a frame comes back for a socket
that drops it).
"""

import argparse
import json
import os
import shutil
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
MODES = ("off", "floor", "reference", "sentry", "capture", "unwatched", "watched")
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


def child(mode: str, creates: int) -> None:
    """Inside valgrind: warm up, then count `creates` creates in one transaction."""
    import django

    django.setup()
    from django.conf import settings
    from django.db import transaction

    from bench import saves
    from blog.models import Post
    from dashboard import conf
    from dashboard.live.handoff import handoff

    # Valgrind makes a create ~50x slower: the pump's window is stretched as much, so
    # its batches hold about as many events as in the timed runs.
    settings.DASHBOARD = {**getattr(settings, "DASHBOARD", {}),
                          "BATCH_WINDOW": SLOWER * conf.get("BATCH_WINDOW")}  # fmt: skip
    conf.forget()
    context = saves.in_mode(SAVES_MODE.get(mode, mode))

    # Titles unique to this process: a title seen before makes fill_slug query again.
    prefix = f"instructions {uuid.uuid4().hex[:8]} {mode}"

    def run(tag: str) -> None:
        with transaction.atomic():
            for i in range(creates):
                Post.objects.create(title=f"{prefix} {tag} {i}")

    with context:
        run("warm-up")  # imports, statements, the sidecar started and set up
        handoff.flush(timeout=60)
        saves.settle(handoff, timeout=60)
        saves.even_start()
        _switch(True)
        run("counted")
        handoff.flush(timeout=60)  # what the creates left queued is their cost too
        _switch(False)
        saves.settle(handoff, timeout=60)


def child_requests(mode: str, kind: str, n: int) -> None:
    """Inside valgrind: warm up, then count `n` requests of one kind (bench/requests.py)."""
    import django

    django.setup()
    from django.conf import settings

    from bench import requests, saves
    from dashboard import conf
    from dashboard.live.handoff import handoff

    settings.DASHBOARD = {**getattr(settings, "DASHBOARD", {}),
                          "BATCH_WINDOW": SLOWER * conf.get("BATCH_WINDOW")}  # fmt: skip
    conf.forget()
    client, slug = requests.setup()
    with saves.in_mode(SAVES_MODE.get(mode, mode)):
        for _ in range(5):
            requests.request(client, kind, slug)
        handoff.flush(timeout=60)
        saves.settle(handoff, timeout=60)
        saves.even_start()
        _switch(True)
        for _ in range(n):
            requests.request(client, kind, slug)
        handoff.flush(timeout=60)
        _switch(False)
        saves.settle(handoff, timeout=60)


def _totals(paths: list[Path]) -> dict[str, int]:
    """Instructions per thread file (callgrind's `totals:` line)."""
    found = {}
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("totals:"):
                found[path.name] = int(line.split()[1])
    return found


def count(mode: str, creates: int, workdir: Path, env: dict[str, str],
          kind: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Instructions per create, or per request of `kind` (`creates` of them)."""
    tag = mode if kind is None else f"{mode}.{kind.replace(' ', '-')}"
    out = workdir / f"callgrind.{tag}"
    args = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes",
            f"--callgrind-out-file={out}.%p", sys.executable, "-m", "bench.instructions",
            "--child", mode, "--creates", str(creates)]  # fmt: skip
    if kind is not None:
        args += ["--kind", kind]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900, check=False)
    files = sorted(workdir.glob(f"callgrind.{tag}.*"))
    totals = _totals(files)
    if done.returncode != 0 or not totals or not any(totals.values()):
        raise RuntimeError(f"{tag}: callgrind run failed ({done.returncode}):\n"
                           f"{done.stderr[-2000:]}")  # fmt: skip
    main = next((n for t, n in sorted(totals.items()) if t.endswith("-01")), 0)
    return {
        "saving_thread": main / creates,
        "all_threads": sum(totals.values()) / creates,
        "threads": len(totals),
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
    parser.add_argument("--kind", help="(child) count requests of this kind, not creates")
    parser.add_argument("--requests", type=int, metavar="N",
                        help="instead of creates: N requests of each kind of bench/requests.py "
                             "(fewer of the heavy ones: HEAVY), modes off,reference,unwatched,"
                             "watched unless --modes says")  # fmt: skip
    args = parser.parse_args()
    if args.child:
        if args.kind:
            child_requests(args.child, args.kind, args.creates)
        else:
            child(args.child, args.creates)
        return
    if args.out is None:
        parser.error("OUT.json is required")
    from bench import peers, requests

    if args.requests and args.modes == parser.get_default("modes"):
        args.modes = "off,reference,unwatched,watched"
    modes = [m for m in args.modes.split(",") if m and (m != "sentry" or peers.sentry_available())]
    with tempfile.TemporaryDirectory(prefix="callgrind-") as tmp:
        if args.requests:
            found: dict[str, Any] = {}
            for kind in requests.KINDS:
                n = max(1, args.requests // HEAVY.get(kind, 1))
                found[kind] = {m: count(m, n, Path(tmp), dict(os.environ), kind) for m in modes}
                _ratios(found[kind])
                print(f"{kind}: " + ", ".join(
                    f"{m} {r['saving_ratio']:.3f} (all threads {r['all_ratio']:.3f})"
                    for m, r in found[kind].items()), flush=True)  # fmt: skip
            args.out.write_text(json.dumps({"requests": args.requests, "kinds": found}))
            return
        result = {m: count(m, args.creates, Path(tmp), dict(os.environ)) for m in modes}
    _ratios(result)
    args.out.write_text(json.dumps({"creates": args.creates, "modes": result}))


if __name__ == "__main__":
    main()
