"""The shared pager stepped over scripted pages by several claimants, in any order.

No sockets, no threads: each test plays the claimants one call at a time (claim, take,
give back) and checks that the verdict is the sequential pager's for the same pages.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from boardsync.errors import InvalidResponse
from boardsync.models import Member
from boardsync.upstream import Page, Pager, SharedPager, Step, members_query
from upstream_fakes import member_rows

CODES = [f"{i:06d}" for i in range(1, 4001)]
NULL = Page(total=None, rows=())


def rows(total: int, codes: Sequence[str]) -> Page:
    return Page(total=total, rows=tuple(member_rows(list(codes))))


def board(total: int, per_page: int = 100) -> dict[int, Page]:
    """Every page of a board of ``total`` members, ``per_page`` rows a page."""
    pages = {}
    for pn, start in enumerate(range(0, total, per_page), 1):
        pages[pn] = rows(total, CODES[start:min(start + per_page, total)])
    return pages


def shared_after_page_1(first: Page) -> SharedPager[Member]:
    pager: Pager[Member] = Pager(members_query("BK0596"))
    assert pager.take(first) is Step.MORE
    return SharedPager(pager)


def codes(s: SharedPager[Member]) -> list[str]:
    return [m.code for m in s.items]


def test_pages_claimed_out_of_order_make_the_board_in_page_order() -> None:
    pages = board(450)  # 5 pages, the last one of 50 rows
    s = shared_after_page_1(pages[1])
    a, b, c = s.claim(), s.claim(), s.claim()
    assert (a, b, c) == (2, 3, 4)
    assert s.unclaimed == 1
    assert s.take(c, pages[c]) is False  # answered first: order does not matter
    d = s.claim()
    assert d == 5 and s.claim() is None and not s.finished  # all claimed, two still out
    for pn in (a, d):
        assert s.take(pn, pages[pn]) is False
    assert s.outcome is None  # page 3 is still out
    assert s.take(b, pages[b]) is False
    assert s.outcome is Step.DONE
    assert codes(s) == CODES[:450]


def test_a_page_given_back_is_claimed_again_before_new_ones() -> None:
    pages = board(400)
    s = shared_after_page_1(pages[1])
    first = s.claim()
    s.give_back(first)  # its claimant was stopped before an answer
    assert s.claim() == first
    assert s.claim() == 3


def test_a_total_that_changes_between_pages_is_incomplete() -> None:
    pages = board(300)
    s = shared_after_page_1(pages[1])
    pn = s.claim()
    s.take(pn, rows(301, CODES[100:200]))
    assert s.outcome is Step.INCOMPLETE and "total changed from 300 to 301" in s.reason
    assert s.claim() is None  # nobody asks a fetch that ended


def test_an_empty_page_is_asked_once_more_then_ends_the_fetch_there() -> None:
    pages = board(500)
    s = shared_after_page_1(pages[1])
    p2, p3 = s.claim(), s.claim()
    assert s.take(p2, NULL) is True  # once: the claimant asks page 2 again
    assert s.take(p2, pages[2]) is False  # the glitch cost one request
    assert s.take(p3, NULL) is True
    assert s.take(p3, NULL) is False  # empty again: nothing past page 3 is asked
    assert s.claim() is None
    assert s.outcome is Step.INCOMPLETE and "200 distinct codes, short of total=500" in s.reason


def test_an_over_reported_total_opens_extra_pages_after_a_full_last_page() -> None:
    # total says 350 but the pages hold 400 rows over 4 full pages and then end
    real = CODES[:400]
    first = rows(350, real[:100])
    s = shared_after_page_1(first)
    for _ in range(3):
        pn = s.claim()
        assert pn is not None
        s.take(pn, rows(350, real[(pn - 1) * 100:pn * 100]))
    assert s.outcome is Step.INCOMPLETE  # 400 distinct codes, more than 350: never DONE


def test_a_short_count_with_a_full_last_page_asks_past_the_plan() -> None:
    # total 300, but duplicates across pages leave 295 distinct after 3 pages: ask page 4
    dup = CODES[:100] + CODES[95:195] + CODES[195:295]
    s = shared_after_page_1(rows(300, dup[:100]))
    for _ in range(2):
        pn = s.claim()
        assert pn is not None
        s.take(pn, rows(300, dup[(pn - 1) * 100:pn * 100]))
    assert s.outcome is None
    assert s.claim() == 4  # the extra page, opened once every planned page was in
    s.take(4, rows(300, CODES[295:300]))
    assert s.outcome is Step.DONE and len(s.items) == 300


def test_a_garbled_row_leaves_the_page_claimed_for_its_claimant() -> None:
    pages = board(300)
    s = shared_after_page_1(pages[1])
    pn = s.claim()
    with pytest.raises(InvalidResponse):
        s.take(pn, Page(total=300, rows=({"f12": None},)))
    assert s.take(pn, pages[pn]) is False  # asked again, accepted


def test_fail_ends_the_fetch_for_every_claimant_and_keeps_the_first_error() -> None:
    pages = board(500)
    s = shared_after_page_1(pages[1])
    s.claim()
    p3 = s.claim()
    first, second = RuntimeError("page 2 kept failing"), RuntimeError("later")
    s.fail(first)
    s.fail(second)
    assert s.finished and s.error is first and s.outcome is None
    assert s.take(p3, pages[p3]) is False  # an answer still in flight is dropped
    assert s.claim() is None and s.unclaimed == 0


def test_a_page_not_claimed_cannot_be_taken() -> None:
    s = shared_after_page_1(board(300)[1])
    with pytest.raises(RuntimeError, match="not claimed"):
        s.take(3, board(300)[3])


def test_only_a_pager_that_planned_more_pages_can_be_shared() -> None:
    pager: Pager[Member] = Pager(members_query("BK0475"))
    with pytest.raises(ValueError):
        SharedPager(pager)  # page 1 not taken


def test_claimants_on_threads_each_get_distinct_pages() -> None:
    pages = board(3674)  # BK0596: 37 pages
    s = shared_after_page_1(pages[1])
    claimed: list[int] = []
    lock = threading.Lock()

    def claimant() -> None:
        while (pn := s.claim()) is not None:
            with lock:
                claimed.append(pn)
            s.take(pn, pages[pn])

    threads = [threading.Thread(target=claimant) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == list(range(2, 38))
    assert s.outcome is Step.DONE and codes(s) == CODES[:3674]
