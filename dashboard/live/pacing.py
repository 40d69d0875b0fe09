"""How long the pump pauses between frames.

Pure Python, no Django: bench/bare.py paces the bare server by the same rule,
so the ceiling it measures follows the pump's batching exactly.
"""

from collections import deque


class Pacer:
    """The pump's pause after each frame: short when events are few, longer under load.

    The pause makes a period: the next frame starts `floor` after this one
    started, the sidecar's round trip included (it is not added to what an
    event waits: 1,000 posts/s to 100 dashboards, p99 27-31 ms against 36-43
    when the pause came after the round trip, three interleaved pairs), and
    never sooner than the frame's own cost, so sending takes at most half the
    loop. The floor is MIN_PAUSE: a pre_save and its post_save a moment later
    both go out within a few ms. Under load, events arriving at LOAD_RATE or
    faster since the last frame or over the last LOAD_SPAN, it doubles per frame
    up to LOAD_PAUSE, so frames are fewer and bigger and the saves that cause
    them are interrupted less (a dashboard open in a process saving flat out:
    10x fewer frames, and the saves' overhead about 1.3x instead of 1.6x). Under
    load, a frame woken after the pump idled (between two requests) keeps that
    distance too: requests served back to back had their own frames, 0.2 to 0.85
    a blog post by the minute, and each frame costs the requests turns of the
    GIL; now at most one per LOAD_PAUSE. Below that rate, over a LOAD_SPAN, it drops back: a
    steady trickle (100 posts/s) never waits a long pause. Never past the window.
    """

    def __init__(self) -> None:
        self.floor = MIN_PAUSE
        self.last: float | None = None  # when the last frame started; None: quiet since
        self.recent: deque[tuple[float, int]] = deque()  # (started, events) of LOAD_SPAN

    def after(
        self, events: int, started: float, cost: float, window: float, elapsed: float | None = None
    ) -> float:
        """The pause after a frame of `events` that started at `started` (seconds, monotonic):
        `cost` is this process's own time on it, `elapsed` (default: `cost`) its time
        until now, waiting for the sidecar included."""
        recent = self.recent
        recent.append((started, events))
        while recent[0][0] < started - LOAD_SPAN:
            recent.popleft()
        # Loaded: this frame's events came at LOAD_RATE or faster since the last one, or
        # those of the last LOAD_SPAN did. (Requests served back to back send theirs in
        # small bursts with the pump idle in between: each burst alone looks light.)
        loaded = (
            self.last is not None and events >= LOAD_RATE * (started - self.last)
        ) or sum(n for _, n in recent) >= LOAD_RATE * LOAD_SPAN
        self.last = started
        self.floor = min(self.floor * 2, LOAD_PAUSE) if loaded else MIN_PAUSE
        elapsed = cost if elapsed is None else elapsed
        return min(window, max(self.floor - elapsed, cost))

    def wait_before(self, now: float) -> float:
        """Woken after idling: how long to wait before the next frame, so that under load
        frames stay the floor apart however the events come. Quiet for LOAD_SPAN: none."""
        if self.last is None:
            return 0.0
        if now - self.last >= LOAD_SPAN:
            self.floor, self.last = MIN_PAUSE, None
            self.recent.clear()
            return 0.0
        return max(0.0, self.last + self.floor - now)


LOAD_SPAN = 0.1  # seconds of frames whose events tell load, and the quiet that ends it
MIN_PAUSE = 0.001  # seconds between frames, at the least
LOAD_PAUSE = 0.016  # seconds between frames under sustained load (or the frame's cost)
LOAD_RATE = 500  # events per second from which the pump counts as under load
