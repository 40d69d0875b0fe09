"""Times as the project keeps them: aware in UTC with USE_TZ, naive in TIME_ZONE without."""

import json
from datetime import UTC, datetime

import pytest
from django.test import override_settings

# Run in a process with tests/settings_naive_time.py: the stored times of a Post's save,
# the page that lists them, and the prune by age that compares them.
READ_BACK = """
import json
from datetime import datetime
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from dashboard.models import StoredEvent

rows = StoredEvent.objects.filter(sender="blog.Post").order_by("id")
client = Client(HTTP_HOST="127.0.0.1")
client.force_login(get_user_model().objects.get(username="naive"))
response = client.get("/")
page = response.content.decode()
call_command("prune_events")
print(json.dumps({
    "signals": [r.signal for r in rows],
    "aware": [timezone.is_aware(r.time) for r in rows],
    "behind_now_s": [(datetime.now() - r.time).total_seconds() for r in rows],
    "kept": StoredEvent.objects.filter(sender="blog.Post").count(),
    "status": response.status_code,
    "shown": page.count('data-sender="blog.Post"'),
    "header": 'title="Times in America/New_York">Time <span class="zone">New York</span>' in page,
}))
"""


@pytest.mark.django_db(transaction=True)
def test_without_use_tz_events_are_stored_listed_and_pruned_in_local_time():
    """SQLite refuses an aware time when USE_TZ is False: every event was lost, counted
    as "could not store" in the log."""
    from django.conf import settings

    from tests.test_scale_out import manage

    env = {
        "DATABASE_URL": f"sqlite:///{settings.DATABASES['default']['NAME']}",
        "DJANGO_SETTINGS_MODULE": "tests.settings_naive_time",
    }
    manage("shell", env=env, code=(
        "from django.contrib.auth import get_user_model\n"
        "get_user_model().objects.create_user('naive', is_staff=True, is_superuser=True)\n"
        "from blog.models import Post\n"
        "post = Post.objects.create(title='naive')\n"
        "post.title = 'naive again'; post.save()\n"
    ))  # fmt: skip
    got = json.loads(manage("shell", env=env, code=READ_BACK).splitlines()[-1])
    assert got["signals"] == ["pre_save", "post_save"] * 2
    assert got["aware"] == [False] * 4
    # Local (New York) time, not UTC read as local: hours apart.
    assert all(0 <= behind < 120 for behind in got["behind_now_s"]), got["behind_now_s"]
    assert got["kept"] == 4  # not pruned as a week old
    assert got["status"] == 200 and got["shown"] == 4 and got["header"]


def test_a_moment_is_what_a_datetimefield_holds_in_either_mode():
    from dashboard.core.rows import moment

    seconds = datetime(2026, 7, 1, 12, 0, tzinfo=UTC).timestamp()
    assert moment(seconds) == datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    with override_settings(USE_TZ=False, TIME_ZONE="America/New_York"):
        assert moment(seconds) == datetime(2026, 7, 1, 8, 0)  # EDT, naive


@pytest.mark.django_db(transaction=True)
@override_settings(TIME_ZONE="Asia/Kolkata")  # UTC+5:30, no summer time
def test_times_are_shown_in_time_zone_and_say_which(staff_client):
    """The admin shows times in TIME_ZONE: the table and the detail did in UTC and in the
    current zone, one labelled "UTC" either way."""
    from dashboard.core.rows import to_json
    from dashboard.history import store
    from tests.helpers import make_row

    about = {"instance": {"model": "blog.Post", "pk": 7, "str": "x", "fields": {}}}
    row = make_row(seq=41, payload=about, payload_json=to_json(about),
                   time=datetime.now(UTC).replace(hour=12, minute=0, second=0,
                                                  microsecond=250_000))  # fmt: skip
    assert row.time_text == "17:30:00.250"
    store.write([row])
    page = staff_client.get("/").content.decode()
    # The zone's city under "Time" (its whole name ran into the next header), the name
    # in the tooltip.
    assert 'title="Times in Asia/Kolkata">Time <span class="zone">Kolkata</span></th>' in page
    assert ">17:30:00.250</time>" in page
    detail = staff_client.get(row.url).content.decode()
    assert "17:30:00.250000 Asia/Kolkata</dd>" in detail
    # A zone a request activated (a user's own, by the host's middleware) changes none of
    # them: the live rows are rendered where no request is, in TIME_ZONE.
    from django.utils import timezone

    with timezone.override("Asia/Tokyo"):
        assert "17:30:00.250000 Asia/Kolkata</dd>" in staff_client.get(row.url).content.decode()
        timeline = staff_client.get("/objects/blog.Post/7/").content.decode()
        assert ">" + row.time.strftime("%Y-%m-%d") + " 17:30:00</time>" in timeline
