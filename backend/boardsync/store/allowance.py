"""The learned allowance, kept in the database with its time so the next run starts from it.

Why in the database and apart from the other tables: what the upstream allowed is a fact about
the upstream, as durable as the boards (a run on another host should start from it too), and
the table is additive (created at the first save, never altered) so no migration of the others
is touched. One row per upstream (its host): the allowance as JSON and when it was learned.
Its own small engine: the learner saves from worker threads while the run's store writes.
Reading creates nothing (no SQLite file, no table): ``sync --explain`` reads it on a database
that may not exist yet, and must leave none behind.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from .engine import sqlite_path, with_driver

logger = logging.getLogger(__name__)

_metadata = sa.MetaData()
allowance_t = sa.Table(
    "learned_allowance", _metadata,
    sa.Column("upstream", sa.String(255), primary_key=True),
    sa.Column("allowance", sa.Text, nullable=False),
    sa.Column("learned_at", sa.Float, nullable=False),  # wall-clock epoch seconds
    sa.Column("saved_at", sa.String(32), nullable=False),  # ISO UTC, for people reading it
)


class AllowanceStore:
    """Load and save the learned allowance of one upstream in the database at ``db_url``."""

    def __init__(self, db_url: str, upstream: str) -> None:
        self.db_url = db_url
        self.upstream = upstream[:255]
        self._engine: Engine | None = None
        self._created = False  # the table is known to exist (created or seen)
        self._lock = threading.Lock()

    def _get_engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                url = make_url(self.db_url)
                sqlite = url.get_backend_name() == "sqlite"
                self._engine = sa.create_engine(
                    with_driver(url), connect_args={"timeout": 30} if sqlite else {})
            return self._engine

    def sqlite_file_missing(self) -> Path | None:
        """The SQLite file of ``db_url`` when it does not exist yet (connecting would create
        it), else None: another backend, an in-memory database, or a file that exists."""
        path = sqlite_path(make_url(self.db_url))
        return None if path is None or path.exists() else path

    def load(self) -> tuple[dict[str, Any], float] | None:
        """``(allowance as a dict, learned_at epoch)``, or None when nothing was stored
        (also when the SQLite file or the table does not exist: neither is created)."""
        if self.sqlite_file_missing() is not None:
            return None
        with self._get_engine().connect() as conn:
            if not self._created and not sa.inspect(conn).has_table(allowance_t.name):
                return None
            row = conn.execute(sa.select(allowance_t.c.allowance, allowance_t.c.learned_at)
                               .where(allowance_t.c.upstream == self.upstream)).first()
        if row is None:
            return None
        try:
            return json.loads(row[0]), float(row[1])
        except (ValueError, TypeError):
            logger.warning("Allowance: the stored allowance of %s is unreadable; starting "
                           "afresh", self.upstream)
            return None

    def save(self, allowance: dict[str, Any], learned_at: float) -> None:
        """Replace the stored allowance (one short transaction)."""
        text = json.dumps(allowance, sort_keys=True)
        saved = datetime.now(UTC).isoformat(timespec="seconds")
        engine = self._get_engine()
        with self._lock:
            if not self._created:
                _metadata.create_all(engine)
                self._created = True
        with engine.begin() as conn:
            conn.execute(allowance_t.delete().where(allowance_t.c.upstream == self.upstream))
            conn.execute(allowance_t.insert().values(upstream=self.upstream, allowance=text,
                                                     learned_at=learned_at, saved_at=saved))

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
                self._created = False
