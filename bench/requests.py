"""Subprocess: what the dashboard adds to a request, and to a bulk delete.

Run as `python -m bench.requests OUT.json --rounds R` against the bench database
(prepared). Four request kinds through Django's test Client, in this process:
GET /blog/, GET /blog/<slug>/, GET the admin's post changelist (100 posts), POST
the admin's add form. Modes take turns in each round: `off` (the dashboard's hook
uninstalled: Django's own Signal methods), `on` (installed, nobody watching) and
`watched` (a dashboard open in this process). Each figure is the median over the
rounds of a kind's mean ms per request, and each ratio the median of the rounds' own
ratios to their `off` run (this kind of machine drifts 2x between minutes).

Then a bulk delete: `Comment.objects.all().delete()` of 20,000 rows, with and
without the hook, and whether Django took its fast path (one DELETE) both times.
"""

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path
from typing import Any, NamedTuple

import django

KINDS = ("blog list", "blog post", "admin changelist", "admin add")
# Each run: at least n requests and MIN_SECONDS of them, then until the pipeline has
# settled (the last window's events described and stored: ~5 ms, counted). 30 blog
# posts alone take ~70 ms, and that one settling, a fixed cost per run, would read
# as 8% a request: no server settles every 30 requests.
MIN_SECONDS = 0.5
# Every post the admin add makes has a title of its own: a title seen before costs
# blog/signals.py's fill_slug one more query per earlier copy (it looks for a free
# slug), so the later a run came, the slower its adds, whatever its mode.
_added = itertools.count()
MODES = ("off", "on", "watched", "floor", "reference", "sentry", "busy")  # peers: bench/peers.py
SAVES_MODE = {"off": "disconnected", "on": "connected"}  # the same modes' names in bench/saves.py


def modes() -> tuple[str, ...]:
    from bench import peers

    return tuple(m for m in MODES if m != "sentry" or peers.sentry_available())


def setup() -> tuple[Any, str]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from bench import saves
    from blog.models import Comment, Post

    # The posts the save bench left (~100,000): the changelist's date hierarchy and
    # filters would time the database, not a request (0.66 s against 0.07 s).
    saves.set_receivers(False)
    with connection.cursor() as cursor:
        for model in (Post.tags.through, Comment, Post):
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(model._meta.db_table)}")
    user = get_user_model().objects.filter(is_superuser=True).first()
    Post.objects.bulk_create(
        [Post(title=f"bench {i}", slug=f"bench-{i}", body="b" * 500, status="published")
         for i in range(100)]
    )  # fmt: skip
    client = Client(HTTP_HOST="localhost")  # an allowed host: real pages, not 400s
    client.force_login(user)
    return client, "bench-0"


def request(client: Any, kind: str, slug: str) -> None:
    if kind == "blog list":
        response = client.get("/blog/")
    elif kind == "blog post":
        response = client.get(f"/blog/{slug}/")
    elif kind == "admin changelist":
        response = client.get("/admin/blog/post/")
    else:
        response = client.post("/admin/blog/post/add/", {
            "title": f"added {next(_added)}", "slug": "", "body": "b", "status": "draft",
            "comments-TOTAL_FORMS": "0", "comments-INITIAL_FORMS": "0",
        })  # fmt: skip
    if response.status_code not in (200, 302):  # a bench of error pages measures nothing
        raise RuntimeError(f"{kind}: HTTP {response.status_code}")
    # "The post was added" is read by the page the browser is sent to, which the client
    # does not follow: left in its cookie jar, the messages piled up, overflowed into the
    # session, and every later add decoded and rewrote them all until the changelist, which
    # shows them, emptied them once a round (an add went from 14 to 26 ms over 600 adds:
    # the later a mode ran in a round, the dearer its adds).
    client.cookies.pop("messages", None)


def switches() -> int | None:
    """This thread's voluntary context switches so far (Linux), else None: each is a wait,
    most often for the GIL another thread took (drift-free, where time is not)."""
    try:
        with open("/proc/thread-self/status") as status:
            for line in status:
                if line.startswith("voluntary_ctxt_switches:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Run(NamedTuple):
    ms: float  # per request, settling included
    switches: float | None  # the request thread's voluntary context switches per request
    frames: float  # frames relayed per request


def one_run(client: Any, slug: str, kind: str, mode: str, n: int) -> Run:
    from bench import saves
    from dashboard.live.frames import frames
    from dashboard.live.handoff import handoff

    context = saves.in_mode(SAVES_MODE.get(mode, mode))
    handoff.reset()
    with context:
        request(client, kind, slug)  # warm
        handoff.flush(timeout=10)
        saves.settle(handoff)
        saves.even_start()
        started, waits, sent = time.perf_counter(), switches(), frames.sent
        done = 0
        while done < n or time.perf_counter() - started < MIN_SECONDS:
            request(client, kind, slug)
            done += 1
        handoff.flush(timeout=10)  # until what the requests left behind is done too
        saves.settle(handoff)
        seconds = time.perf_counter() - started
        now = switches()
        run = Run(
            seconds / done * 1000,
            None if waits is None or now is None else (now - waits) / done,
            (frames.sent - sent) / done,
        )
    handoff.reset()
    return run


def restart_wal() -> None:
    """Every round from an empty write-ahead log. A round writes about 500 pages of it
    (the rows, then their delete), so with off and on alternating, SQLite's automatic
    checkpoint (at 1,000 pages, run by the commit that crosses it) fell in every "on"
    delete: 16-21 ms against 11-12, none of it the dashboard's doing."""
    from django.db import connection

    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            busy = cursor.fetchone()[0]
        if busy:  # a reader held the log: the rounds would not start alike
            raise RuntimeError("could not empty SQLite's write-ahead log (busy)")


def bulk_delete(rows: int) -> dict[str, Any]:
    from django.db.models.deletion import Collector

    from bench import saves
    from blog.models import Comment, Post
    from dashboard.live.handoff import handoff

    post = Post.objects.first()
    result = {}
    for mode in ("off", "on", "off", "on"):
        saves.set_receivers(mode == "on")
        restart_wal()
        Comment.objects.bulk_create(
            [Comment(post=post, name="n", body="c") for _ in range(rows)], batch_size=2000
        )
        comments = Comment.objects.all()
        fast = Collector(using="default", origin=comments).can_fast_delete(comments)
        # The bulk_create's events described and stored first: they are not the delete's.
        handoff.flush(timeout=10)
        saves.settle(handoff)
        started = time.perf_counter()
        comments.delete()
        result.setdefault(mode, []).append(
            {"ms": (time.perf_counter() - started) * 1000, "fast_path": fast}
        )
        saves.settle(handoff)
    return {m: {"ms": statistics.median(r["ms"] for r in runs),
                "fast_path": all(r["fast_path"] for r in runs)}
            for m, runs in result.items()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=30)
    args = parser.parse_args()
    django.setup()
    from bench import saves

    client, slug = setup()
    measured = modes()
    got: dict[str, dict[str, list[Run]]] = {k: {m: [] for m in measured} for k in KINDS}
    for round_ in range(args.rounds):
        for kind in KINDS:
            for mode in saves.shuffled(measured, len(KINDS) * round_ + KINDS.index(kind)):
                got[kind][mode].append(one_run(client, slug, kind, mode, args.n))
    result: dict[str, Any] = {"kinds": {}}
    for kind in KINDS:
        ms = {m: [r.ms for r in runs] for m, runs in got[kind].items()}
        result["kinds"][kind] = {
            **{f"{m}_ms": statistics.median(ms[m]) for m in measured},
            **{f"{m}_ratio": statistics.median(x / o for x, o in zip(ms[m], ms["off"],
                                                                    strict=True))
               for m in measured if m != "off"},
            **{f"{m}_frames": statistics.median(r.frames for r in got[kind][m])
               for m in ("on", "watched")},
        }  # fmt: skip
        if all(r.switches is not None for m in ("off", "watched") for r in got[kind][m]):
            for m in measured:
                result["kinds"][kind][f"{m}_switches"] = statistics.median(
                    r.switches for r in got[kind][m]  # type: ignore[misc]
                )
    for m in measured[1:]:
        result[f"geomean_{m}"] = statistics.geometric_mean(
            k[f"{m}_ratio"] for k in result["kinds"].values()
        )
    result["bulk_delete"] = bulk_delete(20_000)
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
