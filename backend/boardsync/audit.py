"""Audits: answer "what was stored, when, by which run, and do the state file and database agree".

The questions an auditor asks (issue 4) and where each answer comes from:

* what did board X contain on date D -> :func:`member_rows` (history validity intervals);
* who joined or left, when, in which run -> :func:`change_rows`;
* which boards does/did a stock belong to -> :func:`stock_rows`;
* which runs happened, with what parameters and outcome -> :func:`run_rows`, :func:`run_detail`;
* what does the state file say (by kind and status, stale, failed, last run) ->
  :func:`state_overview`; one board's audit trail -> :func:`board_trail`;
* do the state file and the database agree -> :func:`verify` (pure) / :func:`verify_store`.

Everything here returns plain rows and dicts with stable English keys; rendering is
:mod:`boardsync.report`, printing and exit codes are the CLI's. Bad input (a malformed board
or stock code, an unparseable date, a missing state file or SQLite file) raises
:class:`ConfigError` (a ``ValueError``; the CLI maps it to exit code 2) *before* any query,
so a typo never reads as "no rows".

Dates: ``YYYY-MM-DD`` or ISO 8601 date-times; without an offset they are UTC (the database
stores UTC). A bare date as ``--as-of`` means the *end* of that day ("what did it contain on
D" = after every change that day); as ``--since`` the start of the day; as ``--until`` the
end of the day (the bound is exclusive, so ``--since D --until D`` is exactly day D).
"""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from .errors import ConfigError, StateError
from .models import is_board_code, is_stock_code
from .report import iso, render_table
from .state import StateFile
from .store import Store, board_digests

logger = logging.getLogger(__name__)

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# --- input checks ---------------------------------------------------------------------------


def parse_time(text: str, *, option: str, end_of_day: bool = False) -> datetime:
    """Parse a ``--as-of``/``--since``/``--until`` value to an aware UTC datetime.

    Args:
        text: ``2026-05-01``, ``2026-05-01T08:30``, ``2026-05-01 08:30:00+08:00``, ``...Z``.
        option: the option name, for the error message.
        end_of_day: a bare date means the first instant of the *next* day (an exclusive
            bound) instead of the day's first instant. Full date-times are taken exactly.

    Raises:
        ConfigError: the text is not such a date or date-time.
    """
    raw = text.strip()
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z")
                                       else raw)
    except ValueError:
        raise ConfigError(f"{option}: not a date {text!r} (use YYYY-MM-DD or "
                          "YYYY-MM-DDTHH:MM[:SS][+HH:MM]; UTC unless an offset is given)",
                          option) from None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if end_of_day and _DATE_ONLY.match(raw):
        value += timedelta(days=1)
    return value


def as_of_instant(text: str) -> datetime:
    """``--as-of``: a bare date is the last instant of that day (see the module docstring)."""
    value = parse_time(text, option="--as-of", end_of_day=True)
    return value - timedelta(microseconds=1) if _DATE_ONLY.match(text.strip()) else value


def check_board_code(code: str) -> str:
    """Return ``code`` upper-cased when it is ``BK`` + 4 digits, else raise ConfigError."""
    norm = code.strip().upper()
    if not is_board_code(norm):
        raise ConfigError(f"not a board code: {code!r} (expected BK followed by 4 digits, "
                          "e.g. BK0475)", "board")
    return norm


def check_stock_code(code: str) -> str:
    """Return ``code`` when it is 6 digits (leading zeros matter), else raise ConfigError."""
    norm = code.strip()
    if not is_stock_code(norm):
        raise ConfigError(f"not a stock code: {code!r} (expected 6 digits, e.g. 600000)",
                          "stock")
    return norm


def open_store(url: str) -> Store:
    """A :class:`Store` for reading, refusing what would silently create an empty database.

    ``Store`` creates a missing SQLite file on first use (right for a sync); an audit pointed
    at a mistyped path must say so instead of answering "no rows". A database without the
    boardsync tables is reported the same way.

    Raises:
        ConfigError: the SQLite file does not exist, or the schema is missing.
        StorageError: malformed URL; DatabaseUnavailable: the server cannot be reached.
    """
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - Store gives the careful (password-free) message
        parsed = None
    if parsed is not None and parsed.get_backend_name() == "sqlite":
        db = parsed.database or ""
        if db and db != ":memory:" and not db.startswith("file:") and not Path(db).is_file():
            raise ConfigError(f"database file {db} does not exist (run a sync first, or pass "
                              "--db)", "db_url")
    store = Store(url)
    if not store.has_schema():
        store.dispose()
        raise ConfigError(f"database {store.url} has no boardsync tables (run `boardsync db "
                          "init` or a sync first)", "db_url")
    return store


def load_state(path: str | Path) -> dict[str, Any]:
    """Read the state file for an audit: a missing file is an error here, not an empty state.

    Raises:
        StateError: missing, unreadable, not JSON, or an unknown version.
    """
    p = Path(path)
    if not p.is_file():
        raise StateError(f"state file {p} does not exist (run a sync first, or pass --state)")
    return StateFile(p).load()


# --- queries --------------------------------------------------------------------------------

BOARD_COLUMNS = ("code", "name", "kind", "members", "checksum", "last_run_id", "synced_at",
                 "first_seen_at", "last_seen_at", "deleted_at")
MEMBER_COLUMNS = ("board_code", "stock_code", "stock_name", "market")
CHANGE_COLUMNS = ("at", "run_id", "board_code", "event", "stock_code", "stock_name")
STOCK_COLUMNS = ("stock_code", "board_code", "board_name", "kind", "since", "until", "current")
RUN_COLUMNS = ("id", "mode", "status", "started_at", "finished_at", "duration_s", "boards_ok",
               "boards_failed", "rows_written", "joined", "left", "ips_used", "errors")


def board_rows(store: Store, kind: str | None = None) -> list[dict[str, Any]]:
    """Every board ever seen (deleted ones have ``deleted_at``), sorted by code."""
    return [{"code": r.code, "name": r.name, "kind": r.kind, "members": r.member_count,
             "checksum": r.checksum, "last_run_id": r.last_run_id,
             "synced_at": r.synced_at, "first_seen_at": r.first_seen_at,
             "last_seen_at": r.last_seen_at, "deleted_at": r.deleted_at}
            for r in store.board_list(kind)]


def _known_board(store: Store, code: str) -> None:
    if not any(r.code == code for r in store.board_list()):
        raise ConfigError(f"board {code} is not in the database {store.url}", "board")


def member_rows(store: Store, code: str, as_of: datetime | None = None) -> list[dict[str, Any]]:
    """A board's members now, or at instant ``as_of`` (from the history intervals).

    Raises:
        ConfigError: malformed code, or a board the database has never seen.
    """
    code = check_board_code(code)
    _known_board(store, code)
    return [{"board_code": code, "stock_code": m.code, "stock_name": m.name,
             "market": m.market} for m in store.members(code, as_of=as_of)]


def change_rows(store: Store, board: str | None = None, since: datetime | None = None,
                until: datetime | None = None, run_id: str | None = None,
                ) -> list[dict[str, Any]]:
    """Joins and leaves with ``since <= at < until``, optionally of one board or one run.

    A board's first write lists every member as a join (history starts when boardsync first
    saw the board).
    """
    code = check_board_code(board) if board is not None else None
    if code is not None:
        _known_board(store, code)
    return [{"at": c.at, "run_id": c.run_id, "board_code": c.board_code, "event": c.event,
             "stock_code": c.stock_code, "stock_name": c.stock_name}
            for c in store.changes(code, since, until) if run_id is None or c.run_id == run_id]


def stock_rows(store: Store, stock: str) -> list[dict[str, Any]]:
    """The boards a stock belongs to (``current``) and belonged to, with their intervals.

    Current memberships first (by board), then past ones (most recent first).
    """
    code = check_stock_code(stock)
    rows = [{"stock_code": code, "board_code": sb.board.code, "board_name": sb.board.name,
             "kind": sb.board.kind, "since": sb.since, "until": sb.until,
             "current": sb.until is None} for sb in store.stock_boards(code)]
    current = sorted((r for r in rows if r["current"]), key=lambda r: r["board_code"])
    past = sorted((r for r in rows if not r["current"]),
                  key=lambda r: (r["until"], r["board_code"]), reverse=True)
    return current + past


def _run_row(rec: Any) -> dict[str, Any]:
    totals = rec.totals or {}
    duration = totals.get("duration_s")
    if duration is None and rec.started_at is not None and rec.finished_at is not None:
        duration = round((rec.finished_at - rec.started_at).total_seconds(), 3)
    errors = ";".join(f"{k}={v}" for k, v in sorted((rec.errors or {}).items()))
    return {"id": rec.id, "mode": rec.mode, "status": rec.status, "started_at": rec.started_at,
            "finished_at": rec.finished_at, "duration_s": duration,
            "boards_ok": totals.get("ok"), "boards_failed": totals.get("failed"),
            "rows_written": totals.get("rows_written"), "joined": totals.get("joined"),
            "left": totals.get("left"), "ips_used": rec.ips_used, "errors": errors}


def _run_changes(store: Store, rec: Any) -> list[Any]:
    """The changes history attributes to run ``rec``.

    A run writes only between its start and its finish, so the query is narrowed to that
    window (history grows with every run; reading all of it per run would not scale), then
    filtered by run id.
    """
    since = rec.started_at
    until = rec.finished_at + timedelta(microseconds=1) if rec.finished_at else None
    if since is not None and until is not None and until <= since:
        since = until = None  # clocks disagree: read everything rather than miss changes
    return [c for c in store.changes(None, since, until) if c.run_id == rec.id]


def run_rows(store: Store, limit: int | None = 50) -> list[dict[str, Any]]:
    """The most recent run records, newest first (``limit=None``: all)."""
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}", "limit")
    return [_run_row(r) for r in store.runs(limit)]


def run_detail(store: Store, run_id: str) -> dict[str, Any]:
    """One run record in full: summary columns plus parameters (redacted), totals, errors.

    Also counts the joins and leaves history attributes to the run, so the record and the
    history can be compared.

    Raises:
        ConfigError: no run with that id.
    """
    rec = store.run(run_id)
    if rec is None:
        raise ConfigError(f"no run {run_id!r} in the database {store.url} (see `boardsync "
                          "runs`)", "run")
    events = Counter(c.event for c in _run_changes(store, rec))
    out = _run_row(rec)
    out.update(host=rec.host, pid=rec.pid, history_joins=events.get("join", 0),
               history_leaves=events.get("leave", 0), params=rec.params, totals=rec.totals,
               errors=rec.errors)
    return out


# --- state inspection -----------------------------------------------------------------------


def _parse_iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def state_overview(data: Mapping[str, Any], *, max_age_s: float,
                   now: datetime | None = None) -> dict[str, Any]:
    """A machine-readable overview of a state file's data (``state show --json``).

    Args:
        data: what :func:`load_state` returned.
        max_age_s: boards whose last successful sync is older than this are ``stale`` (the
            same rule an incremental sync uses to refetch them).
        now: the reference time (default: now, UTC); injected by tests.
    """
    now = now or datetime.now(UTC)
    boards: Mapping[str, Mapping[str, Any]] = data.get("boards") or {}
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    stale, failures, never = [], [], []
    for code, rec in sorted(boards.items()):
        kind = rec.get("kind") or "unknown"
        status = rec.get("status") or "unknown"
        by_kind[kind][status] += 1
        synced = _parse_iso(rec.get("synced_at"))
        if status == "deleted":
            continue
        if synced is None:
            never.append(code)
        elif (now - synced).total_seconds() > max_age_s:
            stale.append({"code": code, "kind": kind, "name": rec.get("name"),
                          "status": status, "synced_at": synced,
                          "age_h": round((now - synced).total_seconds() / 3600, 1)})
        if status in ("failed", "suspicious", "fetched_unwritten", "retrying"):
            failures.append({"code": code, "kind": kind, "name": rec.get("name"),
                             "status": status, "attempts": rec.get("attempts"),
                             "last_error_class": rec.get("last_error_class"),
                             "error_counts": rec.get("error_counts") or {},
                             "run_id": rec.get("run_id")})
    runs = data.get("runs") or []
    return {
        "updated_at": data.get("updated_at"),
        "boards_total": len(boards),
        "boards_by_kind": {k: dict(sorted(c.items())) for k, c in sorted(by_kind.items())},
        "max_age_s": max_age_s,
        "stale": stale,
        "never_synced": never,
        "failures": failures,
        "runs_total": len(runs),
        "last_run": runs[-1] if runs else None,
        "current_run": data.get("current_run"),
    }


def format_overview(ov: Mapping[str, Any], path: str | Path) -> str:
    """The readable ``state show`` text for an overview from :func:`state_overview`."""
    lines = [f"State file {path} (updated {ov.get('updated_at') or 'never'})"]
    by_kind: Mapping[str, Mapping[str, int]] = ov["boards_by_kind"]
    statuses = sorted({s for c in by_kind.values() for s in c},
                      key=lambda s: (s != "ok", s))
    lines.append(f"\nBoards: {ov['boards_total']}")
    if by_kind:
        rows = [{"kind": k, **{s: c.get(s, 0) for s in statuses}, "total": sum(c.values())}
                for k, c in by_kind.items()]
        lines.append(_indent(render_table(rows, ("kind", *statuses, "total"))))
    hours = ov["max_age_s"] / 3600
    lines.append(f"\nStale (last synced more than {hours:g}h ago): {len(ov['stale'])}")
    for s in ov["stale"]:
        lines.append(f"  {s['code']}  {s['kind']}  {s['name'] or ''}  synced "
                     f"{iso(s['synced_at'])} ({s['age_h']:g}h ago)")
    if ov["never_synced"]:
        shown = ", ".join(ov["never_synced"][:20])
        more = len(ov["never_synced"]) - 20
        lines.append(f"Never synced: {len(ov['never_synced'])}: {shown}"
                     + (f" and {more} more" if more > 0 else ""))
    lines.append(f"\nFailures: {len(ov['failures'])}")
    for f in ov["failures"]:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(f["error_counts"].items()))
        lines.append(f"  {f['code']}  {f['kind']}  {f['status']}  attempts {f['attempts']}  "
                     f"last error {f['last_error_class']}" + (f"  ({counts})" if counts else ""))
    run = ov["last_run"]
    lines.append(f"\nRuns recorded: {ov['runs_total']}")
    if run is None:
        lines.append("Last run: none")
    else:
        t = run.get("totals") or {}
        errors = ", ".join(f"{k}={v}" for k, v in sorted((run.get("errors") or {}).items()))
        lines.append(f"Last run: {run.get('id')} ({run.get('mode')}) {run.get('status')}, "
                     f"started {run.get('started_at')}, finished {run.get('finished_at')}")
        if t:
            lines.append(f"  boards {t.get('ok', 0)} ok, {t.get('failed', 0)} failed, "
                         f"{t.get('skipped', 0)} skipped; rows {t.get('rows_written', 0)} "
                         f"({t.get('joined', 0)} joined, {t.get('left', 0)} left)")
        if errors:
            lines.append(f"  errors {errors}")
    lines.append(f"Unfinished run (resumes next): {ov['current_run'] or 'none'}")
    return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def board_trail(store: Store, data: Mapping[str, Any], code: str) -> dict[str, Any]:
    """One board's audit trail from both sides (``state board``).

    ``state``: what the state file says (status, attempts, last error class, error counts by
    class, rows, checksum, the run that last touched it, the runs that wrote it). ``database``:
    the ``boards`` row and the member count and checksum recomputed from ``memberships``.
    ``runs``: every run that changed its membership, with joins/leaves and the run's status.

    Raises:
        ConfigError: malformed code, or a board neither side knows.
    """
    code = check_board_code(code)
    rec = (data.get("boards") or {}).get(code)
    digest = board_digests_for(store, code)
    row = next((r for r in store.board_list() if r.code == code), None)
    if rec is None and row is None:
        raise ConfigError(f"board {code} is in neither the state file nor the database",
                          "board")
    per_run: dict[str, Counter[str]] = defaultdict(Counter)
    first_at: dict[str, datetime] = {}
    for c in store.changes(code):
        per_run[c.run_id][c.event] += 1
        first_at.setdefault(c.run_id, c.at)
    written_by = list((rec or {}).get("written_by") or [])
    records = {r.id: r for r in store.runs(None)}
    run_ids = sorted(set(per_run) | set(written_by),
                     key=lambda r: (first_at.get(r) or _run_time(records.get(r)), r))
    runs = [{"run_id": r, "at": first_at.get(r), "joined": per_run[r]["join"],
             "left": per_run[r]["leave"], "wrote": r in written_by,
             "run_status": records[r].status if r in records else None,
             "run_mode": records[r].mode if r in records else None} for r in run_ids]
    state_part = None
    if rec is not None:
        state_part = {k: rec.get(k) for k in (
            "status", "attempts", "last_error_class", "error_counts", "rows", "checksum",
            "run_id", "synced_at", "updated_at", "fetched_rows", "checksum_fetched")
            if k in rec}
        state_part["written_by"] = written_by
    db_part = None
    if row is not None:
        db_part = {"members": digest.rows if digest else 0,
                   "checksum": digest.checksum if digest else None,
                   "stored_members": row.member_count, "stored_checksum": row.checksum,
                   "last_run_id": row.last_run_id, "synced_at": row.synced_at,
                   "first_seen_at": row.first_seen_at, "last_seen_at": row.last_seen_at,
                   "deleted_at": row.deleted_at}
    problems = [p.as_dict() for p in verify(
        {code: rec} if rec is not None else {},
        {code: digest} if digest is not None else {}).problems]
    return {"code": code, "name": (row.name if row else None) or (rec or {}).get("name"),
            "kind": (row.kind if row else None) or (rec or {}).get("kind"),
            "state": state_part, "database": db_part, "runs": runs,
            "agrees": not problems, "problems": problems}


def _run_time(rec: Any) -> datetime:
    when = getattr(rec, "started_at", None) or getattr(rec, "finished_at", None)
    return when or datetime.max.replace(tzinfo=UTC)


def board_digests_for(store: Store, code: str) -> Any:
    """The :class:`~boardsync.store.BoardDigest` of one board, or ``None``."""
    return board_digests(store).get(code)


def format_trail(trail: Mapping[str, Any]) -> str:
    """The readable ``state board`` text for a trail from :func:`board_trail`."""
    lines = [f"Board {trail['code']}  {trail['name'] or ''}  ({trail['kind'] or 'unknown kind'})"]
    st = trail["state"]
    if st is None:
        lines.append("\nState file: no record of this board")
    else:
        counts = ", ".join(f"{k}={v}" for k, v in sorted((st.get("error_counts") or {}).items()))
        lines += ["\nState file:",
                  f"  status            {st.get('status')}",
                  f"  attempts          {st.get('attempts')}",
                  f"  last error class  {st.get('last_error_class') or '-'}",
                  f"  errors by class   {counts or '-'}",
                  f"  rows              {st.get('rows')}",
                  f"  checksum          {st.get('checksum') or '-'}",
                  f"  last run          {st.get('run_id') or '-'} at {st.get('synced_at') or '-'}",
                  f"  written by        {', '.join(st.get('written_by') or []) or '-'}"]
    db = trail["database"]
    if db is None:
        lines.append("\nDatabase: no row for this board")
    else:
        lines += ["\nDatabase:",
                  f"  members           {db['members']} (recomputed; last write stored "
                  f"{db['stored_members']})",
                  f"  checksum          {db['checksum']} (recomputed)",
                  f"  last write        {db['last_run_id'] or '-'} at "
                  f"{iso(db['synced_at']) or '-'}",
                  f"  first/last seen   {iso(db['first_seen_at'])} / {iso(db['last_seen_at'])}"]
        if db["deleted_at"] is not None:
            lines.append(f"  deleted upstream  {iso(db['deleted_at'])}")
    lines.append(f"\nRuns that changed or wrote it: {len(trail['runs'])}")
    for r in trail["runs"]:
        lines.append(f"  {r['run_id']}  {iso(r['at']) or '-':20}  +{r['joined']} -{r['left']}"
                     f"  {'wrote' if r['wrote'] else '     '}  run {r['run_mode'] or '?'} "
                     f"{r['run_status'] or '?'}")
    if trail["agrees"]:
        lines.append("\nState file and database agree on this board.")
    else:
        lines.append("\nDisagreements:")
        lines += [f"  {p['problem']}: {p['detail']}" for p in trail["problems"]]
    return "\n".join(lines)


# --- verify ---------------------------------------------------------------------------------


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
