"""Bench-only ASGI entry point: the real app, plus a producer of saves inside the server.

daphne serves `bench.server:application`. Everything goes to config.asgi's
application except two bench paths (loopback only, never in the real app):

  GET /__bench__/produce?run=ID&rate=R&count=N&seconds=S  start a producer thread, return
  GET /__bench__/status?run=ID                              JSON: produced so far, done, ...

The producer creates `Post`s through the ORM in a thread of the server process,
paced to R per second (R=0: as fast as it can), stopping after N posts or S
seconds. Each title carries the run, a sequence number and the time of the
save (ns), which the clients read back from the post_save row. Saves that are
due together (the producer fell behind, or R=0), up to 50, share one
transaction, so the rates do not hinge on the disk's commit latency; each save
still fires its own signals. As fast as possible (R=0) means as fast as
frames leave, as for the bare server: a chunk of posts starts only when all
its events still fit in one frame (the dashboard's MAX_ROWS) with those
waiting for the pump, so no row is trimmed. Posts come with their slugs, so
the blog's own slug query (half a create's CPU) stays out of the end-to-end
figures; the save-overhead figures (bench/saves.py) keep it.
"""

import json
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from bench import FAST_CHUNK, probes
from config.asgi import application as django_application  # sets Django up first

probes.install()  # after Django's setup: it imports dashboard modules

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

TICK = 0.01  # seconds: the producer's pacing granularity
CHUNK = 50  # saves in one transaction, at most
PREFIX = "/__bench__/"


def handoff() -> Any:
    from dashboard.live.handoff import handoff

    return handoff


def sent_frames() -> int:
    from dashboard.live.frames import frames

    return frames.sent


class Producer:
    def __init__(self, run: int, rate: float, count: int, seconds: float) -> None:
        self.run, self.rate, self.count, self.seconds = run, rate, count, seconds
        self.produced = 0
        self.started = self.finished = 0.0
        self.error: str | None = None
        self.dropped_before = handoff().dropped
        self.batches_before = sent_frames()
        # CPU per thread group from here on (bench/probes.py); the producer's own is
        # taken by its thread as it ends, since an ended thread's clock is gone.
        self.cpu_before = probes.thread_cpu()
        self.process_cpu_before = time.process_time()
        self.producer_cpu: float | None = None
        self.thread = threading.Thread(target=self._main, name=f"bench-producer-{run}")

    def _main(self) -> None:
        from django.db import connection

        try:
            self._produce()
        except Exception as exc:  # reported through /status
            self.error = repr(exc)
        finally:
            connection.close()
            self.producer_cpu = time.thread_time()
            self.finished = time.time()

    def _create(self, n: int) -> None:
        from django.db import transaction

        from blog.models import Post

        with transaction.atomic():
            for _ in range(n):
                self.produced += 1
                # With its slug: the blog's fill_slug would otherwise run an
                # existence query per post, half of a create's CPU, in the same
                # process (one GIL) as the pipeline measured here.
                Post.objects.create(
                    title=f"bench {self.run} {self.produced} {time.time_ns()}",
                    slug=f"bench-{self.run}-{self.produced}",
                )

    def _produce(self) -> None:
        from django.db import close_old_connections

        from dashboard import conf

        close_old_connections()
        room = conf.get("MAX_ROWS") - 2 * FAST_CHUNK  # queued events a chunk may follow
        self.started = start = time.time()
        deadline = start + self.seconds
        while self.produced < self.count and time.time() < deadline:
            if self.rate <= 0:
                # As the bare server does: as fast as frames leave, so no row is
                # trimmed (a frame carries at most MAX_ROWS rows): a chunk starts
                # only when all its events (two a post) still fit in one frame.
                if len(handoff().queue) > room:
                    time.sleep(0.001)
                    continue
                self._create(min(FAST_CHUNK, self.count - self.produced))
                continue
            due = min(self.count, int((time.time() - start) * self.rate) + 1)
            if due > self.produced:
                self._create(min(CHUNK, due - self.produced))
            else:
                time.sleep(max(0.0, min(TICK, self.produced / self.rate - (time.time() - start))))

    def status(self) -> dict[str, Any]:
        end = self.finished or time.time()
        return {
            "run": self.run,
            "produced": self.produced,
            "done": bool(self.finished),
            "started": self.started,
            "finished": self.finished,
            "achieved_rate": self.produced / (end - self.started) if self.started else 0.0,
            "error": self.error,
            "publisher_dropped": handoff().dropped - self.dropped_before,
            "publisher_batches": sent_frames() - self.batches_before,
            "probes": probes.report(),
            "thread_cpu_s": self.thread_cpu(),
        }

    def thread_cpu(self) -> dict[str, float]:
        """CPU seconds since the run started, per thread group, plus the whole process."""
        spent = probes.cpu_spent(self.cpu_before)
        if self.producer_cpu is not None:  # its thread ended, and recorded its own
            spent["producer"] = self.producer_cpu
        spent.setdefault("producer", 0.0)
        spent["process"] = time.process_time() - self.process_cpu_before
        return {g: round(max(0.0, s), 3) for g, s in spent.items()}


producers: dict[int, Producer] = {}


def handle(path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
    def arg(name: str, default: str) -> str:
        return query.get(name, [default])[0]

    run = int(arg("run", "0"))
    if path == PREFIX + "produce":
        if any(p.thread.is_alive() for p in producers.values()):
            return 409, {"error": "a producer is still running"}
        producer = Producer(
            run, float(arg("rate", "0")), int(arg("count", "1000")), float(arg("seconds", "3"))
        )
        producers[run] = producer
        probes.reset()
        producer.thread.start()
        return 200, producer.status()
    if path == PREFIX + "status" and run in producers:
        return 200, producers[run].status()
    return 404, {"error": "unknown bench path or run"}


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
        await django_application(scope, receive, send)
        return
    status, body = handle(scope["path"], parse_qs(scope.get("query_string", b"").decode()))
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": data})
