"""The websocket every open dashboard holds: staff only, forwards live frames as they are.

On every open (the first and each reconnect) the page sends
`{"type": "resume", "after": <newest id it holds>, "filters": {...}}` and gets
exactly what it missed, once, in order, before anything newer:

- live frames forwarded before the resume is answered are left out of the backfill;
- live frames whose events the backfill already held are not forwarded.
"""

import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils.html import format_html

from dashboard import conf, history
from dashboard.filters import EventFilter
from dashboard.publisher import publisher
from dashboard.render import render_frame

logger = logging.getLogger("dashboard")


class EventsConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not (user.is_active and user.is_staff):
            await self.close()  # before accept: the handshake is refused (403)
            return
        self.group = conf.get("GROUP")
        self.forwarded: list[tuple[int, int]] = []  # id ranges sent live before a resume
        self.backfilled_upto: int | None = None
        await self.channel_layer.group_add(self.group, self.channel_name)
        publisher.bind_running_loop()
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if group := getattr(self, "group", None):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            message = json.loads(text_data or "")
            if message.get("type") != "resume":
                raise ValueError(f"unknown message type {message.get('type')!r}")
            after = int(message.get("after") or 0)
            if after < 0:
                raise ValueError("'after' must be a non-negative event id")
            filters = EventFilter.from_query(message.get("filters") or {})
        except (ValueError, TypeError, AttributeError) as exc:
            await self.send(text_data=notice(f"The page sent a bad request: {exc}"))
            return
        await self.resume(after, filters)

    async def resume(self, after: int, filters: EventFilter) -> None:
        rows, counts, newest = await database_sync_to_async(history.backfill)(
            after, filters, self.forwarded, conf.get("MAX_ROWS")
        )
        self.backfilled_upto = max(newest, self.backfilled_upto or 0)
        self.forwarded = []
        if counts:
            await self.send(text_data=render_frame(rows, counts))

    async def events_batch(self, message: dict[str, Any]) -> None:
        first, last = message.get("first_id"), message.get("last_id")
        if first is not None and last is not None:
            if self.backfilled_upto is not None and first <= self.backfilled_upto:
                return  # stored before the backfill read it: the page has these
            if self.backfilled_upto is None and len(self.forwarded) < 1000:
                self.forwarded.append((first, last))
        # Rendered once by the publisher; no per-client work here.
        await self.send(text_data=message["html"])


def notice(text: str) -> str:
    return format_html('<div id="notice" hx-swap-oob="true" role="alert">{}</div>', text)
