"""The websocket every open dashboard holds: staff only, forwards live frames as they are.

On every open (the first and each reconnect) the page sends
`{"type": "resume", "after": <history id>, "seen": {process: seq}, "filters": {...}}`:
the newest stored id its history covers, and per process the newest event it
holds. It gets exactly what it missed, once, in order, before anything newer:

- live frames forwarded before the resume is answered are left out of the backfill;
- live frames whose events the backfill already held are not forwarded;
- events this process sent before the socket joined are stored before the backfill reads.

Frames reach the socket from live/fanout.py, never through a layer
channel of its own; while a resume is answered they wait, so the backfill
always goes out before anything newer.
"""

import json
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils.html import format_html

from dashboard import conf
from dashboard.core.filters import EventFilter
from dashboard.core.render import render_frame
from dashboard.history import reads
from dashboard.history.writer import writer
from dashboard.live.daphne import SCOPE_KEY, Frame
from dashboard.live.fanout import fanout
from dashboard.live.handoff import handoff

logger = logging.getLogger("dashboard")


class EventsConsumer(AsyncWebsocketConsumer):
    # No layer channel per socket: an alias that is not configured gives none
    # (channels.layers.get_channel_layer). The fanout delivers instead.
    channel_layer_alias = "dashboard-sockets-use-the-fanout"

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not (user.is_active and user.is_staff):
            await self.close()  # before accept: the handshake is refused (403)
            return
        # Per process, the newest seq this socket holds: forwarded live, or backfilled.
        self.seen: dict[str, int] = {}
        # Frames that arrive while a resume is answered, in order; None otherwise.
        self.held: list[Frame] | None = None
        # daphne's socket, to write frames framed once for all (sockets.py); or None.
        self.socket = self.scope.get(SCOPE_KEY)
        handoff.bind_running_loop()
        await self.accept()
        fanout.subscribe(self)

    async def disconnect(self, code: int) -> None:
        fanout.unsubscribe(self)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            message = json.loads(text_data or "")
            if message.get("type") != "resume":
                raise ValueError(f"unknown message type {message.get('type')!r}")
            after = int(message.get("after") or 0)
            if after < 0:
                raise ValueError("'after' must be a non-negative event id")
            seen = {str(p): int(s) for p, s in (message.get("seen") or {}).items()}
            filters = EventFilter.from_query(message.get("filters") or {})
        except (ValueError, TypeError, AttributeError) as exc:
            await self.send(text_data=notice(f"The page sent a bad request: {exc}"))
            return
        await self.resume(after, seen, filters)

    async def resume(self, after: int, seen: dict[str, int], filters: EventFilter) -> None:
        self.held = []
        try:
            await writer.caught_up()  # what went out before we joined is readable now
            for process, seq in self.seen.items():  # forwarded while the page was asking
                seen[process] = max(seq, seen.get(process, 0))
            missed = await database_sync_to_async(reads.backfill)(
                after, filters, seen, conf.get("MAX_ROWS")
            )
            for process, seq in missed.highest.items():
                self.seen[process] = max(seq, self.seen.get(process, 0))
            if missed.counts:
                frame = render_frame(
                    missed.rows,
                    missed.counts,
                    history_id=missed.newest,
                    plumbing=missed.plumbing,
                    rates=missed.rates,
                )
                await self.send(text_data=frame)
        finally:
            while self.held:  # whatever arrives meanwhile joins the end
                await self.forward(self.held.pop(0))
            self.held = None

    async def deliver(self, frame: Frame) -> None:
        """A frame from the fanout: forwarded at once, or after the resume under way."""
        if self.held is not None:
            self.held.append(frame)
        else:
            await self.forward(frame)

    async def forward(self, frame: Frame) -> None:
        message = frame.message
        process, first, last = (message.get(k) for k in ("process", "first_seq", "last_seq"))
        if process is not None and first is not None:
            if first <= self.seen.get(process, 0):
                return  # the backfill held these already
            self.seen[process] = last
        # Rendered once (live/frames.py); no per-client work here.
        if self.socket is None or not frame.send_to(self.socket):
            await self.send(text_data=frame.html)


def notice(text: str) -> str:
    return format_html('<div id="notice" hx-swap-oob="true" role="alert">{}</div>', text)
