"""The database's identity, the run to resume, and the mirror of the state file's board records.

Why in the database: the state file is one host's copy. With the identity a state file can say
which database it mirrors (a file of another database is refused, not mixed in); with the
current run and the board records here, a run started on one host resumes on another that
never saw its file, and ``boardsync state export`` rebuilds the file from the database alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .engine import Database
from .schema import board_state_t, create_schema, meta_t

logger = logging.getLogger(__name__)

#: The ``boardsync_meta`` key of the run the next start resumes ("" when none).
CURRENT_RUN = "current_run"


def set_meta(conn: Connection, insert: Any, key: str, value: str) -> None:
    """Upsert one ``boardsync_meta`` row on ``conn`` (``insert``: the dialect's construct)."""
    stmt = insert(meta_t).values(key=key, value=value)
    conn.execute(stmt.on_conflict_do_update(index_elements=[meta_t.c.key],
                                            set_={"value": value}))


class Meta(Database):
    """Identity, current run and board records (part of :class:`~boardsync.store.Store`)."""

    def identity(self) -> str:
        """This database's UUID; an older database without one gets it now (additive).

        Read first, so an audit of a database that has one never takes a write lock.
        """
        with self._tx("read identity") as conn:
            found = self._meta(conn, "db_id")
        if found:
            return found
        with self._tx("create identity", write=True) as conn:
            create_schema(conn, postgresql=self.is_postgresql)
            found = self._meta(conn, "db_id")
        assert found, "create_schema makes the identity"
        return found

    def current_run(self) -> tuple[bool, str | None]:
        """``(recorded, run_id)``: whether this database records its current run at all
        (an older one does not: the state file's word is all there is), and which it is."""
        with self._tx("current_run") as conn:
            if not self._table_exists(conn, meta_t.name):
                return False, None
            value = self._meta(conn, CURRENT_RUN)
        return value is not None, value or None

    def save_board_states(self, records: Mapping[str, Mapping[str, Any]]) -> None:
        """Upsert the state file's records of these boards (one transaction)."""
        if not records:
            return
        when = self._clock.wall()
        rows = [{"board_code": code, "status": rec.get("status"),
                 "record_json": json.dumps(rec, sort_keys=True, ensure_ascii=False, default=str),
                 "updated_at": when} for code, rec in records.items()]
        ins = self._insert(board_state_t)
        stmt = ins.on_conflict_do_update(
            index_elements=[board_state_t.c.board_code],
            set_={"status": ins.excluded.status, "record_json": ins.excluded.record_json,
                  "updated_at": ins.excluded.updated_at})
        with self._tx("save board states", write=True) as conn:
            conn.execute(stmt, rows)

    def board_states(self) -> dict[str, dict[str, Any]]:
        """Every mirrored board record, by code (empty for a database that has none)."""
        with self._tx("board states") as conn:
            if not self._table_exists(conn, board_state_t.name):
                return {}
            rows = conn.execute(sa.select(board_state_t.c.board_code,
                                          board_state_t.c.record_json)).all()
        out: dict[str, dict[str, Any]] = {}
        for code, text in rows:
            try:
                rec = json.loads(text)
            except json.JSONDecodeError:
                rec = None
            out[code] = rec if isinstance(rec, dict) else {"_unparseable": text}
        return out

    @staticmethod
    def _meta(conn: Connection, key: str) -> str | None:
        if not sa.inspect(conn).has_table(meta_t.name):
            return None
        value = conn.execute(sa.select(meta_t.c.value).where(meta_t.c.key == key)).scalar()
        return None if value is None else str(value)
