import os, sys, time, statistics
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
import django; django.setup()
from django.db import transaction
from blog.models import Post
from bench import saves, peers
from dashboard.live.handoff import handoff
N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
def run(mode):
    saves.set_receivers(mode in ("capture-only",))
    handoff.reset()
    ctx = {"capture-only": saves.capture_only, "reference": peers.reference, "floor": peers.floor}.get(mode)
    import contextlib
    with (ctx() if ctx else contextlib.nullcontext()):
        t = time.thread_time()
        with transaction.atomic():
            for i in range(N):
                Post.objects.create(title=f"c {i}")
        return (time.thread_time() - t) / N * 1e6
res = {m: [] for m in ("off", "floor", "reference", "capture-only")}
run("off")
for r in range(int(sys.argv[2]) if len(sys.argv) > 2 else 5):
    for m in res:
        res[m].append(run(m))
off = res["off"]
for m, v in res.items():
    print(f"{m:14s} {statistics.median(v):7.1f} us  ratio {statistics.median(a/b for a,b in zip(v,off)):.3f}")
