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


def as_test(events: Sequence[StoredEvent], whole: bool = True) -> str:
    """A ready test: the request again (or a placeholder for the code that sent the
    events), inside record_signals(), and the signals and senders in the order they
    were sent: exactly these (`whole`: a request's whole trace), or these in this
    order among others (a selection)."""
    events = begun_order(list(events))
    # One request's events: that request again; a selection across requests (or none):
    # a placeholder for the code that sends them.
    one_request = len({e.request_id for e in events}) == 1 and bool(events[0].request_id)
    started = next((e for e in events if e.signal == "request_started"), None)
    started = started if one_request else None
    whole = whole and started is not None
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
        "    assert sent.pairs() == [" if whole else "    expected = [",
    ]
    tail = "    ]\n" if whole else (
        "    ]\n"
        "    in_order = iter(sent.pairs())  # each found after the one before, among others\n"
        "    assert all(pair in in_order for pair in expected), sent.pairs()\n"
    )
    return "\n".join(lines) + "\n" + pairs + tail
