"""The task queue between the sync manager and its workers.

One item per board still to fetch: ``Task(retry_count, board)``. A failed board goes back to
the *tail* with ``retry_count + 1``, so one stubborn board cannot starve the others and its
retries are naturally spaced by the rest of the queue. The interface (:class:`TaskQueue`) is
kept small on purpose: a PostgreSQL-backed queue (``SELECT ... FOR UPDATE SKIP LOCKED``) will
implement the same protocol later so several hosts can share one run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from .models import Board

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Task:
    """One board to fetch; ``retry_count`` is how many attempts already failed (0 = first)."""

    retry_count: int
    board: Board


class TaskQueue(Protocol):
    """What the sync needs from a queue; implemented in memory now, in PostgreSQL later."""

    def put(self, task: Task) -> None:
        """Append ``task`` at the tail (new boards and retries alike)."""
        ...

    def get(self, timeout: float | None = None) -> Task | None:
        """The head task, waiting up to ``timeout`` s; ``None`` on timeout or closed-and-empty."""
        ...

    def done(self, task: Task) -> None:
        """The worker finished with ``task`` (written, failed, or put back as a new task)."""
        ...

    def __len__(self) -> int:
        """Tasks waiting (not counting those taken and not yet done)."""
        ...

    def pending(self) -> list[Task]:
        """A snapshot of the waiting tasks, head first (for the state file on shutdown)."""
        ...

    def close(self) -> None:
        """No more waiting: ``get`` returns what is left, then ``None`` at once."""
        ...


class LocalTaskQueue:
    """An in-process FIFO, thread-safe; retries put back go to the tail.

    ``put`` still works after :meth:`close` so workers can return in-flight boards during a
    shutdown; :meth:`pending` then lists them for the state file.
    """

    def __init__(self) -> None:
        self._items: deque[Task] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        self._taken = 0

    def put(self, task: Task) -> None:
        """Append at the tail and wake one waiting worker."""
        with self._cond:
            self._items.append(task)
            self._cond.notify()

    def get(self, timeout: float | None = None) -> Task | None:
        """Pop the head; wait up to ``timeout`` s (``None`` = until a task or :meth:`close`)."""
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        with self._cond:
            while not self._items:
                if self._closed:
                    return None
                if deadline is None:
                    self._cond.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            self._taken += 1
            return self._items.popleft()

    def done(self, task: Task) -> None:
        """Mark a taken task finished (kept for the protocol; the PG queue deletes the row)."""
        with self._cond:
            self._taken = max(0, self._taken - 1)

    def in_flight(self) -> int:
        """Tasks taken by workers and not yet :meth:`done`."""
        with self._cond:
            return self._taken

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def pending(self) -> list[Task]:
        """A snapshot of the waiting tasks, head first."""
        with self._cond:
            return list(self._items)

    def close(self) -> None:
        """Wake every waiter; ``get`` drains what is left, then returns ``None`` at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
