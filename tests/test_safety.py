"""Secrets stay on the server; hostile input renders as text; long values are cut."""

from django.conf import settings
from django.test import override_settings

from blog.models import Post
from dashboard.core.events import InstanceSnapshot
from dashboard.core.payload import MASK, describe, summarize
from tests.frames import collect, rows
from tests.helpers import in_thread


async def test_hostile_title_arrives_as_text(dashboard, staff_user):
    await in_thread(Post.objects.create, title="<script>alert(1)</script>", author=staff_user)
    frames = await collect(dashboard)
    raw = "".join(f.raw for f in frames)
    assert "<script>alert(1)</script>" not in raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in raw
    saved = next(r for r in rows(frames) if r.signal == "post_save")
    assert saved.payload["instance"]["str"] == "<script>alert(1)</script>"  # as text


async def test_secret_named_setting_is_masked(dashboard):
    def change() -> None:
        with (
            override_settings(PAYMENT_API_TOKEN="tok_live_123456"),
            override_settings(SECRET_KEY="not-the-real-one-but-still-secret"),
        ):
            pass

    await in_thread(change)
    frames = await collect(dashboard)
    raw = "".join(f.raw for f in frames)
    assert "tok_live_123456" not in raw
    assert "not-the-real-one" not in raw
    assert settings.SECRET_KEY not in raw
    changed = [r for r in rows(frames) if r.signal == "setting_changed"]
    assert {r.payload["setting"] for r in changed} == {"PAYMENT_API_TOKEN", "SECRET_KEY"}
    assert all(r.payload["value"] == MASK for r in changed)


async def test_session_rows_hide_the_session_key(dashboard, staff_user):
    from django.test import Client

    client = Client()
    await in_thread(
        client.post, "/admin/login/", {"username": "staff", "password": "staff-pass-123"}
    )
    frames = await collect(dashboard)
    session_key = client.cookies["sessionid"].value
    assert session_key not in "".join(f.raw for f in frames)
    assert "staff-pass-123" not in "".join(f.raw for f in frames)
    session_rows = [r for r in rows(frames) if r.sender == "sessions.Session"]
    assert session_rows, "logging in saves a session"
    assert all(r.payload["instance"]["pk"] == MASK for r in session_rows)


def test_nested_secret_keys_are_masked_and_long_values_cut():
    payload = describe(
        {
            "setting": "DATABASES",
            "value": {"default": {"NAME": "db", "PASSWORD": "pg-pass", "OPTIONS": {"sslkey": "k"}}},
            "instance": InstanceSnapshot(
                "blog.Post",
                1,
                "x" * 1000,
                {"title": "y" * 1000, "api_key": "abc", "_state": object()},
            ),
            "cookie": "c=1",
        }
    )
    assert payload["value"]["default"]["PASSWORD"] == MASK
    assert payload["value"]["default"]["OPTIONS"]["sslkey"] == MASK
    assert payload["value"]["default"]["NAME"] == "db"
    assert payload["cookie"] == MASK
    fields = payload["instance"]["fields"]
    assert fields["api_key"] == MASK
    assert "_state" not in fields
    assert len(fields["title"]) == 200 and fields["title"].endswith("…")
    assert len(payload["instance"]["str"]) == 200
    assert len(summarize(payload)) <= 200
