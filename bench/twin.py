"""Across processes: two daphnes on one Redis and one PostgreSQL, each producing posts
in its own process, K dashboards split between them; every dashboard must get every
post of both (its own server's directly, the other's through Redis).

Skipped, saying why, where PostgreSQL (127.0.0.1:5432) or Redis (127.0.0.1:6379) is
not reachable. The database is made for the run and dropped after it.
"""

import contextlib
import dataclasses
import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from bench import e2e, procs

PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def database() -> Any:
    import psycopg

    name = f"bench_twin_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


WARM_POSTS = 10  # from each server, before the timed run


def warm(servers: list[e2e.Server], swarms: list[Any], plan: e2e.Plan) -> dict[str, Any]:
    """A few posts from each server, seen on every dashboard and not counted: each
    server's sidecar started (a dashboard's opening starts it, and Django's set-up in
    it takes a second) and its connections to Redis and PostgreSQL open, as in the
    single-server runs, whose sample post does the same. What it lost is reported."""
    brief = dataclasses.replace(plan, seconds=WARM_POSTS / 100)
    runs = [next(e2e._run_ids) for _ in servers]
    for server, run_id in zip(servers, runs, strict=True):
        started = e2e.produce(server, run_id, 100, brief)
        if e2e.refused(started):
            return {"error": f"warm-up producer refused: {started}"}
    # What each producer made: it stops at its deadline, even a post short (0.1 s here).
    statuses = finished(servers, runs, brief.seconds)
    if not all(s.get("done") for s in statuses):
        return {"error": f"warm-up producer did not finish: {statuses}"}
    produced = [int(s["produced"]) for s in statuses]
    parts = [
        {"dashboards_on": i, "posts_of": j, **swarm.collect(
            run_id, produced[j], plan.drain_quiet, plan.drain_limit)}
        for i, swarm in enumerate(swarms) for j, run_id in enumerate(runs)
    ]  # fmt: skip
    # Which server's dashboards missed which server's posts, and how (each part's figures).
    keep = ("dashboards_on", "posts_of", "expected_per_client", "lost", "rows_per_client_min",
            "collect_wait_s", "frames_per_client", "errors")  # fmt: skip
    return {"lost": sum(int(p.get("lost", 0)) for p in parts),
            "parts": [{k: p.get(k) for k in keep} for p in parts]}  # fmt: skip


def finished(
    servers: list[e2e.Server], runs: list[int], seconds: float, since: float | None = None
) -> list[dict[str, Any]]:
    """Each server's producer status once its run is done (at most `seconds` + 10 s
    after `since`, by default now)."""
    start = time.monotonic() if since is None else since
    statuses = []
    for server, run_id in zip(servers, runs, strict=True):
        status: dict[str, Any] = {}
        while not status.get("done") and time.monotonic() - start < seconds + 10:
            time.sleep(0.05)
            status = e2e.get_json(server.port, "/__bench__/status", run=run_id)
        statuses.append(status)
    return statuses


def run(workdir: Path, k: int, rate: int, plan: e2e.Plan, step: Any, say: Any) -> dict[str, Any]:
    """`rate` posts/s from each server for plan.seconds; K/2 dashboards on each."""
    record: dict[str, Any] = {"server": "twin", "k": k, "rate": rate, "producers": 2}
    if not (reachable("127.0.0.1", 5432) and reachable("127.0.0.1", 6379)):
        return {**record, "skipped": "PostgreSQL or Redis not reachable on 127.0.0.1"}
    with database() as url:
        env = procs.bench_env(workdir / "unused.sqlite3")
        env.update(DATABASE_URL=url, REDIS_URL=REDIS_URL,
                   CHANNELS_REDIS_PREFIX=f"bench-{uuid.uuid4().hex[:8]}")  # fmt: skip
        step(procs.python("manage.py", "migrate", "--noinput"), env, workdir / "twin.log", 120)
        step(procs.python("-m", "bench.prepare", str(workdir / "twin-prep.json")), env,
             workdir / "twin.log", 120)  # fmt: skip
        cookie = f"sessionid={json.loads((workdir / 'twin-prep.json').read_text())['session']}"
        with contextlib.ExitStack() as stack:
            servers = []
            for n in (1, 2):
                port = procs.free_port()
                daphne = [str(procs.ROOT / ".venv" / "bin" / "daphne"), "-b", procs.HOST,
                          "-p", str(port), "bench.server:application"]  # fmt: skip
                proc = stack.enter_context(
                    procs.running(daphne, env, workdir / f"twin-daphne-{n}.log", port)
                )
                servers.append(e2e.Server(f"twin-{n}", port, proc))
            swarms = [
                stack.enter_context(
                    e2e.clients(f"ws://{procs.HOST}:{s.port}/socket/", k // 2, cookie,
                                workdir / "twin.log")
                )
                for s in servers
            ]
            say(f"  twin: clients ready: {[s.ready for s in swarms]}")
            warmed = warm(servers, swarms, plan)
            if "error" in warmed:
                return {**record, "skipped": warmed["error"]}
            record["warm_up_lost"] = warmed["lost"]
            record["warm_up"] = warmed["parts"]
            runs = [next(e2e._run_ids) for _ in servers]
            cpu = [procs.CpuMeter(s.proc.pid) for s in servers]
            wall0 = time.monotonic()
            for server, run_id in zip(servers, runs, strict=True):
                started = e2e.produce(server, run_id, rate, plan)
                if e2e.refused(started):
                    return {**record, "skipped": f"producer refused: {started}"}
            statuses = finished(servers, runs, plan.seconds, since=wall0)
            parts = [
                swarm.collect(run_id, int(status["produced"]), plan.drain_quiet, plan.drain_limit)
                for swarm in swarms
                for run_id, status in zip(runs, statuses, strict=True)
            ]
            server_cpu = [c.percent() for c in cpu]  # while the servers still run
    p99s = [(p.get("latency_ms") or {}).get("p99") for p in parts]
    return {
        **record,
        "produced": sum(int(s["produced"]) for s in statuses),
        "achieved_rate": sum(float(s["achieved_rate"]) for s in statuses),
        "lost": sum(int(p.get("lost", 0)) for p in parts),
        "trimmed": sum(int(p.get("trimmed", 0)) for p in parts),
        "p99_ms": max((p for p in p99s if p is not None), default=None),
        "server_cpu_pct": server_cpu,
        "errors": sorted({e for p in parts for e in p.get("errors", [])})[:5],
        "parts": parts,
    }
