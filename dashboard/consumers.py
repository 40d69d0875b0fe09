"""The websocket every open dashboard holds: staff only, forwards frames as they are."""

from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from dashboard import conf
from dashboard.publisher import publisher


class EventsConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not (user.is_active and user.is_staff):
            await self.close()  # before accept: the handshake is refused (403)
            return
        self.group = conf.get("GROUP")
        await self.channel_layer.group_add(self.group, self.channel_name)
        publisher.bind_running_loop()
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if group := getattr(self, "group", None):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The page sends nothing yet; ignore rather than fail."""

    async def events_batch(self, message: dict[str, Any]) -> None:
        # Rendered once by the publisher; no per-client work here.
        await self.send(text_data=message["html"])
