"""The connection to the database: URL, engine, transactions and error translation.

:class:`Database` is the base every part of :class:`~boardsync.store.Store` builds on. It is
the one boundary where SQLAlchemy and DBAPI errors become boardsync errors (``raise ... from
e``): lost or unreachable connections (and a busy SQLite file) become
:class:`DatabaseUnavailable` (retry with backoff), everything else :class:`StorageError`. URLs
in messages and logs have the password hidden.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from ..clock import SYSTEM, Clock
from ..errors import BadRequest, DatabaseUnavailable, StorageError
from .schema import create_schema, has_tables, utc

logger = logging.getLogger(__name__)

#: Seconds a SQLite connection waits for another writer before giving up ("database is locked").
SQLITE_BUSY_TIMEOUT_S = 30.0
#: Seconds to wait for a PostgreSQL connection before calling the database unavailable.
PG_CONNECT_TIMEOUT_S = 10

_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "unable to open",
                     "disk i/o error", "busy")


def _is_unavailable(e: BaseException, dialect: str) -> bool:
    """True when ``e`` means "the database cannot be reached now" (worth a retry later)."""
    if isinstance(e, sa.exc.TimeoutError):  # pool exhausted / connect timeout
        return True
    if isinstance(e, sa.exc.DBAPIError):
        if e.connection_invalidated or isinstance(e, sa.exc.InterfaceError):
            return True
        if isinstance(e, sa.exc.OperationalError):
            if dialect == "sqlite":
                msg = str(e.orig).lower()
                return any(s in msg for s in _SQLITE_TRANSIENT)
            return True  # psycopg2 OperationalError: connection refused, reset, terminated...
    return False


def with_driver(url: URL) -> URL:
    """``url`` with the PostgreSQL driver boardsync installs (psycopg2) named, when it names
    none; any other URL as it is."""
    return url.set(drivername="postgresql+psycopg2") if url.drivername == "postgresql" else url


def sqlite_path(url: URL) -> Path | None:
    """The SQLite database file of ``url``; ``None`` for another backend, in-memory or
    ``file:`` URIs."""
    db = url.database
    if url.get_backend_name() != "sqlite" or not db or db == ":memory:" \
            or db.startswith("file:"):
        return None
    return Path(db)


class Database:
    """The boardsync database at ``url`` (a SQLAlchemy URL: ``sqlite:///path`` or PostgreSQL).

    Connects lazily: nothing touches the database until a method is called.

    Args:
        url: ``sqlite:///path``, ``sqlite://`` (in memory) or ``postgresql://...``.
        echo: log every SQL statement (SQLAlchemy's ``echo``).
        clock: where the default time of a write comes from (``wall()``).
    """

    def __init__(self, url: str, *, echo: bool = False, clock: Clock = SYSTEM) -> None:
        try:
            self._url = make_url(url)
        except (sa.exc.ArgumentError, ValueError) as e:
            # not echoed: an unparseable URL cannot be reliably stripped of its password
            raise StorageError("malformed database URL (not shown: it may hold a password); "
                               "expected e.g. sqlite:///data/boardsync.db or "
                               "postgresql://user@host:5432/db") from e
        self.url = self._url.render_as_string(hide_password=True)
        self.dialect = self._url.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise StorageError(f"unsupported database {self.dialect!r} in {self.url} "
                               "(use sqlite or postgresql)")
        self._clock = clock
        try:
            self.engine = self._create_engine(echo)
        except sa.exc.SQLAlchemyError as e:  # e.g. the driver is not installed
            raise StorageError(f"cannot use database {self.url}: {e}") from e

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    def _sqlite_path(self) -> Path | None:
        """The SQLite database file; ``None`` for PostgreSQL, in-memory or ``file:`` URIs."""
        return sqlite_path(self._url)

    def _create_engine(self, echo: bool) -> Engine:
        """The engine, with the connection settings each backend needs (see the comments)."""
        if self.is_postgresql:
            return sa.create_engine(
                with_driver(self._url), pool_pre_ping=True, echo=echo, future=True,
                connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S,
                              "application_name": "boardsync",
                              "client_encoding": "utf8"},
            )
        path = self._sqlite_path()
        kwargs: dict[str, Any] = {}
        if path is None:
            # one shared connection, or every thread would see its own empty database
            kwargs["poolclass"] = StaticPool
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            self._url, pool_pre_ping=True, echo=echo,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
            **kwargs,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # We issue BEGIN ourselves (below): pysqlite's implicit transactions would start
            # writes as DEFERRED and fail with "database is locked" on the read->write upgrade.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            if path is not None:
                cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")  # durable enough in WAL, much faster
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Writes take the write lock up front so they wait (busy_timeout) instead of failing.
            immediate = conn.get_execution_options().get("boardsync_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    def dispose(self) -> None:
        """Close every pooled connection (tests and short-lived CLI commands call this)."""
        self.engine.dispose()

    @contextlib.contextmanager
    def _translate(self, what: str) -> Iterator[None]:
        """Translate DB errors raised inside the block; the transaction was rolled back."""
        try:
            yield
        except (StorageError, BadRequest):
            raise
        except Exception as raw:
            e = raw
            dbapi_error = self.engine.dialect.loaded_dbapi.Error
            if isinstance(raw, dbapi_error):  # from a DBAPI cursor used directly (COPY, reads)
                e = sa.exc.DBAPIError.instance(None, None, raw, dbapi_error)
                e.__cause__ = raw
            if not isinstance(e, sa.exc.SQLAlchemyError):
                raise
            orig = getattr(e, "orig", None) or e
            lines = str(orig).strip().splitlines()
            detail = f"{type(orig).__name__}: {lines[0] if lines else ''}"
            if _is_unavailable(e, self.dialect):
                # DEBUG only: the caller reports it once (the sync's retry line, the CLI's
                # one-line error), with this message.
                logger.debug("Store %s: database unavailable during %s: %s", self.url, what,
                             detail)
                raise DatabaseUnavailable(
                    f"database {self.url} unavailable during {what}: {detail}") from e
            logger.error("Store %s: %s failed: %s", self.url, what, detail)
            raise StorageError(f"database {self.url}: {what} failed: {detail}") from e

    @contextlib.contextmanager
    def _tx(self, what: str, *, write: bool = False) -> Iterator[Connection]:
        """One transaction (committed on success, rolled back on any error), errors translated."""
        with self._translate(what):
            with self.engine.connect() as conn:
                if write and self.dialect == "sqlite":
                    conn.execution_options(boardsync_write=True)
                with conn.begin():
                    yield conn

    def _when(self, at: datetime | None) -> datetime:
        """The time of a change: ``at`` as UTC (naive means UTC), else the clock's now."""
        return utc(at) if at is not None else self._clock.wall()

    def _insert(self, table: sa.Table) -> Any:
        """The dialect's ``INSERT`` construct, the one with ``on_conflict_do_update``."""
        if self.is_postgresql:
            return postgresql.insert(table)
        return sqlite.insert(table)

    @staticmethod
    def _table_exists(conn: Connection, name: str) -> bool:
        return sa.inspect(conn).has_table(name)

    def init_schema(self) -> None:
        """Create the tables and indexes that are missing (idempotent, safe to call each run)."""
        with self._tx("init_schema", write=True) as conn:
            create_schema(conn, postgresql=self.is_postgresql)
        logger.debug("Store %s: schema ready", self.url)

    def has_schema(self) -> bool:
        """True when every boardsync table exists."""
        with self._tx("inspect schema") as conn:
            return has_tables(conn)
