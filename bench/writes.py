"""What detecting writes that send no signal costs, and counting each receiver's SQL.

    .venv/bin/python -m bench.writes [--n 1000] [--rounds 5]

A few seconds on a throwaway SQLite database (DATABASE_URL, else a temporary file).
Prints µs per operation without, then the median of each round's own difference and
ratio with (rounds alternate which runs first), for:

- the raw-SQL write detector (capture/writes.py: an execute wrapper on each
  connection), around `Post.objects.create` with the dashboard's Signal hook off, so
  that the detector is all that differs: every ORM write pays its check (the
  statement's first word, then the frames above the cursor: the ORM's, so no event);
- the same detector around a raw `SELECT` (a read: its first word only), and a raw
  `UPDATE` through a cursor, which it reports as an
  event (the capture of that event included; events are dropped at the hand-off, so
  the pipeline after it, bench/saves.py's to measure, is left out);
- counting each receiver's own SQL (capture/timing.py), around `Post.objects.create`
  with the Signal hook on (the blog's pre_save receiver runs one query).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def per_op(fn: Callable[[int], None], n: int) -> float:
    from django.db import transaction

    with transaction.atomic():
        started = time.perf_counter()
        for i in range(n):
            fn(i)
        elapsed = time.perf_counter() - started
        transaction.set_rollback(True)  # the same table for every round
    return elapsed / n * 1e6


def compare(label: str, fn: Callable[[int], None], on: Callable[[], None],
            off: Callable[[], None], n: int, rounds: int) -> None:  # fmt: skip
    """Each round runs both, in turn first (drift between minutes is large here): the
    median of each round's own difference and ratio."""
    deltas, ratios, without_all = [], [], []
    per_op(fn, n // 4)  # warm
    for r in range(rounds):
        order = ((off, "off"), (on, "on")) if r % 2 == 0 else ((on, "on"), (off, "off"))
        got = {}
        for switch, name in order:
            switch()
            got[name] = per_op(fn, n)
        deltas.append(got["on"] - got["off"])
        ratios.append(got["on"] / got["off"])
        without_all.append(got["off"])
    b, d, q = statistics.median(without_all), statistics.median(deltas), statistics.median(ratios)
    print(f"{label:<58} {b:8.1f} µs  {d:+6.1f} µs (x{q:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="operations per run")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    tmp = tempfile.mkdtemp(prefix="bench-writes-")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp}/writes.sqlite3")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from blog.models import Post
    from dashboard.capture import dispatch, timing, writes
    from dashboard.live.handoff import handoff

    call_command("migrate", interactive=False, verbosity=0)
    # The capture alone: events are made and handed off, and dropped there (the pipeline
    # after the hand-off, in this process or the sidecar, is bench/saves.py's to measure).
    handoff.publish = lambda event: None  # type: ignore[method-assign]
    connection.ensure_connection()
    post = Post.objects.create(title="raw target", slug="raw-target")

    def create(i: int) -> None:
        Post.objects.create(title=f"bench {i}", slug=f"bench-{i}-{time.perf_counter_ns()}")

    def raw_update(i: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE blog_post SET body = %s WHERE id = %s", [str(i), post.pk])

    def raw_select(i: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT body FROM blog_post WHERE id = %s", [post.pk])

    def drain() -> None:
        handoff.flush()
        handoff.reset()

    print(f"µs per operation without; with: median of {args.rounds} rounds' own difference "
          f"and ratio ({args.n} a run):")  # fmt: skip
    dispatch.uninstall()
    detector_on, detector_off = (
        (lambda: writes.watch(connection)),
        (lambda: writes.unwatch(connection)),
    )
    compare("create, Signal hook off: write detector off → on", create,
            detector_on, detector_off, args.n, args.rounds)  # fmt: skip
    compare("raw SELECT through a cursor: detector off → on", raw_select,
            detector_on, detector_off, args.n, args.rounds)  # fmt: skip
    compare("raw UPDATE through a cursor: detector off → on (an event)", raw_update,
            detector_on, detector_off, args.n, args.rounds)  # fmt: skip
    drain()
    dispatch.install()
    writes.watch(connection)
    counting = timing.counting

    class NotCounting:
        """In place of the ContextVar: no receiver's queries are ever counted."""

        def set(self, value: Any) -> None:
            return None

        def get(self) -> None:
            return None

        def reset(self, token: Any) -> None:
            return None

    def counting_off() -> None:
        timing.counting = NotCounting()  # type: ignore[assignment]

    def counting_on() -> None:
        timing.counting = counting

    compare("create, Signal hook on: receivers' SQL counting off → on", create,
            counting_on, counting_off, args.n, args.rounds)  # fmt: skip
    counting_on()
    drain()


if __name__ == "__main__":
    main()
