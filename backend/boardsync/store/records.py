"""What the store hands back: write results, changes, board rows, run records, digests.

Plain frozen values, so callers never hold a database row or a connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from ..models import Board

#: One member as written and read: ``(board_code, stock_code, stock_name, market)``.
Row = tuple[str, str, str, int]
#: A checked batch of writes: per board, its member codes and its rows, in the caller's order.
Batch = list[tuple[Board, list[str], list[Row]]]


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What writing one board changed: members joined and left, rows now stored, checksum."""

    board_code: str
    joined: int
    left: int
    rows: int
    checksum: str
    #: True when the board had no members stored before (every member counts as joined).
    first_write: bool = False


@dataclass(frozen=True, slots=True)
class Change:
    """One membership event derived from history: ``event`` is ``"join"`` or ``"leave"``."""

    board_code: str
    stock_code: str
    stock_name: str
    event: str
    at: datetime
    run_id: str


class StockBoard(NamedTuple):
    """A board a stock belongs or belonged to: ``until`` is ``None`` while still a member."""

    board: Board
    since: datetime
    until: datetime | None


@dataclass(frozen=True, slots=True)
class BoardRow:
    """One row of ``boards``: the board and what its last write stored."""

    code: str
    name: str
    kind: str
    first_seen_at: datetime
    last_seen_at: datetime
    deleted_at: datetime | None
    member_count: int | None
    checksum: str | None
    last_run_id: str | None
    synced_at: datetime | None
    level: int | None = None  # an industry board's level 1-3
    quoted: bool | None = None  # False: listed in the directory without a quote


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One row of ``sync_runs`` with its JSON columns decoded."""

    id: str
    mode: str | None
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    params: dict[str, Any]
    totals: dict[str, Any]
    errors: dict[str, Any]
    ips_used: int | None
    host: str | None
    pid: int | None


@dataclass(frozen=True, slots=True)
class BoardDigest:
    """Everything ``state verify`` needs about one board, each fact recomputed from its source.

    ``stored_rows``/``stored_checksum`` are what the last write put on the ``boards`` row;
    ``rows``/``checksum`` are recomputed from ``memberships``; ``open_rows``/``open_checksum``
    from the open history intervals. On an untouched database all three agree, so a row
    changed behind the tool's back shows even when the state file is lost.
    """

    code: str
    kind: str
    deleted_at: datetime | None
    last_run_id: str | None
    synced_at: datetime | None
    stored_rows: int | None
    stored_checksum: str | None
    rows: int
    checksum: str
    open_rows: int
    open_checksum: str

