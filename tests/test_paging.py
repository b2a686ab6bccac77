"""The pager stepped over scripted pages: no sockets, no sleeping, every rule of a fetch.

Each test scripts what the upstream answers for each page number and feeds the pager the way a
caller does (ask ``pager.page``, hand the answer to ``take``), recording the pages asked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from boardsync.errors import BadRequest, EmptyData, InvalidResponse, SoftBan
from boardsync.models import Board, Member
from boardsync.upstream import (
    BOARD_FIELDS,
    DEFAULT_MAX_PAGES,
    MEMBER_FIELDS,
    Page,
    Pager,
    Step,
    board_list_query,
    members_query,
)
from upstream_fakes import member_rows

CODES = [f"{i:06d}" for i in range(1, 301)]
NULL = Page(total=None, rows=())


def rows(total: int, codes: Sequence[str]) -> Page:
    """A page announcing ``total`` with one member row per code."""
    return Page(total=total, rows=tuple(member_rows(list(codes))))


def pager(*, max_pages: int | None = DEFAULT_MAX_PAGES, extra_pages: int = 2) -> Pager[Member]:
    return Pager(members_query("BK0475"), max_pages=max_pages, extra_pages=extra_pages)


def run(p: Pager[Member], script: Mapping[int, Sequence[Page]]) -> tuple[Step, list[int]]:
    """Feed ``p`` the scripted answers (per page number, in order) until it stops asking."""
    left = {pn: list(pages) for pn, pages in script.items()}
    asked: list[int] = []
    while True:
        asked.append(p.page)
        step = p.take(left[p.page].pop(0))
        if step is not Step.MORE:
            return step, asked


def codes_of(p: Pager[Member]) -> list[str]:
    return [m.code for m in p.items]


# --- queries ---------------------------------------------------------------------------------


def test_queries_name_the_filter_fields_and_row_parser() -> None:
    q = members_query("BK0475")
    assert (q.what, q.fs, q.fields) == ("board BK0475", "b:BK0475 f:!50", MEMBER_FIELDS)
    assert q.parse_row({"f12": "600519", "f14": "贵州茅台"}) == Member("600519", "贵州茅台", 1)
    b = board_list_query("concept")
    assert (b.what, b.fields) == ("board list concept", BOARD_FIELDS)
    assert b.parse_row({"f12": "BK0475", "f14": "银行"}) == Board("BK0475", "银行", "concept")


@pytest.mark.parametrize("code", ["BK047", "bk0475", "BK0475&pz=1", "", "000001"])
def test_a_bad_board_code_or_kind_is_refused_before_any_page(code: str) -> None:
    with pytest.raises(BadRequest):
        members_query(code)
    with pytest.raises(BadRequest):
        board_list_query("sector")


# --- complete fetches ------------------------------------------------------------------------


def test_pages_are_planned_from_the_rows_page_1_returned() -> None:
    """total 230 at 50 rows a page (the server capped pz=100) -> ceil(230 / 50) = 5 pages."""
    p = pager()
    script = {pn: [rows(230, CODES[:230][(pn - 1) * 50 : pn * 50])] for pn in range(1, 6)}
    assert run(p, script) == (Step.DONE, [1, 2, 3, 4, 5])
    assert codes_of(p) == CODES[:230] and (p.total, p.pages, p.reason) == (230, 5, "")


def test_one_page_and_an_empty_board() -> None:
    p = pager()
    assert p.take(rows(3, CODES[:3])) is Step.DONE and codes_of(p) == CODES[:3]
    empty = pager()
    assert empty.take(Page(total=0, rows=())) is Step.DONE
    assert (empty.items, empty.total, empty.pages) == ([], 0, 0)


def test_duplicates_across_pages_are_dropped_first_occurrence_wins() -> None:
    p = pager()
    first = rows(100, CODES[:50])
    shifted = Page(total=100, rows=(
        {"f12": CODES[0], "f14": "renamed"}, *member_rows(CODES[1:3] + CODES[50:100])))
    assert run(p, {1: [first], 2: [shifted]}) == (Step.DONE, [1, 2])
    assert codes_of(p) == CODES[:100] and p.items[0].name == f"股票{CODES[0]}"


def test_a_null_page_where_rows_were_due_is_asked_once_more_then_done() -> None:
    p = pager()
    script = {1: [rows(120, CODES[:50])], 2: [NULL, rows(120, CODES[50:100])],
              3: [rows(120, CODES[100:120])]}
    assert run(p, script) == (Step.DONE, [1, 2, 2, 3])
    assert codes_of(p) == CODES[:120] and p.pages == 3


def test_an_empty_diff_where_rows_were_due_counts_like_null() -> None:
    p = pager()
    script = {1: [rows(100, CODES[:50])], 2: [Page(total=100, rows=()), rows(100, CODES[50:100])]}
    assert run(p, script) == (Step.DONE, [1, 2, 2])


def test_an_over_reported_total_gets_extra_pages_until_complete() -> None:
    """Rows shifted between pages: the planned 2 pages hold 95 codes, a 3rd page the rest."""
    p = pager()
    script = {1: [rows(100, CODES[:50])], 2: [rows(100, CODES[45:95])],
              3: [rows(100, CODES[95:100])]}
    assert run(p, script) == (Step.DONE, [1, 2, 3])
    assert codes_of(p) == CODES[:100]


# --- incomplete fetches ----------------------------------------------------------------------


def test_a_short_total_is_incomplete_after_one_more_ask() -> None:
    p = pager()
    script = {1: [rows(120, CODES[:50])], 2: [rows(120, CODES[50:100])], 3: [NULL, NULL]}
    assert run(p, script) == (Step.INCOMPLETE, [1, 2, 3, 3])
    assert p.reason == ("board BK0475: 100 distinct codes, short of total=120 "
                        "(2 pages, 100 rows)")


def test_a_null_page_asked_again_and_empty_again_ends_the_fetch() -> None:
    p = pager()
    script = {1: [rows(150, CODES[:50])], 2: [NULL, NULL]}
    assert run(p, script) == (Step.INCOMPLETE, [1, 2, 2])
    assert "50 distinct codes, short of total=150" in p.reason


def test_an_empty_page_past_the_planned_ones_is_the_end_without_another_ask() -> None:
    p = pager()
    script = {1: [rows(100, CODES[:50])], 2: [rows(100, CODES[45:95])], 3: [NULL]}
    assert run(p, script) == (Step.INCOMPLETE, [1, 2, 3])
    assert "95 distinct codes, short of total=100 (2 pages, 100 rows)" in p.reason


def test_extra_pages_are_bounded() -> None:
    """Full pages that bring nothing new: planned 2 + extra_pages 2, never a 5th request."""
    p = pager()
    script = {1: [rows(100, CODES[:50])], 2: [rows(100, CODES[45:95])],
              3: [rows(100, CODES[:50])], 4: [rows(100, CODES[:50])]}
    assert run(p, script) == (Step.INCOMPLETE, [1, 2, 3, 4])
    assert "95 distinct codes, short of total=100 (4 pages, 200 rows)" in p.reason
    none = pager(extra_pages=0)
    script = {1: [rows(100, CODES[:50])], 2: [rows(100, CODES[45:95])]}
    assert run(none, script) == (Step.INCOMPLETE, [1, 2])


def test_a_short_last_page_is_the_end_even_when_still_short() -> None:
    p = pager()
    script = {1: [rows(100, CODES[:50])], 2: [rows(100, CODES[45:90])]}
    assert run(p, script) == (Step.INCOMPLETE, [1, 2])


def test_more_distinct_codes_than_total_is_incomplete() -> None:
    p = pager()
    script = {1: [rows(100, CODES[:50])], 2: [rows(100, CODES[50:101])]}
    assert run(p, script) == (Step.INCOMPLETE, [1, 2])
    assert "101 distinct codes, more than total=100" in p.reason
    zero = pager()
    assert zero.take(rows(0, CODES[:2])) is Step.INCOMPLETE and "more than total=0" in zero.reason


def test_a_total_changing_between_pages_is_incomplete() -> None:
    p = pager()
    script = {1: [rows(100, CODES[:50])], 2: [rows(101, CODES[50:100])]}
    assert run(p, script) == (Step.INCOMPLETE, [1, 2])
    assert p.reason == "board BK0475: total changed from 100 to 101 while paging (page 2)"


def test_take_after_the_end_is_a_bug() -> None:
    p = pager()
    assert p.take(rows(1, CODES[:1])) is Step.DONE
    with pytest.raises(RuntimeError):
        p.take(rows(1, CODES[:1]))


# --- a bad page: raised, the pager unchanged, the same page may be asked again ---------------


@pytest.mark.parametrize(
    ("page", "exc", "match"),
    [
        (NULL, EmptyData, "data is null on page 1"),
        (Page(total=None, rows=(), rc=102), EmptyData, "rc=102"),
        (Page(total=7, rows=()), EmptyData, "total=7 but page 1 has no rows"),
        (rows(5000, CODES[:1]), InvalidResponse, r"needs 5000 pages \(> 200\)"),
        (Page(total=2, rows=({"f12": 600519, "f14": "lost zeros"},)), InvalidResponse, "f12"),
    ],
)
def test_a_bad_page_1_raises_and_may_be_asked_again(page: Page, exc: type[Exception],
                                                    match: str) -> None:
    p = pager()
    with pytest.raises(exc, match=match) as info:
        p.take(page)
    assert getattr(info.value, "proxy", None) is None and getattr(info.value, "url", None) is None
    assert (p.page, p.total, p.pages, p.items) == (1, None, 0, [])
    assert p.take(rows(3, CODES[:3])) is Step.DONE and codes_of(p) == CODES[:3]


def test_the_page_budget_can_be_lifted() -> None:
    p = pager(max_pages=None)
    assert p.take(rows(5000, CODES[:1])) is Step.MORE and p.page == 2


def test_a_garbled_row_mid_way_leaves_the_pager_unchanged() -> None:
    p = pager()
    assert p.take(rows(100, CODES[:50])) is Step.MORE
    garbled = Page(total=100, rows=(*member_rows(CODES[50:99]), {"f12": "x"}))
    with pytest.raises(InvalidResponse):
        p.take(garbled)
    assert (p.page, p.pages, len(p.items)) == (2, 1, 50)
    assert p.take(rows(100, CODES[50:100])) is Step.DONE and codes_of(p) == CODES[:100]


def test_a_garbled_answer_to_the_second_ask_does_not_buy_a_third() -> None:
    """The one more ask is spent once ``take`` said MORE for it, whatever comes back next."""
    p = pager()
    assert p.take(rows(150, CODES[:50])) is Step.MORE
    assert p.take(NULL) is Step.MORE and p.page == 2
    with pytest.raises(InvalidResponse):
        p.take(Page(total=150, rows=({"f12": None},)))
    assert p.take(NULL) is Step.INCOMPLETE


def test_data_null_on_a_lists_first_page_is_a_soft_ban_an_empty_kind_is_total_0() -> None:
    """A kind's filter always exists (an empty kind answers ``total: 0``), so ``data: null``
    on its first page, asked twice, is neither a deleted board nor a page past the end: it is
    the soft limit, a ban signal the learner must hear of (once, it may be the upstream's
    glitch). An unwitnessed board's stays ambiguous."""
    lists = Pager(board_list_query("concept"), max_pages=DEFAULT_MAX_PAGES)
    assert lists.take(NULL) is Step.MORE and lists.page == 1  # a glitch's or a ban's: again
    with pytest.raises(SoftBan, match="for a list, whose kind always exists") as info:
        lists.take(NULL)
    assert info.value.error_class == "soft_ban"
    assert lists.take(Page(total=0, rows=())) is Step.DONE and lists.items == []
    with pytest.raises(EmptyData) as board:
        pager().take(NULL)
    assert type(board.value) is EmptyData


def test_a_null_first_page_of_a_listed_board_is_asked_once_more_and_then_judged() -> None:
    """The upstream's rare null glitch on page 1 costs one request, not the IP: the same
    page is asked again; a second null is the soft ban."""
    glitch = Pager(members_query("BK0475", witnessed=True))
    assert glitch.take(NULL) is Step.MORE and glitch.page == 1
    assert glitch.take(Page(total=3, rows=tuple(member_rows(["600000", "600001",
                                                                "600002"])))) is Step.DONE
    assert [m.code for m in glitch.items] == ["600000", "600001", "600002"]
    banned = Pager(members_query("BK0475", witnessed=True))
    assert banned.take(NULL) is Step.MORE
    with pytest.raises(SoftBan, match="for a board the directory lists"):
        banned.take(NULL)
