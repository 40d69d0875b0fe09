"""One filter rule (dashboard/core/filters.py): the history's query and the page's
live `matches()` (dashboard.js) keep the same rows for the same filters."""

import pytest
from django.db import transaction
from django.http import QueryDict
from django.test import Client

from blog.models import Post, Tag
from dashboard.core.filters import EventFilter, is_plumbing, search_text
from dashboard.models import StoredEvent
from tests.browser import open_dashboard
from tests.helpers import settle

CASES = [
    {},
    {"q": "detail"},  # the row's link text: neither side searches it
    {"q": "rolled back"},  # the badge: nor this
    {"q": "00:"},  # nor the time
    {"q": "post_save"},
    {"q": "BLOG.POST"},  # case-insensitive
    {"q": '"str": "needle'},  # inside the payload JSON, quotes and all
    {"q": "needle"},
    {"q": "created"},  # the summary
    {"family": "model"},
    {"family": "blog"},
    {"signal": "pre_save", "q": "haystack"},
    {"sender": "blog.Post"},
    {"sender": "blog.post"},  # case-insensitive...
    {"sender": "POST"},  # ...and partial: blog.Post, blog.Post_tags
    {"sender": "  tag "},  # trimmed: blog.Tag, blog.Post_tags
    {"sender": "sqlite"},  # default (sqlite)
    {"sender": "nothing-sends-this"},
    {"family": ["model", "auth"]},  # several families: any of them
    {"family": "model,blog"},  # the same, comma-separated
    {"signal": ["pre_save", "post_published"]},
    {"signal": ["pre_save", "post_save"], "sender": "tag"},  # AND across filters
    {"family": ["request"], "signal": ["post_save"]},  # nothing is both
    {"family": "request", "q": "GET /blog/"},
    {"mine": "1"},  # "my project": no plumbing (sessions, request_started, connections...)
    {"mine": "1", "family": "request"},
]


def test_search_text_is_the_four_texts_a_row_shows_lowercased():
    assert search_text("post_save", "blog.Post", "Summary “X”", '{"a": "B"}') == (
        'post_save blog.post summary “x” {"a": "b"}'
    )


@pytest.mark.parametrize(
    ("signal", "sender", "payload", "plumbing"),
    [
        ("request_started", "ASGIHandler", {}, True),
        ("request_finished", "ASGIHandler", {}, False),  # one row a request stays
        ("connection_created", "default (sqlite)", {}, True),
        ("post_save", "sessions.Session", {}, True),
        ("post_save", "admin.LogEntry", {}, True),
        ("post_save", "auth.User", {"update_fields": ["last_login"]}, True),
        ("post_save", "auth.User", {"update_fields": ["email"]}, False),
        ("post_save", "blog.Post", {}, False),
        ("post_published", "blog.Post", {}, False),
    ],
)
def test_my_project_leaves_out_the_frameworks_plumbing(signal, sender, payload, plumbing):
    assert is_plumbing(signal, sender, payload) is plumbing


def test_filters_from_a_query_are_trimmed_cut_and_only_known_keys():
    flt = EventFilter.from_query({"q": "  x  ", "sender": "s" * 500, "other": "ignored"})
    assert flt.q == "x" and len(flt.sender) == 200
    assert flt.as_dict() == {"q": "x", "sender": "s" * 200}
    assert not EventFilter.from_query({"family": None})
    assert not EventFilter.from_query({"family": [], "signal": " , "})


def test_families_and_signals_are_multi_valued_and_bookmarkable():
    query = QueryDict("family=model&family=auth,model&signal=post_save&sender=Post&view=requests")
    flt = EventFilter.from_query(query)
    assert flt.family == ("model", "auth") and flt.signal == ("post_save",)
    assert flt.as_query() == "family=model&family=auth&signal=post_save&sender=Post"
    assert EventFilter.from_query(QueryDict(flt.as_query())) == flt  # a round trip
    # The page's resume message: lists, or strings.
    assert EventFilter.from_query({"family": ["model", "auth"], "signal": "post_save"}) == (
        EventFilter(family=("model", "auth"), signal=("post_save",))
    )


@pytest.mark.browser
def test_history_and_live_rows_keep_the_same_rows_for_the_same_filters(context, server):
    Post.objects.create(title="needle in a haystack", status="published")
    Tag.objects.create(name="hay")
    with pytest.raises(RuntimeError), transaction.atomic():
        Post.objects.create(title="never existed")
        raise RuntimeError("roll back")
    Client().get("/blog/")
    settle()
    request_id = StoredEvent.objects.exclude(request_id="").values_list("request_id", flat=True)[0]
    cases = [*CASES, {"request": request_id}]
    before = {e.key for e in StoredEvent.objects.all()}

    page = open_dashboard(context, server)  # its login adds events of its own
    held = set(
        page.evaluate("Array.from(document.querySelectorAll('#history tr'), r => r.dataset.key)")
    )
    assert before <= held
    for case in cases:
        found = EventFilter.from_query(case).apply(StoredEvent.objects.all())
        server_keys = {e.key for e in found} & held
        page_keys = set(page.evaluate(
            """f => Array.from(document.querySelectorAll('#history tr'))
                   .filter(r => window.signalsDashboard.matches(r, f))
                   .map(r => r.dataset.key)""",
            case,
        ))  # fmt: skip
        assert page_keys == server_keys, case
    # The cases tell rows apart: not everything, not nothing, for most of them.
    sizes = [len(EventFilter.from_query(c).apply(StoredEvent.objects.all())) for c in cases]
    assert sum(0 < n < sizes[0] for n in sizes) >= len(cases) // 2


def test_a_filter_value_is_as_both_sides_can_apply_it():
    """A NUL ends SQLite's LIKE pattern ("\x00zzz" matched every stored row and no live
    one); `mine` off reads as off; a value is cut where the page's input stops."""
    parsed = EventFilter.from_query(QueryDict("q=%00zzz&sender=po%00st&mine=0"))
    assert (parsed.q, parsed.sender, parsed.mine) == ("zzz", "post", "")
    assert EventFilter.from_query(QueryDict("mine=on")).mine == "1"
    assert EventFilter.from_query(QueryDict("mine=false")).mine == ""
    assert len(EventFilter.from_query({"q": "x" * 500}).q) == EventFilter.MAX_LENGTH


@pytest.mark.django_db(transaction=True)
def test_the_pages_inputs_take_no_more_than_the_filter_keeps(staff_client):
    html = staff_client.get("/?q=needle").content.decode()
    assert f'name="q" value="needle" maxlength="{EventFilter.MAX_LENGTH}"' in html
