"""Property tests: whatever the upstream sends, the parser answers a Page or InvalidResponse.

A soft-banned IP answers with HTML, truncated JSON, wrong types or nonsense totals; any other
exception (``KeyError``, ``TypeError``, ``RecursionError``...) would escape the classifier as
"unexpected" and keep a bad IP in use. So the contract is checked on arbitrary input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from boardsync.errors import InvalidResponse
from boardsync.models import Member, is_board_code, is_stock_code
from boardsync.upstream import MAX_TOTAL, Page, parse_board_row, parse_member_row, parse_page

FAST = settings(max_examples=200, deadline=None)
REAL = (Path(__file__).parent / "fixtures" / "eastmoney"
        / "industry_board_fundflow_list_p1_of_86_jsonp_candlescyther.json").read_bytes()

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=5), children, max_size=5),
    max_leaves=20,
)
codes = st.one_of(
    st.from_regex(r"\A\d{6}\Z"),
    st.from_regex(r"\ABK\d{4}\Z"),
    st.text(max_size=8),
    st.integers(),
    st.none(),
)
names = st.one_of(st.text(max_size=12), st.just("-"), st.none(), st.integers(), st.just("a\x00"))
markets = st.one_of(st.integers(-5, 1200), st.just("-"), st.text(max_size=4), st.none(),
                    st.booleans(), st.floats(allow_nan=False))
rows = st.one_of(
    st.fixed_dictionaries({}, optional={"f12": codes, "f13": markets, "f14": names,
                                        "f2": json_scalars, "f3": json_scalars}),
    json_values,
)
totals = st.one_of(st.integers(-10, 2 * MAX_TOTAL), st.just(MAX_TOTAL), st.floats(),
                   st.text(max_size=4), st.none(), st.booleans())
diffs = st.one_of(
    st.lists(rows, max_size=8),
    st.dictionaries(st.one_of(st.integers(0, 300).map(str), st.text(max_size=3)), rows,
                    max_size=8),
    json_values,
)
datas = st.one_of(
    st.none(),
    st.fixed_dictionaries({}, optional={"total": totals, "diff": diffs}),
    json_values,
)
envelopes = st.fixed_dictionaries(
    {}, optional={"rc": st.one_of(st.just(0), st.integers(-3, 200), st.text(max_size=3)),
                  "data": datas, "rt": json_scalars, "dlmkts": st.text(max_size=3)},
)


def assert_page_or_invalid(body: bytes) -> Page | None:
    """Run the parser; a Page must be well-formed, the only allowed error is InvalidResponse."""
    try:
        page = parse_page(body)
    except InvalidResponse:
        return None
    assert isinstance(page, Page)
    assert page.total is None or (isinstance(page.total, int) and 0 <= page.total <= MAX_TOTAL)
    assert isinstance(page.rows, tuple) and all(isinstance(r, dict) for r in page.rows)
    if page.total is None:
        assert page.rows == ()
    return page


def wrap(text: str, style: int) -> str:
    """The JSONP shapes seen in the wild, plus whitespace."""
    return [
        text,
        f"jQuery1123_1761565635682({text});",
        f"cb({text})",
        f" \n cb ( {text} ) ; \r\n",
        f"\ufeff{text}",
    ][style]


@FAST
@given(st.binary(max_size=300))
def test_arbitrary_bytes(body: bytes) -> None:
    assert_page_or_invalid(body)


@FAST
@given(st.text(max_size=200), st.integers(0, 4))
def test_arbitrary_text_in_jsonp_wrappers(text: str, style: int) -> None:
    assert_page_or_invalid(wrap(text, style).encode("utf-8", "surrogatepass"))


@FAST
@given(envelopes, st.integers(0, 4))
def test_arbitrary_envelopes(envelope: dict[str, Any], style: int) -> None:
    assert_page_or_invalid(wrap(json.dumps(envelope, ensure_ascii=False), style).encode())


@FAST
@given(json_values)
def test_arbitrary_json_documents(value: object) -> None:
    assert_page_or_invalid(json.dumps(value).encode())


@FAST
@given(st.integers(1, len(REAL) - 1))
def test_truncated_real_capture_is_invalid(cut: int) -> None:
    body = REAL[:cut]
    if body.rstrip().endswith(b")"):  # cut exactly after ")" is still complete JSONP
        return
    assert assert_page_or_invalid(body) is None


@FAST
@given(st.integers(0, 400), st.booleans(), st.integers(0, MAX_TOTAL))
def test_valid_pages_of_any_size_round_trip(n: int, as_object: bool, total: int) -> None:
    rows = [{"f12": f"{i:06d}", "f13": i % 2, "f14": f"s{i}"} for i in range(n)]
    diff: object = {str(i): r for i, r in enumerate(rows)} if as_object else rows
    body = json.dumps({"rc": 0, "data": {"total": total, "diff": diff}}).encode()
    page = parse_page(body)
    assert page.total == total and list(page.rows) == rows


@FAST
@given(st.one_of(st.integers(max_value=-1), st.integers(min_value=MAX_TOTAL + 1), st.floats(),
                 st.text(max_size=5), st.booleans()))
def test_absurd_totals_are_invalid(total: object) -> None:
    body = json.dumps({"rc": 0, "data": {"total": total, "diff": []}}).encode()
    assert assert_page_or_invalid(body) is None


@FAST
@given(rows)
def test_member_rows_are_valid_members_or_invalid(row: object) -> None:
    try:
        member = parse_member_row(row)
    except InvalidResponse:
        return
    assert isinstance(member, Member)
    assert is_stock_code(member.code)
    assert isinstance(member.name, str) and member.name and "\x00" not in member.name
    assert isinstance(member.market, int) and not isinstance(member.market, bool)
    assert 0 <= member.market <= 999


@FAST
@given(rows)
def test_board_rows_are_valid_boards_or_invalid(row: object) -> None:
    try:
        board = parse_board_row(row, "concept")
    except InvalidResponse:
        return
    assert is_board_code(board.code) and board.kind == "concept" and board.name
