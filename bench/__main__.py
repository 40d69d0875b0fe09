"""`make bench` / `python -m bench [--quick]`: save overhead, end to end, and the ceiling.

Everything runs on 127.0.0.1 against a throwaway SQLite file in a temp dir;
every server and client is a subprocess stopped by its PID when done.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import e2e, instructions, procs, report, twin

RESULTS = Path(__file__).resolve().parent / "results"


def say(text: str) -> None:
    print(text, flush=True)


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: K=1,10, 1 s runs, fewer saves")
    parser.add_argument("--ks", type=lambda s: tuple(int(x) for x in s.split(",")),
                        help="dashboards per run, e.g. 1,10,100")
    parser.add_argument("--rates", type=lambda s: tuple(int(x) for x in s.split(",")),
                        help="posts per second, 0 = as fast as possible, e.g. 100,1000,0")
    parser.add_argument("--seconds", type=float, help="of production per run (default 3)")
    parser.add_argument("--budget", type=float, default=900,
                        help="seconds for the whole run; end-to-end runs past it are skipped")
    parser.add_argument("--window", type=float,
                        help="what-if: DASHBOARD['BATCH_WINDOW'] in seconds for daphne and "
                             "the bare batched server (default: the project's, 50 ms)")
    parser.add_argument("--skip-saves", action="store_true", help="end to end only")
    parser.add_argument("--skip-twin", action="store_true", help="no run across two servers")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temp dir (database, server and client logs)")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    return parser.parse_args()


def code_state() -> dict[str, Any]:
    """Which code was measured: HEAD, and the files changed since (others edit meanwhile)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=procs.ROOT, capture_output=True, text=True,
                              timeout=10, check=False)
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "dashboard", "config", "templates", "blog")
    return {"head": git("rev-parse", "--short", "HEAD"), "changed": changed.splitlines()}


def step(args: list[str], env: dict[str, str], log: Path, timeout: float) -> None:
    """A subprocess that must finish; stopped by its PID if it overstays."""
    with log.open("ab") as out:
        proc = subprocess.Popen(args, cwd=procs.ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        if proc.wait(timeout) != 0:
            raise RuntimeError(f"{' '.join(args)} failed: see {log}")
    finally:
        procs.stop(proc)


def main() -> None:
    opts = options()
    start = time.monotonic()
    quick = opts.quick
    plan = e2e.Plan(
        ks=opts.ks or ((1, 10) if quick else (1, 10, 100)),
        rates=opts.rates or (100, 1000, 0),
        seconds=opts.seconds or (1.0 if quick else 3.0),
        drain_quiet=3.5,  # longer than one slow pump cycle (see the probes table)
        drain_limit=10.0,
        deadline=start + opts.budget,
        window=opts.window,
    )
    workdir = Path(tempfile.mkdtemp(prefix="signals-bench-"))
    db = workdir / "bench.sqlite3"
    env = procs.bench_env(db)
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": quick,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_before": os.getloadavg()},
        "code": code_state(),
        "plan": {"ks": plan.ks, "rates": plan.rates, "seconds": plan.seconds,
                 "batch_window": plan.window},
    }
    try:
        say(f"bench: temp dir {workdir}; load average {os.getloadavg()[0]:.2f}")
        step(procs.python("-m", "bench.prepare", str(workdir / "prepare.json")), env,
             workdir / "prepare.log", 120)
        prep = json.loads((workdir / "prepare.json").read_text())
        if not opts.skip_saves:
            say("1. save overhead (interleaved, medians)…")
            tx, auto, updates, repeats = (600, 100, 300, 3) if quick else (3000, 300, 1000, 5)
            step(procs.python("-m", "bench.saves", str(workdir / "saves.json"), "--tx", str(tx),
                              "--auto", str(auto), "--updates", str(updates),
                              "--repeats", str(repeats)),
                 env, workdir / "saves.log", 600)
            result["saves"] = json.loads((workdir / "saves.json").read_text())
            say("1b. per request and bulk delete (interleaved, medians)…")
            step(procs.python("-m", "bench.requests", str(workdir / "requests.json"),
                              "--rounds", "2" if quick else "5"),
                 env, workdir / "requests.log", 900)
            result["requests"] = json.loads((workdir / "requests.json").read_text())
            say("1c. instructions per create under callgrind (drift-free)…")
            result["instructions"] = count_instructions(workdir, env, 150 if quick else 300)
            say("1e. instructions per request under callgrind (drift-free)…")
            result["request_instructions"] = count_instructions(
                workdir, env, 4 if quick else 20, requests=True
            )
        say("1d. Django's own production ceiling (the end-to-end producer, no dashboard)…")
        step(procs.python("-m", "bench.ceiling", str(workdir / "ceiling.json")),
             env, workdir / "ceiling.log", 60)
        result["ceiling"] = json.loads((workdir / "ceiling.json").read_text())
        say(f"  {result['ceiling']['posts_per_s']:,.0f} posts/s")
        say("2-3. end to end: daphne vs bare websockets…")
        result["e2e"], result["sample_rows"] = e2e.run_matrix(prep, db, workdir, plan, say)
        if not opts.skip_twin:
            say("4. across processes: two daphnes, one Redis, one PostgreSQL…")
            k = 10 if quick else 100
            result["twin"] = twin.run(workdir, k, TWIN_RATE, plan, step, say)
            say(f"  twin K={k}: {twin_brief(result['twin'])}")
    except BaseException:
        say(f"bench failed; logs kept in {workdir}")
        raise
    else:
        if opts.keep:
            say(f"kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    result["machine"]["loadavg_after"] = os.getloadavg()
    result["elapsed_s"] = time.monotonic() - start
    result["targets"] = report.targets(
        result.get("saves"), result["e2e"], result.get("requests"), result.get("twin"),
        result.get("ceiling"), result.get("request_instructions")
    )
    print_report(result)
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(result, indent=2))
    say(f"\nwritten: {opts.out}")


def count_instructions(
    workdir: Path, env: dict[str, str], n: int, requests: bool = False
) -> dict[str, Any]:
    """Per create (n creates), or per request of each kind (n of each; fewer heavy ones)."""
    if why := instructions.available():
        return {"skipped": why}
    name = "request-instructions" if requests else "instructions"
    out = workdir / f"{name}.json"
    args = ["--requests", str(n), "--modes", REQUEST_INSTRUCTION_MODES] if requests else [
        "--creates", str(n)]  # fmt: skip
    step(procs.python("-m", "bench.instructions", str(out), *args),
         env, workdir / f"{name}.log", 1200)
    return json.loads(out.read_text())


# The per-request target's modes, and sentry's signal spans (when installed) beside them.
REQUEST_INSTRUCTION_MODES = "off,reference,sentry,unwatched,watched"


TWIN_RATE = 250  # posts/s from each of the two servers: 1,000 events/s in all


def twin_brief(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"skipped: {r['skipped']}"
    return (f"{r['produced']} posts, {r['achieved_rate']:.0f}/s achieved, lost {r['lost']}, "
            f"trimmed {r['trimmed']}, p99 {r['p99_ms']} ms, servers' CPU "
            f"{', '.join(f'{c:.0f}%' for c in r['server_cpu_pct'])}"
            + (f", errors {r['errors']}" if r["errors"] else "")
            + (f", warm-up lost {r['warm_up_lost']}" if r.get("warm_up_lost") else ""))


def print_report(result: dict[str, Any]) -> None:
    say("")
    if saves := result.get("saves"):
        say("Save overhead: µs per Post.objects.create (in the 'update' row, per save of a "
            "stored post), dashboard receivers on vs off")
        say(report.saves_table(saves))
        say("")
        say(
            "Where a create's time went: CPU per create by thread over the timed creates "
            "(µs, medians; one GIL): saves = the creates with the capture in their "
            "receivers, pump = draining, pickling and relaying frames (describing and "
            "rendering where no sidecar runs), store = history writes kept in this "
            "process, sidecar = its process, beside it; off-CPU = the run's wall time less "
            "this process's CPU (the disk, wake-ups, or taken off a core while runnable: "
            "preempted, per 1,000 creates; below 0 when two threads ran at once)"
        )
        say(report.saves_cpu_table(saves))
        say("")
    if found := result.get("instructions"):
        say("Instructions per create under callgrind (thousands; ratios to off): the same "
            "count twice within ~0.2 %, so a change of a few percent shows, where the timed "
            "ratios drift; not time (a cache miss costs no instruction)")
        say(report.instructions_table(found))
        say("")
    if found := result.get("request_instructions"):
        say("Instructions per request under callgrind, all of the process's threads (ratios "
            "to off; the sidecar, another process, not counted): what the timed ratios "
            "below would be if time followed the work done")
        say(report.request_instructions_table(found))
        say("")
    if found := result.get("requests"):
        say("Per request: ms through Django's test Client in-process; off = Django's own "
            "Signal methods, on = the dashboard's hook, nobody watching; watched = a "
            "dashboard open in the process (ratios: medians of each round's own)")
        say(report.requests_table(found))
        say("")
        say("Per request, counted (not timed): frames relayed with a dashboard open, and "
            "the request thread's voluntary context switches (waits, mostly for the GIL)")
        say(report.turns_table(found))
        say("")
    say("End to end: posts/s created inside the server; each post = pre_save + post_save "
        "events; figures count post_save rows")
    say(report.e2e_table(result["e2e"]))
    say("")
    say("Where daphne's time went (Django runs; bench/probes.py): each frame's "
        "prepare = describe_event per event + render_frame (loop or render worker), "
        "sent, then history.store (store worker, one write per >= 20 ms)")
    say(report.probes_table(result["e2e"]))
    say("")
    say("daphne's CPU per thread over each run (s; one GIL): loop = reactor + asyncio "
        "(sockets, consumers, pump), render = prepare, store = history writes, "
        "producer = the saves (capture included), ended = threads gone since")
    say(report.threads_table(result["e2e"]))
    say("")
    say("Against the ceiling (bare websockets server, same payloads, same clients, same run)")
    say(report.ceiling_table(result["e2e"]))
    say("")
    if found := result.get("twin"):
        say("Across processes: two daphnes on one Redis and one PostgreSQL, "
            f"{TWIN_RATE} posts/s produced inside each, K/2 dashboards on each")
        say("  " + twin_brief(found))
        say("")
    say("Targets (figures, not assertions)")
    say(report.targets_table(result["targets"]))
    m, code = result["machine"], result["code"]
    say(f"\ncode: HEAD {code['head']}, {len(code['changed'])} files changed since in "
        "dashboard/ config/ templates/ blog/")
    say(f"{m['cpus']} CPUs, Python {m['python']}; load average before "
        f"{m['loadavg_before'][0]:.2f}, after {m['loadavg_after'][0]:.2f}; "
        f"total {result['elapsed_s']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
