"""The task queue between the sync manager and its workers.

One item per board still to fetch: ``Task(retry_count, board, rank)``. Tasks come out by
fewest failed attempts first, then lowest ``rank``, then first put: with every rank equal that
is a FIFO. A failed board goes back with ``retry_count + 1``, behind every first attempt, so one
stubborn board cannot starve the others and its retries are naturally spaced by the rest of
the queue. The rank lets boards listed later still go first: the sync ranks boards by size
(largest first) and queues each kind's boards as soon as that kind's list arrives, so a big
concept board listed a few seconds after the industry boards still starts before the small
industry boards that are waiting. The interface (:class:`TaskQueue`) is
kept small on purpose: a PostgreSQL-backed queue (``SELECT ... FOR UPDATE SKIP LOCKED``) will
implement the same protocol later so several hosts can share one run.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from dataclasses import dataclass, field
from typing import Protocol

from .models import Board

logger = logging.getLogger(__name__)


class Share(Protocol):
    """What the queue's readers see of a fetch in progress that help tasks join
    (:class:`~boardsync.upstream.SharedPager`)."""

    @property
    def unclaimed(self) -> int:
        """Pages nobody has claimed yet."""
        ...


@dataclass(frozen=True, slots=True)
class Task:
    """One board to fetch; ``retry_count`` is how many attempts already failed (0 = first).

    ``rank`` orders tasks with the same ``retry_count``: lower goes first (the sync uses minus
    the board's expected size); equal ranks keep the order they were put in. A help task
    (``share`` set) goes before every board: its fetch is under way and finishes sooner.
    """

    retry_count: int
    board: Board
    rank: float = 0.0
    #: set on a *help* task: ask pages of this fetch in progress (its owner reports it);
    #: in-process only, so a queue shared between hosts would carry tasks without it
    share: Share | None = field(default=None, compare=False)


class TaskQueue(Protocol):
    """What the sync needs from a queue; implemented in memory now, in PostgreSQL later."""

    def put(self, task: Task) -> None:
        """Queue ``task`` behind every task of fewer attempts or lower rank."""
        ...

    def get(self, timeout: float | None = None) -> Task | None:
        """The head task, waiting up to ``timeout`` s; ``None`` when there is none."""
        ...

    def done(self, task: Task) -> None:
        """The worker finished with ``task`` (written, failed, or put back as a new task)."""
        ...

    def __len__(self) -> int:
        """Tasks waiting (not counting those taken and not yet done)."""
        ...

    def pending(self) -> list[Task]:
        """A snapshot of the waiting tasks, head first."""
        ...


class LocalTaskQueue:
    """An in-process priority queue on ``(retry_count, rank, order put)``, thread-safe.

    Workers put back in-flight boards during a shutdown; :meth:`pending` then lists them.
    """

    def __init__(self) -> None:
        self._items: list[tuple[int, float, int, Task]] = []  # a heap
        self._seq = itertools.count()
        self._cond = threading.Condition(threading.Lock())

    def put(self, task: Task) -> None:
        """Queue ``task`` in its place and wake one waiting worker."""
        with self._cond:
            heapq.heappush(self._items, (task.retry_count, task.rank, next(self._seq), task))
            self._cond.notify()

    def get(self, timeout: float | None = None) -> Task | None:
        """Pop the head; when empty, wait once for a ``put`` (up to ``timeout`` s, ``None`` =
        no limit) and return ``None`` if there is still nothing.

        One wait, not a loop against a deadline: the caller polls anyway, so an early wake-up
        costs nothing, and the queue needs no clock of its own.
        """
        with self._cond:
            if not self._items and (timeout is None or timeout > 0):
                self._cond.wait(timeout)
            if not self._items:
                return None
            return heapq.heappop(self._items)[-1]

    def done(self, task: Task) -> None:
        """Mark a taken task finished (nothing to do in memory; a PostgreSQL queue deletes
        the row here)."""

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def pending(self) -> list[Task]:
        """A snapshot of the waiting tasks, head first."""
        with self._cond:
            return [item[-1] for item in sorted(self._items)]
