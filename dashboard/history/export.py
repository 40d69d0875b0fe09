"""The history as files: NDJSON (every field) and CSV (one line an event)."""

import csv
import json
from collections.abc import Iterable, Iterator
from typing import Any

from dashboard.core.rows import RECORD, Row
from dashboard.models import StoredEvent

CSV_COLUMNS = [name for name in RECORD if name != "detail"]


def ndjson_lines(events: Iterable[StoredEvent]) -> Iterator[str]:
    for event in events:
        yield json.dumps(Row.from_stored(event).record(), ensure_ascii=False) + "\n"


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_lines(events: Iterable[StoredEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for event in events:
        record = Row.from_stored(event).record()
        record["payload"] = json.dumps(record["payload"], ensure_ascii=False)
        yield writer.writerow([_csv_safe(record[c]) for c in CSV_COLUMNS])


def _csv_safe(value: Any) -> Any:
    """Spreadsheets run cells that start with = + - @ as formulas: defuse them."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value
