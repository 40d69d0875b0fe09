"""Subprocess: how fast Django alone creates posts the end-to-end producer's way.

Run as `python -m bench.ceiling OUT.json [--seconds S]` against the bench database
(prepared). The dashboard's hook is off (Django's own Signal methods): chunks of
FAST_CHUNK posts, each chunk one transaction, slugs given, as bench/server.py's
producer makes them at rate=max, for S seconds in one thread. Posts/s times K is
the most rows any dashboard could deliver to K sockets from that producer: the
bare websockets server (bench/bare.py) renders its rows from templates without
an ORM, so its ceiling is not Django's.
"""

import argparse
import json
import time
from pathlib import Path

import django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    django.setup()
    from django.db import transaction

    from bench import FAST_CHUNK, saves
    from blog.models import Post

    saves.set_receivers(False)
    made, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        with transaction.atomic():
            for _ in range(FAST_CHUNK):
                made += 1
                Post.objects.create(title=f"ceiling {made} {time.time_ns()}",
                                    slug=f"ceiling-{made}-{time.time_ns()}")  # fmt: skip
    seconds = time.perf_counter() - start
    args.out.write_text(json.dumps({"posts_per_s": made / seconds, "posts": made,
                                    "seconds": seconds}))  # fmt: skip


if __name__ == "__main__":
    main()
