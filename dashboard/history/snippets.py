"""A request's trace, or one event, as a pytest test that asserts the same signals fire."""

import re
from collections.abc import Sequence

from dashboard.history.trace import begun_order
from dashboard.models import StoredEvent

FIXTURE = "pytest-django's, logged in as a superuser"
# Sent or not by the state of things rather than by the code under test (a new
# database connection, every row a query loads): record_signals leaves them out too.
UNASSERTED = frozenset({"connection_created", "pre_init", "post_init"})
# Writes that sent no signal (capture/writes.py): rows of their own, never signals sent.
WRITES = ("QuerySet.", "cursor.")


def as_test(events: Sequence[StoredEvent]) -> str:
    """A ready test: the request again (or a placeholder for the code that sent the
    events), inside record_signals(), and the signals and senders in the order they
    were sent."""
    events = begun_order(list(events))
    started = next((e for e in events if e.signal == "request_started"), None)
    request = (started.payload.get("request") or {}) if started else {}
    method, path = str(request.get("method", "")).lower(), str(request.get("path", ""))
    name = re.sub(r"\W+", "_", f"{method} {path}".strip()).strip("_").lower() or "signals"
    if method in ("get", "head", "delete", "options"):
        act = f"client.{method}({path!r})"
    elif method:
        act = f"client.{method}({path!r}, {{}})  # the form's data"
    else:
        act = "...  # the code that sent them"
    pairs = "".join(
        f"        ({e.signal!r}, {e.sender!r}),\n"
        for e in events
        if e.signal not in UNASSERTED and not e.signal.startswith(WRITES)
    )
    lines = [
        "from dashboard.testing import record_signals",
        "",
        "",
        f"def test_{name}_sends_these_signals({'admin_client' if method else ''}):",
        *([f"    client = admin_client  # {FIXTURE}"] if method else []),
        "    with record_signals() as sent:",
        f"        {act}",
        "    assert sent.pairs() == [",
    ]
    return "\n".join(lines) + "\n" + pairs + "    ]\n"
