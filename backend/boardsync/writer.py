"""Batches of fetched boards written in one transaction each, a lost database retried.

Writing board by board costs one transaction (and on PostgreSQL one COPY) per board; waiting
for many boards risks losing more to a kill. A batch is written when it is full, when its
oldest board has waited half a second, when it holds every board the run still waits for, or
when the run is stopping. A database that goes away is retried with exponential backoff; once
the retries are spent the writer gives up for the rest of the run (it never waits again).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from .clock import Clock
from .errors import DatabaseUnavailable, StorageError
from .metrics import RunMetrics
from .outcomes import Fetched
from .store import Store

logger = logging.getLogger(__name__)

#: A batch is written once its oldest board has waited this long (seconds).
MAX_WAIT_S = 0.5


def db_backoff(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds before database write attempt ``attempt`` (1-based): 0.5, 1, 2, 4 ... capped."""
    return min(cap, base * 2 ** max(0, attempt - 1))


@dataclass(frozen=True)
class Written:
    """What one :meth:`BatchWriter.write` did: ``results`` per board, or the ``error``."""

    batch: list[Fetched]
    results: Sequence[Any] | None
    error: BaseException | None


class BatchWriter:
    """The pending batch and its writes (manager thread only).

    Args:
        store: the database.
        batch_size: boards per transaction at most (``write_batch``).
        retries: attempts per batch while the database is unavailable (``db_retries``).
        abort: set to give up waiting for the database at once (a second signal).
    """

    def __init__(self, store: Store, *, batch_size: int, retries: int, clock: Clock,
                 abort: threading.Event, metrics: RunMetrics) -> None:
        self.store = store
        self.batch_size = batch_size
        self.retries = max(1, retries)  # every batch is tried at least once
        self.clock = clock
        self.abort = abort
        self.metrics = metrics
        self.pending: list[Fetched] = []
        self.gone: BaseException | None = None  # set once writes gave up: stop writing
        self._since = 0.0

    def add(self, fetched: Fetched) -> None:
        if not self.pending:
            self._since = self.clock.now()
        self.pending.append(fetched)

    def due(self, open_codes: Collection[str], stopping: bool) -> bool:
        """Whether the pending batch should be written now (see the module docstring)."""
        if not self.pending:
            return False
        waiting_for = set(open_codes) - {f.board.code for f in self.pending}
        return (len(self.pending) >= self.batch_size or stopping or not waiting_for
                or self.clock.now() - self._since > MAX_WAIT_S)

    def write(self, run_id: str) -> Written:
        """Write the pending batch in one transaction, retrying a lost database."""
        batch, self.pending = self.pending, []
        if self.gone is not None:  # the retry budget is spent: do not wait again
            return Written(batch, None, self.gone)
        items = [(f.board, f.members) for f in batch]
        attempt = 0
        while True:
            attempt += 1
            try:
                return Written(batch, self.store.write_boards(run_id, items), None)
            except DatabaseUnavailable as e:
                self.metrics.on_error(e.error_class)
                if attempt >= self.retries:
                    logger.warning("Run %s: database unavailable (attempt %d/%d): %s; giving "
                                   "up", run_id, attempt, self.retries, e)
                    return self._give_up(batch, e)
                wait = db_backoff(attempt)
                logger.warning("Run %s: database unavailable (attempt %d/%d): %s; retry in "
                               "%.1fs", run_id, attempt, self.retries, e, wait)
                if self.clock.wait(self.abort, wait):
                    return self._give_up(batch, e)
            except StorageError as e:
                self.metrics.on_error(e.error_class)
                return self._give_up(batch, e)

    def stop(self, exc: BaseException) -> None:
        """The database is gone (seen elsewhere): write nothing more this run."""
        self.gone = self.gone or exc

    def _give_up(self, batch: list[Fetched], exc: BaseException) -> Written:
        self.stop(exc)
        return Written(batch, None, exc)
