"""One board's audit trail: what the state file and the database each say, and the runs."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..errors import ConfigError
from ..report import iso
from ..store import BoardDigest, Store, board_digests
from .inputs import check_board_code
from .verification import verify


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


def board_digests_for(store: Store, code: str) -> BoardDigest | None:
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
