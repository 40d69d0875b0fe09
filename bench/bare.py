"""Subprocess: the ceiling, a bare `websockets` server (no Django) sending the same payloads.

Run as `python -m bench.bare PORT ROWS.json [WINDOW]`. Clients connect to /socket/ as
they would to the dashboard; `GET /__bench__/produce?...&mode=event|batch` and
`GET /__bench__/status?run=ID` mirror bench.server. Rows are the real markup of
one post's pre_save and post_save rows (captured by bench.sample), with the
title's run, sequence and time substituted, and the row's event key
(`data-key="<process>.<seq>"`, also in its detail URLs) numbered per event like
the pump's: the same bytes per event.

mode=event sends one frame per event; mode=batch follows the pump's rules
(the same dashboard.live.pacing.Pacer): an idle pump sends at once; the next frame
starts 1 ms after that one started, or under load (500 events/s or more) doubling
per frame up to 16 ms, never sooner than the frame's cost, never past the window
(50 ms), and sends what came meanwhile as one frame, at most MAX_ROWS rows a
frame, counts for all. Events past QUEUE_SIZE are dropped and counted.
Like the dashboard's pump, it never waits on the network. As fast as possible
(rate=0) means as fast as frames leave: production waits while the next
chunk's events would not fit in one frame of MAX_ROWS rows with those
waiting (so no row is ever trimmed) or a client's write buffer holds > 1 MiB.
"""

import asyncio
import html
import itertools
import json
import re
import sys
import time
from collections import Counter, deque
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Request, Response, ServerConnection, broadcast, serve

from bench import FAST_CHUNK
from bench.sample import KEY_SEQ_TOKEN, RUN_TOKEN, SEQ_TOKEN, TNS_TOKEN
from dashboard.live.pacing import Pacer  # no Django: the pump's own pacing rule

WINDOW = 0.05  # dashboard.conf BATCH_WINDOW
MAX_ROWS = 500  # dashboard.conf MAX_ROWS
QUEUE_SIZE = 10_000  # dashboard.conf QUEUE_SIZE
HIGH_WATER = 1 << 20  # bytes waiting in one client's write buffer before we hold back
TOKENS = re.compile(f"({RUN_TOKEN}|{SEQ_TOKEN}|{TNS_TOKEN}|{KEY_SEQ_TOKEN})")

Event = tuple[str, str, str, str, int]  # signal, run, seq, tns, event number


class Template:
    """A row split at its tokens (odd indices), so filling it in is one join."""

    def __init__(self, text: str) -> None:
        self.parts = TOKENS.split(text)
        self.slots = [(i, p) for i, p in enumerate(self.parts) if i % 2]

    def fill(self, run: str, seq: str, tns: str, number: int) -> str:
        values = {RUN_TOKEN: run, SEQ_TOKEN: seq, TNS_TOKEN: tns, KEY_SEQ_TOKEN: str(number)}
        parts = self.parts.copy()
        for i, token in self.slots:
            parts[i] = values[token]
        return "".join(parts)


class Bare:
    def __init__(self, rows: dict[str, str], window: float) -> None:
        self.window = window
        self.head = rows["head"]
        self.process = rows.get("process") or "bare"  # as the dashboard's frames say it
        self.templates = {s: Template(rows[s]) for s in ("pre_save", "post_save")}
        self.clients: set[ServerConnection] = set()
        self.queue: deque[Event] = deque()
        self.numbers = itertools.count(1)
        self.wake = asyncio.Event()
        self.runs: dict[int, dict[str, Any]] = {}
        self.task: asyncio.Task[None] | None = None

    # -- frames ----------------------------------------------------------------

    def frame(self, events: list[Event], dropped: int) -> str:
        newest = events[::-1][:MAX_ROWS]
        rows = "".join(self.templates[s].fill(run, seq, tns, n) for s, run, seq, tns, n in newest)
        counts = html.escape(json.dumps(Counter(e[0] for e in events)))
        return (
            f"{self.head}{rows}</tbody>\n"
            f'<div id="batch" hx-swap-oob="true" hidden data-counts="{counts}" '
            f'data-total="{len(events)}" data-dropped="{dropped}" '
            f'data-process="{self.process}"></div>\n'
        )

    def backlog(self) -> int:
        sizes = [c.transport.get_write_buffer_size() for c in self.clients]
        return max(sizes, default=0)

    def send(self, events: list[Event], state: dict[str, Any]) -> None:
        # Like the pump: hand the frame to every socket and never wait on the network.
        broadcast(self.clients, self.frame(events, state["dropped"]))

    # -- production and the pump ----------------------------------------------

    def publish(self, run: str, seq: int, state: dict[str, Any]) -> None:
        tns = str(time.time_ns())
        for signal in ("pre_save", "post_save"):
            if len(self.queue) >= QUEUE_SIZE:
                state["dropped"] += 1
                continue
            self.queue.append((signal, run, str(seq), tns, next(self.numbers)))
        self.wake.set()

    async def produce(self, state: dict[str, Any]) -> None:
        rate, count, run = state["rate"], state["count"], str(state["run"])
        start = state["started"] = time.time()
        deadline = start + state["seconds"]
        pump = asyncio.create_task(self.pump(state))
        try:
            while state["produced"] < count and time.time() < deadline:
                if rate <= 0:
                    # A chunk starts only when all its events fit in one frame.
                    full = len(self.queue) > MAX_ROWS - 2 * FAST_CHUNK
                    if full or self.backlog() > HIGH_WATER:
                        await asyncio.sleep(0.001)
                        continue
                    for _ in range(min(FAST_CHUNK, count - state["produced"])):
                        state["produced"] += 1
                        self.publish(run, state["produced"], state)
                    await asyncio.sleep(0)
                    continue
                due = min(count, int((time.time() - start) * rate) + 1)
                while state["produced"] < due:
                    state["produced"] += 1
                    self.publish(run, state["produced"], state)
                await asyncio.sleep(min(0.01, state["produced"] / rate - (time.time() - start)))
            state["finished"] = time.time()
            await asyncio.wait_for(self.drained(), 30)
        finally:
            state["finished"] = state["finished"] or time.time()
            pump.cancel()

    async def drained(self) -> None:
        while self.queue:
            await asyncio.sleep(0.005)

    async def pump(self, state: dict[str, Any]) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            pacer = Pacer()  # as the dashboard's pump: short pauses after a lull
            while self.queue:
                if state["mode"] == "event":
                    self.send([self.queue.popleft()], state)
                    await asyncio.sleep(0)
                    continue
                started = time.perf_counter()
                batch = list(self.queue)
                self.queue.clear()
                self.send(batch, state)
                cost = time.perf_counter() - started
                await asyncio.sleep(pacer.after(len(batch), started, cost, self.window))

    # -- HTTP control ------------------------------------------------------------

    def control(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        def arg(name: str, default: str) -> str:
            return query.get(name, [default])[0]

        run = int(arg("run", "0"))
        if path == "/__bench__/produce":
            if self.task is not None and not self.task.done():
                return 409, {"error": "a producer is still running"}
            self.queue.clear()
            state: dict[str, Any] = {
                "run": run, "rate": float(arg("rate", "0")), "count": int(arg("count", "1000")),
                "seconds": float(arg("seconds", "3")), "mode": arg("mode", "batch"),
                "produced": 0, "dropped": 0, "started": 0.0, "finished": 0.0,
            }
            self.runs[run] = state
            self.task = asyncio.get_running_loop().create_task(self.produce(state))
            return 200, self.status(state)
        if path == "/__bench__/status" and run in self.runs:
            return 200, self.status(self.runs[run])
        return 404, {"error": "unknown bench path or run"}

    def status(self, state: dict[str, Any]) -> dict[str, Any]:
        end = state["finished"] or time.time()
        started = state["started"] or time.time()
        return {
            "run": state["run"],
            "produced": state["produced"],
            "done": bool(state["finished"]),
            "achieved_rate": state["produced"] / (end - started) if end > started else 0.0,
            "publisher_dropped": state["dropped"],
            "error": None,
        }

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if not url.path.startswith("/__bench__/"):
            return None
        status, body = self.control(url.path, parse_qs(url.query))
        response = connection.respond(HTTPStatus(status), json.dumps(body))
        response.headers["Content-Type"] = "application/json"
        return response

    async def handler(self, connection: ServerConnection) -> None:
        if urlsplit(connection.request.path).path != "/socket/":  # type: ignore[union-attr]
            await connection.close(1008)
            return
        self.clients.add(connection)
        try:
            await connection.wait_closed()
        finally:
            self.clients.discard(connection)


async def main(port: int, rows_path: Path, window: float) -> None:
    bare = Bare(json.loads(rows_path.read_text())["rows"], window)
    async with serve(
        bare.handler, "127.0.0.1", port, process_request=bare.process_request,
        compression=None, ping_interval=None, max_size=None,
    ) as server:
        await server.serve_forever()


if __name__ == "__main__":
    window = float(sys.argv[3]) if len(sys.argv) > 3 else WINDOW
    asyncio.run(main(int(sys.argv[1]), Path(sys.argv[2]), window))
