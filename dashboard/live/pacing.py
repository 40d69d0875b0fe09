"""How long the pump pauses between frames.

Pure Python, no Django: bench/bare.py paces the bare server by the same rule,
so the ceiling it measures follows the pump's batching exactly.
"""


class Pacer:
    """The pump's pause after each frame: short when events are few, longer under load.

    The pause makes a period: the next frame starts `floor` after this one
    started, the sidecar's round trip included (it is not added to what an
    event waits: 1,000 posts/s to 100 dashboards, p99 27-31 ms against 36-43
    when the pause came after the round trip, three interleaved pairs), and
    never sooner than the frame's own cost, so sending takes at most half the
    loop. The floor is MIN_PAUSE: a pre_save and its post_save a moment later
    both go out within a few ms. Under load, events arriving at LOAD_RATE or
    faster since the last frame, it doubles per frame up to LOAD_PAUSE, so
    frames are fewer and bigger and the saves that cause them are interrupted
    less (a dashboard open in a process saving flat out: 10x fewer frames, and
    the saves' overhead about 1.3x instead of 1.6x). Below that rate it drops
    back at once: a steady trickle (100 posts/s) never waits a long pause.
    Never past the window.
    """

    def __init__(self) -> None:
        self.floor = MIN_PAUSE
        self.last: float | None = None  # when the last frame started; None after idling

    def after(
        self, events: int, started: float, cost: float, window: float, elapsed: float | None = None
    ) -> float:
        """The pause after a frame of `events` that started at `started` (seconds, monotonic):
        `cost` is this process's own time on it, `elapsed` (default: `cost`) its time
        until now, waiting for the sidecar included."""
        loaded = self.last is not None and events >= LOAD_RATE * (started - self.last)
        self.last = started
        self.floor = min(self.floor * 2, LOAD_PAUSE) if loaded else MIN_PAUSE
        elapsed = cost if elapsed is None else elapsed
        return min(window, max(self.floor - elapsed, cost))

    def idle(self) -> None:
        self.floor, self.last = MIN_PAUSE, None


MIN_PAUSE = 0.001  # seconds between frames, at the least
LOAD_PAUSE = 0.016  # seconds between frames under sustained load (or the frame's cost)
LOAD_RATE = 500  # events per second from which the pump counts as under load
