"""The run lock, "one sync per database", and the fence that keeps a lost lock from writing.

PostgreSQL: ``pg_try_advisory_lock`` on a dedicated session (it holds across hosts, and the
server drops it when that session ends, so a crashed holder never leaves it stale); each write
first checks that session still lives (:meth:`RunLock._check_fence`). SQLite file: an
exclusive ``flock`` on ``<db>.lock``, which the kernel drops when the process dies. In-memory
SQLite: a process-local lock. The ``sync_lock`` row and the lock file only *name* the holder
for the "locked" message; they are never the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..clock import SYSTEM, Clock, iso
from ..errors import Locked
from .engine import Database
from .schema import ADVISORY_LOCK_KEY, lock_t

logger = logging.getLogger(__name__)


class RunLock(Database):
    """Holding the run lock (part of :class:`~boardsync.store.Store`)."""

    def __init__(self, url: str, *, echo: bool = False, clock: Clock = SYSTEM) -> None:
        super().__init__(url, echo=echo, clock=clock)
        # an in-memory database lives in this process only, so a process-local lock suffices
        in_memory = self.dialect == "sqlite" and self._sqlite_path() is None
        self._memory_lock: threading.Lock | None = threading.Lock() if in_memory else None
        # (holder, lock session) while this Store holds the PostgreSQL lock; see _check_fence
        self._fence: tuple[str, Connection] | None = None
        self._fence_guard = threading.Lock()

    @contextlib.contextmanager
    def lock(self, holder: str) -> Iterator[None]:
        """Hold "one sync per database" for the block; raise :class:`Locked` at once if taken.

        PostgreSQL: ``pg_try_advisory_lock`` on a dedicated connection kept open for the
        block (it holds across hosts, and the server drops it when that session ends, so a
        crashed holder never leaves it stale); the holder is named through the lock session's
        ``application_name`` and the ``sync_lock`` row. SQLite file: an exclusive ``flock`` on
        ``<db>.lock`` (the kernel drops it when the process dies) with the holder text inside.
        ``:memory:``: a process-local lock.
        """
        if self.is_postgresql:
            with self._pg_lock(holder):
                yield
        elif self._memory_lock is not None:
            if not self._memory_lock.acquire(blocking=False):
                raise Locked(f"database {self.url} is locked by another sync in this process",
                             holder="this process")
            try:
                yield
            finally:
                self._memory_lock.release()
        else:
            with self._file_lock(holder):
                yield

    def lock_path(self) -> Path | None:
        """The ``flock`` file of a SQLite file database (``None`` otherwise)."""
        path = self._sqlite_path()
        return path.with_name(path.name + ".lock") if path is not None else None

    @contextlib.contextmanager
    def _file_lock(self, holder: str) -> Iterator[None]:
        """``flock`` on :meth:`lock_path`; the file names the holder and since when."""
        path = self.lock_path()
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
                other, _, since = text.partition("\n")
                other = other or "unknown"
                raise Locked(f"database {self.url} is locked by another sync: {other}"
                             + (f" ({since})" if since else ""), holder=other) from None
            # line 1: the holder (what Locked.holder reports); line 2: since when
            text = f"{holder}\nsince {iso(self._clock.wall())}\n"
            os.ftruncate(fd, 0)
            os.pwrite(fd, text.encode("utf-8"), 0)
            os.fsync(fd)
            logger.debug("Store %s: lock taken by %s", self.url, holder)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
                logger.debug("Store %s: lock released by %s", self.url, holder)
        finally:
            os.close(fd)

    def _pg_take(self, holder: str) -> Connection:
        """Open a lock session and take the advisory lock on it; raise Locked if taken."""
        label = f"boardsync lock: {holder}"[:63]  # application_name is at most 63 bytes
        with self._translate("lock"):
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            with self._translate("lock"):
                conn.execute(sa.text("SELECT set_config('application_name', :n, false)"),
                             {"n": label})
                got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"),
                                   {"k": ADVISORY_LOCK_KEY}).scalar()
                if not got:
                    other = self._pg_lock_holder(conn)
                    raise Locked(f"database {self.url} is locked by another sync: {other}",
                                 holder=other)
                self._record_holder(conn, holder)
        except BaseException:
            _discard(conn)
            raise
        return conn

    @contextlib.contextmanager
    def _pg_lock(self, holder: str) -> Iterator[None]:
        """The advisory lock for the block, its session registered as the fence."""
        conn = self._pg_take(holder)
        with self._fence_guard:
            self._fence = (holder, conn)
        logger.debug("Store %s: advisory lock taken by %s", self.url, holder)
        try:
            yield
        finally:
            with self._fence_guard:
                conn = self._fence[1] if self._fence is not None else conn
                self._fence = None
            try:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"),
                             {"k": ADVISORY_LOCK_KEY})
            except sa.exc.SQLAlchemyError as e:  # session gone: the lock went with it
                logger.warning("Store %s: lock session lost before release: %s", self.url,
                               type(e).__name__)
            # never hand a connection with our application_name (or a lock) back to the pool
            _discard(conn)

    def _check_fence(self) -> None:
        """Before a write under :meth:`lock`: make sure our PostgreSQL lock session lives.

        A DBA or an outage can terminate the lock session while the run goes on; the server
        then drops the advisory lock and a second sync could start. So each write first pings
        the lock session; if it is gone the lock is taken again on a new session, and if
        another sync got it meanwhile this raises :class:`Locked` and writes nothing.
        """
        with self._fence_guard:
            if self._fence is None:
                return
            holder, conn = self._fence
            try:
                conn.execute(sa.text("SELECT 1"))
                return
            except sa.exc.SQLAlchemyError:
                _discard(conn)
            logger.warning("Store %s: the lock session was lost; taking the lock again",
                           self.url)
            self._fence = (holder, self._pg_take(holder))

    def _record_holder(self, conn: Connection, holder: str) -> None:
        """Name the holder in ``sync_lock`` (skipped before the schema exists)."""
        if not self._table_exists(conn, "sync_lock"):
            return
        ins = self._insert(lock_t)
        values = {"holder": holder, "host": socket.gethostname(), "pid": os.getpid(),
                  "backend_pid": conn.execute(sa.text("SELECT pg_backend_pid()")).scalar(),
                  "acquired_at": self._clock.wall()}
        conn.execute(ins.values(id=1, **values).on_conflict_do_update(
            index_elements=[lock_t.c.id], set_=values))

    def _pg_lock_holder(self, conn: Connection) -> str:
        """Name the session holding the advisory lock (exact pid from ``pg_locks``)."""
        key = ADVISORY_LOCK_KEY
        row = conn.execute(sa.text(
            "SELECT a.pid, a.application_name, a.client_addr::text FROM pg_locks l"
            " JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
            " AND l.classid = :hi AND l.objid = :lo"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
            {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF}).first()
        if row is None:
            return "unknown (the lock was just released)"
        pid, app, addr = row
        if self._table_exists(conn, "sync_lock"):
            rec = conn.execute(sa.select(lock_t.c.holder).where(
                lock_t.c.id == 1, lock_t.c.backend_pid == pid)).scalar()
            if rec:
                return str(rec)
        name = app.removeprefix("boardsync lock: ") if app else "unknown"
        return f"{name} (backend pid {pid}{', from ' + addr if addr else ''})"


def _discard(conn: Connection) -> None:
    """Close a connection for good (not back to the pool), ignoring errors of a dead one."""
    with contextlib.suppress(Exception):
        conn.invalidate()
    with contextlib.suppress(Exception):
        conn.close()
