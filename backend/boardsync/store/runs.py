"""Run records: one ``sync_runs`` row per run, written at its start and its finish.

Parameters and totals are redacted before they are stored (:func:`boardsync.redact.redact`):
a run record is read by people and copied into tickets, and must never carry a proxy password
or an API key.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..redact import redact
from .checks import check_run_id
from .engine import Database
from .meta import CURRENT_RUN, set_meta
from .records import RunRecord
from .schema import meta_t, runs_t


class Runs(Database):
    """Writing and reading run records (part of :class:`~boardsync.store.Store`)."""

    def start_run(self, run_id: str, mode: str, params: dict[str, Any], host: str | None = None,
                  pid: int | None = None, at: datetime | None = None) -> None:
        """Record that run ``run_id`` started (re-marks it running when resumed).

        In the same transaction it becomes the database's current run, so a kill at any
        moment after leaves a run any host resumes (none is ever left running unseen).
        """
        check_run_id(run_id)
        when = self._when(at)
        ins = self._insert(runs_t)
        stmt = ins.values(id=run_id, mode=mode, status="running", started_at=when,
                          params_json=_dumps(redact(params)), totals_json="{}",
                          errors_json="{}", host=host, pid=pid)
        stmt = stmt.on_conflict_do_update(
            index_elements=[runs_t.c.id],
            set_={"status": "running", "finished_at": sa.null(), "host": ins.excluded.host,
                  "pid": ins.excluded.pid})
        with self._tx(f"start_run {run_id}", write=True) as conn:
            conn.execute(stmt)
            set_meta(conn, self._insert, CURRENT_RUN, run_id)

    def finish_run(self, run_id: str, status: str, totals: dict[str, Any],
                   errors: dict[str, Any], ips_used: int | None,
                   at: datetime | None = None, *, resumable: bool = False) -> None:
        """Record a run's outcome (creates the row if ``start_run`` never reached the DB).

        Args:
            resumable: the run stays the database's current run (the next start resumes
                it); otherwise it stops being current, in the same transaction.
        """
        check_run_id(run_id)
        when = self._when(at)
        ins = self._insert(runs_t)
        values = {"status": status, "finished_at": when, "totals_json": _dumps(redact(totals)),
                  "errors_json": _dumps(errors), "ips_used": ips_used}
        stmt = ins.values(id=run_id, params_json="{}", **values).on_conflict_do_update(
            index_elements=[runs_t.c.id], set_=values)
        with self._tx(f"finish_run {run_id}", write=True) as conn:
            conn.execute(stmt)
            current = conn.execute(sa.select(meta_t.c.value)
                                   .where(meta_t.c.key == CURRENT_RUN)).scalar()
            if resumable:
                set_meta(conn, self._insert, CURRENT_RUN, run_id)
            elif current == run_id:
                set_meta(conn, self._insert, CURRENT_RUN, "")

    def runs(self, limit: int | None = 50) -> list[RunRecord]:
        """The most recent runs, newest first (``limit=None``: all)."""
        r = runs_t.c
        q = sa.select(runs_t).order_by(sa.func.coalesce(r.started_at, r.finished_at).desc(),
                                       r.id.desc())
        if limit is not None:
            q = q.limit(limit)
        with self._tx("runs") as conn:
            return [_run_record(row._mapping) for row in conn.execute(q)]

    def run(self, run_id: str) -> RunRecord | None:
        """One run record, or ``None``."""
        with self._tx("run") as conn:
            row = conn.execute(sa.select(runs_t).where(runs_t.c.id == run_id)).first()
        return _run_record(row._mapping) if row is not None else None


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)


def _loads(text: str | None) -> dict[str, Any]:
    """A JSON column as a dict; a value edited into something else is kept, not lost."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {"_unparseable": text}
    return value if isinstance(value, dict) else {"value": value}


def _run_record(row: Any) -> RunRecord:
    return RunRecord(id=row["id"], mode=row["mode"], status=row["status"],
                     started_at=row["started_at"], finished_at=row["finished_at"],
                     params=_loads(row["params_json"]), totals=_loads(row["totals_json"]),
                     errors=_loads(row["errors_json"]), ips_used=row["ips_used"],
                     host=row["host"], pid=row["pid"])
