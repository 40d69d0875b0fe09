"""The dashboard beside sentry-sdk's Django integration, the real one, as a project has it.

sentry-sdk patches Django's cursor methods and wraps every receiver anew on each send
(signal spans): the ORM's writes must not show a second time as raw SQL, and receivers
are named and located as themselves. In a process of its own: sentry-sdk's patches
cannot be taken back, and would stay for every later test.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = r"""
import json

import django
import sentry_sdk
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.transport import Transport


class Discard(Transport):
    def capture_envelope(self, envelope):
        return None


sentry_sdk.init(
    dsn="https://public@sentry.invalid/1", transport=Discard, traces_sample_rate=1.0,
    integrations=[DjangoIntegration(signals_spans=True)], default_integrations=False,
)
django.setup()
from django.core.management import call_command
from django.db import connection, connections

for alias in connections:
    call_command("migrate", database=alias, verbosity=0)

from blog.models import Post
from dashboard.core.events import Event
from dashboard.live.handoff import handoff

events = []
handoff.publish = events.append  # what the capture hands off, here
with sentry_sdk.start_transaction(op="test", name="beside sentry"):
    post = Post.objects.create(title="Beside sentry")
    post.title = "Saved again"
    post.save()
    Post.objects.filter(pk=post.pk).update(body="through the ORM")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE blog_post SET body = 'raw' WHERE id = %s", [post.pk])
captured = [e for e in events if isinstance(e, Event)]
pre_save = next(e for e in captured if e.signal == "pre_save")
print(json.dumps({
    "events": [[e.signal, e.sender] for e in captured],
    "receivers": [list(t[:2]) for t in pre_save.named["timed"]],
}))
"""


def test_orm_writes_beside_sentry_sdk_are_shown_once_and_receivers_as_themselves(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    events = [tuple(e) for e in found["events"]]
    assert [e for e in events if e[0].startswith("cursor.")] == [("cursor.execute", "blog.Post")]
    assert events.count(("pre_save", "blog.Post")) == 2
    assert ("QuerySet.update", "blog.Post") in events
    (name, where), = found["receivers"]
    assert name == "blog.signals.fill_slug" and where.startswith(str(ROOT / "blog" / "signals.py"))
