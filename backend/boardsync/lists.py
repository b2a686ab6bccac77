"""Board lists as they arrive: deletions recorded, boards chosen, ranked and queued.

Each kind's list is handled the moment it arrives, so workers start on its boards while the
other lists are still paging. A kind counts as listed only once its boards are queued (a
worker deciding whether to retire must not see the lists done and the queue empty in
between). A database that fails while a list is recorded ends the run partial; the lists are
fetched again next time.
"""

from __future__ import annotations

import logging
from typing import Any

from .clock import Clock
from .config import Settings
from .errors import StorageError
from .ledger import Ledger
from .metrics import RunMetrics
from .outcomes import Listed, ListFailed
from .outcomes import RunStatus as S
from .plan import rank, select
from .queue import Task, TaskQueue
from .store import Store

logger = logging.getLogger(__name__)


class ListIntake:
    """The board lists of one run (manager thread only).

    Attributes:
        sizes: last stored member count per board (for ranks, shrink checks and thrift).
        unlisted: kinds whose list has not come in.
        missing: a list could not be fetched or recorded (the run cannot be complete).
        error: the storage error that stopped recording lists, if any.
    """

    def __init__(self, settings: Settings, store: Store, ledger: Ledger, tasks: TaskQueue,
                 clock: Clock, metrics: RunMetrics, *, force: bool) -> None:
        self.settings = settings
        self.store = store
        self.ledger = ledger
        self.tasks = tasks
        self.clock = clock
        self.metrics = metrics
        self.force = force
        self.sizes: dict[str, int] = {}
        self.unlisted: set[str] = set(settings.kinds)
        self.listed_codes: set[str] = set()
        self.missing = False
        self.error: StorageError | None = None

    def pending(self) -> bool:
        """True while a board list is still to come."""
        return bool(self.unlisted)

    def listed(self, listed: Listed, progress: Any, db_gone: bool) -> None:
        """One kind's board list arrived: record deletions, queue the boards to fetch."""
        try:
            if db_gone:
                self.listed_codes |= {b.code for b in listed.boards}
                self.missing = True
            else:
                self._queue(listed, progress)
        finally:
            self.unlisted.discard(listed.kind)
        if not self.unlisted:
            for code in sorted(set(self.settings.boards) - self.listed_codes):
                logger.warning("Run %s: board %s is not in the %s lists", self.ledger.run_id,
                               code, ",".join(self.settings.kinds))

    def _queue(self, listed: Listed, progress: Any) -> None:
        run_id, s = self.ledger.run_id, self.settings
        self.listed_codes |= {b.code for b in listed.boards}
        try:
            self._record_deletions(listed.kind, {b.code for b in listed.boards})
            self.store.upsert_boards(listed.boards)
            chosen = select(listed.boards, {r.code: r for r in self.store.board_list()},
                            run_id=run_id, force=self.force, max_age=s.max_age,
                            wanted=s.boards, now=self.clock.wall())
        except StorageError as e:
            self.metrics.on_error(e.error_class)
            logger.error("Run %s: could not record the %s list (%s): stopping the run", run_id,
                         listed.kind, e)
            self.missing = True
            self.error = e
            self.ledger.summary.end(S.PARTIAL)
            self.ledger.summary.stop(f"database unavailable: {e}")
            return
        self.sizes.update(chosen.sizes)
        self.ledger.summary.skipped += chosen.skipped
        for board, row in chosen.written:
            self.ledger.reconcile(board, row)
        self.ledger.queued(chosen.todo)
        for board in chosen.todo:
            self.tasks.put(Task(0, board, rank(board, self.sizes, s.board_order)))
        if progress is not None:
            progress.add(len(chosen.todo))
        logger.info("Run %s: %s list: %d boards, %d to sync", run_id, listed.kind,
                    len(listed.boards), len(chosen.todo))

    def _record_deletions(self, kind: str, listed: set[str]) -> None:
        for row in self.store.board_list(kind):
            if row.deleted_at is None and row.code not in listed:
                logger.info("Run %s: board %s is gone from the %s list: marked deleted",
                            self.ledger.run_id, row.code, kind)
                when = self.clock.wall()
                self.store.mark_deleted(row.code, self.ledger.run_id, when)
                self.ledger.deleted(row.code, when)

    def failed(self, failed: ListFailed, *, user_stop: bool) -> bool:
        """A board list could not be fetched: the boards of the other kinds still finish.

        Returns True when the failure was a spent quota (member fetches must stop).
        """
        self.unlisted.discard(failed.kind)
        self.missing = True
        if failed.status == S.INTERRUPTED and not user_stop:
            return False  # the lists stopped for a lost database: that reason stands
        self.ledger.summary.end(failed.status)
        self.ledger.summary.stop(failed.reason)
        return failed.quota
