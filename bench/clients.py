"""Subprocess: K dashboard websocket clients in one asyncio process, counting bench rows.

Run as `python -m bench.clients URL K [COOKIE]`. Prints one JSON line when the
sockets are open, then answers JSON commands read from stdin, one per line:

  {"cmd": "collect", "run": ID, "expected": N, "quiet": Q, "limit": L}
      wait until every client holds N rows of run ID (or no row came for Q s, or
      L s passed), then print the run's figures and forget it;
  {"cmd": "quit"}

A client reads each frame's post_save rows (`<tr ... data-signal="post_save">`)
and the bench title in each, `bench RUN SEQ TNS`. Like a page, each client resumes
after the newest id the dashboard's page showed when the clients opened, so events
stored before its resume was answered come in its backfill. Latency is receipt time minus
TNS, the save's time. Rows past MAX_ROWS in one frame are not rendered; the frame's
data-counts still counts them: they are reported as `trimmed`, not as lost.
All K sockets receive the same frames, so each distinct frame is parsed once
(keyed by its length and first KiB, which hold the newest row's key, time, title)
and each client keeps (receipt time, parsed frame) pairs; figures are computed
at collect time, off the receiving path.
"""

import asyncio
import http.client
import json
import re
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

PAST_ANY = 10**12  # a resume past any stored id: no backfill (the bare server ignores it)
LAST_ID = re.compile(rb'id="history" data-last-id="(\d+)"')
POST_SAVE_ROW = re.compile(rb'<tr\b[^>]*data-signal="post_save".*?</tr>', re.S)
TITLE = re.compile(rb"bench (\d+) (\d+) (\d+)")
POST_SAVE_COUNT = re.compile(rb"&quot;post_save&quot;: (\d+)")
KEY_BYTES = 1024  # of a frame, with its length, tell frames apart: the newest row's key,
# time (µs) and title all lie in its first KiB
CONNECT_CONCURRENCY = 20


@dataclass(slots=True)
class Parsed:
    """One distinct frame: the bench rows it shows, per run."""

    rows: dict[int, tuple[list[int], list[int]]]  # run -> (seqs, save times ns)
    trimmed: int  # post_save events counted in the frame but not rendered
    size: int


@dataclass(slots=True)
class Client:
    connection: ClientConnection | None = None
    error: str | None = None
    frames: dict[int, list[tuple[int, Parsed]]] = field(default_factory=dict)  # run -> frames
    seen: dict[int, int] = field(default_factory=dict)  # run -> rows (+ trimmed) so far


def newest_id(url: str, headers: dict[str, str]) -> int:
    """The newest stored id the dashboard's page shows, as a page resumes after it; past
    any id where no page answers (the bare server)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
            found = LAST_ID.search(r.read())
    except (OSError, http.client.HTTPException):
        return PAST_ANY
    return int(found.group(1)) if found else PAST_ANY


def resume(after: int) -> str:
    return json.dumps({"type": "resume", "after": after, "seen": {}})


def parse(data: bytes) -> Parsed:
    rows: dict[int, tuple[list[int], list[int]]] = {}
    for row in POST_SAVE_ROW.finditer(data):
        title = TITLE.search(data, row.start(), row.end())
        if title is None:
            continue
        run, seq, tns = title.groups()
        seqs, times = rows.setdefault(int(run), ([], []))
        seqs.append(int(seq))
        times.append(int(tns))
    counted = POST_SAVE_COUNT.search(data)
    shown = sum(len(s) for s, _ in rows.values())
    trimmed = max(0, int(counted.group(1)) - shown) if counted else 0
    return Parsed(rows, trimmed, len(data))


class Swarm:
    def __init__(self, url: str, k: int, cookie: str) -> None:
        self.url, self.k, self.cookie = url, k, cookie
        self.clients = [Client() for _ in range(k)]
        self.cache: dict[bytes, Parsed] = {}
        self.closed_runs: set[int] = set()
        self.after = PAST_ANY

    async def open(self) -> None:
        parts = urlsplit(self.url)
        origin = Origin(f"http://{parts.netloc}")
        headers = {"Cookie": self.cookie} if self.cookie else {}
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        self.after = await asyncio.to_thread(newest_id, f"http://{parts.netloc}/", headers)

        async def open_one(client: Client) -> None:
            async with gate:
                try:
                    client.connection = await connect(
                        self.url, origin=origin, additional_headers=headers,
                        compression=None, max_size=None, ping_interval=None, open_timeout=30,
                    )
                    # As the page does on open: nothing is sent before it, and it asks
                    # for what was stored since the page's history was read.
                    await client.connection.send(resume(self.after))
                except Exception as exc:
                    client.error = f"{type(exc).__name__}: {exc}"

        await asyncio.gather(*(open_one(c) for c in self.clients))
        for client in self.clients:
            if client.connection is not None:
                asyncio.get_running_loop().create_task(self.receive(client, client.connection))

    async def receive(self, client: Client, connection: ClientConnection) -> None:
        try:
            while True:
                data = await connection.recv(decode=False)
                now = time.time_ns()
                key = len(data).to_bytes(8) + bytes(data[:KEY_BYTES])
                parsed = self.cache.get(key)
                if parsed is None:
                    parsed = self.cache[key] = parse(bytes(data))
                for run, (seqs, _) in parsed.rows.items():
                    if run in self.closed_runs:
                        continue
                    client.frames.setdefault(run, []).append((now, parsed))
                    extra = parsed.trimmed if len(parsed.rows) == 1 else 0
                    client.seen[run] = client.seen.get(run, 0) + len(seqs) + extra
        except Exception as exc:
            client.error = f"{type(exc).__name__}: {exc}"

    async def collect(self, run: int, expected: int, quiet: float, limit: float) -> dict[str, Any]:
        """Wait until every client has the run's rows, or none came for `quiet` s, or `limit`."""
        start = last_progress = time.monotonic()
        live = [c for c in self.clients if c.connection is not None]
        seen = -1
        while (now := time.monotonic()) - start < limit and now - last_progress < quiet:
            counts = [c.seen.get(run, 0) for c in live]
            if all(n >= expected for n in counts):
                break
            if sum(counts) != seen:
                seen, last_progress = sum(counts), now
            await asyncio.sleep(0.02)
        waited = time.monotonic() - start
        self.closed_runs.add(run)
        result = figures(run, expected, live, self.k)
        result["collect_wait_s"] = round(waited, 3)
        result["errors"] = sorted({c.error for c in self.clients if c.error})[:5]
        for client in self.clients:
            client.frames.pop(run, None)
            client.seen.pop(run, None)
        self.cache.clear()
        return result


def percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def figures(run: int, expected: int, clients: list[Client], k: int) -> dict[str, Any]:
    latencies: list[float] = []
    visible: list[int] = []
    trimmed = lost = duplicates = frames = 0
    first_save: int | None = None
    last_receipt = 0
    for client in clients:
        seqs: set[int] = set()
        shown = client_trimmed = 0
        pairs = client.frames.get(run, [])
        frames += len(pairs)
        for receipt, parsed in pairs:
            got, times = parsed.rows[run]
            seqs.update(got)
            shown += len(got)
            if len(parsed.rows) == 1:
                client_trimmed += parsed.trimmed
            latencies.extend((receipt - t) / 1e6 for t in times)
            earliest = min(times)
            first_save = earliest if first_save is None else min(first_save, earliest)
            last_receipt = max(last_receipt, receipt)
        duplicates += shown - len(seqs)
        visible.append(len(seqs))
        trimmed += client_trimmed
        lost += max(0, expected - len(seqs) - client_trimmed)
    lost += expected * (k - len(clients))  # sockets that never opened saw nothing
    latencies.sort()
    span = (last_receipt - first_save) / 1e9 if first_save is not None else 0.0
    return {
        "run": run,
        "clients": k,
        "connected": len(clients),
        "expected_per_client": expected,
        "rows_per_client_min": min(visible, default=0),
        "rows_total": sum(visible),
        "trimmed": trimmed,
        "lost": lost,
        "loss_pct": 100 * lost / (expected * k) if expected else 0.0,
        "duplicates": duplicates,
        "frames_per_client": frames / len(clients) if clients else 0.0,
        "latency_ms": {
            "p50": percentile(latencies, 0.50),
            "p99": percentile(latencies, 0.99),
            "max": latencies[-1] if latencies else None,
        },
        "span_s": span,
        "deliveries_per_s": sum(visible) / span if span > 0 else 0.0,
    }


async def main(url: str, k: int, cookie: str) -> None:
    swarm = Swarm(url, k, cookie)
    await swarm.open()
    errors = sorted({c.error for c in swarm.clients if c.error})[:5]
    connected = sum(c.connection is not None for c in swarm.clients)
    ready = {"ready": True, "connected": connected, "after": swarm.after, "errors": errors}
    print(json.dumps(ready), flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        command = json.loads(line)
        if command["cmd"] == "quit":
            break
        result = await swarm.collect(
            command["run"], command["expected"], command["quiet"], command["limit"]
        )
        print(json.dumps(result), flush=True)
    for client in swarm.clients:
        if client.connection is not None:
            await client.connection.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else ""))
