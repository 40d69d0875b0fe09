"""Rows → the HTML dashboards show: the history table's rows and live frames.

The row markup lives here, in Python, not in a template: a live frame
carries up to MAX_ROWS rows, rendered in the same process (one GIL) as the
saves that caused them. An f-string with `escape` costs a tenth of the row
partial it replaced (bench/probes.py measures `render_frame`);
tests/test_render.py holds the markup to the page's rules (every value
escaped, the attributes dashboard.js reads).
"""

import json
from collections import Counter
from html import escape
from typing import Any

from django.utils.safestring import SafeString, mark_safe

from dashboard import conf
from dashboard.core.rows import Row

ROLLED_BACK_BADGE = (
    ' <span class="badge" title="Sent inside a transaction that rolled back: '
    'its data never existed">rolled back</span>'
)


ERROR_BADGE = (
    ' <span class="badge error" title="An unhandled exception: the request failed">error</span>'
)
ERRORS = frozenset({"got_request_exception"})


PLUMBING = " data-plumbing"  # hidden by "my project" (core/filters.py)


def _text(value: str) -> str:
    """Escaped for an element's text: quotes are safe there, and JSON is full
    of them (&quot; made payloads a fifth bigger, on every socket)."""
    return escape(value, quote=False)


def render_row(row: Row) -> str:
    """One event's <tr>. Every value is escaped (`html.escape`, as Django's
    `escape` does; quotes too, in attributes); the data- attributes are what
    dashboard.js filters on, and the .sig, .sender, summary and pre texts are
    what its search reads (core/filters.py). The detail link is a plain link:
    dashboard.js opens it in the panel (one listener for every row, so htmx
    has nothing to process per row)."""
    family, signal, sender = escape(row.family), escape(row.signal), escape(row.sender)
    url = escape(row.url)
    rolled_back = row.rolled_back
    error = row.signal in ERRORS
    request = f' data-request="{escape(rid)}"' if (rid := row.request_id) else ""
    stored = f' data-id="{int(pk)}"' if (pk := row.id) else ""  # the history's rows
    return (
        f'<tr class="event fam-{family}{" rolled-back" if rolled_back else ""}'
        f'{" error" if error else ""}" '
        f'data-key="{escape(row.key)}" data-signal="{signal}" data-family="{family}" '
        f'data-sender="{sender}"{request}{stored}{PLUMBING if row.plumbing else ""}>'
        f'<td class="t"><time datetime="{escape(row.time_iso)}">'
        f"{escape(row.time_text)}</time></td>"
        f'<td><span class="sig">{signal}</span>{ROLLED_BACK_BADGE if rolled_back else ""}'
        f'{ERROR_BADGE if error else ""}</td>'
        f'<td class="sender">{sender}</td>'
        f'<td class="payload"><div class="cell"><details><summary>{_text(row.summary)}</summary>'
        f"<pre>{_text(row.payload_json)}</pre></details>"
        f'<a class="open" href="{url}"><span class="word">detail </span>&#8250;</a></div></td></tr>'
    )


def render_rows(rows: list[Row]) -> SafeString:
    """The rows of a page's history table (the `event_rows` template filter)."""
    return mark_safe("".join(map(render_row, rows)))  # every value escaped in render_row


def render_frame(
    rows: list[Row],
    counts: dict[str, int],
    process: str | None = None,
    dropped: int = 0,
    unstored: int = 0,
    rolled_back: list[str] | tuple[str, ...] = (),
    history_id: int | None = None,
    plumbing: int = 0,
    layer_down: bool = False,
    rates: dict[tuple[int, str], int] | None = None,
) -> str:
    """One frame: `rows` newest first, plus counts of every event the frame stands for.

    Two out-of-band swaps: the rows go on top of the live table; the hidden
    #batch element carries the counts, how many of them are plumbing (and,
    for a live frame, its process's
    running counts of dropped and unstored events; rolled back ones; for a
    backfill, the history id) that dashboard.js applies. Callers pass at
    most MAX_ROWS rows (more would be trimmed by the page at once); the
    counts still include the rest, so the page's counters stay exact.
    `rates` counts the events per (second, family), for the page's chart.
    """
    attrs = [
        f'data-counts="{escape(json.dumps(counts))}"',
        f'data-total="{sum(counts.values())}"',
        f'data-plumbing-count="{int(plumbing)}"',
    ]
    if process is not None:
        attrs.append(
            f'data-dropped="{int(dropped)}" data-unstored="{int(unstored)}" '
            f'data-process="{escape(process)}" data-layer="{"down" if layer_down else "up"}"'
        )
    if rolled_back:
        attrs.append(f'data-rolled-back="{escape(",".join(rolled_back))}"')
    if history_id is not None:
        attrs.append(f'data-history-id="{int(history_id)}"')
    if rates:
        attrs.append(f'data-rates="{escape(rates_json(rates))}"')
    html = (
        f'<tbody id="events" hx-swap-oob="afterbegin">{"".join(map(render_row, rows))}</tbody>'
        f'<div id="batch" hx-swap-oob="true" hidden {" ".join(attrs)}></div>'
    )
    # ASCII only (other characters as &#...; references, which browsers read
    # the same): a frame is encoded once under daphne (live/daphne.py), else
    # once per socket, and encoding ASCII is a copy, not a scan (bench/: 0.39
    # vs 0.02 ms for 670 KB).
    return html.encode("ascii", "xmlcharrefreplace").decode("ascii")


def frame_of(rows: list[Row], **attrs: Any) -> str:
    """A live frame of rows in seq order: the newest MAX_ROWS shown, newest first, and
    every one counted (per signal, the framework's plumbing, the chart's rates)."""
    return render_frame(
        rows[::-1][: conf.get("MAX_ROWS")],
        counts=dict(Counter(row.signal for row in rows)),
        plumbing=sum(row.plumbing for row in rows),
        rates=Counter((int(row.time.timestamp()), row.family) for row in rows),
        **attrs,
    )


def rates_json(rates: dict[tuple[int, str], int]) -> str:
    """Events per (second, family), as the page's chart reads them: [[second, family, n]]."""
    return json.dumps([[second, family, n] for (second, family), n in rates.items()])
