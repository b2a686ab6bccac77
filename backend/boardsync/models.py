"""Plain data shared by every layer: boards, members, and the member-list checksum.

Kept free of I/O so the client, the store, the state file and the simulator agree on
one definition of a board, a member and a checksum.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

#: Board kinds and the ``fs`` filter that lists each kind upstream.
KIND_FILTERS: dict[str, str] = {
    "industry": "m:90 t:2 f:!50",
    "concept": "m:90 t:3 f:!50",
    "region": "m:90 t:1 f:!50",
}
KINDS: tuple[str, ...] = tuple(KIND_FILTERS)
#: The 2026 industry levels and the ``fs`` filter that lists each (EASTMONEY_API.md section
#: 13: 31 level-1, 128 level-2 and 337 level-3 boards). boardsync reads the levels from the
#: board directory instead (one request for every board, not one list per level).
LEVEL_FILTERS: dict[int, str] = {1: "m:90 s:2 f:!50", 2: "m:90 s:4 f:!50", 3: "m:90 s:8 f:!50"}
LEVELS: tuple[int, ...] = tuple(LEVEL_FILTERS)

BOARD_CODE_RE = re.compile(r"^BK\d{4}$")
STOCK_CODE_RE = re.compile(r"^\d{6}$")


def member_filter(board_code: str) -> str:
    """The ``fs`` filter that lists the constituents of one board, e.g. ``b:BK0475 f:!50``."""
    return f"b:{board_code} f:!50"


def is_board_code(code: object) -> bool:
    """True for ``BK`` + 4 digits, the only board codes allowed into a URL or SQL."""
    return isinstance(code, str) and BOARD_CODE_RE.match(code) is not None


def is_stock_code(code: object) -> bool:
    """True for a 6-digit string (leading zeros kept)."""
    return isinstance(code, str) and STOCK_CODE_RE.match(code) is not None


@dataclass(frozen=True, slots=True)
class Board:
    """One sector board: ``code`` like ``BK0475``, its name and kind (industry/concept/region).

    ``size_hint`` is an estimate of the member count from the board list (rising + falling
    members, ``f104 + f105``; flat and suspended stocks are missing from it), or ``None``. It
    only orders the work (largest boards first) and never takes part in equality.

    ``level`` is an industry board's level (1-3) from the board directory, None when unknown
    (concepts, regions, or no directory read). ``witnessed``: the directory lists the board,
    so a ``data: null`` for its members is a soft ban, not a deleted board. Neither takes
    part in equality: they describe the board, they do not identify it.
    """

    code: str
    name: str
    kind: str
    size_hint: int | None = field(default=None, compare=False)
    level: int | None = field(default=None, compare=False)
    witnessed: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class Member:
    """One constituent stock of a board: 6-digit code, name, market id (``f13``: 0 SZ/BJ, 1 SH)."""

    code: str
    name: str
    market: int


def checksum(member_codes: Iterable[str]) -> str:
    """SHA-256 over the sorted, de-duplicated member codes joined by newlines.

    The state file stores it per board and ``state verify`` recomputes it from the database,
    so it must depend only on the set of codes (not names, order or duplicates).
    """
    body = "\n".join(sorted(set(member_codes)))
    return hashlib.sha256(body.encode("ascii")).hexdigest()
