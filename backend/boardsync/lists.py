"""Board lists as they arrive: deletions recorded, boards chosen, ranked and queued.

Each kind's list is handled the moment it arrives, so workers start on its boards while the
other lists are still paging. A kind counts as listed only once its boards are queued (a
worker deciding whether to retire must not see the lists done and the queue empty in
between). A database that fails while a list is recorded ends the run partial; the lists are
fetched again next time.

The board directory (:mod:`boardsync.reader`) is a second witness: it gives the industry
levels, and its boards missing from their list are fetched (not deleted on the list's word
alone). Deletions wait until every list and the directory are in (:meth:`ListIntake.settle`):
a board gone from its list is deleted only when the directory, if read, does not list it
either, and not at all while its list is shorter than the last good one by more than
``list_shrink_threshold`` (held back, the run ``partial``, unless ``accept_shrink``).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

from .clock import Clock, parse_utc
from .config import Settings
from .errors import StorageError
from .ledger import Ledger
from .metrics import RunMetrics
from .models import Board
from .outcomes import DirectoryRead, Failed, Fetched, Listed, ListFailed
from .outcomes import RunStatus as S
from .plan import rank, select
from .queue import Task, TaskQueue
from .reader import DIRECTORY
from .store import BoardRow, Store
from .validate import held_back, list_shrunk
from .witness import compare, revamps

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
        if settings.directory_url:
            self.unlisted.add(DIRECTORY)
        self.listed_codes: set[str] = set()
        self.missing = False
        self.error: StorageError | None = None
        self.lists: dict[str, list[Board]] = {}  # each kind's list as it came in
        self.directory: dict[str, Any] | None = None  # code -> upstream.Entry, once read
        self.directory_reason = "not read (directory_url is empty)"
        self.before: dict[str, BoardRow] | None = None  # live boards before this run
        self._stored_pages: dict[str, int] = {}  # per unlisted kind, from the stored boards
        self.unlisted_pages = 0  # read by workers' threads: one int, replaced whole
        self.resumed_written = 0  # boards this (resumed) run had written before it was killed

    def expect(self) -> None:
        """Before the lists come in: the pages the stored boards of each kind will take
        (their last member counts; boards a run would skip as fresh left out), so the crew
        can size itself for the work before its lists arrive. Nothing stored: 0."""
        if not self._guard("stored boards", self._snapshot):
            return
        s, now = self.settings, self.clock.wall()
        for row in (self.before or {}).values():
            if s.boards and row.code not in s.boards:
                continue
            fresh = row.synced_at is not None and not self.force and \
                (now - parse_utc(row.synced_at)).total_seconds() < s.max_age
            if not fresh:
                pages = max(1, math.ceil((row.member_count or 1) / s.page_size))
                self._stored_pages[row.kind] = self._stored_pages.get(row.kind, 0) + pages
        self._recount()

    def _expect_listed(self, entries: dict[str, Any]) -> None:
        """A kind still to be listed that nothing stored sized: a page for each of its
        boards the directory names (the least they take), so the crew takes the IPs they
        need while their list is still coming (a fresh database used to size for nothing)."""
        named = Counter(e.kind for e in entries.values() if e.kind in self.unlisted and (
            not self.settings.boards or e.code in self.settings.boards))
        for kind, pages in named.items():
            self._stored_pages.setdefault(kind, pages)
        self._recount()

    def _recount(self) -> None:
        self.unlisted_pages = sum(self._stored_pages.get(k, 0) for k in self.unlisted)

    def pending(self) -> bool:
        """True while a board list is still to come."""
        return bool(self.unlisted)

    def jobs(self, index: int, listers: int) -> list[str]:
        """What lister ``index`` of ``listers`` fetches before members: its kinds (round
        robin), the first one reading the directory before its list."""
        kinds = list(self.settings.kinds[index::listers])
        return [DIRECTORY, *kinds] if index == 0 and self.settings.directory_url else kinds

    def hold_back(self, fetched: Fetched) -> bool:
        """True when a fetched board must not be written (:func:`validate.held_back`: shrank,
        grew or came back empty against its last stored count); recorded as suspicious."""
        s, code = self.settings, fetched.board.code
        self.ledger.retrying.discard(code)
        previous = self.sizes.get(code)
        if held_back(previous, len(fetched.members), s.shrink_threshold, force=s.force,
                     accept_shrink=s.accept_shrink, grow_factor=s.grow_factor):
            self.ledger.held_back(fetched, previous)
            return True
        return False

    def board_failed(self, failed: Failed) -> None:
        """A board will not be retried; "no quote" is not a failure: listed without one."""
        if failed.error_class != "no_quote":
            self.ledger.failed(failed)
            return
        self.ledger.unquoted(failed)
        code = failed.board.code
        self._guard(code, lambda: self.store.mark_unquoted(code))

    def listed(self, listed: Listed | DirectoryRead, progress: Any, db_gone: bool) -> None:
        """One kind's board list arrived: queue its boards (and the directory's boards of that
        kind missing from it); deletions wait for :meth:`settle`."""
        if isinstance(listed, DirectoryRead):
            self.directory_read(listed, progress, db_gone)
            return
        try:
            if db_gone:
                self.listed_codes |= {b.code for b in listed.boards}
                self.missing = True
            elif self._guard(listed.kind, self._snapshot):
                boards = [self._levelled(b) for b in listed.boards]
                self.lists[listed.kind] = boards
                self._queue(listed.kind, boards, progress)
                if self.directory is not None:
                    self._queue(listed.kind, self._only_directory(listed.kind), progress,
                                quoted=None)
        finally:
            self.unlisted.discard(listed.kind)
            self._recount()
        self._after_each(progress, db_gone)

    def directory_read(self, read: DirectoryRead, progress: Any, db_gone: bool) -> None:
        """The directory arrived (or could not be read): levels for the lists already in, and
        the directory's boards missing from them queued."""
        try:
            if read.entries is None:
                self.directory_reason = read.reason or "unreadable"
                logger.warning("Run %s: board directory not read (%s): the lists alone decide",
                               self.ledger.run_id, self.directory_reason)
            elif not db_gone and self._guard(DIRECTORY, self._snapshot):
                self.directory = read.entries
                self._expect_listed(read.entries)
                for kind, boards in list(self.lists.items()):
                    levelled = self.lists[kind] = [self._levelled(b) for b in boards]
                    self._guard(kind, functools.partial(self.store.upsert_boards, levelled))
                    self._queue(kind, self._only_directory(kind), progress, quoted=None)
        finally:
            self.unlisted.discard(DIRECTORY)
        self._after_each(progress, db_gone)

    def _after_each(self, progress: Any, db_gone: bool) -> None:
        if self.unlisted:
            return
        if not db_gone and self.error is None:
            self._guard("deletions", self.settle)
        for code in sorted(set(self.settings.boards) - self.listed_codes):
            logger.warning("Run %s: board %s is not in the %s lists", self.ledger.run_id,
                           code, ",".join(self.settings.kinds))

    def _snapshot(self) -> None:
        """The live boards before this run changed any (last good lists, levels, deletions)."""
        if self.before is None:
            self.before = {r.code: r for r in self.store.board_list() if r.deleted_at is None}

    def _levelled(self, board: Board) -> Board:
        """``board`` with its level from the directory and marked witnessed, when listed."""
        entry = self.directory.get(board.code) if self.directory is not None else None
        if entry is None or entry.kind != board.kind:
            return board
        return dataclasses.replace(board, level=entry.level, witnessed=True)

    def _only_directory(self, kind: str) -> list[Board]:
        """The directory's boards of ``kind`` that its list lacks (fetched, not deleted)."""
        assert self.directory is not None
        listed = {b.code for b in self.lists.get(kind, ())}
        return [e.board() for c, e in sorted(self.directory.items())
                if e.kind == kind and c not in listed]

    def _guard(self, what: str, action: Callable[[], Any]) -> bool:
        """Run a database step of the lists; a storage error stops the run (False)."""
        if self.error is not None:
            return False
        try:
            action()
        except StorageError as e:
            self._stopped(what, e)
            return False
        return True

    def _stopped(self, what: str, e: StorageError) -> None:
        self.metrics.on_error(e.error_class)
        logger.error("Run %s: could not record the %s list (%s): stopping the run",
                     self.ledger.run_id, what, e)
        self.missing = True
        self.error = e
        self.ledger.summary.end(S.PARTIAL)
        self.ledger.summary.stop(f"database unavailable: {e}")

    def _queue(self, kind: str, boards: list[Board], progress: Any, *,
               quoted: bool | None = True) -> None:
        run_id, s = self.ledger.run_id, self.settings
        if not boards and quoted is None:
            return
        self.listed_codes |= {b.code for b in boards}
        if self.error is not None:
            return
        try:
            self.store.upsert_boards(boards, quoted=quoted)
            chosen = select(boards, {r.code: r for r in self.store.board_list()},
                            run_id=run_id, force=self.force, max_age=s.max_age,
                            wanted=s.boards, now=self.clock.wall())
        except StorageError as e:
            self._stopped(kind, e)
            return
        self.sizes.update(chosen.sizes)
        self.ledger.summary.skipped += chosen.skipped
        self.resumed_written += len(chosen.written)
        for board, row in chosen.written:
            self.ledger.reconcile(board, row)
        self.ledger.queued(chosen.todo)
        for board in chosen.todo:
            self.tasks.put(Task(0, board, rank(board, self.sizes, s.board_order)))
        if progress is not None:
            progress.add(len(chosen.todo))
        logger.info("Run %s: %s %s: %d boards, %d to sync", run_id, kind,
                    "list" if quoted else "boards only the directory lists", len(boards),
                    len(chosen.todo))

    def settle(self) -> None:
        """Every list and the directory are in: record deletions, the comparison, revamps."""
        sm, s = self.ledger.summary, self.settings
        before = self.before or {}
        sm.directory = compare(self.directory, {k: [b.code for b in v]
                                                for k, v in self.lists.items()},
                               self.directory_reason)
        ended: list[str] = []
        for kind, boards in sorted(self.lists.items()):
            listed = {b.code for b in boards}
            gone = [r for c, r in sorted(before.items()) if r.kind == kind and c not in listed
                    and r.quoted is not False and c not in (self.directory or {})]
            if self.directory is not None:  # directory-only boards: gone when it drops them
                gone += [r for c, r in sorted(before.items()) if r.kind == kind
                         and r.quoted is False and c not in listed and c not in self.directory]
            last_good = sum(1 for r in before.values() if r.kind == kind and r.quoted is not False)
            if gone and list_shrunk(last_good, len(listed), s.list_shrink_threshold) and not (
                    s.accept_shrink or s.force):
                logger.warning("Run %s: the %s list has %d boards, the last good one %d: "
                               "%d deletions held back (--accept-shrink applies them)",
                               self.ledger.run_id, kind, len(listed), last_good, len(gone))
                sm.lists_held_back[kind] = {"listed": len(listed), "last_good": last_good,
                                            "kept": [r.code for r in gone]}
                sm.end(S.PARTIAL)
                continue
            for row in gone:
                self._delete(row.code, kind)
                ended.append(row.code)
        started = {b.code: (b.kind, b.level) for v in self.lists.values() for b in v
                   if b.code not in before}
        sm.revamped = revamps({c: (r.kind, r.level) for c, r in before.items()}, ended, started)
        for name, change in sm.revamped.items():
            logger.warning("Run %s: %s revamped: %d boards ended, %d started", self.ledger.run_id,
                           name, len(change["ended"]), len(change["started"]))

    def _delete(self, code: str, kind: str) -> None:
        logger.info("Run %s: board %s is gone from the %s list: marked deleted",
                    self.ledger.run_id, code, kind)
        when = self.clock.wall()
        self.store.mark_deleted(code, self.ledger.run_id, when)
        self.ledger.deleted(code, when)

    def failed(self, failed: ListFailed, *, user_stop: bool, progress: Any = None,
               db_gone: bool = False) -> bool:
        """A board list could not be fetched: the boards of the other kinds still finish,
        and their deletions are settled as if this list had come last (so what is deleted
        never depends on the order the lists arrive in).

        Returns True when the failure was a spent quota (member fetches must stop).
        """
        self.unlisted.discard(failed.kind)
        self._recount()
        self.missing = True
        quota = failed.quota
        if not (failed.status == S.INTERRUPTED and not user_stop):
            # (an interrupted list for a lost database keeps that reason)
            self.ledger.summary.end(failed.status)
            self.ledger.summary.stop(failed.reason)
        else:
            quota = False
        self._after_each(progress, db_gone)
        return quota
