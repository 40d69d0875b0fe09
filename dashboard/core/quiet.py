"""Whether the dashboard itself is at work: its page, its socket, its pipeline.

Receivers return at once while it is set, so showing an event never causes one.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

quiet: ContextVar[bool] = ContextVar("dashboard_quiet", default=False)


@contextmanager
def quiet_block() -> Iterator[None]:
    """Mute capture for the dashboard's own work done outside the pump's loop."""
    token = quiet.set(True)
    try:
        yield
    finally:
        quiet.reset(token)
