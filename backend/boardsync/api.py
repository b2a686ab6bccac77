"""The Python API: ``boardsync.open(db_url)`` and ask the database what the audit commands ask.

Why a separate front door: the CLI prints rows as text, and a Python user would otherwise
parse its CSV (where ``000008`` becomes ``8``) or write SQL against the schema. This module
answers the same questions through the same code (:mod:`boardsync.audit` over
:mod:`boardsync.store`, no second SQL layer), as typed, frozen rows whose stock codes stay
strings::

    import boardsync
    with boardsync.open("sqlite:///data/demo.db") as db:
        bank = db.members("BK0475")                  # Rows[Member]
        bank[0].stock_code                           # '000008', a str
        past = db.members("BK0475", as_of="2026-05-01")
        df = db.changes(board="BK0475").to_pandas()  # needs the pandas extra

Bad input raises :class:`~boardsync.errors.ConfigError` (a ``ValueError``) before any query,
as the CLI exits 2: a malformed code, an unknown board, stock or run, an unparseable date.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime
from types import TracebackType
from typing import Any, Generic, TypeVar

from . import audit
from .clock import as_utc
from .config import load_settings
from .store import Store

T = TypeVar("T")


class Rows(list[T], Generic[T]):
    """A list of frozen rows, with :meth:`to_pandas` for those who have pandas."""

    def to_pandas(self) -> Any:
        """The rows as a ``pandas.DataFrame``, one column per field (codes stay strings).

        pandas is imported here only, so ``import boardsync`` never needs it.

        Raises:
            ImportError: pandas is not installed (``pip install 'boardsync[pandas]'``).
        """
        try:
            pd = importlib.import_module("pandas")
        except ImportError as e:
            raise ImportError("to_pandas() needs pandas: pip install 'boardsync[pandas]'"
                              ) from e
        rows: list[Any] = list(self)
        columns = [f.name for f in fields(rows[0])] if rows else None
        return pd.DataFrame([asdict(r) for r in rows], columns=columns)


@dataclass(frozen=True, slots=True)
class BoardInfo:
    """One board ever seen (``boardsync boards``); ``deleted_at`` once gone upstream."""

    code: str
    name: str
    kind: str
    members: int | None
    checksum: str | None
    last_run_id: str | None
    synced_at: datetime | None
    first_seen_at: datetime
    last_seen_at: datetime
    deleted_at: datetime | None
    level: int | None = None  # an industry board's level, 1-3
    quoted: bool | None = None  # False: the directory lists it, its members answer "no quote"


@dataclass(frozen=True, slots=True)
class Member:
    """One member of a board, now or at a past instant (``boardsync members``)."""

    board_code: str
    stock_code: str
    stock_name: str
    market: int


@dataclass(frozen=True, slots=True)
class Change:
    """One join or leave (``event``), when and by which run (``boardsync changes``)."""

    at: datetime
    run_id: str
    board_code: str
    event: str
    stock_code: str
    stock_name: str


@dataclass(frozen=True, slots=True)
class StockBoard:
    """A board a stock belongs (``current``) or belonged to, with its interval."""

    stock_code: str
    board_code: str
    board_name: str
    kind: str
    since: datetime
    until: datetime | None
    current: bool


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One sync run's record (``boardsync runs``); ``errors`` by class."""

    id: str
    mode: str | None
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    boards_ok: int | None
    boards_failed: int | None
    rows_written: int | None
    joined: int | None
    left: int | None
    ips_used: int | None
    errors: dict[str, int]


Moment = datetime | date | str


def _instant(value: Moment | None, option: str, *, end_of_day: bool) -> datetime | None:
    """A datetime as given (naive = UTC); a date or bare ``YYYY-MM-DD`` string as the CLI
    reads it (``end_of_day``: the exclusive end of that day)."""
    if value is None:
        return None
    if isinstance(value, str):
        return audit.parse_time(value, option=option, end_of_day=end_of_day)
    if isinstance(value, datetime):
        return as_utc(value)
    return audit.parse_time(value.isoformat(), option=option, end_of_day=end_of_day)


class Boardsync:
    """An open boardsync database: construct with :func:`open`, close with :meth:`close`
    (or use it as a context manager). Each call is its own read transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> Boardsync:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Release the database connections."""
        self.store.dispose()

    def boards(self, kind: str | None = None, level: int | None = None) -> Rows[BoardInfo]:
        """Every board ever seen (deleted ones too), by code; ``kind`` and ``level`` (an
        industry level, 1-3) filter."""
        return Rows(BoardInfo(**r) for r in audit.board_rows(self.store, kind, level))

    def members(self, code: str, as_of: Moment | None = None) -> Rows[Member]:
        """Board ``code``'s members now, or at ``as_of`` (a date: the end of that day, UTC)."""
        when: datetime | None = None
        if isinstance(as_of, datetime):
            when = as_utc(as_of)
        elif isinstance(as_of, date | str):
            when = audit.as_of_instant(str(as_of))
        return Rows(Member(**r) for r in audit.member_rows(self.store, code, when))

    def changes(self, board: str | None = None, since: Moment | None = None,
                until: Moment | None = None, run: str | None = None) -> Rows[Change]:
        """Joins and leaves with ``since <= at < until`` (a date ``until`` includes that
        day), optionally of one board or one run (``"latest"``: the newest run)."""
        lo = _instant(since, "since", end_of_day=False)
        hi = _instant(until, "until", end_of_day=True)
        rows = audit.change_rows(self.store, board, lo, hi, run)
        return Rows(Change(**r) for r in rows)

    def stock(self, code: str) -> Rows[StockBoard]:
        """The boards stock ``code`` (six digits, a string) belongs and belonged to."""
        return Rows(StockBoard(**r) for r in audit.stock_rows(self.store, code))

    def runs(self, limit: int | None = 50) -> Rows[RunInfo]:
        """The most recent sync runs, newest first (``limit=None``: all)."""
        errors = {rec.id: dict(rec.errors or {}) for rec in self.store.runs(limit)}
        return Rows(RunInfo(**(r | {"errors": errors.get(r["id"], {})}))
                    for r in audit.run_rows(self.store, limit))


def open_db(db_url: str | None = None) -> Boardsync:
    """Open the boardsync database at ``db_url`` for reading.

    Args:
        db_url: a SQLAlchemy URL (``sqlite:///data/demo.db``, ``postgresql://...``); None
            takes it from the settings as the CLI does (``BOARDSYNC_DB_URL``, the config
            file, else ``sqlite:///data/boardsync.db``).

    Raises:
        ConfigError: a missing SQLite file (never created by a read) or no boardsync tables.
        StorageError: a malformed URL; DatabaseUnavailable: the server cannot be reached.
    """
    return Boardsync(audit.open_store(db_url or load_settings().db_url))
