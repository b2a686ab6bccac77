"""The write path: a batch of boards in one transaction, board lists, deleted boards.

Writes are fenced (:meth:`RunLock._check_fence`) so a sync that lost its PostgreSQL lock
writes nothing; the member-level merge is :mod:`boardsync.store.merge`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..models import Board, Member, checksum
from .checks import check_board, check_board_code, check_run_id, validate_items
from .lock import RunLock
from .merge import Merge
from .records import Batch, WriteResult
from .schema import UTCDateTime, boards_t, history_t, memberships_t

logger = logging.getLogger(__name__)


class Writes(Merge, RunLock):
    """Writing boards and their members (part of :class:`~boardsync.store.Store`)."""

    def write_board(
        self, run_id: str, board: Board, members: Sequence[Member], at: datetime | None = None
    ) -> WriteResult:
        """Write one board's complete member list; see :meth:`write_boards`."""
        return self.write_boards(run_id, [(board, members)], at=at)[0]

    def write_boards(
        self,
        run_id: str,
        items: Sequence[tuple[Board, Sequence[Member]]],
        at: datetime | None = None,
    ) -> list[WriteResult]:
        """Replace the member lists of several boards in ONE transaction (all or nothing).

        For each board: upsert its ``boards`` row (un-deleting it) with the new count and
        checksum, diff the new list against the current memberships, close the history
        intervals of members that left, open one for each member that joined, and keep the
        latest name/market of members that stayed. An unchanged board costs its ``boards`` row
        only; a board's first write is a plain bulk insert. How the members are merged:
        :mod:`boardsync.store.merge`. The boards rows are upserted first: their row locks
        serialise any other writer of the same boards (see :meth:`mark_deleted`) before the
        members are read.

        Args:
            run_id: the run doing the write (recorded on boards, memberships and history).
            items: ``(board, complete member list)`` pairs; each board at most once.
            at: the time of the change (default: the clock's now); naive means UTC.

        Returns:
            one :class:`WriteResult` per item, in the same order.

        Raises:
            BadRequest: a bad board/stock code, a duplicate, a NUL in a name; nothing written.
            Locked: another sync took the lock this Store held; nothing written.
            DatabaseUnavailable: the connection was lost; rolled back, safe to retry.
            StorageError: any other database failure; rolled back.
        """
        when = self._when(at)
        check_run_id(run_id)
        batch = validate_items(items)
        if not batch:
            return []
        digests = [checksum(codes) for _, codes, _ in batch]
        new = [row for _, _, rows in batch for row in rows]
        self._check_fence()
        with self._tx(f"write of {len(batch)} boards", write=True) as conn:
            self._upsert_written_boards(conn, batch, digests, run_id, when)
            had, joiners, leavers, renames = self._merge_members(
                conn, [board.code for board, _, _ in batch], new, run_id, when)
        joined = Counter(board_code for board_code, *_ in joiners)
        left = Counter(board_code for board_code, _ in leavers)
        logger.debug("Store %s: run %s wrote %d boards (%d rows: %d joined, %d left, "
                     "%d renamed)", self.url, run_id, len(batch), len(new), len(joiners),
                     len(leavers), len(renames))
        return [WriteResult(board.code, joined[board.code], left[board.code], len(rows), digest,
                            board.code not in had)
                for (board, _, rows), digest in zip(batch, digests, strict=True)]

    def _upsert_written_boards(self, conn: Connection,
                               batch: Batch,
                               digests: list[str], run_id: str, when: datetime) -> None:
        """One statement: insert new boards, refresh known ones with what this write stores.

        Plain SQL over :meth:`_rows_param` rather than an ``insert()`` construct: psycopg2
        runs an executemany of an upsert as one round trip per board, and SQLAlchemy
        compiles a multi-row ``VALUES`` of 527 boards (5,270 parameters) in 0.1 s.
        """
        src, params = self._rows_param(
            [(board.code, board.name, board.kind, len(rows), digest)
             for (board, _, rows), digest in zip(batch, digests, strict=True)], "b, n, k, c, d")
        # "WHERE true": SQLite's grammar needs it between INSERT ... SELECT and ON CONFLICT
        conn.execute(sa.text(
            "INSERT INTO boards (code, name, kind, first_seen_at, last_seen_at, deleted_at,"
            " member_count, checksum, last_run_id, synced_at, quoted)"
            f" SELECT v.b, v.n, v.k, :at, :at, NULL, v.c, v.d, :run_id, :at, TRUE FROM {src}"
            " WHERE true ON CONFLICT (code) DO UPDATE SET name = excluded.name,"
            " kind = excluded.kind, last_seen_at = excluded.last_seen_at, deleted_at = NULL,"
            " member_count = excluded.member_count, checksum = excluded.checksum,"
            " last_run_id = excluded.last_run_id, synced_at = excluded.synced_at,"
            " quoted = TRUE"
        ).bindparams(sa.bindparam("at", type_=UTCDateTime)),
            {"at": when, "run_id": run_id, **params})

    def _upsert_board_rows(self, conn: Connection, boards: Sequence[Board], when: datetime,
                           quoted: bool | None = True) -> None:
        """Insert new boards, refresh name/kind/last_seen of known ones, clear ``deleted_at``.

        A board that was deleted and comes back also gets ``synced_at`` cleared so the next
        incremental sync fetches it (its stored member list is empty since the deletion).
        ``level`` and ``quoted`` are kept when the new value is None (unknown this time).
        """
        if not boards:
            return
        ins = self._insert(boards_t)
        stmt = ins.on_conflict_do_update(
            index_elements=[boards_t.c.code],
            set_={
                "name": ins.excluded.name,
                "kind": ins.excluded.kind,
                "last_seen_at": ins.excluded.last_seen_at,
                "synced_at": sa.case((boards_t.c.deleted_at.is_(None), boards_t.c.synced_at),
                                     else_=sa.null()),
                "deleted_at": sa.null(),
                "level": sa.func.coalesce(ins.excluded.level, boards_t.c.level),
                "quoted": sa.func.coalesce(ins.excluded.quoted, boards_t.c.quoted),
            },
        )
        conn.execute(stmt, [{"code": b.code, "name": b.name, "kind": b.kind, "level": b.level,
                             "quoted": quoted, "first_seen_at": when, "last_seen_at": when}
                            for b in boards])

    def upsert_boards(self, boards: Iterable[Board], at: datetime | None = None, *,
                      quoted: bool | None = True) -> int:
        """Record the boards seen in a board list (new ones inserted, known ones refreshed).

        Members are not touched. A board previously marked deleted is revived (see
        :meth:`_upsert_board_rows`). ``quoted``: True for boards of a list (they have a
        quote), None for boards only the directory lists (not known until their members
        answer). Returns how many boards were given.
        """
        when = self._when(at)
        unique: dict[str, Board] = {}
        for b in boards:
            check_board(b)
            unique[b.code] = b
        if not unique:
            return 0
        with self._tx(f"upsert of {len(unique)} boards", write=True) as conn:
            self._upsert_board_rows(conn, list(unique.values()), when, quoted)
        return len(unique)

    def mark_unquoted(self, board_code: str) -> None:
        """Record that a directory board has no quote (its members answered ``rc=100``).

        Its members and history are not touched: "no quote" says nothing about them.
        """
        check_board_code(board_code)
        with self._tx(f"mark_unquoted {board_code}", write=True) as conn:
            conn.execute(boards_t.update().where(boards_t.c.code == board_code)
                         .values(quoted=False))

    def mark_deleted(self, board_code: str, run_id: str, at: datetime | None = None) -> int:
        """Record that a board disappeared upstream; returns how many members it had.

        Closes its open history intervals (``to_run_id=run_id``), removes its current members,
        sets ``deleted_at`` and an empty member count/checksum. The history is kept.
        """
        check_board_code(board_code)
        check_run_id(run_id)
        when = self._when(at)
        h, m, b = history_t.c, memberships_t.c, boards_t.c
        self._check_fence()
        with self._tx(f"mark_deleted {board_code}", write=True) as conn:
            # the boards row first: its row lock orders this against write_boards (which
            # upserts the boards rows before it reads their members)
            conn.execute(boards_t.update().where(b.code == board_code)
                         .values(deleted_at=when, member_count=0, checksum=checksum([]),
                                 last_run_id=run_id))
            conn.execute(history_t.update()
                         .where(h.board_code == board_code, h.valid_to.is_(None))
                         .values(valid_to=when, to_run_id=run_id))
            removed = conn.execute(memberships_t.delete().where(m.board_code == board_code))
            n = removed.rowcount or 0
        logger.info("Store %s: board %s marked deleted by run %s (%d members closed)",
                    self.url, board_code, run_id, n)
        return n
