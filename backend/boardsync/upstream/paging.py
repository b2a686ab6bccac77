"""Paging through one ``clist`` filter, as a state machine with no I/O.

Why a pager and not a loop in the client: every decision about a fetch in progress (pace the
next request, retry this page on another IP, give up on the board) belongs to the caller,
which knows the proxy pool, the breaker and the stop flags. When the loop lived in the client
it had to call back into the worker several times per page. Now the caller asks for
``pager.page``, hands the answer to :meth:`Pager.take`, and decides what to do with what
:meth:`Pager.take` returns or raises; the pager only judges the pages. So each rule below is
tested by stepping a :class:`Pager` over scripted :class:`Page` values, with no socket.

Rules (the same as the client loop they replace):

* **Page count from the rows actually returned.** The server silently caps ``pz`` (at 100 or
  lower), so the number of pages is ``ceil(total / len(rows of page 1))``. Worked example:
  total 230 with pages capped at 50 rows -> ceil(230 / 50) = 5 pages, not
  ceil(230 / 100) = 3 (which would silently lose 80 rows).
* **Counts.** Rows are de-duplicated by code (first occurrence wins). Fewer distinct codes than
  ``data.total`` is :attr:`Step.INCOMPLETE`. More distinct codes than ``total`` is too:
  duplicates in the raw rows are expected (rows can shift between pages) and are why raw
  count > total is fine, but more *distinct* codes than the server says exist means the
  membership changed while we paged, so the snapshot is not trustworthy and the board is
  retried whole. A ``total`` that changes between pages is incomplete for the same reason.
* **One more ask for an empty page where rows were due.** ``data: null`` or an empty ``diff``
  on a planned page is either the upstream's rare null-data glitch (then the page is there
  when asked again) or a total it cannot serve (then it is empty again). One more ask tells
  them apart, and the glitch costs one request instead of the whole board; nobody blames the
  IP either way.
* **Over-reported totals.** If the planned pages leave us short and the last page was full,
  up to ``extra_pages`` more pages are asked for, until an empty page (what stock-sdk does
  when rows are fewer than ``total``); still short -> incomplete.
* **Null on page 1.** ``rc=100`` is :class:`~boardsync.errors.NoQuote` (a directory board
  without a quote); for a board the directory lists (``Query.witnessed``) it is asked once
  more, then :class:`~boardsync.errors.SoftBan` (the board exists: the IP or pacing is to
  blame; a ban answers null again, the upstream's rare null glitch does not, and an IP it hit
  is kept); else :class:`~boardsync.errors.EmptyData`, as before.
* **Page budget.** A server returning tiny pages with a huge total could make us send
  thousands of requests from one IP; a plan of more than ``max_pages`` pages is
  :class:`~boardsync.errors.InvalidResponse` (default 200: the largest board, ~3,700
  members, is 37 pages at 100 rows and 74 at a 50-row cap).
"""

from __future__ import annotations

import enum
import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from ..errors import BadRequest, EmptyData, NoQuote, SoftBan, TooManyPages
from ..models import KIND_FILTERS, Board, Member, is_board_code, member_filter
from .parse import Page, parse_board_row, parse_member_row

logger = logging.getLogger(__name__)

#: Default bound on the pages one fetch may plan (see the module docstring, "Page budget").
DEFAULT_MAX_PAGES = 200
#: Default number of pages asked past the planned ones while still short of ``total``.
DEFAULT_EXTRA_PAGES = 2
#: ``rc`` of a board the directory lists without a quote (BK1362: ``rc=100, data=null``).
RC_NO_QUOTE = 100
MEMBER_FIELDS = "f12,f13,f14"
BOARD_FIELDS = "f12,f13,f14,f2,f3,f104,f105,f124"


class HasCode(Protocol):
    """What the pager needs of an item: its code, to drop duplicate rows."""

    @property
    def code(self) -> str: ...


#: An item a row parses to: anything with a ``code`` (:class:`Board`, :class:`Member`).
T = TypeVar("T", bound=HasCode)


class Step(enum.Enum):
    """What :meth:`Pager.take` says about the fetch after one good page."""

    #: Ask for ``pager.page`` next (possibly the same page once more).
    MORE = "more"
    #: Every page is in and the distinct codes match ``total``: ``pager.items`` is the answer.
    DONE = "done"
    #: The pages do not add up (``pager.reason`` says why): retry the whole fetch.
    INCOMPLETE = "incomplete"


@dataclass(frozen=True)
class Query(Generic[T]):
    """What to page through: one ``fs`` filter, its fields, and how to read one row.

    Args:
        what: names the fetch in messages (``"board BK0475"``, ``"board list industry"``).
        fs: the ``clist`` filter (``"b:BK0475 f:!50"``).
        fields: the ``fields`` parameter (the row keys the parser reads).
        parse_row: one raw row -> item; raises InvalidResponse for a garbled row.
    """

    what: str
    fs: str
    fields: str
    parse_row: Callable[[object], T]
    #: why what is asked is known to exist ("" = it is not): a board the directory lists,
    #: or a kind's list, whose filter always exists and is empty as ``total: 0``; then
    #: ``data: null`` for it is a soft ban, and the reason is said in its message
    witnessed: str = ""


def members_query(board_code: str, *, witnessed: bool = False) -> Query[Member]:
    """The members of one board; ``witnessed``: the board directory lists it (see
    :class:`Query`).

    Raises:
        BadRequest: ``board_code`` is not ``BK`` + 4 digits; checked here so a code never
            reaches a URL unvalidated.
    """
    if not is_board_code(board_code):
        raise BadRequest(f"not a board code: {str(board_code)[:40]!r}")
    return Query(f"board {board_code}", member_filter(board_code), MEMBER_FIELDS,
                 parse_member_row, "for a board the directory lists" if witnessed else "")


def board_list_query(kind: str) -> Query[Board]:
    """All boards of ``kind`` (``industry``, ``concept`` or ``region``).

    Raises:
        BadRequest: ``kind`` is not one of :data:`~boardsync.models.KIND_FILTERS`.
    """
    if kind not in KIND_FILTERS:
        raise BadRequest(f"unknown board kind {kind!r}")
    parse_row: Callable[[object], Board] = functools.partial(parse_board_row, kind=kind)
    # witnessed: data: null on page 1 of a list is neither a deleted board nor a page past
    # the end (EASTMONEY_API.md section 5), so it is the soft limit "HTTP 200, data: null"
    # (section 13): a ban signal, which the learner must hear of like any other
    return Query(f"board list {kind}", KIND_FILTERS[kind], BOARD_FIELDS, parse_row,
                 witnessed="for a list, whose kind always exists")


@dataclass(frozen=True)
class Plan:
    """What page 1 fixed: the total, the rows per page, and how many pages that makes."""

    total: int
    per_page: int
    planned: int
    limit: int  # planned + extra pages: never ask past this page


class Pager(Generic[T]):
    """Judges the pages of one fetch, one at a time; the caller does the asking.

    Usage::

        pager = Pager(members_query("BK0475"))
        while (step := pager.take(get_page(pager.page))) is Step.MORE:
            pass

    where a real caller paces each request, and on an exception from ``get_page`` or
    ``take`` decides whether to ask ``pager.page`` again (the pager is unchanged by a
    failed page) or to give up.

    Args:
        query: what to page through.
        max_pages: refuse a plan of more pages (None = no bound).
        extra_pages: pages asked past the planned ones while still short of ``total``
            (0 = none; negative counts as 0).

    Attributes:
        query: as given.
        page: the page number to ask next (1 at the start).
        total: ``data.total`` of page 1 (None until page 1 is taken).
        pages: pages with rows taken so far.
        reason: why, once :meth:`take` returned :attr:`Step.INCOMPLETE` (else ``""``).
    """

    def __init__(self, query: Query[T], *, max_pages: int | None = DEFAULT_MAX_PAGES,
                 extra_pages: int = DEFAULT_EXTRA_PAGES) -> None:
        self.query = query
        self.max_pages = max_pages
        self.extra_pages = max(0, extra_pages)
        self.page = 1
        self.total: int | None = None
        self.pages = 0
        self.reason = ""
        self._plan: Plan | None = None
        self._items: dict[str, T] = {}
        self._raw = 0  # rows taken, duplicates included
        self._last_rows = 0  # rows on the last page taken
        self._asked_again = False  # the current page came back empty once already
        self._finished: Step | None = None

    @property
    def items(self) -> list[T]:
        """The distinct items in server order, first occurrence of a code winning."""
        return list(self._items.values())

    @property
    def plan(self) -> Plan | None:
        """What page 1 fixed (None before page 1, or when it ended the fetch)."""
        return self._plan

    def take(self, page: Page) -> Step:
        """Judge the answer to ``self.page`` and say what to do next.

        Returns:
            :attr:`Step.MORE` to ask ``self.page`` next: the following page, or the same
            page once more when a planned page came back empty (``data: null`` or no rows),
            or page 1 of a witnessed query came back ``data: null``.
            :attr:`Step.DONE` when the fetch is complete (``items``, ``total``, ``pages``).
            :attr:`Step.INCOMPLETE` when the pages do not add up (``reason``).

        Raises:
            EmptyData: page 1 has ``data: null``, or a positive total and no rows.
            InvalidResponse: a row of this page is garbled, or (:class:`TooManyPages`, which
                refuses the whole fetch, not this page) page 1 plans more than
                ``max_pages`` pages.
            RuntimeError: called again after DONE or INCOMPLETE (a caller's bug).

            Apart from :class:`TooManyPages`, an exception is about this page only and leaves
            the pager unchanged, so the caller may ask the same ``self.page`` again (on another
            IP, say). They carry no ``proxy``/``url``: the caller knows those and sets them.
        """
        if self._finished is not None:
            raise RuntimeError(f"{self.query.what}: take() after {self._finished.value}")
        if self.page == 1:
            if page.total is None and self.query.witnessed and page.rc != RC_NO_QUOTE \
                    and not self._asked_again:
                self._asked_again = True  # a glitch or a ban: one more ask tells them apart
                return Step.MORE
            self._check_first(page)
        parsed = [self.query.parse_row(row) for row in page.rows]  # garbled row: this page
        if self._plan is None:
            return self._take_first(page, parsed)
        return self._take_next(self._plan, page, parsed)

    def _check_first(self, page: Page) -> None:
        what = self.query.what
        if page.total is None and page.rc == RC_NO_QUOTE:
            raise NoQuote(f"{what}: no quote (rc={page.rc}, data null)")
        if page.total is None and self.query.witnessed:
            raise SoftBan(f"{what}: data is null on page 1 (rc={page.rc}) "
                          f"{self.query.witnessed}")
        if page.total is None:
            raise EmptyData(f"{what}: data is null on page 1 (rc={page.rc})")
        if page.total and not page.rows:
            raise EmptyData(f"{what}: total={page.total} but page 1 has no rows")

    def _take_first(self, page: Page, parsed: list[T]) -> Step:
        total = page.total
        assert total is not None  # _check_first raised EmptyData otherwise
        if not parsed:
            self.total = 0  # total == 0: an empty board, the caller judges it
            return self._finish(Step.DONE)
        per_page = len(parsed)
        planned = math.ceil(total / per_page)
        if self.max_pages is not None and planned > self.max_pages:
            raise TooManyPages(f"{self.query.what}: total={total} at {per_page} rows/page "
                                  f"needs {planned} pages (> {self.max_pages})")
        self._plan = Plan(total, per_page, planned, planned + self.extra_pages)
        self.total = total
        self._add(parsed)
        return self._next_or_end(self._plan)

    def _take_next(self, plan: Plan, page: Page, parsed: list[T]) -> Step:
        empty = page.total is None or not page.rows
        if empty and self.page <= plan.planned and not self._asked_again:
            logger.debug("Pager: %s page %d of %d came back empty; asking once more",
                         self.query.what, self.page, plan.planned)
            self._asked_again = True
            return Step.MORE
        if empty:
            return self._end(plan)  # past the end (data null or empty diff): stop early
        if page.total != plan.total:
            self.reason = (f"{self.query.what}: total changed from {plan.total} to "
                           f"{page.total} while paging (page {self.page})")
            return self._finish(Step.INCOMPLETE)
        self._add(parsed)
        return self._next_or_end(plan)

    def _add(self, parsed: list[T]) -> None:
        self._raw += len(parsed)
        for item in parsed:
            self._items.setdefault(item.code, item)  # first occurrence wins
        self.pages += 1
        self._last_rows = len(parsed)

    def _next_or_end(self, plan: Plan) -> Step:
        """After a page with rows: ask the next one, or end the fetch.

        The planned pages always come; past them, only while still short and the last page
        was full (a short page is the end), and never past ``planned + extra_pages``.
        """
        pn = self.page
        if pn >= plan.limit:
            return self._end(plan)
        if pn >= plan.planned and (len(self._items) >= plan.total
                                   or self._last_rows < plan.per_page):
            return self._end(plan)
        self.page = pn + 1
        self._asked_again = False
        return Step.MORE

    def _end(self, plan: Plan) -> Step:
        distinct = len(self._items)
        if self._raw != distinct:
            logger.debug("Pager: %s: %d duplicate rows dropped", self.query.what,
                         self._raw - distinct)
        if distinct == plan.total:
            return self._finish(Step.DONE)
        short = "short of" if distinct < plan.total else "more than"
        self.reason = (f"{self.query.what}: {distinct} distinct codes, {short} "
                       f"total={plan.total} ({self.pages} pages, {self._raw} rows)")
        return self._finish(Step.INCOMPLETE)

    def _finish(self, step: Step) -> Step:
        self._finished = step
        return step
