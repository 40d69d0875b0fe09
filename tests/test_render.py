"""Rows and frames are built in Python (dashboard/render.py): every value must come out as text."""

from html.parser import HTMLParser

from dashboard.core.render import render_frame, render_row
from tests.frames import parse
from tests.helpers import make_row

HOSTILE = '"><script>alert(1)</script><b x="'


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_hostile_values_stay_text_and_attribute_values():
    html = render_row(make_row(sender=HOSTILE, summary=HOSTILE, payload_json=HOSTILE,
                          request_id=HOSTILE))
    found = Elements()
    found.feed(html)
    assert [tag for tag, _ in found.tags if tag in ("script", "b")] == []
    tr = found.tags[0][1]
    assert tr["data-sender"] == HOSTILE and tr["data-request"] == HOSTILE
    assert found.text.count(HOSTILE) == 3  # sender cell, summary, payload


def test_rolled_back_rows_are_marked_and_frames_carry_exact_counts():
    html = render_frame(
        [make_row(rolled_back=True), make_row(seq=8, signal="pre_save")],
        counts={"post_save": 700, "pre_save": 700}, process="host-1", dropped=3,
        rolled_back=["host-1.2"], unstored=5,
    )
    frame = parse(html)
    assert [r.signal for r in frame.rows] == ["post_save", "pre_save"]
    assert frame.counts == {"post_save": 700, "pre_save": 700} and frame.total == 1400
    assert frame.dropped == 3 and frame.unstored == 5
    assert 'class="event fam-model rolled-back"' in html and 'data-rolled-back="host-1.2"' in html
    assert html.isascii()  # daphne encodes each frame once per socket: ASCII is a copy


def test_an_unhandled_exceptions_row_is_marked_as_an_error():
    html = render_row(make_row(signal="got_request_exception", family="request"))
    assert 'class="event fam-request error"' in html
    assert '<span class="badge error"' in html and ">error</span>" in html
    assert " error" not in render_row(make_row()).split(">")[0]
