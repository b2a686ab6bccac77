"""The database: boards, their current members, membership history and run records.

SQLAlchemy 2 Core (no ORM) over SQLite or PostgreSQL, one :class:`Store` per URL.

Tables
------
``boards``
    one row per board ever listed: name, kind, first/last seen, ``deleted_at``, and what the
    last write stored (``member_count``, ``checksum``, ``last_run_id``, ``synced_at``).
``memberships``
    the *current* members, PK ``(board_code, stock_code)``; what most queries read.
``membership_history``
    validity intervals ``[valid_from, valid_to)`` with the runs that opened/closed them.
``sync_runs``
    one row per run: mode, redacted parameters, timings, status, totals, errors, IPs, host, pid.
``boardsync_meta``
    the database's identity (``db_id``, a UUID made with the schema; a state file records it
    and is refused by any other database) and the run the next start resumes
    (``current_run``), so a run resumes from any host.
``board_state``
    the state file's record of each board (status, attempts, errors...), so ``boardsync state
    export`` rebuilds the file from the database.
``sync_lock``
    who holds the run lock (a label for the "locked" message; the lock itself is a
    PostgreSQL advisory lock or an ``flock`` on ``<db>.lock``, both released by the kernel or
    server when the holder dies, so a crash never leaves a stale lock).

Why validity intervals rather than a join/leave event log
---------------------------------------------------------
The audit questions are "members of BK0475 on date D", "who joined or left, when, in which
run" and "which boards did 600000 belong to, from when to when". With intervals:

* ``--as-of D`` is one indexed range query on one table:
  ``board_code = :b AND valid_from <= :d AND (valid_to IS NULL OR valid_to > :d)``;
  an event log must instead find, per stock, the latest event before D (a window query).
* joins are the rows with ``valid_from`` in the range, leaves the rows with ``valid_to`` in the
  range (``from_run_id`` / ``to_run_id`` name the runs), so the change feed loses nothing.
* a stock's boards, past and present, are its rows with their ``[valid_from, valid_to)``.
* a partial unique index allows at most one open interval per (board, stock), so a replayed or
  resumed write can never duplicate a membership, and the open intervals are exactly the rows of
  ``memberships`` (kept as a separate table so current-state reads never scan history).

A board's first write opens an interval for every member: the history starts when boardsync
first saw the board (``WriteResult.first_write`` says so). ``stock_name`` in history is the
latest name seen while the interval was open.

Time: every timestamp is a timezone-aware UTC ``datetime`` in Python. PostgreSQL stores
``timestamptz``; SQLite stores UTC text in one fixed format (so text order is time order).
Naive datetimes passed in are taken to be UTC. A write without ``at`` happens at the injected
clock's ``wall()`` (``Store(url, clock=...)``, default :data:`boardsync.clock.SYSTEM`), so a
test with a fake clock gets exact times in every record.

Writes: :meth:`Store.write_boards` puts a whole batch in one transaction. It upserts the
boards rows, reads the batch's current members in one query and diffs them in Python; then one
set-based statement per step, for the whole batch, closes the intervals of leavers, renames
stayers and opens intervals for joiners (PostgreSQL: joiners through ``COPY ... FROM STDIN``
into a temp table, the rest through ``unnest`` of arrays; SQLite: ``json_each``). Nothing is
done row by row, an unchanged board writes only its boards row, and any failure rolls the
whole batch back.

Errors: every SQLAlchemy/DBAPI error is translated (``raise ... from e``): lost or unreachable
connections (and a busy SQLite file) become :class:`DatabaseUnavailable` (retry with backoff),
everything else :class:`StorageError`. Bad input is rejected before any SQL with
:class:`BadRequest` (a ``ValueError``). URLs in messages and logs have the password hidden.

Modules, one concept each: :mod:`~boardsync.store.schema` (tables, types, migrations),
:mod:`~boardsync.store.engine` (engine, transactions, error translation),
:mod:`~boardsync.store.checks` (input checks), :mod:`~boardsync.store.write` and
:mod:`~boardsync.store.merge` (the write path), :mod:`~boardsync.store.queries` (reads),
:mod:`~boardsync.store.runs` (run records), :mod:`~boardsync.store.lock` (the run lock) and
:mod:`~boardsync.store.records` (the values returned). :class:`Store` is their sum: each part
is a base class over :class:`~boardsync.store.engine.Database`, so a method moved between
modules kept its code and ``self``.
"""

from __future__ import annotations

from .engine import PG_CONNECT_TIMEOUT_S, SQLITE_BUSY_TIMEOUT_S, Database
from .meta import Meta
from .queries import Queries, board_digests
from .records import BoardDigest, BoardRow, Change, RunRecord, StockBoard, WriteResult
from .runs import Runs
from .schema import (
    ADVISORY_LOCK_KEY,
    UTCDateTime,
    board_state_t,
    boards_t,
    history_t,
    lock_t,
    memberships_t,
    meta_t,
    metadata,
    runs_t,
)
from .write import Writes

__all__ = [
    "ADVISORY_LOCK_KEY", "PG_CONNECT_TIMEOUT_S", "SQLITE_BUSY_TIMEOUT_S", "BoardDigest",
    "BoardRow", "Change", "Database", "RunRecord", "StockBoard", "Store", "UTCDateTime",
    "WriteResult", "board_digests", "board_state_t", "boards_t", "history_t", "lock_t",
    "memberships_t", "meta_t", "metadata", "runs_t",
]


class Store(Writes, Queries, Runs, Meta):
    """The boardsync database at ``url`` (a SQLAlchemy URL: ``sqlite:///path`` or PostgreSQL).

    Creating a Store connects lazily; nothing touches the database until a method is called.
    Every public method is its own transaction and is safe to call from several threads.

    Args:
        url: ``sqlite:///path``, ``sqlite://`` (in memory) or ``postgresql://...``.
        echo: log every SQL statement (SQLAlchemy's ``echo``).
        clock: the time of a write given no ``at``, and of the lock's "since" (``wall()``).

    Raises:
        StorageError: a malformed or unsupported URL, or a driver that is not installed.
    """

    def __repr__(self) -> str:
        return f"Store({self.url!r})"
