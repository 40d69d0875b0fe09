import time, pickle
import django; django.setup()
from django.db import transaction
from blog.models import Post
from bench import saves
from dashboard.live.handoff import handoff
from dashboard.sidecar import wire
got = []
async def keep(batch):
    got.extend(batch); return False
saves.set_receivers(True)
handoff._hand_on = keep
with transaction.atomic():
    for i in range(1000): Post.objects.create(title=f"k {i}")
handoff.flush()
print(len(got))
import copy
for label, fn in [("portable", lambda b: [wire.portable(e) for e in b]), ]:
    b = got
    t = time.perf_counter(); items = fn(b); dt = time.perf_counter() - t
    print(label, dt / len(b) * 1e6, "us/event")
t = time.perf_counter(); data = pickle.dumps(items, 5); dt = time.perf_counter() - t
print("pickle", dt / len(items) * 1e6, "us/event", len(data) / len(items), "bytes/event")
t = time.perf_counter(); pickle.loads(data); print("unpickle", (time.perf_counter()-t)/len(items)*1e6)
print(items[1])
from dataclasses import fields as dfields
from dashboard.core.events import Event, InstanceSnapshot
names = [f.name for f in dfields(Event)]
def flat(e):
    raw = {k: (v.label, v.pk, v.text, v.fields) if type(v) is InstanceSnapshot else v for k, v in e.raw.items()}
    return tuple(raw if n == "raw" else getattr(e, n) for n in names)
t = time.perf_counter(); fl = [flat(e) for e in items]; d1 = time.perf_counter()-t
t = time.perf_counter(); data = pickle.dumps(fl, 5); dt = time.perf_counter() - t
print("flat", d1/len(items)*1e6, "pickle flat", dt / len(items) * 1e6, "us/event", len(data) / len(items))
def flat2(e):
    raw = {k: (v.label, v.pk, v.text, {fk: (fv if type(fv) in PL else str(fv)) for fk, fv in v.fields.items()}) if type(v) is InstanceSnapshot else v for k, v in e.raw.items()}
    return tuple(raw if n == "raw" else getattr(e, n) for n in names)
from dashboard.capture.snapshot import PLAIN_TYPES as PL
t = time.perf_counter(); fl = [flat2(e) for e in items]; d1 = time.perf_counter()-t
t = time.perf_counter(); data = pickle.dumps(fl, 5); dt = time.perf_counter() - t
print("flat2", d1/len(items)*1e6, "pickle flat2", dt / len(items) * 1e6, "us/event", len(data) / len(items))
