"""Record the signals a block of code sends, for your tests.

    from dashboard.testing import record_signals

    def test_publishing_sends_post_published(client):
        with record_signals() as sent:
            client.post("/admin/blog/post/1/change/", {...})
        assert ("post_published", "blog.Post") in sent.pairs()

In the spirit of Django's CaptureQueriesContext: every signal sent inside the block,
in order, whatever DASHBOARD's SIGNALS and IGNORE_SIGNALS record, with the very
objects the receivers got; but those sent by the state of things rather than by the
code (`connection_created`, `pre_init` and `post_init` for every row loaded) unless
`ignore=()` says otherwise. It needs the dashboard's hook on Signal's send methods
(installed when the `dashboard` app is ready).
"""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.dispatch import Signal

from dashboard.capture import dispatch, signals
from dashboard.capture.snapshot import sender_label
from dashboard.history.snippets import UNASSERTED


@dataclass(frozen=True)
class Sent:
    name: str  # "post_save"
    path: str  # "django.db.models.signals.post_save"
    sender: str  # "blog.Post", as the dashboard labels it
    kwargs: dict[str, Any] = field(repr=False)  # what the receivers got, as they got it


class Recording(list[Sent]):
    def names(self) -> list[str]:
        return [s.name for s in self]

    def pairs(self) -> list[tuple[str, str]]:
        """(signal, sender) of each, in order: what a snippet asserts."""
        return [(s.name, s.sender) for s in self]


@contextmanager
def record_signals(ignore: Iterable[str] = UNASSERTED) -> Iterator[Recording]:
    """Every signal sent in this block (this thread or task), in order, but `ignore`."""
    left_out = frozenset(ignore)
    if not dispatch.installed():
        raise RuntimeError(
            "the dashboard's hook on Signal's send methods is not installed "
            "(is 'dashboard' in INSTALLED_APPS? manage.py check says more)"
        )
    recording = Recording()

    def note(signal: Signal, sender: Any, named: dict[str, Any]) -> None:
        spec = signals.spec_of(signal)
        if spec.name in left_out:
            return
        recording.append(Sent(spec.name, spec.path, sender_label(sender, named), dict(named)))

    token = dispatch.recorders.set((*dispatch.recorders.get(), note))
    dispatch.hold_fast_path(True)
    try:
        yield recording
    finally:
        dispatch.recorders.reset(token)
        dispatch.hold_fast_path(False)
