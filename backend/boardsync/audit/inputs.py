"""Audit input: parse dates and codes, open the database and the state file for reading.

Every check raises :class:`ConfigError` (a ``ValueError``; the CLI maps it to exit code 2) or
:class:`StateError` *before* any query, so a typo never reads as "no rows".

Dates: ``YYYY-MM-DD`` or ISO 8601 date-times; without an offset they are UTC (the database
stores UTC). A bare date as ``--as-of`` means the *end* of that day ("what did it contain on
D" = after every change that day); as ``--since`` the start of the day; as ``--until`` the
end of the day (the bound is exclusive, so ``--since D --until D`` is exactly day D).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from ..clock import as_utc
from ..errors import ConfigError, StateError
from ..models import is_board_code, is_stock_code
from ..state import StateFile
from ..store import Store

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_time(text: str, *, option: str, end_of_day: bool = False) -> datetime:
    """Parse a ``--as-of``/``--since``/``--until`` value to an aware UTC datetime.

    Args:
        text: ``2026-05-01``, ``2026-05-01T08:30``, ``2026-05-01 08:30:00+08:00``, ``...Z``.
        option: the option name, for the error message.
        end_of_day: a bare date means the first instant of the *next* day (an exclusive
            bound) instead of the day's first instant. Full date-times are taken exactly.

    Raises:
        ConfigError: the text is not such a date or date-time.
    """
    raw = text.strip()
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ConfigError(f"{option}: not a date {text!r} (use YYYY-MM-DD or "
                          "YYYY-MM-DDTHH:MM[:SS][+HH:MM]; UTC unless an offset is given)",
                          option) from None
    value = as_utc(value)
    if end_of_day and _DATE_ONLY.match(raw):
        value += timedelta(days=1)
    return value


def as_of_instant(text: str) -> datetime:
    """``--as-of``: a bare date is the last instant of that day (see the module docstring)."""
    value = parse_time(text, option="--as-of", end_of_day=True)
    return value - timedelta(microseconds=1) if _DATE_ONLY.match(text.strip()) else value


def check_board_code(code: str) -> str:
    """Return ``code`` upper-cased when it is ``BK`` + 4 digits, else raise ConfigError."""
    norm = code.strip().upper()
    if not is_board_code(norm):
        raise ConfigError(f"not a board code: {code!r} (expected BK followed by 4 digits, "
                          "e.g. BK0475)", "board")
    return norm


def check_stock_code(code: str) -> str:
    """Return ``code`` when it is 6 digits (leading zeros matter), else raise ConfigError."""
    norm = code.strip()
    if not is_stock_code(norm):
        raise ConfigError(f"not a stock code: {code!r} (expected 6 digits, e.g. 600000)",
                          "stock")
    return norm


def open_store(url: str) -> Store:
    """A :class:`Store` for reading, refusing what would silently create an empty database.

    ``Store`` creates a missing SQLite file on first use (right for a sync); an audit pointed
    at a mistyped path must say so instead of answering "no rows". A database without the
    boardsync tables is reported the same way.

    Raises:
        ConfigError: the SQLite file does not exist, or the schema is missing.
        StorageError: malformed URL; DatabaseUnavailable: the server cannot be reached.
    """
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - Store gives the careful (password-free) message
        parsed = None
    if parsed is not None and parsed.get_backend_name() == "sqlite":
        db = parsed.database or ""
        if db and db != ":memory:" and not db.startswith("file:") and not Path(db).is_file():
            raise ConfigError(f"database file {db} does not exist (run a sync first, or pass "
                              "--db)", "db_url")
    store = Store(url)
    if not store.has_schema():
        store.dispose()
        raise ConfigError(f"database {store.url} has no boardsync tables (run `boardsync db "
                          "init` or a sync first)", "db_url")
    return store


def load_state(path: str | Path) -> dict[str, Any]:
    """Read the state file for an audit: a missing file is an error here, not an empty state.

    Raises:
        StateError: missing, unreadable, not JSON, or an unknown version.
    """
    p = Path(path)
    if not p.is_file():
        raise StateError(f"state file {p} does not exist (run a sync first, or pass --state)")
    return StateFile(p).load()
