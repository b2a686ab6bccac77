"""The tables, their indexes, the UTC datetime type, and creating or checking the schema.

What each table holds and why membership history is kept as validity intervals: see the
package docstring (:mod:`boardsync.store`). The table definitions live here only; the rest of
the store imports them. Migrations are additive (``create_all`` adds what is missing) plus
:data:`RETIRED_INDEXES`, which are dropped.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..clock import as_utc, parse_utc
from ..errors import BadRequest

#: PostgreSQL advisory lock key of "one sync per database" (ASCII "boardsyn" as an int64).
ADVISORY_LOCK_KEY = 0x626F61726473796E
#: Transaction-level advisory lock key under which two first runs create the schema in turn.
SCHEMA_LOCK_KEY = ADVISORY_LOCK_KEY + 1


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """An aware-UTC datetime on both backends (SQLite drops the zone, so we normalise)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else parse_utc(value)


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (naive means UTC); BadRequest for a non-datetime."""
    if not isinstance(value, datetime):
        raise BadRequest(f"expected a datetime, got {type(value).__name__}")
    return as_utc(value)


metadata = sa.MetaData()
_HistId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite rowid alias

boards_t = sa.Table(
    "boards", metadata,
    sa.Column("code", sa.String(6), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("first_seen_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
    sa.Column("deleted_at", UTCDateTime, nullable=True),
    sa.Column("member_count", sa.Integer, nullable=True),
    sa.Column("checksum", sa.String(64), nullable=True),
    sa.Column("last_run_id", sa.String(64), nullable=True),
    sa.Column("synced_at", UTCDateTime, nullable=True),
    # an industry board's level 1-3 (from the board directory; NULL = not levelled/unknown)
    sa.Column("level", sa.Integer, nullable=True),
    # False: the directory lists it but its members answer "no quote" (rc 100); True: listed
    # or fetched with a quote; NULL: not known yet
    sa.Column("quoted", sa.Boolean, nullable=True),
    sa.Index("ix_boards_kind", "kind"),
)

memberships_t = sa.Table(
    "memberships", metadata,
    sa.Column("board_code", sa.String(6), sa.ForeignKey("boards.code"), primary_key=True),
    sa.Column("stock_code", sa.String(6), primary_key=True),
    sa.Column("stock_name", sa.Text, nullable=False),
    sa.Column("market", sa.Integer, nullable=False),
    sa.Column("since_run_id", sa.String(64), nullable=False),
    sa.Column("since_at", UTCDateTime, nullable=False),
)

history_t = sa.Table(
    "membership_history", metadata,
    sa.Column("id", _HistId, primary_key=True, autoincrement=True),
    sa.Column("board_code", sa.String(6), sa.ForeignKey("boards.code"), nullable=False),
    sa.Column("stock_code", sa.String(6), nullable=False),
    sa.Column("stock_name", sa.Text, nullable=False),
    sa.Column("market", sa.Integer, nullable=False),
    sa.Column("valid_from", UTCDateTime, nullable=False),
    sa.Column("valid_to", UTCDateTime, nullable=True),
    sa.Column("from_run_id", sa.String(64), nullable=False),
    sa.Column("to_run_id", sa.String(64), nullable=True),
    # as-of reads and a board's joins; a board's leaves use it too (one board's history is
    # small), so there is no (board_code, valid_to) index to maintain on every write
    sa.Index("ix_history_board_from", "board_code", "valid_from"),
    # the change feed of every board since D (PostgreSQL 15 has no skip scan)
    sa.Index("ix_history_from", "valid_from"),
    sa.Index("ix_history_to", "valid_to"),
    sa.Index("ix_history_stock", "stock_code", "valid_from"),
    # at most one open interval per member: replays and resumes can never duplicate
    sa.Index("ux_history_open", "board_code", "stock_code", unique=True,
             postgresql_where=sa.text("valid_to IS NULL"),
             sqlite_where=sa.text("valid_to IS NULL")),
)

runs_t = sa.Table(
    "sync_runs", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("mode", sa.String(32), nullable=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("params_json", sa.Text, nullable=False, default="{}"),
    sa.Column("totals_json", sa.Text, nullable=False, default="{}"),
    sa.Column("errors_json", sa.Text, nullable=False, default="{}"),
    sa.Column("ips_used", sa.Integer, nullable=True),
    sa.Column("host", sa.Text, nullable=True),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Index("ix_sync_runs_started", "started_at"),
)

lock_t = sa.Table(
    "sync_lock", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),  # always 1
    sa.Column("holder", sa.Text, nullable=False),
    sa.Column("host", sa.Text, nullable=True),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Column("backend_pid", sa.Integer, nullable=True),
    sa.Column("acquired_at", UTCDateTime, nullable=False),
)

meta_t = sa.Table(
    "boardsync_meta", metadata,
    # ``db_id``: this database's identity (a UUID, created with the schema, never changed), so
    # a state file can say which database it mirrors; ``current_run``: the run the next
    # start resumes ("" = none), kept here so any host can resume it
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

board_state_t = sa.Table(
    "board_state", metadata,
    # the state file's record of each board (attempts, errors, status...), mirrored here so
    # the file can be rebuilt from the database (``boardsync state export``)
    sa.Column("board_code", sa.String(6), primary_key=True),
    sa.Column("status", sa.String(32), nullable=True),
    sa.Column("record_json", sa.Text, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

#: The tables a database must have to be a boardsync database; the later ones
#: (``boardsync_meta``, ``board_state``) are added to an older database on its first open.
CORE_TABLES = frozenset({"boards", "memberships", "membership_history", "sync_runs",
                         "sync_lock"})

#: Indexes older versions created and no query needs; ``init_schema`` drops them, since every
#: index costs each write (measured: about 0.1 s per index on the first write of 61,206
#: members). ``ix_memberships_stock``: no query reads memberships by stock (a stock's boards
#: come from history); ``ix_history_board_to``: see ``membership_history``.
RETIRED_INDEXES = ("ix_memberships_stock", "ix_history_board_to")


#: Columns added to a table after its first release: ``create_all`` does not add columns to
#: an existing table, so :func:`add_columns` does (nullable, no default: instant on both).
ADDED_COLUMNS: tuple[tuple[str, str], ...] = (("boards", "level"), ("boards", "quoted"))


def add_columns(conn: Connection) -> None:
    """``ALTER TABLE ... ADD COLUMN`` for each of :data:`ADDED_COLUMNS` a database lacks."""
    have: dict[str, set[str]] = {}
    for table, column in ADDED_COLUMNS:
        if table not in have:
            have[table] = {c["name"] for c in sa.inspect(conn).get_columns(table)}
        if column not in have[table]:
            col = metadata.tables[table].c[column]
            kind = col.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            have[table].add(column)


def create_schema(conn: Connection, *, postgresql: bool) -> None:
    """Create the missing tables and indexes on ``conn`` and drop :data:`RETIRED_INDEXES`.

    On PostgreSQL two first runs at once take turns (a transaction-level advisory lock): one
    creates, the other waits and then finds everything there.
    """
    if postgresql:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCHEMA_LOCK_KEY})
    metadata.create_all(conn, checkfirst=True)
    add_columns(conn)
    for name in RETIRED_INDEXES:
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
    ensure_db_id(conn)


def ensure_db_id(conn: Connection) -> str:
    """This database's identity, created (a random UUID) if it has none yet.

    Inserted only when missing, so it never changes once made; two first opens at once are
    serialised by the caller's lock (PostgreSQL) or write transaction (SQLite).
    """
    found = conn.execute(sa.select(meta_t.c.value).where(meta_t.c.key == "db_id")).scalar()
    if found:
        return str(found)
    new = str(uuid.uuid4())
    conn.execute(meta_t.insert().values(key="db_id", value=new))
    return new


def has_tables(conn: Connection) -> bool:
    """True when the core boardsync tables (:data:`CORE_TABLES`) exist on ``conn``."""
    names = set(sa.inspect(conn).get_table_names())
    return CORE_TABLES <= names
