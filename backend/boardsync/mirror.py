"""The state file as the database's audit mirror: bound to one database, rebuilt from it.

The database is the authority: it holds the runs (``sync_runs``), the run to resume
(``boardsync_meta.current_run``), what each board's last write stored (``boards``) and the
state file's other facts about each board (``board_state``: attempts, errors, status). The
state file is one host's copy of all that, for operators and audits:

* **Bound**: the file records the database's identity (``db_id``). A file of another database
  is refused (:func:`check_binding`): mixing two databases' records in one file is how audits
  went wrong (false disagreements, phantom runs).
* **Adopted**: a file older than the identity (no ``db_id``) is taken on by the database when
  it has no runs or shares at least one run with it; else it is refused with what to do.
* **Rebuilt**: :func:`export_state` builds the whole file from the database alone (``boardsync
  state export``), and every run starts from :func:`merge` of the file and the database, so a
  run started on one host resumes on another that never saw its file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .clock import iso
from .errors import StateError, StorageError
from .redact import mask_db_url, redact
from .state import STATE_VERSION, StateFile
from .store import BoardRow, RunRecord, Store

logger = logging.getLogger(__name__)

#: Board statuses a run leaves before the board's write is recorded (the mirror may lag the
#: ``boards`` row by one save when a kill lands between the commit and the save).
_UNFINISHED = (None, "pending", "retrying", "fetched_unwritten")


def check_binding(data: Mapping[str, Any], path: str | Path, db_id: str, db_url: str,
                  db_runs: set[str]) -> bool:
    """Whether the state ``data`` (read from ``path``) may be used with this database.

    Returns True when the file must be adopted (it records no database yet, and has no runs
    or shares one with this database), False when it is already this database's.

    Raises:
        StateError: the file is another database's (one line saying what to do).
    """
    where = mask_db_url(db_url)
    theirs = data.get("db_id")
    if theirs is not None:
        if theirs == db_id:
            return False
        raise StateError(f"state file {path} belongs to another database ({theirs}, "
                         f"{data.get('db_url') or 'url not recorded'}), not {where} ({db_id}); "
                         "pass --state with this database's file, or rebuild one with "
                         "`boardsync state export --state NEW_PATH`")
    runs = {r.get("id") for r in data.get("runs") or [] if isinstance(r, dict)}
    if not runs or runs & db_runs:
        return True
    raise StateError(f"state file {path} records no database and none of its {len(runs)} "
                     f"runs is in {where}: it is another database's; pass --state with this "
                     "database's file, or move it aside (`boardsync state export` rebuilds one "
                     "from the database)")


def check_state(store: Store, db_url: str, data: Mapping[str, Any], path: str | Path) -> None:
    """For audits: raise :class:`StateError` when ``data`` is another database's file."""
    check_binding(data, path, store.identity(), db_url, _run_ids(store))


def _run_ids(store: Store) -> set[str]:
    return {r.id for r in store.runs(limit=None)}


def _run_record(r: RunRecord) -> dict[str, Any]:
    return {"id": r.id, "mode": r.mode, "params": r.params, "status": r.status,
            "started_at": iso(r.started_at) if r.started_at else None,
            "finished_at": iso(r.finished_at) if r.finished_at else None,
            "totals": r.totals, "errors": r.errors, "ips": {"extracted": r.ips_used}}


def _board_record(row: BoardRow, rec: dict[str, Any] | None) -> dict[str, Any] | None:
    """The state record of one board: the mirrored one, caught up with the ``boards`` row."""
    if row.synced_at is None and row.deleted_at is None:
        return rec  # listed, never written: only the mirror knows anything
    out: dict[str, Any] = dict(rec) if rec is not None else {"attempts": 0, "error_counts": {}}
    out.setdefault("kind", row.kind)
    out.setdefault("name", row.name)
    if row.deleted_at is not None:
        if out.get("status") != "deleted":
            out.update(status="deleted", run_id=row.last_run_id, synced_at=iso(row.deleted_at))
        return out
    lags = rec is None or (out.get("status") in _UNFINISHED
                           and out.get("run_id") != row.last_run_id)
    if lags:
        assert row.synced_at is not None
        written = [r for r in out.get("written_by", []) if r != row.last_run_id]
        out.update(status="ok", rows=row.member_count, checksum=row.checksum,
                   run_id=row.last_run_id, synced_at=iso(row.synced_at), last_error_class=None,
                   written_by=[*written, row.last_run_id])
        out.setdefault("updated_at", iso(row.synced_at))
    return out


def export_state(store: Store, db_url: str) -> dict[str, Any]:
    """The whole state, built from the database alone (runs oldest first)."""
    db_id = store.identity()
    _, current = store.current_run()
    runs = [_run_record(r) for r in reversed(store.runs(limit=None))]
    mirrored = store.board_states()
    boards: dict[str, dict[str, Any]] = {}
    rows = {row.code: row for row in store.board_list()}
    for code in sorted(set(rows) | set(mirrored)):
        row = rows.get(code)
        rec = _board_record(row, mirrored.get(code)) if row is not None else mirrored[code]
        if rec is not None:
            boards[code] = rec
    return {"version": STATE_VERSION, "updated_at": None, "current_run": current,
            "db_id": db_id, "db_url": mask_db_url(db_url), "runs": runs, "boards": boards}


def merge(file: Mapping[str, Any], db: Mapping[str, Any],
          db_knows_current: bool) -> tuple[dict[str, Any], set[str]]:
    """The state a run starts from: the database's, plus what only the file knows.

    Runs: the database's record of each run, over the file's (the file's ``ips`` detail
    kept); runs only the file has are kept. Boards: the newer record (``updated_at``) wins,
    the database's on a tie. Current run: the database's when it records one (``db_knows_
    current``), else the file's (an older database). Returns the merged data and the board
    codes whose newest record only the file has (to be copied to the database).
    """
    runs = {r["id"]: dict(r) for r in file.get("runs") or [] if isinstance(r, dict)}
    for r in db["runs"]:
        runs[r["id"]] = runs.get(r["id"], {}) | {k: v for k, v in r.items() if k != "ips"}
        runs[r["id"]].setdefault("ips", r["ips"])
    boards = dict(db["boards"])
    newer: set[str] = set()
    for code, rec in (file.get("boards") or {}).items():
        theirs = boards.get(code)
        if theirs is None or str(rec.get("updated_at") or "") > str(
                theirs.get("updated_at") or ""):
            boards[code] = rec
            newer.add(code)
    current = db["current_run"] if db_knows_current else file.get("current_run")
    ordered = sorted(runs.values(), key=lambda r: (str(r.get("started_at") or ""), r["id"]))
    return ({**db, "runs": ordered, "boards": boards, "current_run": current}, newer)


class DbMirror:
    """The :attr:`StateFile.mirror` of a run: board records copied to ``board_state``.

    A database that is away is reported once (a warning), not at every save; the state file
    still has the records, and the next run boundary copies them.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.failing = False

    def __call__(self, records: dict[str, dict[str, Any]]) -> bool:
        try:
            self.store.save_board_states(redact(records))
        except StorageError as e:
            if not self.failing:
                logger.warning("State mirror: could not copy %d board records to the database "
                               "(%s); the state file has them", len(records), e)
            self.failing = True
            return False
        self.failing = False
        return True


def attach(state: StateFile, store: Store, db_url: str) -> str:
    """Bind ``state`` to the database and start it from :func:`merge`; returns the db id.

    Call under the run lock. Raises :class:`StateError` (nothing written to either side)
    when the file is another database's.
    """
    data = state.load()
    db = export_state(store, db_url)
    if check_binding(data, state.path, db["db_id"], db_url, {r["id"] for r in db["runs"]}):
        logger.info("State %s: adopted by database %s (%s)", state.path, db["db_id"],
                    mask_db_url(db_url))
    knows, _ = store.current_run()
    merged, newer = merge(data, db, knows)
    state.replace(merged, frozenset(newer))
    state.mirror = DbMirror(store)
    return str(db["db_id"])


def export_file(store: Store, db_url: str, path: str | Path) -> dict[str, Any]:
    """Rebuild the state file at ``path`` from the database; returns the data written.

    A file there that is another database's is refused (:class:`StateError`); an unreadable
    one is replaced (rebuilding it is what this is for).
    """
    target = Path(path)
    if target.exists():
        try:
            old = json.loads(target.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            logger.warning("State %s: unreadable (%s): replacing it", target, e)
        else:
            if isinstance(old, dict) and old.get("db_id") not in (None, store.identity()):
                check_binding(old, target, store.identity(), db_url, set())
    data = export_state(store, db_url)
    state = StateFile(target)
    state.replace(data)
    state.save(force=True)
    return data
