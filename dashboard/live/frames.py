"""A drained batch → one frame for every open dashboard, then → the history writer.

Each event is described once and the frame rendered once (core/payload.py,
core/render.py); the fanout (live/fanout.py) hands it to this process's
sockets and, if it crosses processes, to the layer. The rows then go to the
history writer, so the database is never on the live path. When nobody could
see a frame, none is made: the events go to the writer as they are,
described when stored.
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dashboard.core import keys
from dashboard.core.events import Event, RolledBack
from dashboard.core.payload import describe_each
from dashboard.core.render import frame_of
from dashboard.core.rows import Row
from dashboard.core.workers import run_in
from dashboard.history.access import perms_of
from dashboard.history.writer import writer
from dashboard.live.fanout import fanout

logger = logging.getLogger("dashboard")

INLINE_BATCH = 64  # events a frame may hold and still be prepared on the loop


def prepare(
    batch: list[Event | Row | RolledBack],
    dropped: int,
    unstored: int = 0,
    process: str | None = None,
    layer_down: bool | None = None,
) -> tuple[dict[str, Any], list[Row], list[Event]]:
    """Describe each event once and render one frame: (group message, rows, rolled back).

    `dropped` and `unstored` are the capturing process's running counts of events
    lost to a full queue and of sent events the history could not keep; `process`
    and `layer_down` are its own (the sidecar passes them, sidecar/main.py)."""
    # Events, or rows already described where they were captured (sidecar/wire.py).
    rows, failed = describe_each(item for item in batch if not isinstance(item, RolledBack))
    writer.count_unstored(failed)
    unstored += failed
    marks = [item.event for item in batch if isinstance(item, RolledBack)]
    process = process or keys.process()
    html = frame_of(
        rows,
        process=process,
        dropped=dropped,
        unstored=unstored,
        rolled_back=[e.key for e in marks],
        layer_down=fanout.layer_down if layer_down is None else layer_down,
    )
    message: dict[str, Any] = {"type": "events.batch", "html": html, "process": process}
    if rows:
        message.update(first_seq=rows[0].seq, last_seq=rows[-1].seq)
    if perms := perms_of(rows):  # a viewer without one of them reads it from the history
        message["perms"] = perms
    return message, rows, marks


class Frames:
    def __init__(self) -> None:
        self.sent = 0  # frames sent by this process (tests, bench)
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="dashboard-render")

    async def hand_on(self, batch: list[Event | RolledBack], dropped: int) -> bool:
        """Send the batch as a frame, or leave it to the writer; True if sent (watched)."""
        if fanout.watched():
            await self._send(batch, dropped)
            return True
        writer.keep(
            [item for item in batch if isinstance(item, Event)],
            [item.event for item in batch if isinstance(item, RolledBack)],
        )
        return False

    async def _send(self, batch: list[Event | RolledBack], dropped: int) -> None:
        try:
            if len(batch) <= INLINE_BATCH:
                # Small frames are prepared right here: a hop to the render thread
                # and back would cost two waits for the GIL, each up to the
                # interpreter's switch interval (5 ms) while a save is running.
                message, rows, marks = prepare(batch, dropped, writer.unstored)
            else:  # big ones on the render thread, so the loop keeps serving sockets
                try:
                    message, rows, marks = await run_in(
                        self._worker, prepare, batch, dropped, writer.unstored
                    )
                except RuntimeError:  # at exit the thread is gone: here, then
                    message, rows, marks = prepare(batch, dropped, writer.unstored)
        except Exception:
            logger.exception("dashboard: could not prepare %d events", len(batch))
            return
        self.sent += 1
        await fanout.publish(message)
        writer.keep(rows, marks)

    def reset(self) -> None:
        self.sent = 0


frames = Frames()
