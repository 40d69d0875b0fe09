"""End to end: daphne serving the app and the bare ceiling server, K clients, paced saves.

Both servers run for the whole phase; for each K one client process holds K
sockets to each. Every (K, rate) runs on daphne, then on the bare server one
frame per event, then batched, so the three see the same machine conditions.
"""

import contextlib
import itertools
import json
import queue
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench import procs, sample

SERVERS = ("django", "bare-event", "bare-batch")
MAX_COUNT = 50_000  # posts in one as-fast-as-possible run, at most
_run_ids = itertools.count(1)
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


@dataclass(frozen=True)
class Plan:
    ks: tuple[int, ...]
    rates: tuple[int, ...]  # posts per second; 0 = as fast as possible
    seconds: float  # of production per run
    drain_quiet: float  # after production: stop waiting when no row came for this long
    drain_limit: float  # ... or after this long at most
    deadline: float  # time.monotonic() after which runs are skipped
    window: float | None = None  # what-if BATCH_WINDOW for daphne and bare-batch; None: 50 ms


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]


def get_json(port: int, path: str, **params: Any) -> dict[str, Any]:
    url = f"http://{procs.HOST}:{port}{path}?{urlencode(params)}"
    try:
        with _http.open(url, timeout=10) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        return {"http_status": exc.code, **json.loads(exc.read() or b"{}")}


class Clients:
    """The client subprocess: JSON commands on stdin, JSON lines back on stdout."""

    def __init__(self, url: str, k: int, cookie: str, log: Path) -> None:
        self.k = k
        with log.open("ab") as err:
            self.proc = subprocess.Popen(
                procs.python("-m", "bench.clients", url, str(k), cookie),
                cwd=procs.ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                text=True,
            )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = self.reply(60 + k)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def reply(self, timeout: float) -> dict[str, Any]:
        try:
            return dict(json.loads(self.lines.get(timeout=timeout)))
        except queue.Empty:
            return {"error": f"no answer from the clients in {timeout:.0f} s"}

    def collect(self, run: int, expected: int, quiet: float, limit: float) -> dict[str, Any]:
        assert self.proc.stdin is not None
        command = {"cmd": "collect", "run": run, "expected": expected, "quiet": quiet,
                   "limit": limit}
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + limit + 60
        while (left := deadline - time.monotonic()) > 0:
            answer = self.reply(left)
            if answer.get("run") == run or "error" in answer:
                return answer  # a late answer to an earlier run is skipped
        return {"error": "no answer from the clients in time"}

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.flush()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        procs.stop(self.proc)


@contextlib.contextmanager
def clients(url: str, k: int, cookie: str, log: Path) -> Iterator[Clients]:
    swarm = Clients(url, k, cookie, log)
    try:
        yield swarm
    finally:
        swarm.close()


def refused(started: dict[str, Any]) -> bool:
    """A producer's answer that started nothing (an HTTP error, or one it reported)."""
    return "http_status" in started or bool(started.get("error"))


def produce(server: Server, run: int, rate: int, plan: Plan) -> dict[str, Any]:
    count = MAX_COUNT if rate == 0 else max(1, round(rate * plan.seconds))
    params: dict[str, Any] = {"run": run, "rate": rate, "count": count, "seconds": plan.seconds}
    if server.name.startswith("bare-"):
        params["mode"] = server.name.removeprefix("bare-")
    deadline = time.monotonic() + 15
    while True:  # the bare server answers 409 while it still drains the last run
        started = get_json(server.port, "/__bench__/produce", **params)
        if started.get("http_status") != 409 or time.monotonic() > deadline:
            return started
        time.sleep(0.1)


def one_run(server: Server, swarm: Clients, rate: int, plan: Plan) -> dict[str, Any]:
    record: dict[str, Any] = {"server": server.name, "k": swarm.k, "rate": rate}
    estimate = plan.seconds + 2
    if time.monotonic() + estimate > plan.deadline:
        return {**record, "skipped": "time budget"}
    procs.settle(server.proc.pid, limit=5)  # the last run's backlog, if any, first
    # Its sidecar too (None: it has none): after a run as fast as possible it may still
    # be storing the run's events, on the core the next run's server and clients need.
    waits = []
    for child in procs.children(server.proc.pid):
        with contextlib.suppress(OSError):  # ended meanwhile (a new one starts on demand)
            waits.append(procs.settle(child, limit=5))
    record["sidecar_settled_s"] = sum(waits) if waits else None
    procs.settle(swarm.proc.pid, limit=3)
    run = next(_run_ids)
    server_cpu, client_cpu = procs.CpuMeter(server.proc.pid), procs.CpuMeter(swarm.proc.pid)
    wall0 = time.monotonic()
    started = produce(server, run, rate, plan)
    if refused(started):
        return {**record, "skipped": f"producer refused: {started}"}
    status = started
    while not status.get("done") and time.monotonic() - wall0 < plan.seconds + 10:
        time.sleep(0.05)
        status = get_json(server.port, "/__bench__/status", run=run)
    figures = swarm.collect(run, int(status["produced"]), plan.drain_quiet, plan.drain_limit)
    record.update(figures)
    record.update(
        run=run,
        produced=status["produced"],
        achieved_rate=status["achieved_rate"],
        producer_error=status.get("error"),
        server_cpu_pct=server_cpu.percent(),
        client_cpu_pct=client_cpu.percent(),
        wall_s=time.monotonic() - wall0,
    )
    final = get_json(server.port, "/__bench__/status", run=run)  # after the clients' drain
    record.update(
        publisher_dropped=final.get("publisher_dropped"),
        publisher_batches=final.get("publisher_batches"),
        probes=final.get("probes"),
        thread_cpu_s=final.get("thread_cpu_s"),
    )
    return record


def run_matrix(
    prep: dict[str, Any], db: Path, workdir: Path, plan: Plan, say: Any
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every (K, rate) on each server; also returns the sample rows the bare server sent."""
    env = procs.bench_env(db, plan.window)
    django_port, bare_port = procs.free_port(), procs.free_port()
    daphne = [
        str(procs.ROOT / ".venv" / "bin" / "daphne"), "-b", procs.HOST, "-p", str(django_port),
        "bench.server:application",
    ]
    rows_path = workdir / "rows.json"
    bare = procs.python("-m", "bench.bare", str(bare_port), str(rows_path))
    if plan.window is not None:
        bare.append(str(plan.window))
    cookie = f"sessionid={prep['session']}"
    with contextlib.ExitStack() as stack:
        django_proc = stack.enter_context(
            procs.running(daphne, env, workdir / "daphne.log", django_port)
        )
        servers = {"django": Server("django", django_port, django_proc)}
        try:
            rows = sample.capture(
                django_port, cookie,
                lambda: get_json(django_port, "/__bench__/produce", run=sample.SAMPLE_RUN, count=1),
            )
        except Exception as exc:  # the dashboard sent no bench rows: measure it anyway
            rows = {"error": f"no sample rows, so no bare server: {exc!r}"}
            say(f"  {rows['error']}")
        else:
            rows_path.write_text(json.dumps({"rows": rows}))
            bare_proc = stack.enter_context(
                procs.running(bare, env, workdir / "bare.log", bare_port)
            )
            servers["bare-event"] = Server("bare-event", bare_port, bare_proc)
            servers["bare-batch"] = Server("bare-batch", bare_port, bare_proc)
        results: list[dict[str, Any]] = []
        for k in plan.ks:
            results += runs_for(k, servers, cookie, workdir / "clients.log", plan, say)
    return results, rows


def runs_for(
    k: int, servers: dict[str, Server], cookie: str, log: Path, plan: Plan, say: Any
) -> list[dict[str, Any]]:
    """K clients to each server; every rate on daphne, bare-event and bare-batch in turn."""
    if time.monotonic() + plan.seconds + 5 > plan.deadline:
        return [
            {"server": s, "k": k, "rate": r, "skipped": "time budget"}
            for r in plan.rates for s in SERVERS
        ]
    results = []
    with contextlib.ExitStack() as stack:
        swarms = {  # one client process per server port
            port: stack.enter_context(
                clients(f"ws://{procs.HOST}:{port}/socket/", k, cookie, log)
            )
            for port in sorted({s.port for s in servers.values()})
        }
        say(f"  K={k}: clients ready: {[s.ready for s in swarms.values()]}")
        for rate in plan.rates:
            for name in SERVERS:
                if name not in servers:
                    record = {"server": name, "k": k, "rate": rate, "skipped": "no sample rows"}
                else:
                    record = one_run(servers[name], swarms[servers[name].port], rate, plan)
                    say("  " + brief(record))
                results.append(record)
    return results


def brief(r: dict[str, Any]) -> str:
    head = f"{r['server']:<10} K={r['k']:<3} rate={r['rate'] or 'max':<5}"
    if "skipped" in r:
        return f"{head} skipped: {r['skipped']}"
    lat = r.get("latency_ms") or {}
    p99 = lat.get("p99")
    return (
        f"{head} produced={r['produced']} lost={r.get('lost')} "
        f"p99={p99 if p99 is None else round(p99, 1)} ms "
        f"cpu={r['server_cpu_pct']:.0f}% wall={r['wall_s']:.1f}s"
    )
