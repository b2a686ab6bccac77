"""Input checks that run before any SQL, so bad input never half-writes a batch.

Every failure is :class:`~boardsync.errors.BadRequest` (a ``ValueError``): the caller's data
is wrong, and retrying cannot help.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import BadRequest
from ..models import Board, Member, is_board_code, is_stock_code
from .records import Batch


def check_run_id(run_id: str) -> None:
    """A run id is the key of a run record: 1 to 64 characters."""
    if not isinstance(run_id, str) or not run_id or len(run_id) > 64:
        raise BadRequest(f"bad run id {run_id!r} (need 1-64 characters)")


def check_board_code(code: str) -> None:
    """BadRequest unless ``code`` is ``BK`` + 4 digits (it goes into SQL parameters only, but a
    malformed code is a caller's bug worth stopping)."""
    if not is_board_code(code):
        raise BadRequest(f"not a board code: {code!r}")


def check_board(board: Board) -> None:
    """A board's code, name and kind fit their columns (NUL is not storable in PostgreSQL)."""
    check_board_code(board.code)
    if not isinstance(board.name, str) or "\x00" in board.name:
        raise BadRequest(f"board {board.code}: bad name {board.name!r}")
    if not isinstance(board.kind, str) or not board.kind or len(board.kind) > 16:
        raise BadRequest(f"board {board.code}: bad kind {board.kind!r}")


_STOCK_CODES_RE = re.compile(r"(?:\d{6}\n)*\d{6}", re.ASCII)


def validate_items(
    items: Sequence[tuple[Board, Sequence[Member]]],
) -> Batch:
    """Check the whole batch before any SQL; return ``(board, codes, rows)`` per item.

    Codes must match ``BK\\d{4}`` / ``\\d{6}`` (they are the keys of everything), a board may
    appear once per batch and a stock once per board (a duplicate means the fetch is wrong),
    names must be text without NUL (PostgreSQL cannot store it) and markets integers.

    Each board is first checked as a whole with C-speed operations (one regex over the joined
    codes, one NUL search over the joined names, a set of the market types); only a board that
    fails that goes through the member-by-member check, which names the culprit.
    """
    out: Batch = []
    seen_boards: set[str] = set()
    for board, members in items:
        check_board(board)
        if board.code in seen_boards:
            raise BadRequest(f"board {board.code} appears twice in one write")
        seen_boards.add(board.code)
        codes = [m.code for m in members]
        names = [m.name for m in members]
        markets = [m.market for m in members]
        if codes and not _members_ok(codes, names, markets):
            _check_members(board, members)
        out.append((board, codes, list(zip([board.code] * len(codes), codes, names, markets,
                                            strict=True))))
    return out


def _members_ok(codes: list[str], names: list[str], markets: list[int]) -> bool:
    """The fast whole-board check: True when every member is certainly valid."""
    try:
        return (_STOCK_CODES_RE.fullmatch("\n".join(codes)) is not None
                and len(set(codes)) == len(codes)
                and "\x00" not in "".join(names)
                and set(map(type, markets)) == {int})
    except TypeError:  # a code or name that is not a str
        return False


def _check_members(board: Board, members: Sequence[Member]) -> None:
    """The member-by-member check: raise :class:`BadRequest` naming the first bad member."""
    seen: set[str] = set()
    for m in members:
        if not is_stock_code(m.code):
            raise BadRequest(f"board {board.code}: not a stock code: {m.code!r}")
        if m.code in seen:
            raise BadRequest(f"board {board.code}: stock {m.code} listed twice")
        seen.add(m.code)
        if not isinstance(m.name, str) or "\x00" in m.name:
            raise BadRequest(f"board {board.code}: stock {m.code}: bad name {m.name!r}")
        if isinstance(m.market, bool) or not isinstance(m.market, int):
            raise BadRequest(f"board {board.code}: stock {m.code}: bad market {m.market!r}")
