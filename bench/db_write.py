"""Benchmark: the product's write path against the plainest bulk load of the same rows.

61,206 memberships over 527 boards (the reference market's shape: a heavy tail up to 3,674
members) are written through ``Store.write_boards`` — validation, board upsert, diff,
set-based merge, history intervals, checksums — in batches of ``write_batch`` boards, in two
cases:

* **first write**: the whole market into an empty database (every member opens an interval);
* **daily rewrite**: the same market again with ~1 % churn (half leaves, half joins, plus a
  few renames): the incremental case a daily sync runs.

The baseline, measured in the same run on the same server, is a single plain ``COPY`` into an
unindexed table (PostgreSQL), or a single ``executemany`` in one transaction (SQLite). A
third line, the **schema floor**, bulk-loads the same rows straight into ``memberships`` and
``membership_history`` with their keys, indexes and foreign keys (no diff, no staging): what
any first write must at least pay on this schema. A fourth line, **history rows alone**,
loads the same rows into a bare table with ``membership_history``'s columns and nothing else
(no key, no index, no foreign key, no current-members table): the least any design that keeps
one auditable history row per membership could pay, whatever its indexes. Every figure is the
best of ``--repeat`` runs (fresh database or table each time; each daily rewrite churns the
previous day).

Prints rows/s of each and the ratio product/baseline (goal >= 0.5). Run:

    .venv/bin/python bench/db_write.py [--pg postgresql://root@127.0.0.1:5432/test]
                                       [--batch 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

from boardsync.models import Board, Member  # noqa: E402
from boardsync.store import Store  # noqa: E402

BOARDS, ROWS = 527, 61206
CHURN = 0.01
T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)

Market = list[tuple[Board, list[Member]]]


def market(seed: int = 1) -> Market:
    """527 boards whose sizes sum to 61,206 with one 3,674-member board."""
    rng = random.Random(seed)
    sizes = [3674] + [max(5, int(rng.paretovariate(1.6) * 40)) for _ in range(BOARDS - 1)]
    scale = (ROWS - 3674) / sum(sizes[1:])
    sizes = [3674] + [max(5, int(s * scale)) for s in sizes[1:]]
    sizes[1] += ROWS - sum(sizes)
    stocks = [f"{rng.choice(['60', '00', '30', '68'])}{n:04d}" for n in range(5400)]
    stocks = sorted(set(stocks))
    out = []
    for i, size in enumerate(sizes):
        kind = "industry" if i < 86 else "concept"
        codes = rng.sample(stocks, min(size, len(stocks)))
        members = [Member(c, f"股票{c}", 1 if c.startswith("6") else 0) for c in codes]
        out.append((Board(f"BK{1000 + i:04d}", f"板块{i}", kind), members))
    return out


def churned(items: Market, seed: int, rate: float = CHURN) -> Market:
    """The next day: ``rate`` of all rows change, half leaving and half joining (row count
    kept), spread over random boards, plus one rename per thousand rows."""
    rng = random.Random(seed)
    boards = [(b, list(ms)) for b, ms in items]
    total = sum(len(ms) for _, ms in boards)
    weights = [len(ms) for _, ms in boards]
    for _ in range(int(total * rate / 2)):
        _, ms = rng.choices(boards, weights)[0]
        ms.pop(rng.randrange(len(ms)))
        have = {m.code for m in ms}
        while (code := f"{rng.choice(['60', '00', '30', '68'])}{rng.randrange(10000):04d}") \
                in have:
            pass
        ms.append(Member(code, f"新股{code}", 1 if code.startswith("6") else 0))
    for _ in range(total // 1000):
        _, ms = rng.choices(boards, weights)[0]
        i = rng.randrange(len(ms))
        ms[i] = Member(ms[i].code, ms[i].name + "·更名", ms[i].market)
    return boards


def write_all(store: Store, run_id: str, items: Market, batch: int, at: datetime) -> float:
    """Seconds to write ``items`` through the product, ``batch`` boards per transaction."""
    started = time.perf_counter()
    for i in range(0, len(items), batch):
        store.write_boards(run_id, items[i:i + batch], at=at)
    return time.perf_counter() - started


def product(url_factory: Callable[[], Iterator[str]], items: Market, batch: int,
            repeat: int) -> tuple[float, float]:
    """Best seconds of (first write into an empty database, daily rewrite with churn)."""
    first, daily = [], []
    for rep in range(repeat):
        with url_factory() as url:
            store = Store(url)
            store.init_schema()
            store.start_run("day1", "force", {})
            first.append(write_all(store, "day1", items, batch, T0))
            # each daily rewrite churns the previous day (day 2, 3, ... of one database)
            day = churned(items, seed=100 + rep)
            store.start_run("day2", "incremental", {})
            daily.append(write_all(store, "day2", day, batch, T0 + timedelta(days=1)))
            store.dispose()
    return min(first), min(daily)


def _rows(items: Market) -> list[tuple[str, str, str, int]]:
    return [(b.code, m.code, m.name, m.market) for b, ms in items for m in ms]


def pg_copy_baseline(url: str, items: Market) -> float:
    import psycopg2

    conn = psycopg2.connect(url)
    table = f"plain_copy_{uuid.uuid4().hex[:8]}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (board_code text, stock_code text, "
                    "stock_name text, market int)")
    conn.commit()
    buf = io.StringIO()
    for b, s, n, m in _rows(items):
        buf.write(f"{b}\t{s}\t{n}\t{m}\n")
    started = time.perf_counter()
    buf.seek(0)
    with conn.cursor() as cur:
        cur.copy_expert(f"COPY {table} FROM STDIN", buf)
    conn.commit()
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


#: (table, its time and run columns) the schema floor loads; the bare line loads the first only
FLOOR_TABLES = (("membership_history", "valid_from, from_run_id"),
                ("memberships", "since_at, since_run_id"))


def _floor_db(url: str, items: Market) -> None:
    """The product's schema with every board row in place (what the floor's rows point to)."""
    store = Store(url)
    store.init_schema()
    store.upsert_boards([b for b, _ in items], at=T0)
    store.dispose()


def pg_schema_floor(url: str, items: Market, *, bare: bool = False) -> float:
    """COPY the rows straight into memberships and history (keys, indexes, FKs in place);
    ``bare``: into a table with history's columns only (``LIKE``: no key, index or FK)."""
    import psycopg2

    _floor_db(url, items)
    conn = psycopg2.connect(url)
    tables = FLOOR_TABLES
    if bare:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE bare_history (LIKE membership_history INCLUDING DEFAULTS)")
        conn.commit()
        tables = (("bare_history", FLOOR_TABLES[0][1]),)
    at = T0.isoformat()
    started = time.perf_counter()
    for table, extra in tables:
        buf = io.StringIO()
        for b, s, n, m in _rows(items):
            buf.write(f"{b}\t{s}\t{n}\t{m}\t{at}\tfloor\n")
        buf.seek(0)
        with conn.cursor() as cur:
            cur.copy_expert(f"COPY {table} (board_code, stock_code, stock_name, market, "
                            f"{extra}) FROM STDIN", buf)
    conn.commit()
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def sqlite_baseline(path: str, items: Market) -> float:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE plain (board_code text, stock_code text, stock_name text, "
                 "market int)")
    rows = _rows(items)
    started = time.perf_counter()
    with conn:
        conn.executemany("INSERT INTO plain VALUES (?, ?, ?, ?)", rows)
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def sqlite_schema_floor(path: str, items: Market, *, bare: bool = False) -> float:
    """executemany straight into memberships and history, one transaction, same pragmas;
    ``bare``: into a table with history's columns only (no key, index or FK)."""
    _floor_db(f"sqlite:///{path}", items)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA synchronous=NORMAL")
    tables = FLOOR_TABLES
    if bare:
        conn.execute("CREATE TABLE bare_history AS SELECT * FROM membership_history WHERE 0")
        tables = (("bare_history", FLOOR_TABLES[0][1]),)
    at = T0.replace(tzinfo=None).isoformat(sep=" ")
    rows = [(*r, at, "floor") for r in _rows(items)]
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    for table, extra in tables:
        conn.executemany(f"INSERT INTO {table} (board_code, stock_code, stock_name, market, "
                         f"{extra}) VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


@contextmanager
def _pg_database(admin_dsn: str) -> Iterator[str]:
    """A throw-away database on the server of ``admin_dsn``, dropped on exit."""
    import psycopg2

    name = f"bs_bench_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(admin_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_dsn.rsplit("/", 1)[0] + "/" + name
    finally:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = %s", (name,))
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.close()


def report(label: str, first_s: float, daily_s: float, baseline_s: float, floor_s: float,
           bare_s: float, baseline_name: str) -> None:
    def rate(s: float) -> float:
        return ROWS / s

    b = rate(baseline_s)
    print(f"{label}:  {baseline_name} {b:12,.0f} rows/s ({baseline_s:6.3f}s)")
    for case, s in (("first write", first_s), ("daily 1% churn", daily_s)):
        print(f"  product {case:15s} {rate(s):10,.0f} rows/s ({s:6.3f}s)   "
              f"ratio {rate(s) / b:5.2f}  (goal >= 0.5)")
    print(f"  schema floor (bulk load into the indexed tables, no product logic) "
          f"{rate(floor_s):10,.0f} rows/s ({floor_s:6.3f}s): ratio {rate(floor_s) / b:5.2f}; "
          f"first write / floor {floor_s / first_s:4.2f}")
    print(f"  history rows alone (no key, index, FK or current table)       "
          f"{rate(bare_s):10,.0f} rows/s ({bare_s:6.3f}s): ratio {rate(bare_s) / b:5.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=os.environ.get(
        "BOARDSYNC_TEST_PG_URL", "postgresql://root@127.0.0.1:5432/test"))
    parser.add_argument("--batch", type=int, default=20,
                        help="boards per write_boards call (the sync's write_batch)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; best is kept")
    args = parser.parse_args()
    items = market()
    assert sum(len(m) for _, m in items) == ROWS and len(items) == BOARDS
    print(f"db_write: {ROWS:,} memberships over {BOARDS} boards, batches of {args.batch}, "
          f"best of {args.repeat}")
    with tempfile.TemporaryDirectory() as tmp:
        n = iter(range(1_000_000))

        @contextmanager
        def sqlite_url() -> Iterator[str]:
            yield f"sqlite:///{tmp}/p{next(n)}.db"

        first, daily = product(sqlite_url, items, args.batch, args.repeat)
        base = min(sqlite_baseline(f"{tmp}/b{i}.db", items) for i in range(args.repeat))
        floor = min(sqlite_schema_floor(f"{tmp}/f{i}.db", items) for i in range(args.repeat))
        bare = min(sqlite_schema_floor(f"{tmp}/h{i}.db", items, bare=True)
                   for i in range(args.repeat))
        report("SQLite", first, daily, base, floor, bare, "executemany")
    try:
        with _pg_database(args.pg):
            pass
    except Exception as e:  # noqa: BLE001 - a benchmark without a server reports and goes on
        print(f"PostgreSQL skipped: {e}")
        return 0
    first, daily = product(lambda: _pg_database(args.pg), items, args.batch, args.repeat)
    with _pg_database(args.pg) as url:
        base = min(pg_copy_baseline(url, items) for _ in range(args.repeat))
    floors, bares = [], []
    for _ in range(args.repeat):
        with _pg_database(args.pg) as url:
            floors.append(pg_schema_floor(url, items))
        with _pg_database(args.pg) as url:
            bares.append(pg_schema_floor(url, items, bare=True))
    report("PostgreSQL", first, daily, base, min(floors), min(bares), "plain COPY")
    return 0


if __name__ == "__main__":
    sys.exit(main())
