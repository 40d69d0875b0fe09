"""Channel layers for tests: one that fails every send, as a dead Redis would, and others."""

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


class CrossingLayer(InMemoryChannelLayer):
    """The in-memory layer, taken for one that reaches other processes (as channels-redis
    does): the dashboard then relays through it instead of reading the history."""


class SlowJoinLayer(CrossingLayer):
    """A crossing layer whose group_add takes a while, as a remote Redis's round trip
    can: a frame sent meanwhile reaches no listener yet."""

    async def group_add(self, group: str, channel: str) -> None:
        await asyncio.sleep(0.3)
        await super().group_add(group, channel)


class NoJoinLayer(CrossingLayer):
    """A crossing layer that cannot be joined, as a Redis that is down at start-up."""

    async def group_add(self, group: str, channel: str) -> None:
        raise ConnectionError("channel layer is down")
