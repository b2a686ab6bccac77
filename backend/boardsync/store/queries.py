"""The read side: current and past members, the change feed, a stock's boards, checksums.

Every question an audit asks is one indexed query on ``memberships`` or on the history's
validity intervals (see the package docstring for why intervals). Each call is its own read
transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..clock import parse_utc
from ..models import Board, Member, checksum
from .engine import Database
from .records import BoardDigest, BoardRow, Change, StockBoard
from .schema import boards_t, history_t, memberships_t, utc


class Queries(Database):
    """Reading boards and memberships (part of :class:`~boardsync.store.Store`)."""

    def member_codes(self, board_code: str) -> set[str]:
        """The current member codes of a board (empty for an unknown board)."""
        m = memberships_t.c
        with self._tx("member_codes") as conn:
            return set(conn.execute(sa.select(m.stock_code).where(m.board_code == board_code))
                       .scalars())

    def members(self, board_code: str, as_of: datetime | None = None) -> list[Member]:
        """A board's members, sorted by code: now, or at instant ``as_of`` (from history).

        ``as_of`` reads the intervals with ``valid_from <= as_of < valid_to`` (open-ended
        when ``valid_to`` is NULL). Naive ``as_of`` is UTC.
        """
        with self._tx("members") as conn:
            if as_of is None:
                m = memberships_t.c
                q = (sa.select(m.stock_code, m.stock_name, m.market)
                     .where(m.board_code == board_code).order_by(m.stock_code))
            else:
                h = history_t.c
                d = utc(as_of)
                q = (sa.select(h.stock_code, h.stock_name, h.market)
                     .where(h.board_code == board_code, h.valid_from <= d,
                            sa.or_(h.valid_to.is_(None), h.valid_to > d))
                     .order_by(h.stock_code))
            return [Member(code, name, market) for code, name, market in conn.execute(q)]

    def changes(
        self,
        board_code: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[Change]:
        """Joins and leaves with ``since <= at < until`` (either bound may be None = open).

        Sorted by time, then board, then leaves before joins, then stock code. A board's
        first write shows all its members as joins at that time.
        """
        h = history_t.c
        lo = utc(since) if since is not None else None
        hi = utc(until) if until is not None else None

        def window(col: Any) -> list[Any]:
            conds = [col.is_not(None)]
            if board_code is not None:
                conds.append(h.board_code == board_code)
            if lo is not None:
                conds.append(col >= lo)
            if hi is not None:
                conds.append(col < hi)
            return conds

        joins = sa.select(h.board_code, h.stock_code, h.stock_name, sa.literal("join"),
                          h.valid_from, h.from_run_id).where(*window(h.valid_from))
        leaves = sa.select(h.board_code, h.stock_code, h.stock_name, sa.literal("leave"),
                           h.valid_to, h.to_run_id).where(*window(h.valid_to))
        with self._tx("changes") as conn:
            rows = [Change(b, s, n, ev, parse_utc(at), r)
                    for b, s, n, ev, at, r in conn.execute(joins)]
            rows += [Change(b, s, n, ev, parse_utc(at), r)
                     for b, s, n, ev, at, r in conn.execute(leaves)]
        rows.sort(key=lambda c: (c.at, c.board_code, c.event != "leave", c.stock_code))
        return rows

    def stock_boards(self, stock_code: str) -> list[StockBoard]:
        """Every board the stock belongs or belonged to, with its intervals, oldest first."""
        h, b = history_t.c, boards_t.c
        q = (sa.select(b.code, b.name, b.kind, h.valid_from, h.valid_to)
             .select_from(history_t.join(boards_t, b.code == h.board_code))
             .where(h.stock_code == stock_code)
             .order_by(h.valid_from, b.code))
        with self._tx("stock_boards") as conn:
            return [StockBoard(Board(code, name, kind), since, until)
                    for code, name, kind, since, until in conn.execute(q)]

    def board_list(self, kind: str | None = None) -> list[BoardRow]:
        """All boards ever seen (deleted ones too, see ``deleted_at``), sorted by code."""
        b = boards_t.c
        q = sa.select(boards_t).order_by(b.code)
        if kind is not None:
            q = q.where(b.kind == kind)
        with self._tx("board_list") as conn:
            return [BoardRow(**row._mapping) for row in conn.execute(q)]

    def board_checksums(self) -> dict[str, str]:
        """Checksum of each non-deleted board recomputed from ``memberships`` (for verify)."""
        m, b = memberships_t.c, boards_t.c
        with self._tx("board_checksums") as conn:
            codes: dict[str, list[str]] = {
                code: [] for code in conn.execute(sa.select(b.code).where(
                    b.deleted_at.is_(None))).scalars()}
            for board_code, stock_code in conn.execute(
                    sa.select(m.board_code, m.stock_code)):
                codes.setdefault(board_code, []).append(stock_code)
        return {code: checksum(members) for code, members in sorted(codes.items())}


def board_digests(store: Database) -> dict[str, BoardDigest]:
    """Per board code: stored and recomputed row counts and checksums, in one read transaction.

    Codes that appear only in ``memberships`` or history (no ``boards`` row; impossible through
    the tool thanks to the foreign keys, unless they were disabled) get ``kind="?"``.
    """
    b, m, h = boards_t.c, memberships_t.c, history_t.c
    with store._tx("board_digests") as conn:
        boards = {row.code: row for row in conn.execute(sa.select(
            b.code, b.kind, b.deleted_at, b.last_run_id, b.synced_at, b.member_count,
            b.checksum))}
        current: dict[str, list[str]] = {}
        for board_code, stock_code in conn.execute(sa.select(m.board_code, m.stock_code)):
            current.setdefault(board_code, []).append(stock_code)
        open_: dict[str, list[str]] = {}
        for board_code, stock_code in conn.execute(
                sa.select(h.board_code, h.stock_code).where(h.valid_to.is_(None))):
            open_.setdefault(board_code, []).append(stock_code)
    out: dict[str, BoardDigest] = {}
    for code in sorted(set(boards) | set(current) | set(open_)):
        row = boards.get(code)
        members, opened = current.get(code, []), open_.get(code, [])
        out[code] = BoardDigest(
            code=code, kind=row.kind if row is not None else "?",
            deleted_at=row.deleted_at if row is not None else None,
            last_run_id=row.last_run_id if row is not None else None,
            synced_at=row.synced_at if row is not None else None,
            stored_rows=row.member_count if row is not None else None,
            stored_checksum=row.checksum if row is not None else None,
            rows=len(members), checksum=checksum(members),
            open_rows=len(opened), open_checksum=checksum(opened))
    return out
