"""`manage.py simulate`: realistic blog traffic at a given rate, for a given time."""

import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from blog.models import Comment, Post
from dashboard.models import StoredEvent
from tests.helpers import settle, wait_for


@pytest.fixture
def blog(transactional_db):
    user = get_user_model().objects.create_superuser("admin", password="x-pass-123")
    Post.objects.create(title="Published", status="published", author=user)
    return user


def simulate(*args: str) -> str:
    out = io.StringIO()
    call_command("simulate", *args, stdout=out)
    return out.getvalue()


def test_in_process_traffic_at_the_rate_asked_with_a_progress_line(blog):
    output = simulate("--in-process", "--rate", "25", "--duration", "6", "--seed", "16",
                      "--errors", "5")  # fmt: skip
    # A progress line while it runs (every 5 s without a terminal), a summary at the end.
    progress = [line for line in output.splitlines() if line.startswith("[")]
    assert progress and "requests" in progress[0] and "last:" in progress[0]
    done = re.search(r"Done: \[\s*[\d.]+/6 s\] (\d+) requests \(([\d.]+)/s\)", output)
    assert done, output
    assert int(done[1]) == 150 and 22 <= float(done[2]) <= 26
    assert re.search(r"answers 2xx/3xx \d+, 4xx 0, 5xx [1-9]", output)  # the odd error

    settle()
    stored = StoredEvent.objects
    # Readers, editors (through the admin), comments and the odd error, as signals.
    assert stored.filter(signal="post_viewed").exists()
    assert stored.filter(signal="post_save", sender="blog.Comment").exists()
    assert stored.filter(signal="post_save", sender="admin.LogEntry").exists()
    assert stored.filter(signal="got_request_exception").exists()
    assert stored.filter(signal="request_finished").count() >= 150
    assert Post.objects.filter(title__startswith="Simulated: ").exists()
    assert Comment.objects.exists()
    # Editors touch their own posts only.
    assert Post.objects.filter(title="Published").exists()


def test_against_a_server_its_events_are_captured_there(blog, server):
    settle()
    before = StoredEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    output = simulate("--url", server.url, "--rate", "20", "--duration", "2", "--seed", "1")
    assert re.search(r"Done: .* 40 requests .* 4xx 0", output), output
    settle()
    finished = StoredEvent.objects.filter(signal="request_finished")
    # The server stores its own events, a moment after it answered (later on a busy machine).
    wait_for(lambda: finished.count() >= 40, timeout=20, what="the server's 40 requests stored")
    served = set(finished.values_list("process", flat=True))
    assert len(served) == 1  # the server's process, not this one
    paths = {e.payload["request"]["path"] for e in finished}
    assert "/blog/" in paths and any(p.startswith("/admin/blog/post/") for p in paths)
    # Its own reads of the database (which posts there are) keep a connection per worker:
    # a connection_created per request made, shown as this process's, buried the traffic.
    from dashboard.core import keys

    mine = StoredEvent.objects.filter(
        id__gt=before, process=keys.process(), signal="connection_created"
    )
    assert mine.count() <= 4, mine.count()  # --workers' default
    # Its session for the editors is closed at the end.
    from django.contrib.sessions.models import Session

    assert not Session.objects.exists()


def test_nothing_to_talk_to_is_said_plainly(blog):
    with pytest.raises(CommandError, match=r"Nothing answers at http://127\.0\.0\.1:9"):
        simulate("--url", "http://127.0.0.1:9", "--duration", "1")
    with pytest.raises(CommandError, match="positive"):
        simulate("--in-process", "--rate", "0")
