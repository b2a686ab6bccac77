"""The workers of one run as a group: how many are still running, and IP thrift.

A worker that loses its IP near the end of a run may do better to stop than to take a new
one: the day's ration of IPs is small, and the boards still waiting may be only seconds of
work for the workers that still hold an IP. The decision needs the whole crew (who holds a
live IP, how much work waits), so it lives here and not in a worker; workers ask it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Protocol

from .config import Settings
from .models import Board
from .pacing import RateController
from .plan import expected_pages
from .queue import TaskQueue

logger = logging.getLogger(__name__)


class Holder(Protocol):
    """What the crew reads of a worker's IP slot."""

    @property
    def live(self) -> bool: ...


def worth_a_new_ip(waiting_pages: int, holders: int, spacing_s: float, thrift_s: float) -> bool:
    """Whether a worker that lost its IP should take a new one (pure; see ``ip_thrift``).

    The boards waiting are ``waiting_pages`` requests; the ``holders`` other workers with a
    live IP serve one each per ``spacing_s``. A new IP is worth one of the day's ration while
    that is at least ``thrift_s`` seconds of work per holder. Example: 120 pages, 19 holders,
    1.05 s apart -> 6.6 s of work each < 15 s: no new IP (the others finish ~0.35 s later).
    Always True with ``thrift_s`` 0 or nobody else to do the work.
    """
    if thrift_s <= 0 or holders < 1:
        return True
    return waiting_pages * spacing_s / holders >= thrift_s


class Crew:
    """The run's workers: a count of those still running and the thrift decision.

    Args:
        settings: ``ip_thrift``, ``proxy``, ``pacing``, the fixed delays and ``page_size``.
        tasks: the queue (its waiting boards are the work left).
        rate: the shared pacing estimate (its spacing is how fast a holder works).
        sizes: last known member count per board (the run fills it as lists arrive).
        lists_pending: True while a board list is still to come (its boards are unknown).
    """

    def __init__(self, settings: Settings, tasks: TaskQueue, rate: RateController,
                 sizes: Mapping[str, int], lists_pending: Callable[[], bool]) -> None:
        self.settings = settings
        self.tasks = tasks
        self.rate = rate
        self.sizes = sizes
        self.lists_pending = lists_pending
        self._holders: dict[int, Holder] = {}
        self._retired: set[int] = set()
        self._running = 0
        self._lock = threading.Lock()

    def join(self, index: int, slot: Holder) -> None:
        """Worker ``index`` starts, holding its IPs in ``slot``."""
        with self._lock:
            self._holders[index] = slot
            self._running += 1

    def leave(self, index: int) -> None:
        """Worker ``index``'s thread ended (done, stopped or crashed); a retired one was
        counted out when it retired."""
        with self._lock:
            if index in self._holders and index not in self._retired:
                self._running -= 1
                self._retired.add(index)

    @property
    def running(self) -> int:
        with self._lock:
            return self._running

    def live_holders(self) -> int:
        """Workers still running that hold a live IP (an expired one held by an idle worker
        does not count: it would be replaced before that worker's next request)."""
        with self._lock:
            slots = [s for i, s in self._holders.items() if i not in self._retired]
        return sum(1 for s in slots if s.live)

    def spacing(self) -> float:
        """Seconds between two requests of one holder, as paced now."""
        s = self.settings
        if s.pacing == "adaptive":
            return self.rate.spacing
        return (s.req_delay_min + s.req_delay_max) / 2

    def retire(self, index: int, board: Board) -> bool:
        """Whether worker ``index``, which lost its IP while fetching ``board``, stops instead
        of taking a new one (``ip_thrift``, extraction API only); True counts it out.

        Never while a board list is still to come (its boards are not counted yet), never for
        a board that is itself ``ip_thrift`` seconds of work or more (it cannot be shared, so
        handing it back would only make it finish later), and never for the last worker still
        running: the decision and the count are taken under one lock, so two workers whose
        IPs expire together cannot both leave.
        """
        s = self.settings
        if s.ip_thrift <= 0 or s.proxy != "api" or self.lists_pending():
            return False
        spacing = self.spacing()
        own = expected_pages(board, self.sizes, s.page_size)
        if own * spacing >= s.ip_thrift:
            return False
        waiting = sum(expected_pages(t.board, self.sizes, s.page_size)
                      for t in self.tasks.pending()) + own
        holders = self.live_holders()
        with self._lock:
            if self._running <= 1 or worth_a_new_ip(waiting, holders, spacing, s.ip_thrift):
                return False
            self._running -= 1
            self._retired.add(index)
        logger.info("Worker %d: retiring instead of taking a new IP: the boards waiting are "
                    "less than %.0f s of work for the %d workers still holding one", index,
                    s.ip_thrift, holders)
        return True
