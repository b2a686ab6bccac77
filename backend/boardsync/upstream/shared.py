"""The pages of one fetch asked by several workers at once, judged as :class:`Pager` does.

Why: a board's pages used to go through one worker one after another, so the largest board
(BK0596, 37 pages) took 37 requests at one IP's allowance while every other IP of the crew
was idle or on small boards; it finished last, far behind the time the crew's allowance as
a whole allows (requests are fungible between IPs: the upstream's limit is per IP). Once
page 1 fixed the plan, any worker may *claim* a page still to ask, ask it on its own IP at
its own pace, and hand the answer back; the worker that asked page 1 (the owner) waits for
the last answer and reports the fetch, whole, as before.

The rules are the sequential pager's (see :mod:`.paging`), over pages that come back in any
order: every page must carry page 1's ``total`` (else the snapshot moved: incomplete); a
planned page that comes back empty is asked once more by its claimant, and empty again it
ends the fetch there (no page past it is claimed); once every page is in, a full last page
with fewer distinct codes than ``total`` opens one more page (up to the plan's limit);
distinct codes are counted over the pages in page order, first occurrence winning, and must
equal ``total``. No I/O here: the workers ask, pace and retry.
"""

from __future__ import annotations

import heapq
import threading
from typing import Generic

from .paging import Pager, Plan, Step, T
from .parse import Page


class SharedPager(Generic[T]):
    """The pages after page 1 of one fetch, claimed one at a time by any number of workers.

    Usage (each worker, the owner too)::

        while (pn := shared.claim()) is not None:
            while shared.take(pn, get_page(pn)):  # True: empty once, ask pn again
                pass

    On an exception for page ``pn`` the claimant asks it again or, leaving it,
    :meth:`give_back` it (someone else will claim it), or ends the fetch with :meth:`fail`.
    The owner waits for :attr:`outcome`: :attr:`Step.DONE` (:attr:`items`),
    :attr:`Step.INCOMPLETE` (:attr:`reason`) or ``None`` with :attr:`error` set (failed).

    Args:
        pager: a pager that took page 1 and asks for page 2 (its plan is fixed).
        listing: the fetch is a board list (its helpers stop on the list stop, not the
            member stop).
    """

    def __init__(self, pager: Pager[T], *, listing: bool = False) -> None:
        plan = pager.plan
        if plan is None or pager.page != 2:
            raise ValueError("a shared fetch starts after page 1 planned more pages")
        self.query = pager.query
        self.listing = listing
        self.plan: Plan = plan
        self.outcome: Step | None = None
        self.reason = ""
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._pages: dict[int, list[T]] = {1: pager.items}
        self._rows: dict[int, int] = {1: len(pager.items)}
        self._next = 2  # the lowest page never claimed
        self._last = plan.planned  # the highest page that may be claimed now
        self._end: int | None = None  # a page that came back empty twice: nothing past it
        self._given_back: list[int] = []  # a heap: claimed, left unanswered
        self._out: set[int] = set()  # claimed and not answered yet
        self._asked_again: set[int] = set()
        self._failed = False

    # -- what a claimant does --------------------------------------------------------------

    def claim(self) -> int | None:
        """A page to ask, or None when none is left to claim (the fetch may still be waiting
        for pages others claimed: see :attr:`finished`)."""
        with self._lock:
            if self.finished:
                return None
            if self._given_back:
                pn = heapq.heappop(self._given_back)
            elif self._open():
                pn = self._next
                self._next += 1
            else:
                return None
            self._out.add(pn)
            return pn

    def take(self, pn: int, page: Page) -> bool:
        """Judge the answer to claimed page ``pn``; True = ask ``pn`` again (it came back
        empty once), False = the page is done with (claim another).

        Raises:
            InvalidResponse: a row is garbled; ``pn`` stays claimed (ask it again or give
                it back), as with :meth:`Pager.take`.
        """
        parsed = [self.query.parse_row(row) for row in page.rows]
        with self._lock:
            if pn not in self._out:
                raise RuntimeError(f"{self.query.what}: page {pn} was not claimed")
            if self.finished:
                self._out.discard(pn)  # the fetch ended meanwhile: the answer is not needed
                return False
            empty = page.total is None or not page.rows
            if empty and pn <= self.plan.planned and pn not in self._asked_again:
                self._asked_again.add(pn)
                return True
            self._out.discard(pn)
            if empty:
                self._end = pn if self._end is None else min(self._end, pn)
            elif page.total != self.plan.total:
                self.reason = (f"{self.query.what}: total changed from {self.plan.total} to "
                               f"{page.total} while paging (page {pn})")
                self.outcome = Step.INCOMPLETE
                return False
            else:
                self._pages[pn], self._rows[pn] = parsed, len(parsed)
            self._settle()
            return False

    def give_back(self, pn: int) -> None:
        """The claimant of ``pn`` leaves it unanswered (stopped, retired, out of IPs)."""
        with self._lock:
            if pn in self._out:
                self._out.discard(pn)
                heapq.heappush(self._given_back, pn)

    def fail(self, error: BaseException) -> None:
        """End the fetch as failed (a page that kept failing, the owner stopped): nobody
        claims again; the first error is kept."""
        with self._lock:
            if not self.finished:
                self._failed = True
                self.error = error

    # -- what the owner reads --------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """Done, incomplete or failed: nothing more will be claimed."""
        return self._failed or self.outcome is not None

    @property
    def unclaimed(self) -> int:
        """Pages still to claim (for sizing the crew: work nobody holds yet)."""
        with self._lock:
            if self.finished:
                return 0
            top = self._last if self._end is None else min(self._last, self._end - 1)
            return max(0, top - self._next + 1) + len(self._given_back)

    @property
    def items(self) -> list[T]:
        """The distinct items over the pages in page order, first occurrence winning."""
        with self._lock:
            return list(self._merged().values())

    # -- judging (lock held) ---------------------------------------------------------------

    def _open(self) -> bool:
        return self._next <= self._last and (self._end is None or self._next < self._end)

    def _merged(self) -> dict[str, T]:
        merged: dict[str, T] = {}
        for pn in sorted(self._pages):
            for item in self._pages[pn]:
                merged.setdefault(item.code, item)
        return merged

    def _settle(self) -> None:
        """Once every claimable page is in: one more page, or the verdict."""
        if self._out or self._given_back or self._open():
            return
        plan, distinct = self.plan, len(self._merged())
        if (self._end is None and distinct < plan.total and self._last < plan.limit
                and self._rows.get(self._last, 0) >= plan.per_page):
            self._last += 1  # over-reported total, full last page: one more (Pager's rule)
            return
        if distinct == plan.total:
            self.outcome = Step.DONE
            return
        raw = sum(self._rows.values())
        short = "short of" if distinct < plan.total else "more than"
        self.reason = (f"{self.query.what}: {distinct} distinct codes, {short} "
                       f"total={plan.total} ({len(self._pages)} pages, {raw} rows)")
        self.outcome = Step.INCOMPLETE
