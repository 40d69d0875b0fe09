"""Secrets stay on the server; hostile input renders as text; long values are cut."""

import pytest
from django.conf import settings
from django.test import override_settings

from blog.models import Post
from dashboard.core.events import InstanceSnapshot
from dashboard.core.payload import MASK, clean, describe, summarize
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


# -- masking by value: secrets inside any text ----------------------------------------

MASKED_BY_VALUE = [
    ("redis://:redis-pw@10.0.0.5:6379/0", "redis-pw", "redis://•••••@10.0.0.5:6379/0"),
    ("postgres://app:pg-pw@db:5432/app", "pg-pw", "postgres://•••••@db:5432/app"),
    ("https://f00dfeedcafe@o1.ingest.sentry.io/42", "f00dfeedcafe", None),
    ("GET with Authorization: Bearer eyJhbGc.abc.def", "eyJhbGc", None),
    ("Authorization: Token 9f8e7d6c", "9f8e7d6c", None),
    ("retry with bearer s3cr3t-t0ken-value", "s3cr3t-t0ken-value", None),
    ("/blog/?page=2&token=tok-123&q=x", "tok-123", "/blog/?page=2&token=•••••&q=x"),
    ("/hook/?api_key=K-9&sig=abcd", "K-9", None),
    ("/hook/?api_key=K-9&sig=abcd", "abcd", None),
    ("oauth callback ?code=one-time-code&state=s", "one-time-code", None),
    ("login failed: password=hunter22 for bob", "hunter22", None),
    ("KeyError: {'password': 'hunter22', 'user': 'bob'}", "hunter22", None),
]


@pytest.mark.parametrize(("value", "secret", "expected"), MASKED_BY_VALUE)
def test_secrets_inside_a_value_are_masked(value, secret, expected):
    payload = describe({"note": value, "exception": {"type": "E", "message": value}})
    assert secret not in payload["note"] and MASK in payload["note"]
    assert secret not in payload["exception"]["message"]
    if expected:
        assert payload["note"] == expected


@pytest.mark.parametrize(
    "value",
    ["bob@example.com wrote", "/blog/?page=2&q=key", "title=hello", "12:30 · blog.Post #1"],
)
def test_text_without_secrets_is_left_alone(value):
    assert clean(value) == value == describe({"note": value})["note"]


def test_a_credential_past_the_value_limit_is_masked_before_it_is_cut():
    value = "x" * 170 + " redis://:redis-pw@host/0 " + "y" * 100
    note = describe({"note": value})["note"]
    assert "redis://•••••@host" in note and "redis-" not in note and len(note) == 200


@pytest.mark.parametrize("char", ["\u202e", "\u2066", "\u200b", "\ufeff", "\x1b", "\x85"])
def test_bidi_and_invisible_characters_are_written_out_not_obeyed(char):
    escaped = f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"
    user = InstanceSnapshot("auth.User", 1, f"a{char}b", {"username": f"a{char}b"})
    payload = describe({"path": f"/blog/{char}gnp.exe", "instance": user})
    assert payload["path"] == f"/blog/{escaped}gnp.exe"
    assert payload["instance"]["str"] == payload["instance"]["fields"]["username"] == f"a{escaped}b"
    assert char not in summarize(payload)


async def test_a_secret_inside_a_value_reaches_no_page_nor_export(dashboard, staff_client):
    from blog.signals import post_viewed
    from dashboard.models import StoredEvent
    from tests.helpers import settle

    secret = "redis-pw-6f1c"

    def send() -> None:
        post = Post.objects.create(title="dsn")
        post_viewed.send(
            sender=Post, post=post, request=None,
            note=f"cache at redis://:{secret}@10.0.0.5:6379/0?token={secret}",
        )  # fmt: skip
        settle()

    await in_thread(send)
    frames = await collect(dashboard)
    assert secret not in "".join(f.raw for f in frames)
    viewed = await in_thread(StoredEvent.objects.get, signal="post_viewed")
    assert MASK in viewed.payload["note"]

    def body(url: str) -> bytes:
        response = staff_client.get(url)
        assert response.status_code == 200, url
        return b"".join(response.streaming_content) if response.streaming else response.content

    for url in (f"/events/{viewed.key}/", "/export.ndjson", "/export.csv", "/"):
        assert secret.encode() not in await in_thread(body, url), url
