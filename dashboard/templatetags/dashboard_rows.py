"""`{{ rows|event_rows }}`: the history table renders its rows as live frames do;
`{{ where|in_editor }}`: a file:line that opens in the developer's editor."""

import os
import re
from datetime import UTC, datetime
from urllib.parse import quote

from django import template
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from dashboard import conf
from dashboard.capture.origin import PROJECT_ROOT, project_path
from dashboard.core.render import render_rows
from dashboard.core.rows import Row, in_time_zone

register = template.Library()


@register.filter
def event_rows(rows: list[Row]) -> SafeString:
    return render_rows(rows)


WHERE = re.compile(r"^(?P<path>.+?):(?P<line>\d+)(?P<rest>.*)$", re.S)
# Up to the last site-packages (a virtualenv's, pip's) or dist-packages (Debian's python3-*)
PACKAGES = re.compile(r".*[/\\](?:site|dist)-packages[/\\]", re.S)


@register.filter
def in_editor(where: str) -> SafeString:
    """"file:line" as a link that opens it in the developer's editor, when
    DASHBOARD["EDITOR_URL"] says how ("vscode://file/{path}:{line}"); else as text.
    The project's own files are shown from its root, as origins name them; an installed
    package's from its package ("django/db/__init__.py:47"), its full path in a tooltip."""
    template = conf.get("EDITOR_URL")
    found = WHERE.match(where or "")
    if not found:
        return format_html("{}", where)
    path = found["path"]
    packages = PACKAGES.match(path)
    inside = path[packages.end():] if packages else project_path(path)
    shown = f"{inside}:{found['line']}{found['rest']}"
    if not template:
        if packages:
            return format_html('<span title="{}">{}</span>', where, shown)
        return format_html("{}", shown)
    if not os.path.isabs(path):  # the project's own, as origins name it
        path = os.path.join(PROJECT_ROOT, path)
    url = template.format(path=quote(path), line=found["line"])
    return format_html('<a class="in-editor" href="{}" title="{}">{}</a>', url, path, shown)


@register.filter
def in_zone(value: datetime, precision: str = "") -> str:
    """A stored time as the table shows it, in TIME_ZONE whatever zone the request
    activated ("micro": to the microsecond)."""
    t = in_time_zone(value)
    return f"{t:%Y-%m-%d %H:%M:%S.%f}" if precision == "micro" else f"{t:%Y-%m-%d %H:%M:%S}"


@register.filter
def epoch_utc(seconds: float) -> str:
    """Seconds since the epoch as a UTC date and time."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


@register.filter
def short_name(dotted: str) -> str:
    """A receiver's last name ("fill_slug" of "blog.signals.fill_slug"): the tree's lines."""
    return str(dotted).rpartition(".")[2] or str(dotted)


@register.filter
def dotted_breaks(dotted: str) -> SafeString:
    """A dotted name that a narrow column wraps after a dot, not inside a word:
    "django.db.<wbr>close_old_connections"."""
    return mark_safe("<wbr>".join(f"{escape(part)}." for part in str(dotted).split("."))[:-1])
