"""A row (dashboard/core/rows.py): its key and texts, how the history stores it and
reads it back, and what the exports write of it."""

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from django.db import connection

from dashboard.core import keys
from dashboard.core.filters import search_text
from dashboard.core.rows import RECORD, Row, to_json
from dashboard.history import export, store
from dashboard.models import StoredEvent
from tests.helpers import make_row

MOMENT = datetime(2026, 1, 2, 9, 5, 3, 45678, tzinfo=UTC)


# -- keys --------------------------------------------------------------------------------


def test_a_key_is_the_process_a_dot_and_the_seq():
    assert keys.format_key("host-1", 7) == "host-1.7"


def test_a_key_is_parsed_at_its_last_dot():
    assert keys.parse_key("web-1.example.org-42.7") == ("web-1.example.org-42", 7)


@pytest.mark.parametrize("bad", ["", "7", "host.", ".7", "host.7a", "host.-7"])
def test_a_malformed_key_is_refused(bad):
    with pytest.raises(ValueError):
        keys.parse_key(bad)


def test_this_process_s_name_is_safe_in_a_key_and_a_url():
    name = keys.process()
    assert name and all(c.isalnum() or c in "_.-" for c in name)


# -- a row's texts -----------------------------------------------------------------------


def test_a_row_s_key_is_its_process_and_seq():
    assert make_row(process="host-1", seq=7).key == "host-1.7"


def test_a_row_s_key_parses_back_to_its_process_and_seq():
    row = make_row(process="web-1.example.org-42", seq=9)
    assert keys.parse_key(row.key) == ("web-1.example.org-42", 9)


def test_a_row_s_url_is_its_detail_page():
    assert make_row(process="host-1", seq=7).url == "/events/host-1.7/"


def test_a_row_s_time_text_is_to_the_millisecond():
    assert make_row(time=MOMENT).time_text == "09:05:03.045"


def test_a_row_s_time_iso_is_the_full_time_with_its_zone():
    assert make_row(time=MOMENT).time_iso == "2026-01-02T09:05:03.045678+00:00"


def test_a_row_s_search_text_is_its_four_texts_lowercased():
    row = make_row(signal="post_save", sender="blog.Post", summary="Hello “X”",
                   payload_json='{"Title": "Y"}')  # fmt: skip
    assert row.search_text == 'post_save blog.post hello “x” {"title": "y"}'
    assert row.search_text == search_text(row.signal, row.sender, row.summary, row.payload_json)


def test_a_row_s_search_text_leaves_out_its_time_and_request():
    row = make_row(time=MOMENT, request_id="req-needle")
    assert "09:05" not in row.search_text and "req-needle" not in row.search_text


# -- stored by the history: the INSERT's columns are the model's --------------------------


def model_columns() -> list[str]:
    """Every concrete field of StoredEvent but its primary key, as the model lists them."""
    return [f.name for f in StoredEvent._meta.get_fields() if f.concrete and not f.primary_key]


def test_the_insert_fills_every_field_of_the_model_but_its_id():
    assert tuple(model_columns()) == store.COLUMNS
    assert "id" not in store.COLUMNS


def test_a_row_has_a_value_for_every_stored_column():
    """A field added to StoredEvent must be taught to Row (or named here), or the
    INSERT could not fill it: this fails first."""
    row = make_row()
    missing = [c for c in store.COLUMNS if c != "payload" and not hasattr(row, c)]
    assert missing == []


def test_the_insert_statement_names_the_model_s_columns_in_order():
    sql, params = store._insert_statement(connection, [make_row(), make_row(seq=8)])
    columns = sql.split("(", 1)[1].split(")", 1)[0]
    quoted = [connection.ops.quote_name(StoredEvent._meta.get_field(c).column)
              for c in model_columns()]  # fmt: skip
    assert columns == ", ".join(quoted)
    assert [len(p) for p in params] == [len(quoted)] * 2


def test_the_payload_is_stored_as_the_row_s_json_text():
    row = make_row(payload={"a": 1}, payload_json='{"a": 1}')
    _, [values] = store._insert_statement(connection, [row])
    assert values[store.COLUMNS.index("payload")] == '{"a": 1}'


def stored_row(**values) -> Row:
    payload = values.pop("payload", {"instance": {"str": "Ünïcode “quoted”"}, "n": 3})
    row = make_row(
        process="host-rows", seq=1, summary="Summary “S”", payload=payload,
        payload_json=to_json(payload), detail={"origin": "blog/models.py:9 in save", "diff": []},
        request_id="req1", rolled_back=True, **values,
    )  # fmt: skip
    store.write([row])
    return row


@pytest.mark.django_db(transaction=True)
def test_a_row_written_by_the_history_reads_back_the_same():
    written = stored_row()
    obj = StoredEvent.objects.get(process="host-rows", seq=1)
    read = Row.from_stored(obj)
    fields = [f for f in Row.__dataclass_fields__ if f != "id"]
    assert {f: getattr(read, f) for f in fields} == {f: getattr(written, f) for f in fields}
    assert read.id == obj.pk and read.key == written.key == obj.key


@pytest.mark.django_db(transaction=True)
def test_the_stored_search_text_is_the_row_s():
    written = stored_row()
    stored = StoredEvent.objects.get(process="host-rows", seq=1)
    assert stored.search_text == written.search_text
    assert "ünïcode “quoted”" in stored.search_text


# -- exports ---------------------------------------------------------------------------


def test_an_export_record_has_these_fields_in_this_order():
    assert list(RECORD) == [
        "id", "time", "signal", "family", "sender", "summary", "request_id", "rolled_back",
        "payload", "detail",
    ]  # fmt: skip


def test_a_record_holds_the_row_s_values():
    row = make_row(id=4, time=MOMENT, payload={"a": 1}, detail={"diff": []}, rolled_back=True)
    assert row.record() == {
        "id": 4, "time": "2026-01-02T09:05:03.045678+00:00", "signal": "post_save",
        "family": "model", "sender": "blog.Post", "summary": "a summary", "request_id": "",
        "rolled_back": True, "payload": {"a": 1}, "detail": {"diff": []},
    }  # fmt: skip


def stored_event(**values) -> StoredEvent:
    """A history row as the exports read one (in memory: the exports never query)."""
    base = dict(
        id=4, time=MOMENT, signal="post_save", family="model", sender="blog.Post",
        summary="a summary", payload={"a": "é"}, detail={"diff": []}, request_id="r1",
        process="host-1", seq=7, rolled_back=False, search_text="",
    )  # fmt: skip
    return StoredEvent(**{**base, **values})


def test_ndjson_lines_are_records():
    [line] = export.ndjson_lines([stored_event()])
    assert line.endswith("\n")
    assert json.loads(line) == Row.from_stored(stored_event()).record()


def test_csv_has_every_record_field_but_the_detail():
    assert [name for name in RECORD if name != "detail"] == export.CSV_COLUMNS
    header, line = export.csv_lines([stored_event()])
    assert next(csv.reader(io.StringIO(header))) == export.CSV_COLUMNS
    values = dict(zip(export.CSV_COLUMNS, next(csv.reader(io.StringIO(line))), strict=True))
    assert values["payload"] == '{"a": "é"}' and values["time"] == MOMENT.isoformat()


@pytest.mark.parametrize("formula", ["=cmd|' /C calc'!A0", "+1+1", "-1+1", "@SUM(A1)"])
def test_csv_cells_that_spreadsheets_would_run_are_defused(formula):
    _, line = export.csv_lines([stored_event(summary=formula, sender=formula)])
    values = dict(zip(export.CSV_COLUMNS, next(csv.reader(io.StringIO(line))), strict=True))
    assert values["summary"] == values["sender"] == "'" + formula
