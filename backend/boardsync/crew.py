"""The workers of one run as a group: how many are still running, and IP thrift.

A worker that loses its IP near the end of a run may do better to stop than to take a new
one: the day's ration of IPs is small, and the boards still waiting may be only seconds of
work for the workers that still hold an IP. The decision needs the whole crew (who holds a
live IP, how much work waits), so it lives here and not in a worker; workers ask it.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol

from .config import Settings
from .learner import QUIET_SPACINGS, Learner
from .lifetime import IpLife
from .models import Board
from .pacing import RateController
from .plan import expected_pages, pages_waiting
from .proxy import Proxy
from .queue import TaskQueue

logger = logging.getLogger(__name__)


#: The crew sizes itself to finish the work waiting within this share of an IP's life: IPs
#: needed = the work / what one IP serves in its life (issue 14's rule). Less takes IPs the
#: learned allowance could spare: at 3/4 the reference world took 34 IPs, at all of it 28
#: for a run 4 s longer (a shorter horizon made up for the lists and the biggest board,
#: which held the end back until their pages were shared).
HORIZON_SHARE = 1.0
#: Seconds an idle worker (no IP, none needed yet) waits before asking the crew again, and
#: the owner of a shared fetch between looks at the pages others are asking: as often as
#: the manager looks at its outcomes, so a board waits no longer for it.
IDLE_POLL_S = 0.05
#: The crew's latest answers its throughput is measured over.
PACE_SAMPLES = 100
#: No IP is added while the IPs held (and promised) could be kept busy by the crew's
#: throughput at this share of the rate they may be asked at: more holders than that are
#: held back by something else than the allowance (latency, the client's own CPU), and a
#: new IP would add age, not answers.
SLOW_SHARE = 0.5


class Holder(Protocol):
    """What the crew reads of a worker's IP slot."""

    @property
    def live(self) -> bool: ...

    @property
    def current(self) -> Proxy | None: ...


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


def more_ips_needed(waiting_pages: float, capacity: float) -> bool:
    """Whether one more IP is worth taking (pure; pacing ``learn``, bought IPs).

    ``capacity`` is what the IPs held (and those already promised to workers about to take
    one) can still serve in their remaining lives under the learned allowance. While it
    falls short of the work waiting, another IP is needed: IPs needed = work / per-IP
    allowance, taken as the work shows itself. Example: 300 pages waiting, 4 IPs with 40 s
    left at 1/s = 160 -> True; 9 such IPs (360) -> False.
    """
    return capacity < waiting_pages


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
                 sizes: Mapping[str, int], lists_pending: Callable[[], bool],
                 life: IpLife | None = None,
                 unlisted_pages: Callable[[], int] = lambda: 0) -> None:
        self.settings = settings
        self.unlisted_pages = unlisted_pages
        self.life = life or IpLife(settings.ip_life, settings.ip_ttl)
        self._promised: set[int] = set()  # admitted, no IP yet
        self._probe_at = -math.inf  # when a worker was last admitted for the probe alone
        self._answers: deque[float] = deque(maxlen=PACE_SAMPLES)  # the crew's latest answers
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

    def gated(self) -> Learner | None:
        """The learner when this crew sizes itself live (``learn``, the extraction API)."""
        learner = self.rate.learner
        return learner if learner is not None and self.settings.proxy == "api" else None

    def admit(self, index: int, now: float) -> bool:
        """Whether worker ``index``, holding no live IP, may take one now.

        Live sizing (:func:`more_ips_needed`) over a horizon of :data:`HORIZON_SHARE` of an
        IP's life: what the IPs held can serve in it (the learned rate times the part of
        their life inside it), and the IPs promised (a fresh IP's burst plus the rate over
        the horizon), against the pages waiting: the boards queued, and the stored boards
        of the lists still to come. Always True without a learner or bought IPs. Decided
        and promised under one lock, so two idle workers cannot both take the last IP
        needed.
        """
        learner = self.gated()
        if learner is None:
            return True
        allowance = learner.allowance
        rate = allowance.rate  # proven for any age: what every holder is paced at when old
        most = self.throughput(now) / (SLOW_SHARE * rate)  # holders the client can keep busy
        horizon = HORIZON_SHARE * self.life.estimate()
        fresh = learner.per_life(horizon)
        size = self.settings.page_size
        waiting = self.unlisted_pages() + pages_waiting(self.tasks.pending(), self.sizes, size)
        with self._lock:
            self._promised.discard(index)
            capacity = 0.0
            for i, slot in self._holders.items():
                if i in self._retired:
                    continue
                held = slot.current
                if held is not None and slot.live:  # at the rate for its age, young or not
                    age = max(0.0, now - held.born)
                    left = held.born + self.life.estimate() - now
                    capacity += allowance.served_between(age, age + max(0.0, min(horizon, left)))
                elif i in self._promised:
                    capacity += fresh
            busy = sum(1 for i, slot in self._holders.items()
                       if i not in self._retired and (slot.live or i in self._promised))
            probe = learner.wants_prober() and waiting > 0 and \
                now - self._probe_at >= QUIET_SPACINGS / rate
            if busy >= most or not (probe or more_ips_needed(waiting, capacity)):
                return False
            if probe:  # the probe waits for a fresh IP, and none would come for the work
                self._probe_at = now
            self._promised.add(index)
        return True

    def holding(self, index: int, proxy: Proxy) -> None:
        """Worker ``index`` now holds ``proxy``: its promise is kept; its stated life heard."""
        with self._lock:
            self._promised.discard(index)
        self.life.stated(proxy.stated_life)

    def answered(self, now: float) -> None:
        """One request of the crew was answered at ``now``."""
        with self._lock:
            self._answers.append(now)

    def throughput(self, now: float) -> float:
        """Answers a second the whole crew got lately (its last :data:`PACE_SAMPLES`;
        infinite before that many). Kept across IPs ending, so a crew whose IPs all expired
        together does not forget how much its client could do."""
        with self._lock:
            if len(self._answers) < PACE_SAMPLES:
                return math.inf
            span = now - self._answers[0]
            return (len(self._answers) - 1) / span if span > 0 else math.inf

    def spacing(self) -> float:
        """Seconds between two requests of one holder, as paced now."""
        s = self.settings
        if s.pacing in ("adaptive", "learn"):
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
        waiting = pages_waiting(self.tasks.pending(), self.sizes, s.page_size) + own
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
