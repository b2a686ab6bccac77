"""``state verify``: do the state file and the database agree, and does the database agree
with itself? :func:`verify` is pure; :func:`verify_store` reads the digests and logs."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..report import iso
from ..store import Store, board_digests

logger = logging.getLogger(__name__)

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class Problem:
    """One disagreement found by :func:`verify`.

    ``problem`` is a stable identifier (see :data:`PROBLEMS`); ``state`` and ``database`` are
    the two values that disagree (``None`` where a side has nothing).
    """

    board: str
    problem: str
    detail: str
    state: Any = None
    database: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {"board": self.board, "problem": self.problem, "detail": self.detail,
                "state": self.state, "database": self.database}

    def line(self) -> str:
        return f"{self.board} {self.problem}: {self.detail}"


#: Every problem :func:`verify` reports, and what it means.
PROBLEMS: dict[str, str] = {
    "checksum_mismatch": "state checksum differs from the one recomputed from the database",
    "rows_mismatch": "state row count differs from the database's member rows",
    "no_rows_in_db": "the state says the board was written with rows; the database has none",
    "missing_in_db": "the state records a written board the database does not have",
    "missing_in_state": "the database holds a written board the state file does not list",
    "unrecorded_write": "the database has members the state file has no checksum for",
    "deleted_in_db": "the database marks the board deleted; the state does not",
    "not_deleted_in_db": "the state marks the board deleted; the database still has members",
    "run_mismatch": "the state and the database name different runs as the last writer",
    "bad_state_record": "the state record is malformed (bad checksum or rows)",
    "db_rows_changed": "member rows differ from the count the last write stored (edited in SQL)",
    "db_checksum_changed": "members hash differently from what the last write stored (edited "
                           "in SQL)",
    "history_mismatch": "open history intervals differ from the current member rows",
}


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of :func:`verify`: what was compared and every disagreement."""

    boards_checked: int
    rows_checked: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return (f"verify: ok: {self.boards_checked} boards, {self.rows_checked} member rows; "
                    "state file and database agree")
        boards = len({p.board for p in self.problems})
        return (f"verify: {len(self.problems)} disagreement(s) in {boards} board(s) "
                f"(checked {self.boards_checked} boards, {self.rows_checked} member rows)")


def _short(digest: Any) -> str:
    return digest[:12] if isinstance(digest, str) else repr(digest)


def verify(state_boards: Mapping[str, Mapping[str, Any] | None],
           digests: Mapping[str, Any]) -> VerifyResult:
    """Compare the state file's boards with the database's digests; list every disagreement.

    Pure: ``state_boards`` is the state file's ``boards`` mapping, ``digests`` what
    :func:`boardsync.store.board_digests` returned. The rules:

    * a state record with a checksum was written at some point (status ``ok``, or ``failed``/
      ``suspicious``/... after an earlier ``ok``; those keep the last written checksum and
      rows), so the database must hold exactly that: same row count, same checksum;
    * ``ok`` also requires the same last-writer run on both sides;
    * ``deleted`` requires a deleted board with no rows in the database;
    * a database board that a run wrote (``last_run_id``) and that is not deleted must be in
      the state file, with a checksum if it has members;
    * independently of the state file, the database must agree with itself: member rows vs
      the count and checksum its last write stored, and vs the open history intervals. This
      catches a row edited in SQL even when the state file was rewritten to match.
    """
    problems: list[Problem] = []
    rows_checked = 0
    codes = sorted(set(state_boards) | set(digests))
    for code in codes:
        rec = state_boards.get(code)
        d = digests.get(code)
        if d is not None:
            rows_checked += d.rows
            problems += _db_self_check(code, d)
        if rec is None:
            if d is not None and d.deleted_at is None and (d.last_run_id is not None or d.rows):
                problems.append(Problem(code, "missing_in_state",
                                        f"database has it ({d.rows} rows, written by run "
                                        f"{d.last_run_id}); the state file does not list it",
                                        None, d.rows))
            continue
        problems += _compare(code, rec, d)
    return VerifyResult(len(codes), rows_checked, problems)


def _db_self_check(code: str, d: Any) -> list[Problem]:
    out = []
    if d.stored_rows is not None and d.stored_rows != d.rows:
        out.append(Problem(code, "db_rows_changed", f"the last write stored {d.stored_rows} "
                           f"members, the memberships table has {d.rows}", d.stored_rows,
                           d.rows))
    if d.stored_checksum is not None and d.stored_checksum != d.checksum:
        out.append(Problem(code, "db_checksum_changed", f"the last write stored checksum "
                           f"{_short(d.stored_checksum)}, the members hash to "
                           f"{_short(d.checksum)}", d.stored_checksum, d.checksum))
    if d.open_checksum != d.checksum:
        out.append(Problem(code, "history_mismatch", f"{d.open_rows} open history intervals "
                           f"(checksum {_short(d.open_checksum)}) vs {d.rows} member rows "
                           f"(checksum {_short(d.checksum)})", d.open_rows, d.rows))
    return out


def _compare(code: str, rec: Mapping[str, Any], d: Any) -> list[Problem]:
    status = rec.get("status")
    state_sum, state_rows = rec.get("checksum"), rec.get("rows")
    if state_sum is not None and (not isinstance(state_sum, str)
                                  or not _HEX64.match(state_sum)):
        return [Problem(code, "bad_state_record", f"checksum {state_sum!r} is not a SHA-256 "
                        "hex digest", state_sum, None)]
    if state_rows is not None and (isinstance(state_rows, bool)
                                   or not isinstance(state_rows, int) or state_rows < 0):
        return [Problem(code, "bad_state_record", f"rows {state_rows!r} is not a count",
                        state_rows, None)]
    if status == "ok" and state_sum is None:
        return [Problem(code, "bad_state_record", "status ok but no checksum recorded")]
    if status == "deleted":
        if d is not None and d.deleted_at is None and d.rows:
            return [Problem(code, "not_deleted_in_db", f"state says deleted, the database "
                            f"has {d.rows} members and no deletion", "deleted", d.rows)]
        return []
    if state_sum is None:  # never written as far as the state knows
        if d is not None and d.rows:
            return [Problem(code, "unrecorded_write", f"state ({status}) has no checksum, the "
                            f"database has {d.rows} members written by run {d.last_run_id}",
                            None, d.rows)]
        return []
    if d is None:
        return [Problem(code, "missing_in_db", f"state says {status} with {state_rows} rows "
                        f"(run {rec.get('run_id')}); the database has no such board",
                        state_rows, None)]
    out = []
    if d.deleted_at is not None:
        out.append(Problem(code, "deleted_in_db", f"state says {status}, the database marked "
                           f"it deleted at {iso(d.deleted_at)}", status, "deleted"))
    if d.rows == 0 and state_rows:
        out.append(Problem(code, "no_rows_in_db", f"state says {state_rows} rows (status "
                           f"{status}), the database has none", state_rows, 0))
        return out
    if state_rows is not None and state_rows != d.rows:
        out.append(Problem(code, "rows_mismatch", f"state {state_rows} rows, database "
                           f"{d.rows}", state_rows, d.rows))
    if state_sum != d.checksum:
        out.append(Problem(code, "checksum_mismatch", f"state {_short(state_sum)}, database "
                           f"{_short(d.checksum)} (recomputed from memberships)", state_sum,
                           d.checksum))
    if status == "ok" and rec.get("run_id") and d.last_run_id \
            and rec.get("run_id") != d.last_run_id:
        out.append(Problem(code, "run_mismatch", f"state says run {rec.get('run_id')}, the "
                           f"database says run {d.last_run_id}", rec.get("run_id"),
                           d.last_run_id))
    return out


def verify_store(store: Store, data: Mapping[str, Any]) -> VerifyResult:
    """:func:`verify` the state file data ``data`` against the database behind ``store``."""
    result = verify(data.get("boards") or {}, board_digests(store))
    for p in result.problems:
        logger.warning("Verify %s: %s", store.url, p.line())
    return result
