"""Audit queries: boards, members (now or as of a date), changes, a stock's boards, runs.

Each returns plain rows (dicts) with the stable English column names of the ``*_COLUMNS``
tuples, for :mod:`boardsync.report` to render.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from ..errors import ConfigError
from ..report import iso
from ..store import RunRecord, Store
from .inputs import check_board_code, check_stock_code

BOARD_COLUMNS = ("code", "name", "kind", "level", "quoted", "members", "checksum",
                 "last_run_id", "synced_at", "first_seen_at", "last_seen_at", "deleted_at")
MEMBER_COLUMNS = ("board_code", "stock_code", "stock_name", "market")
CHANGE_COLUMNS = ("at", "run_id", "board_code", "event", "stock_code", "stock_name")
STOCK_COLUMNS = ("stock_code", "board_code", "board_name", "kind", "since", "until", "current")
#: The run id that names the newest run (``changes --run latest``, ``runs show latest``).
LATEST = "latest"
RUN_COLUMNS = ("id", "mode", "status", "started_at", "finished_at", "duration_s", "boards_ok",
               "boards_failed", "rows_written", "joined", "left", "ips_used", "errors")


def board_rows(store: Store, kind: str | None = None,
               level: int | None = None) -> list[dict[str, Any]]:
    """Every board ever seen (deleted ones have ``deleted_at``), sorted by code; ``level``
    keeps the industry boards of that level (1-3). ``quoted`` False: the directory lists the
    board but its members answer "no quote"; empty when unknown (no directory read yet)."""
    if level is not None and not 1 <= level <= 3:
        raise ConfigError(f"--level must be 1, 2 or 3 (an industry level), got {level}",
                          "level")
    return [{"code": r.code, "name": r.name, "kind": r.kind, "level": r.level,
             "quoted": r.quoted, "members": r.member_count,
             "checksum": r.checksum, "last_run_id": r.last_run_id,
             "synced_at": r.synced_at, "first_seen_at": r.first_seen_at,
             "last_seen_at": r.last_seen_at, "deleted_at": r.deleted_at}
            for r in store.board_list(kind) if level is None or r.level == level]


def _known_board(store: Store, code: str) -> None:
    if not any(r.code == code for r in store.board_list()):
        raise ConfigError(f"board {code} is not in the database {store.url}", "board")


def _known_run(store: Store, run_id: str) -> RunRecord:
    """The run ``run_id`` (``latest``: the newest run), or ConfigError: an empty answer
    would read "that run changed nothing"."""
    if run_id == LATEST:
        newest = store.runs(1)
        if not newest:
            raise ConfigError(f"no runs in the database {store.url} yet", "run")
        return newest[0]
    rec = store.run(run_id)
    if rec is None:
        raise ConfigError(f"no run {run_id!r} in the database {store.url} (see `boardsync "
                          "runs`)", "run")
    return rec


def member_rows(store: Store, code: str, as_of: datetime | None = None) -> list[dict[str, Any]]:
    """A board's members now, or at instant ``as_of`` (from the history intervals).

    Raises:
        ConfigError: malformed code, or a board the database has never seen.
    """
    code = check_board_code(code)
    _known_board(store, code)
    return [{"board_code": code, "stock_code": m.code, "stock_name": m.name,
             "market": m.market} for m in store.members(code, as_of=as_of)]


def member_note(store: Store, code: str, as_of: datetime | None = None) -> str | None:
    """Why :func:`member_rows` may be empty although the board is known, or None.

    A deleted board has no current members, and before boardsync first wrote a board its
    history is empty: both are true answers, but a bare empty list would read "no members".
    """
    code = check_board_code(code)
    row = next((r for r in store.board_list() if r.code == code), None)
    if row is None:
        return None
    if as_of is None:
        if row.deleted_at is not None:
            return (f"board {code} was deleted upstream at {iso(row.deleted_at)}: it has no "
                    "current members (--as-of shows its past ones)")
        return None
    first = next(iter(store.changes(code)), None)
    if first is None or as_of < first.at:
        began = f"began {iso(first.at)}" if first else "has not begun (never written)"
        return f"{iso(as_of)} is before the history of {code}, which {began}: no members then"
    return None


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
    if run_id is not None:
        run_id = _known_run(store, run_id).id
    return [{"at": c.at, "run_id": c.run_id, "board_code": c.board_code, "event": c.event,
             "stock_code": c.stock_code, "stock_name": c.stock_name}
            for c in store.changes(code, since, until) if run_id is None or c.run_id == run_id]


def stock_rows(store: Store, stock: str) -> list[dict[str, Any]]:
    """The boards a stock belongs to (``current``) and belonged to, with their intervals.

    Current memberships first (by board), then past ones (most recent first).

    Raises:
        ConfigError: malformed code, or a stock no board of the database ever held (an
            empty answer would read "in no board", which the database cannot know).
    """
    code = check_stock_code(stock)
    rows: list[dict[str, Any]] = [
        {"stock_code": code, "board_code": sb.board.code, "board_name": sb.board.name,
         "kind": sb.board.kind, "since": sb.since, "until": sb.until,
         "current": sb.until is None} for sb in store.stock_boards(code)]
    if not rows:
        raise ConfigError(f"stock {code} is in no board of the database {store.url}, now or "
                          "in its history", "stock")
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
    rec = _known_run(store, run_id)
    events = Counter(c.event for c in _run_changes(store, rec))
    out = _run_row(rec)
    out.update(host=rec.host, pid=rec.pid, history_joins=events.get("join", 0),
               history_leaves=events.get("leave", 0), params=rec.params, totals=rec.totals,
               errors=rec.errors)
    return out
