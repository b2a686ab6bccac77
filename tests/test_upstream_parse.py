"""The pure page parser (:mod:`boardsync.upstream.parse`) on real captures and synthetic pages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from boardsync.errors import BadRequest, InvalidResponse
from boardsync.models import Board, Member
from boardsync.upstream.parse import (
    Page,
    infer_market,
    parse_board_row,
    parse_member_row,
    parse_page,
)
from upstream_fakes import envelope, member_rows

FIXTURES = Path(__file__).parent / "fixtures" / "eastmoney"
JSONP_86 = FIXTURES / "industry_board_fundflow_list_p1_of_86_jsonp_candlescyther.json"
ROW_FLTT1 = FIXTURES / "industry_board_list_row_fltt1_fundpulse.json"


# --- the parser on real captures --------------------------------------------------------


def test_real_jsonp_board_list_page_1_of_86() -> None:
    page = parse_page(JSONP_86.read_bytes())
    assert page.total == 86
    assert len(page.rows) == 50
    boards = [parse_board_row(row, "industry") for row in page.rows]
    assert boards[0] == Board("BK0459", "电子元件", "industry")
    assert len({b.code for b in boards}) == 50
    assert all(b.code.startswith("BK") and b.name for b in boards)


def test_real_fltt1_row_parses_by_key_not_position() -> None:
    row = json.loads(ROW_FLTT1.read_text(encoding="utf-8"))
    # f140/f141 come before f136 in server order: a positional parser would be wrong here.
    assert list(row).index("f140") < list(row).index("f136")
    assert parse_board_row(row, "industry") == Board("BK0457", "电网设备", "industry")
    shuffled = dict(reversed(list(row.items())))
    assert parse_board_row(shuffled, "industry") == Board("BK0457", "电网设备", "industry")


def test_real_capture_as_plain_json_and_with_whitespace_around_jsonp() -> None:
    raw = JSONP_86.read_text(encoding="utf-8")
    inner = raw[raw.index("(") + 1 : raw.rindex(")")]
    assert parse_page(inner.encode()).total == 86
    spaced = "  \n" + raw.replace("(", " (", 1) + " \r\n"
    assert len(parse_page(spaced.encode()).rows) == 50
    no_semicolon = raw.rstrip().removesuffix(";")
    assert parse_page(no_semicolon.encode()).total == 86
    assert parse_page(("\ufeff" + raw).encode()).total == 86  # a BOM is tolerated


def test_diff_as_object_is_ordered_by_integer_key() -> None:
    rows = member_rows(["000001", "000002", "600000"] + [f"3000{i:02d}" for i in range(9)])
    diff = {str(i): row for i, row in enumerate(rows)}
    shuffled = dict(sorted(diff.items()))  # "0","1","10","11","2",... lexicographic
    page = parse_page(envelope({"total": 12, "diff": shuffled}))
    assert [r["f12"] for r in page.rows] == [r["f12"] for r in rows]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   \n",
        b"<html><body>verify</body></html>",
        b'{"rc":0,"data":{"total":5,"diff":[{"f12":"000001"',  # truncated
        b"\xff\xfe\x00garbage",
        b"[1,2,3]",
        b'{"rc":0}',
        b'{"rc":"0","data":null}',
        b'{"rc":0,"data":[]}',
        b'{"rc":0,"data":{"total":-1,"diff":[]}}',
        b'{"rc":0,"data":{"total":100001,"diff":[]}}',
        b'{"rc":0,"data":{"total":"86","diff":[]}}',
        b'{"rc":0,"data":{"total":8.6,"diff":[]}}',
        b'{"rc":0,"data":{"total":true,"diff":[]}}',
        b'{"rc":0,"data":{"diff":[]}}',
        b'{"rc":0,"data":{"total":1,"diff":"x"}}',
        b'{"rc":0,"data":{"total":1,"diff":[1]}}',
        b'{"rc":0,"data":{"total":1,"diff":{"a":{}}}}',
        b'{"rc":102,"data":{"total":1,"diff":[]}}',
        b'cb({"rc":0,"data":null}) trailing',
        b'cb({"rc":0,"data":null}',
        b"[" * 100_000,
    ],
)
def test_malformed_bodies_are_invalid_response(body: bytes) -> None:
    with pytest.raises(InvalidResponse):
        parse_page(body)


def test_data_null_and_rc_nonzero_with_null_data() -> None:
    assert parse_page(envelope(None)) == Page(total=None, rows=())
    assert parse_page(envelope(None, rc=102)) == Page(total=None, rows=(), rc=102)
    assert parse_page(envelope({"total": 0, "diff": None})) == Page(total=0, rows=())


def test_member_row_tolerates_dashes_and_infers_market() -> None:
    assert parse_member_row({"f12": "600519", "f13": "-", "f14": "贵州茅台"}) == Member(
        "600519", "贵州茅台", 1)
    assert parse_member_row({"f12": "000001", "f14": "-"}) == Member("000001", "-", 0)
    assert parse_member_row({"f12": "920106", "f13": 0, "f14": None}) == Member("920106", "-", 0)
    assert parse_member_row({"f12": "300750", "f13": "0", "f14": " 宁德时代 "}).name == "宁德时代"
    assert infer_market("688981") == 1 and infer_market("900901") == 1
    assert infer_market("830799") == 0 and infer_market("002594") == 0


@pytest.mark.parametrize(
    "row",
    [
        None,
        [],
        {},
        {"f12": 1, "f14": "x"},  # integer code: leading zeros already lost
        {"f12": "60051", "f14": "x"},
        {"f12": "BK0475", "f14": "x"},
        {"f12": "600519", "f14": 5},
        {"f12": "600519", "f14": "a\x00b"},
        {"f12": "600519", "f13": True},
        {"f12": "600519", "f13": -1},
        {"f12": "600519", "f13": [1]},
    ],
)
def test_bad_member_rows_are_invalid_response(row: object) -> None:
    with pytest.raises(InvalidResponse):
        parse_member_row(row)


def test_board_row_validation() -> None:
    with pytest.raises(InvalidResponse):
        parse_board_row({"f12": "600519", "f14": "x"}, "industry")
    with pytest.raises(BadRequest):
        parse_board_row({"f12": "BK0475", "f14": "银行"}, "sector")
    assert parse_board_row({"f12": "BK0475", "f14": "-"}, "concept") == Board(
        "BK0475", "-", "concept")


def test_board_size_hint_from_rising_and_falling_counts() -> None:
    row = json.loads(ROW_FLTT1.read_text(encoding="utf-8"))
    assert parse_board_row(row, "industry").size_hint == 118 + 21
    base = {"f12": "BK0475", "f14": "银行"}
    assert parse_board_row(base | {"f104": 30, "f105": 12}, "industry").size_hint == 42
    # Only a scheduling hint: odd values are ignored, never an error.
    for odd in ({}, {"f104": "-", "f105": "-"}, {"f104": 3}, {"f104": True, "f105": 1},
                {"f104": -1, "f105": 5}, {"f104": 2.5, "f105": 1}, {"f104": 10**9, "f105": 0}):
        assert parse_board_row(base | odd, "industry").size_hint is None, odd
