"""A channel layer that fails every send, as a dead Redis would."""

import asyncio
import threading

from channels.layers import InMemoryChannelLayer


class BrokenLayer(InMemoryChannelLayer):
    async def group_send(self, group: str, message: dict) -> None:
        raise ConnectionError("channel layer is down")


class GatedLayer(InMemoryChannelLayer):
    """Holds every group_send until the test opens the gate, recording what happened."""

    gate = threading.Event()
    log: list[str] = []

    async def group_send(self, group: str, message: dict) -> None:
        self.log.append("entered")
        await asyncio.to_thread(self.gate.wait, 10)
        self.log.append("sent")
        await super().group_send(group, message)
