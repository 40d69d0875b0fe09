"""Reading the HTML frames the dashboard socket sends, as a browser would see them."""

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from channels.testing import WebsocketCommunicator


@dataclass
class Row:
    signal: str
    family: str
    sender: str = ""
    summary: str = ""
    payload_text: str = ""
    request_id: str | None = None
    key: str = ""

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.payload_text)


@dataclass
class Frame:
    raw: str
    rows: list[Row] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    total: int = 0
    dropped: int = 0
    unstored: int = 0
    history_id: int | None = None  # the newest stored id the page holds, with this frame


class _FrameParser(HTMLParser):
    def __init__(self, frame: Frame) -> None:
        super().__init__(convert_charrefs=True)
        self.frame = frame
        self.cell = -1
        self.in_pre = self.in_summary = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and "data-signal" in a:
            family = next(c[4:] for c in (a.get("class") or "").split() if c.startswith("fam-"))
            self.frame.rows.append(
                Row(
                    a["data-signal"] or "",
                    family,
                    request_id=a.get("data-request"),
                    key=a.get("data-key") or "",
                )
            )
            self.cell = -1
        elif tag == "td" and self.frame.rows:
            self.cell += 1
        elif tag == "pre":
            self.in_pre = True
        elif tag == "summary":
            self.in_summary = True
        elif tag == "div" and a.get("id") == "batch":
            self.frame.counts = json.loads(a.get("data-counts") or "{}")
            self.frame.total = int(a.get("data-total") or 0)
            self.frame.dropped = int(a.get("data-dropped") or 0)
            self.frame.unstored = int(a.get("data-unstored") or 0)
            if (history_id := a.get("data-history-id")) is not None:
                self.frame.history_id = int(history_id)

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self.in_pre = False
        elif tag == "summary":
            self.in_summary = False

    def handle_data(self, data: str) -> None:
        if not self.frame.rows:
            return
        row = self.frame.rows[-1]
        if self.in_pre:
            row.payload_text += data
        elif self.in_summary:
            row.summary += data
        elif self.cell == 2:
            row.sender += data.strip()


def parse(html: str) -> Frame:
    frame = Frame(raw=html)
    _FrameParser(frame).feed(html)
    return frame


async def collect(comm: WebsocketCommunicator, quiet_for: float = 0.4) -> list[Frame]:
    """Every frame until none has come for `quiet_for` seconds."""
    frames = []
    # Not receive_from(timeout=...): its timeout cancels the application.
    while not await comm.receive_nothing(timeout=quiet_for, interval=0.01):
        frames.append(parse(await comm.receive_from()))
    return frames


def rows(frames: list[Frame]) -> list[Row]:
    """All rows, oldest first (each frame lists its rows newest first)."""
    return [row for frame in frames for row in reversed(frame.rows)]
