"""dashboard.core.payload on its own: snapshots in, the masked, cut, readable payload out.

No database and no pipeline: each test builds the snapshots a receiver would have
taken (dashboard.core.events) and checks one behaviour of describing them.
"""

import functools
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.test import override_settings

from dashboard.core.events import Event, InstanceSnapshot, ReceiverTiming, RequestSnapshot
from dashboard.core.payload import (
    MASK,
    MAX_ITEMS,
    NO_SENDER,
    describe,
    describe_event,
    describe_instance,
    diff,
    name_receivers,
    not_run,
    receiver_info,
    summarize,
)
from dashboard.core.quiet import quiet_block
from dashboard.core.rows import Row, to_json
from tests.helpers import agent

LIMIT = 200  # the default VALUE_LIMIT


@contextmanager
def value_limit(limit: int):
    """DASHBOARD["VALUE_LIMIT"] overridden, without capturing its own setting_changed."""
    with quiet_block(), override_settings(DASHBOARD={"VALUE_LIMIT": limit}):
        yield


def post(**fields) -> InstanceSnapshot:
    return InstanceSnapshot("blog.Post", 1, "A post", fields)


# -- describe: masking by name -------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["password", "secret", "token", "api_key", "sessionid", "csrfmiddlewaretoken",
     "HTTP_COOKIE", "pwd", "signature", "salt", "private_key", "PASSWORD"],
)  # fmt: skip
def test_describe_masks_a_value_whose_name_looks_secret(name):
    assert describe({name: "s3cret-value"}) == {name: MASK}


def test_describe_keeps_values_whose_names_are_plain():
    raw = {"title": "Hello", "created": True, "n": 3, "ratio": 0.5, "nothing": None}
    assert describe(raw) == raw


def test_describe_masks_secret_keys_inside_nested_dicts():
    payload = describe({"value": {"default": {"NAME": "db", "OPTIONS": {"PASSWORD": "pg"}}}})
    assert payload == {"value": {"default": {"NAME": "db", "OPTIONS": {"PASSWORD": MASK}}}}


def test_describe_masks_secret_keys_in_dicts_inside_lists():
    payload = describe({"items": [{"token": "t", "n": 1}, "plain"]})
    assert payload == {"items": [{"token": MASK, "n": 1}, "plain"]}


def test_describe_masks_a_whole_list_under_a_secret_name():
    assert describe({"tokens": ["a", "b"]}) == {"tokens": MASK}


def test_describe_keeps_the_first_max_items_of_a_list_or_dict():
    payload = describe({"items": list(range(50)), "map": {f"k{i}": i for i in range(50)}})
    assert payload["items"] == list(range(MAX_ITEMS))
    assert list(payload["map"]) == [f"k{i}" for i in range(MAX_ITEMS)]


def test_describe_shows_other_values_as_text():
    assert describe({"amount": Decimal("1.50"), "day": date(2026, 1, 2)}) == {
        "amount": "1.50",
        "day": "2026-01-02",
    }


def test_describe_shows_a_request_as_its_method_and_path():
    assert describe({"request": RequestSnapshot("POST", "/admin/")}) == {
        "request": {"method": "POST", "path": "/admin/"}
    }


# -- describe: long values -----------------------------------------------------------


def test_describe_cuts_a_long_value_at_value_limit_with_an_ellipsis():
    value = describe({"title": "x" * 1000})["title"]
    assert value == "x" * (LIMIT - 1) + "…"


def test_describe_leaves_a_value_of_exactly_value_limit_whole():
    assert describe({"title": "x" * LIMIT})["title"] == "x" * LIMIT


def test_describe_cuts_long_values_nested_in_dicts_and_lists():
    payload = describe({"value": {"a": "y" * 1000}, "items": ["z" * 1000]})
    assert payload["value"]["a"] == "y" * (LIMIT - 1) + "…"
    assert payload["items"][0] == "z" * (LIMIT - 1) + "…"


def test_value_limit_follows_the_dashboard_setting():
    with value_limit(10):
        assert describe({"title": "abcdefghijklmnop"})["title"] == "abcdefghi…"
    assert describe({"title": "abcdefghijklmnop"})["title"] == "abcdefghijklmnop"  # restored


# -- describe: setting_changed -------------------------------------------------------


def test_a_secret_named_setting_has_its_value_masked():
    payload = describe({"setting": "STRIPE_SECRET_KEY", "value": "sk_live_1", "enter": True})
    assert payload == {"setting": "STRIPE_SECRET_KEY", "value": MASK, "enter": True}


def test_a_plain_setting_keeps_its_value():
    payload = describe({"setting": "BLOG_TITLE", "value": "Signals weekly", "enter": True})
    assert payload["value"] == "Signals weekly"


def test_a_secret_named_setting_masks_even_a_structured_value():
    assert describe({"setting": "AUTH_TOKENS", "value": {"a": 1}})["value"] == MASK


# -- describe_instance -----------------------------------------------------------------


def test_describe_instance_names_the_model_pk_and_str():
    described = describe_instance(post(title="Hi"))
    assert described == {"model": "blog.Post", "pk": 1, "str": "A post", "fields": {"title": "Hi"}}


def test_describe_instance_drops_private_attributes():
    fields = describe_instance(post(_state=object(), _prefetched={}, title="Hi"))["fields"]
    assert fields == {"title": "Hi"}


def test_describe_instance_masks_secret_named_fields():
    fields = describe_instance(post(password="pbkdf2$x", api_key="abc", title="Hi"))["fields"]
    assert fields == {"password": MASK, "api_key": MASK, "title": "Hi"}


def test_describe_instance_masks_secrets_inside_structured_fields():
    fields = describe_instance(post(options={"token": "t", "colour": "red"}))["fields"]
    assert fields["options"] == {"token": MASK, "colour": "red"}


def test_describe_instance_masks_all_of_a_secret_looking_model():
    snap = InstanceSnapshot("sessions.Session", "k3y-value", "k3y-value", {"session_data": "x"})
    assert describe_instance(snap) == {
        "model": "sessions.Session",
        "pk": MASK,
        "str": MASK,
        "fields": {},
    }


def test_describe_instance_shows_dates_as_strings():
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    fields = describe_instance(post(published=moment, day=date(2026, 1, 2)))["fields"]
    assert fields == {"published": "2026-01-02 03:04:05+00:00", "day": "2026-01-02"}


def test_aware_times_are_shown_in_time_zone_as_the_admin_shows_them():
    """A time read from the database (UTC) beside one from a form (the zone's) read an
    hour apart in Paris: "10:30:00+01:00" next to "07:53:32+00:00"."""
    from datetime import timedelta
    from datetime import timezone as fixed

    from django.test import override_settings

    read = datetime(2026, 1, 2, 9, 30, tzinfo=UTC)
    typed = datetime(2026, 1, 2, 10, 30, tzinfo=fixed(timedelta(hours=1)))
    with override_settings(TIME_ZONE="Europe/Paris"):
        fields = describe_instance(post(published=read))["fields"]
        assert fields == {"published": "2026-01-02 10:30:00+01:00"}
        assert describe({"when": read, "naive": datetime(2026, 1, 2, 9, 30)}) == {
            "when": "2026-01-02 10:30:00+01:00", "naive": "2026-01-02 09:30:00",
        }  # fmt: skip
        changes = diff({"published": read}, post(published=typed))
        assert changes == []  # the same moment
        later = diff({"published": read}, post(published=typed + timedelta(hours=1)))
        assert later == [{"field": "published", "old": "2026-01-02 10:30:00+01:00",
                          "new": "2026-01-02 11:30:00+01:00"}]  # fmt: skip


def test_describe_instance_cuts_long_fields_and_str():
    snap = InstanceSnapshot("blog.Post", 1, "s" * 1000, {"body": "b" * 1000})
    described = describe_instance(snap)
    assert described["str"] == "s" * (LIMIT - 1) + "…"
    assert described["fields"]["body"] == "b" * (LIMIT - 1) + "…"


def test_describe_instance_field_cut_follows_the_dashboard_setting():
    with value_limit(5):
        assert describe_instance(post(body="abcdefgh"))["fields"]["body"] == "abcd…"


def test_an_instance_kwarg_is_described_as_an_instance():
    assert describe({"instance": post(title="Hi")})["instance"]["fields"] == {"title": "Hi"}


# -- summarize: one branch each ------------------------------------------------------

INSTANCE = {"model": "blog.Post", "pk": 1, "str": "Hi", "fields": {}}


@pytest.mark.parametrize("key", ["instance", "post", "user"])
def test_summary_names_the_object(key):
    assert summarize({key: INSTANCE}) == "blog.Post #1 “Hi”"


def test_summary_names_the_instance_before_other_objects():
    other = {**INSTANCE, "model": "auth.User", "str": "ada"}
    assert summarize({"user": other, "instance": INSTANCE}) == "blog.Post #1 “Hi”"
    unsaved = {**INSTANCE, "pk": None}  # a create's pre_save
    assert summarize({"instance": unsaved}) == "blog.Post (new) “Hi”"


def test_summary_of_a_finished_request_has_status_and_duration():
    payload = {"request": {"method": "GET", "path": "/blog/"}, "status": 200, "duration_ms": 1.5}
    assert summarize(payload) == "GET /blog/ → 200 · 1.5 ms"


def test_summary_of_a_started_request_is_its_method_and_path():
    assert summarize({"request": {"method": "GET", "path": "/blog/"}}) == "GET /blog/"


def test_summary_of_a_status_without_a_request():
    assert summarize({"status": 500}) == "→ 500"


def test_summary_says_created():
    assert summarize({"instance": INSTANCE, "created": True}) == "blog.Post #1 “Hi” · created"


def test_summary_leaves_out_created_when_false():
    assert summarize({"instance": INSTANCE, "created": False}) == "blog.Post #1 “Hi”"


def test_summary_lists_update_fields():
    payload = {"instance": INSTANCE, "update_fields": ["title", "body"]}
    assert summarize(payload) == "blog.Post #1 “Hi” · fields title, body"


def test_summary_of_an_m2m_change_has_action_model_and_pks():
    payload = {"action": "post_add", "model": "blog.Tag", "pk_set": [1, 2]}
    assert summarize(payload) == "post_add blog.Tag {1, 2}"


def test_summary_of_an_m2m_clear_has_no_pks():
    assert summarize({"action": "pre_clear", "model": "blog.Tag", "pk_set": None}) == (
        "pre_clear blog.Tag {}"
    )


def test_summary_of_a_setting_entered():
    payload = {"setting": "BLOG_TITLE", "value": "Weekly", "enter": True}
    assert summarize(payload) == "BLOG_TITLE = Weekly (enter)"


def test_summary_of_a_setting_left():
    payload = {"setting": "BLOG_TITLE", "value": None, "enter": False}
    assert summarize(payload) == "BLOG_TITLE = None (exit)"


def test_summary_of_a_masked_setting_shows_the_mask():
    payload = describe({"setting": "SECRET_KEY", "value": "x", "enter": True})
    assert summarize(payload) == f"SECRET_KEY = {MASK} (enter)"


def test_summary_of_an_exception():
    payload = {"exception": {"type": "RuntimeError", "message": "boom", "traceback": []}}
    assert summarize(payload) == "RuntimeError: boom"


def test_summary_of_a_connection():
    assert summarize({"connection": {"alias": "default", "vendor": "sqlite"}}) == (
        "default · sqlite"
    )


def test_summary_of_credentials_names_the_user_only():
    payload = describe({"credentials": {"username": "staff", "password": "wrong"}})
    assert summarize(payload) == "credentials staff"


@pytest.mark.parametrize("payload", [{}, {"raw": False, "using": "default"}])
def test_summary_is_a_dash_when_there_is_nothing_to_say(payload):
    assert summarize(payload) == "—"


def test_summary_is_cut_at_value_limit():
    payload = {"instance": {**INSTANCE, "str": "t" * 190}, "update_fields": ["f" * 50]}
    summary = summarize(payload)
    assert len(summary) == LIMIT and summary.endswith("…")


# -- diff ------------------------------------------------------------------------------


def test_diff_lists_only_the_changed_fields():
    changes = diff({"title": "Old", "body": "same"}, post(title="New", body="same"))
    assert changes == [{"field": "title", "old": "Old", "new": "New"}]


def test_diff_ignores_fields_the_saved_instance_does_not_have():
    assert diff({"gone": 1}, post(title="New")) == []


def test_diff_masks_secret_fields_on_both_sides():
    changes = diff({"password": "old-hash"}, post(password="new-hash"))
    assert changes == [{"field": "password", "old": MASK, "new": MASK}]


def test_diff_masks_every_field_of_a_secret_looking_model():
    after = InstanceSnapshot("sessions.Session", "k", "k", {"expire_date": "2026-02-01"})
    changes = diff({"expire_date": "2026-01-01"}, after)
    assert changes == [{"field": "expire_date", "old": MASK, "new": MASK}]


def test_diff_cuts_long_values():
    changes = diff({"body": "a"}, post(body="b" * 1000))
    assert changes[0]["new"] == "b" * (LIMIT - 1) + "…"


@pytest.mark.parametrize("before", [None, {}])
def test_diff_is_empty_without_stored_values(before):
    assert diff(before, post(title="New")) == []


def test_diff_is_empty_without_a_saved_instance():
    assert diff({"title": "Old"}, None) == []


# -- describe_event ------------------------------------------------------------------


def fill_slug(sender, **kwargs):  # a receiver, as the blog has
    return None


def saved_event() -> Event:
    return Event(
        signal="post_save",
        family="model",
        sender="blog.Post",
        raw={"instance": post(title="New", password="h"), "created": False},
        request_id="abc123",
        process="host-1",
        seq=5,
        time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp(),
        origin="blog/admin.py:42 in save_model",
        before={"title": "Old"},
        timings=[ReceiverTiming(fill_slug, 0.0025)],
    )


def test_describe_event_keeps_the_event_s_key_and_names():
    row = describe_event(saved_event())
    assert isinstance(row, Row)
    assert (row.process, row.seq, row.key) == ("host-1", 5, "host-1.5")
    assert (row.signal, row.family, row.sender) == ("post_save", "model", "blog.Post")
    assert row.request_id == "abc123" and row.rolled_back is False and row.id is None


def test_describe_event_time_is_the_event_s_in_utc():
    assert describe_event(saved_event()).time == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_describe_event_payload_is_described_and_its_json_made_once():
    row = describe_event(saved_event())
    assert row.payload["instance"]["fields"] == {"title": "New", "password": MASK}
    assert row.payload_json == to_json(row.payload)


def test_describe_event_summary_is_the_payload_s_and_what_the_update_changed():
    row = describe_event(saved_event())
    assert row.summary == summarize(row.payload, ["title"])
    assert row.summary == "blog.Post #1 “A post” · changed title"


def test_an_update_that_changed_nothing_says_so_in_its_summary():
    event = saved_event()
    event.before = {"title": "New"}  # as saved
    assert describe_event(event).summary == "blog.Post #1 “A post” · nothing changed"


def test_an_update_that_changed_only_its_auto_now_fields_says_nothing_else_changed():
    event = saved_event()
    event.raw["instance"].fields.update(updated="2026-01-02 03:04:06")
    event.before = {"title": "New", "updated": "2026-01-02 03:04:05"}  # blog.Post's auto_now
    summary = describe_event(event).summary
    assert summary == "blog.Post #1 “A post” · nothing changed but updated (auto_now)"


def test_a_save_whose_stored_row_was_not_read_says_nothing_of_changes():
    event = saved_event()
    event.before = None  # an insert, DIFFS off, or the read failed
    assert describe_event(event).summary == "blog.Post #1 “A post”"


def test_describe_event_detail_has_origin_diff_and_receivers():
    detail = describe_event(saved_event()).detail
    assert detail["origin"] == "blog/admin.py:42 in save_model"
    assert detail["diff"] == [{"field": "title", "old": "Old", "new": "New"}]
    assert [r["name"] for r in detail["receivers"]] == ["tests.test_payload.fill_slug"]
    assert detail["receivers"][0]["ms"] == 2.5


def test_describe_event_without_a_request_stores_an_empty_request_id():
    event = saved_event()
    event.request_id = None
    assert describe_event(event).request_id == ""


def test_describe_event_keeps_the_rolled_back_mark():
    event = saved_event()
    event.rolled_back = True
    assert describe_event(event).rolled_back is True


def test_describe_event_drops_the_event_s_snapshots():
    event = saved_event()
    describe_event(event)
    assert (event.raw, event.before, event.timings) == ({}, None, [])


# -- receiver_info ---------------------------------------------------------------------


def test_receiver_info_names_a_function_and_where_it_is():
    info = receiver_info(fill_slug)
    line = fill_slug.__code__.co_firstlineno
    assert info == {
        "name": "tests.test_payload.fill_slug",
        "where": f"{__file__}:{line}",
    }


def test_receiver_info_gives_the_time_in_ms():
    assert receiver_info(fill_slug, 0.0012345)["ms"] == 1.234  # rounded to µs


def test_receiver_info_says_raised_only_when_it_raised():
    assert receiver_info(fill_slug, 0.001, raised=True)["raised"] is True
    assert "raised" not in receiver_info(fill_slug, 0.001)


class Unhashable:
    """A callable object that defines __eq__ but no __hash__: it cannot be cached."""

    def __call__(self, sender, **kwargs):
        return None

    def __eq__(self, other):
        return self is other

    __hash__ = None  # what defining __eq__ alone implies; said aloud


def test_a_callable_object_that_cannot_be_hashed_is_still_named():
    info = receiver_info(Unhashable(), 0.001)
    assert info["name"] == "tests.test_payload.Unhashable"
    assert info["where"] == "" and info["ms"] == 1.0


def test_a_method_is_named_by_its_class():
    class Listener:
        def on_save(self, sender, **kwargs):
            return None

    name = receiver_info(Listener().on_save)["name"]
    assert name.endswith("Listener.on_save") and name.startswith("tests.test_payload.")


def test_a_receiver_wrapped_anew_on_each_send_is_named_by_itself_once():
    from dashboard.core import payload as module

    # As sentry-sdk's signal spans do: a new wrapper around the receiver on every send.
    spanned = agent()["instrumented"]
    events = [  # each with a wrapper of its own, all alive at once
        Event(signal="pre_save", family="model", sender="blog.Post", raw={},
              timings=[ReceiverTiming(spanned(fill_slug), 0.001)])
        for _ in range(50)
    ]  # fmt: skip
    cached = len(module._names)
    named = [name_receivers(event) for event in events]
    name, where = named[0]["timed"][0][:2]
    assert name == "tests.test_payload.fill_slug"
    assert where.startswith(fill_slug.__code__.co_filename) and "apm_agent" not in where
    assert all(n == named[0] for n in named)
    assert len(module._names) <= cached + 1  # named once, not once per wrapper


def test_a_receiver_that_ran_twice_is_said_so_through_a_wrapper_made_on_each_send():
    """Under sentry-sdk's signal spans each run of a receiver is a wrapper of its own: a
    function connected twice still ran twice. Two instances' methods did not, even where
    their function is itself wrapped (a bound method's __wrapped__ is its function's), nor
    did two receivers that wrap one function."""
    spanned = agent()["instrumented"]

    def twice(sender, **kwargs):
        return None

    class Listener:
        @spanned
        def on_save(self, sender, **kwargs):
            return None

    def ran(*receivers) -> list[dict]:
        event = Event(signal="post_save", family="model", sender="blog.Post", raw={})
        event.timings = [ReceiverTiming(spanned(r), 0.001) for r in receivers]
        event.receivers_then = [((id(r), NO_SENDER), r, False) for r in receivers]
        return [r for r in not_run(event) if r["why"].startswith("ran ")]

    def only_for(tag: str):  # receivers made by a factory, each wrapping one function
        @functools.wraps(twice)
        def receiver(sender, **kwargs):
            return twice(sender, **kwargs)

        return receiver

    said = ran(twice, twice)
    assert [(r["name"].rsplit(".", 1)[-1], r["why"][:11]) for r in said] == [
        ("twice", "ran 2 times")
    ]
    assert ran(Listener().on_save, Listener().on_save) == []
    assert ran(only_for("a"), only_for("b")) == []
