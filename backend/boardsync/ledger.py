"""The run's bookkeeping: the summary, the state file and the set of boards still open, in step.

Every event of a run (a board queued, written, retried, failed, held back, not written,
deleted) changes three things at once: the counters of the :class:`~boardsync.outcomes.Summary`,
the board's record in the state file, and whether the run still waits for the board. Doing all
three in one method per event keeps them from drifting apart; the manager only decides *which*
event happened.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .clock import SYSTEM, Clock, iso, parse_utc
from .metrics import RunMetrics
from .models import Board, checksum
from .outcomes import Failed, Fetched, Retrying, Summary
from .state import StateFile

logger = logging.getLogger(__name__)


def new_run_id(clock: Clock = SYSTEM, db_id: str = "") -> str:
    """A sortable, unique run id such as ``20261122T204500Z-9c01-3fa2``.

    The middle part is the start of the database's identity, so two databases' runs never
    share an id even when they start in the same second; the last part is random.
    """
    prefix = f"{db_id.replace('-', '')[:4]}-" if db_id else ""
    return f"{clock.wall():%Y%m%dT%H%M%SZ}-{prefix}{uuid.uuid4().hex[:4]}"


class Ledger:
    """Summary, state file and open boards of one run (manager thread only)."""

    def __init__(self, summary: Summary, state: StateFile, clock: Clock,
                 metrics: RunMetrics | None = None) -> None:
        self.summary = summary
        self.state = state
        self.clock = clock
        self.metrics = metrics  # request errors by class, for the progress display
        self.open: set[str] = set()  # boards queued and not yet ended
        self.retrying: set[str] = set()

    @property
    def run_id(self) -> str:
        return self.summary.run_id

    def queued(self, boards: Sequence[Board]) -> None:
        """``boards`` are queued: the run waits for each."""
        for board in boards:
            self.open.add(board.code)
            self.state.update_board(board.code, status="pending", kind=board.kind,
                                    name=board.name)
        self.state.save(force=True)
        self.summary.boards_total += len(boards)

    def deleted(self, code: str, when: datetime) -> None:
        """Board ``code`` is gone from its list (already marked in the database)."""
        self.state.update_board(code, status="deleted", run_id=self.run_id,
                                synced_at=iso(when))
        self.summary.deleted += 1

    def retried(self, outcome: Retrying) -> None:
        self.retrying.add(outcome.board.code)
        self.state.update_board(outcome.board.code, status="retrying",
                                attempts=outcome.attempts, last_error_class=outcome.error_class)
        self.state.save()

    def failed(self, outcome: Failed) -> None:
        code = outcome.board.code
        self.retrying.discard(code)
        self.open.discard(code)
        self.summary.failed += 1
        self.summary.failed_boards.append(code)
        logger.error("Run %s: board %s failed permanently after %d attempts: %s (%s)",
                     self.run_id, code, outcome.attempts, outcome.error_class, outcome.message)
        self.state.update_board(code, status="failed", attempts=outcome.attempts,
                                last_error_class=outcome.error_class, run_id=self.run_id)
        self.state.save()

    def unquoted(self, outcome: Failed) -> None:
        """A directory board answered "no quote" (rc 100): listed without a quote, not failed
        (its members are not touched; it is asked again next run, once)."""
        code = outcome.board.code
        self.retrying.discard(code)
        self.open.discard(code)
        self.summary.unquoted_boards.append(code)
        logger.info("Run %s: board %s is listed without a quote", self.run_id, code)
        self.state.update_board(code, status="no_quote", attempts=outcome.attempts,
                                last_error_class=outcome.error_class, run_id=self.run_id)
        self.state.save()

    def held_back(self, fetched: Fetched, previous: int | None) -> None:
        """A fetched board shrank suspiciously: not written, recorded as ``suspicious``."""
        code = fetched.board.code
        logger.warning("Run %s: board %s came back with %d members (had %s): held back as "
                       "suspicious", self.run_id, code, len(fetched.members), previous)
        self.open.discard(code)
        self.summary.suspicious += 1
        self.summary.suspicious_boards.append(code)
        self.state.update_board(code, status="suspicious", attempts=fetched.attempts,
                                last_error_class="suspicious", run_id=self.run_id,
                                fetched_rows=len(fetched.members), rows=previous)
        self.state.save()

    def written(self, batch: Sequence[Fetched], results: Sequence[Any]) -> None:
        """A batch is committed to the database: only now is each board ``ok``."""
        synced_at = iso(self.clock.wall())
        for f, res in zip(batch, results, strict=True):
            code = f.board.code
            self.open.discard(code)
            self.summary.ok += 1
            self.summary.rows_written += res.rows
            self.summary.joined += res.joined
            self.summary.left += res.left
            self.state.update_board(code, status="ok", attempts=f.attempts, rows=res.rows,
                                    checksum=res.checksum, run_id=self.run_id,
                                    synced_at=synced_at, kind=f.board.kind, name=f.board.name,
                                    last_error_class=None)
        self.state.save()

    def not_written(self, batch: Sequence[Fetched], exc: BaseException) -> None:
        """A batch could not be written: recorded as fetched but unwritten, run stopping.

        Logged as an error once per run (the stop); later batches of the same stop at DEBUG.
        """
        first = self.summary.not_written == 0
        (logger.error if first else logger.debug)(
            "Run %s: could not write %d fetched boards (%s): stopping the run", self.run_id,
            len(batch), exc)
        for f in batch:
            self.open.discard(f.board.code)
            self.summary.not_written += 1
            self.summary.remaining.append(f.board.code)
            self.state.update_board(f.board.code, status="fetched_unwritten",
                                    attempts=f.attempts, last_error_class="db_unavailable",
                                    checksum_fetched=checksum(m.code for m in f.members))
        self.state.save()
        self.summary.stop(f"database unavailable: {exc}")

    def reconcile(self, board: Board, row: Any) -> None:
        """Record in the state file a board this run wrote before a kill could record it.

        The database commit comes first and the state save second, so a SIGKILL between the
        two leaves the board written but not yet "ok" in the state file; the database is the
        truth, so the state catches up from it.
        """
        rec = self.state.board(board.code) or {}
        if rec.get("status") == "ok" and rec.get("run_id") == self.run_id:
            return
        synced = iso(parse_utc(row.synced_at))
        self.state.update_board(board.code, status="ok", rows=row.member_count,
                                checksum=row.checksum, run_id=self.run_id, synced_at=synced,
                                kind=board.kind, name=board.name, last_error_class=None)

    def snapshot(self, ips: int) -> dict[str, Any]:
        """The progress counters: ``done`` = ok + failed + suspicious + unwritten, each given
        (so a display adds up), retrying, IPs and the request ``errors`` by class."""
        sm = self.summary
        errors = self.metrics.errors_by_class() if self.metrics is not None else {}
        return {"ok": sm.ok, "failed": sm.failed, "suspicious": sm.suspicious,
                "unwritten": sm.not_written, "retrying": len(self.retrying), "ips": ips,
                "done": sm.ok + sm.failed + sm.suspicious + sm.not_written,
                "errors": errors}

    def close_open(self) -> None:
        """At the end: every board still open is ``pending`` for the next run."""
        sm = self.summary
        sm.remaining = sorted(set(sm.remaining) | self.open)
        for code in self.open:
            self.state.update_board(code, status="pending")
