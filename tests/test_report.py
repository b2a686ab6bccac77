"""Rendering: every format parses back to the same rows; the table aligns Chinese names."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boardsync.report import (
    default_format,
    display_width,
    iso,
    render,
    render_record,
    render_table,
)

COLS = ("code", "name", "members", "synced_at", "deleted_at")
ROWS = [
    {"code": "BK0475", "name": "银行", "members": 42,
     "synced_at": datetime(2026, 5, 1, 8, tzinfo=UTC), "deleted_at": None},
    {"code": "BK1036", "name": 'odd, "quoted"\nname', "members": 3712,
     "synced_at": datetime(2026, 5, 1, 16, tzinfo=timezone(timedelta(hours=8))),
     "deleted_at": None},
]


def test_default_format_is_table_on_a_terminal_else_csv() -> None:
    assert default_format(True) == "table"
    assert default_format(False) == "csv"


def test_iso_is_utc_with_z() -> None:
    assert iso(datetime(2026, 5, 1, 16, tzinfo=timezone(timedelta(hours=8)))) == \
        "2026-05-01T08:00:00Z"
    assert iso(datetime(2026, 5, 1, 8)) == "2026-05-01T08:00:00Z"  # naive = UTC
    assert iso(None) is None


def test_csv_parses_back_with_the_csv_module() -> None:
    rows = list(csv.DictReader(io.StringIO(render(ROWS, COLS, "csv"), newline="")))
    assert list(rows[0]) == list(COLS)
    assert rows[0] == {"code": "BK0475", "name": "银行", "members": "42",
                       "synced_at": "2026-05-01T08:00:00Z", "deleted_at": ""}
    assert rows[1]["name"] == 'odd, "quoted"\nname'
    assert rows[1]["synced_at"] == "2026-05-01T08:00:00Z"


def test_json_parses_back_with_types() -> None:
    rows = json.loads(render(ROWS, COLS, "json"))
    assert rows[0] == {"code": "BK0475", "name": "银行", "members": 42,
                       "synced_at": "2026-05-01T08:00:00Z", "deleted_at": None}
    assert list(rows[1]) == list(COLS)
    assert json.loads(render([], COLS, "json")) == []


def test_table_aligns_wide_characters_and_right_aligns_numbers() -> None:
    text = render_table([{"code": "BK0475", "name": "银行", "n": 7},
                         {"code": "BK0477", "name": "酿酒行业", "n": 1234}], ("code", "name", "n"))
    lines = text.splitlines()
    assert lines[0].split() == ["code", "name", "n"]
    assert set(lines[1]) == {"-", " "}
    # every row puts the number column at the same display column
    widths = {display_width(line) for line in lines}
    assert len(widths) == 1, lines
    assert lines[2].endswith("   7") and lines[3].endswith("1234")


def test_table_empty_and_control_characters() -> None:
    assert render_table([], ("a", "b")).splitlines()[-1] == "(no rows)"
    text = render_table([{"a": "x\ny\tz"}], ("a",))
    assert text.splitlines()[2] == "x y z"


def test_display_width() -> None:
    assert display_width("BK0475") == 6
    assert display_width("半导体") == 6
    assert display_width("ＡＢ") == 4  # fullwidth
    assert display_width("e\u0301") == 1  # combining accent


def test_record_formats() -> None:
    record = {"id": "r1", "totals": {"ok": 2, "latency": {"p50": 0.1}}, "errors": {},
              "at": datetime(2026, 5, 1, tzinfo=UTC)}
    table = render_record(record, "table")
    assert "totals.latency.p50  0.1" in table and "at                  2026-05-01" in table
    assert dict(csv.reader(io.StringIO(render_record(record, "csv")))) == {
        "field": "value", "id": "r1", "totals.ok": "2", "totals.latency.p50": "0.1",
        "errors": "{}", "at": "2026-05-01T00:00:00Z"}
    assert json.loads(render_record(record, "json"))["totals"]["latency"] == {"p50": 0.1}


def test_lists_and_bools() -> None:
    out = render([{"a": ["x", "y"], "b": True}], ("a", "b"), "csv")
    assert out.splitlines()[1] == "x;y,true"


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        render([], ("a",), "xml")
    with pytest.raises(ValueError, match="unknown format"):
        render_record({}, "xml")


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@given(st.lists(st.tuples(_text, _text, st.integers() | st.none()), max_size=8))
def test_csv_and_json_round_trip_any_text(values: list[tuple[str, str, int | None]]) -> None:
    rows = [{"a": a, "b": b, "n": n} for a, b, n in values]
    back = list(csv.DictReader(io.StringIO(render(rows, ("a", "b", "n"), "csv"), newline="")))
    assert [(r["a"], r["b"], r["n"]) for r in back] == [
        (a, b, "" if n is None else str(n)) for a, b, n in values]
    assert json.loads(render(rows, ("a", "b", "n"), "json")) == rows
