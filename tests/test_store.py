"""Store contract suite: every test runs on SQLite and (marked ``pg``) on PostgreSQL.

Faults are injected for real: a statement rewritten to fail inside the write transaction, the
PostgreSQL backend terminated mid-write, a lock holder's session terminated or its process
SIGKILLed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg2
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boardsync.errors import BadRequest, DatabaseUnavailable, Locked, StorageError
from boardsync.models import Board, Member, checksum
from boardsync.store import Store
from helpers import FakeClock

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)
BK1 = Board("BK0475", "银行", "industry")
BK2 = Board("BK0001", "concept one", "concept")


def mem(*codes: str) -> list[Member]:
    return [Member(c, f"name {c}", 1 if c.startswith("6") else 0) for c in codes]


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    s.init_schema()
    yield s
    s.dispose()


def _pg_admin(url: str) -> Any:
    conn = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    conn.autocommit = True
    return conn


def _terminate_others(url: str) -> int:
    """Terminate every other session on the test database (a DBA cutting connections)."""
    admin = _pg_admin(url)
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            return int(cur.fetchone()[0])
    finally:
        admin.close()


# --- schema and basic round trip -------------------------------------------------------------


def test_init_schema_is_idempotent_and_keeps_data(store: Store) -> None:
    store.write_board("r1", BK1, mem("600000"), at=T0)
    store.init_schema()
    store.init_schema()
    assert store.has_schema()
    assert store.member_codes("BK0475") == {"600000"}


def test_default_times_come_from_the_injected_clock(db_url: str) -> None:
    clock = FakeClock()
    s = Store(db_url, clock=clock)
    s.init_schema()
    start = clock.wall()
    s.start_run("r1", "force", {})
    s.write_board("r1", BK1, mem("600000"))
    clock.advance(60)
    s.finish_run("r1", "ok", {}, {}, 1)
    [row] = s.board_list()
    assert row.synced_at == row.first_seen_at == start
    assert [c.at for c in s.changes()] == [start]
    run = s.run("r1")
    assert run is not None and (run.started_at, run.finished_at) == (start, clock.wall())
    s.dispose()


def test_sqlite_creates_parent_dir_and_uses_wal(tmp_path: Any) -> None:
    path = tmp_path / "deep" / "er" / "db.sqlite"
    s = Store(f"sqlite:///{path}")
    s.init_schema()
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    assert path.exists()
    s.dispose()


def test_memory_sqlite_is_one_database_across_threads() -> None:
    import threading

    s = Store("sqlite://")
    s.init_schema()
    s.write_board("r1", BK1, mem("600000"), at=T0)
    seen: list[set[str]] = []
    t = threading.Thread(target=lambda: seen.append(s.member_codes("BK0475")))
    t.start()
    t.join()
    assert seen == [{"600000"}]


def test_write_then_read_equals_input(store: Store) -> None:
    members = mem("600000", "000001", "300750")
    res = store.write_board("r1", BK1, members, at=T0)
    assert (res.board_code, res.joined, res.left, res.rows, res.first_write) == (
        "BK0475", 3, 0, 3, True)
    assert res.checksum == checksum(m.code for m in members)
    assert store.members("BK0475") == sorted(members, key=lambda m: m.code)
    assert store.member_codes("BK0475") == {"600000", "000001", "300750"}
    [row] = store.board_list()
    assert (row.code, row.name, row.kind, row.member_count, row.checksum, row.last_run_id) == (
        "BK0475", "银行", "industry", 3, res.checksum, "r1")
    assert row.synced_at == T0 and row.first_seen_at == T0 and row.deleted_at is None
    assert row.synced_at.tzinfo is not None


def test_churn_records_exact_joins_and_leaves(store: Store) -> None:
    store.write_boards("r1", [(BK1, mem("600000", "600001", "000001")),
                              (BK2, mem("300750"))], at=T0)
    res = store.write_boards("r2", [(BK1, mem("600000", "000002", "000003")),
                                    (BK2, mem("300750"))], at=T0 + DAY)
    assert [(r.board_code, r.joined, r.left, r.rows, r.first_write) for r in res] == [
        ("BK0475", 2, 2, 3, False), ("BK0001", 0, 0, 1, False)]
    day2 = store.changes(since=T0 + DAY)
    assert [(c.board_code, c.stock_code, c.event, c.run_id, c.at) for c in day2] == [
        ("BK0475", "000001", "leave", "r2", T0 + DAY),
        ("BK0475", "600001", "leave", "r2", T0 + DAY),
        ("BK0475", "000002", "join", "r2", T0 + DAY),
        ("BK0475", "000003", "join", "r2", T0 + DAY),
    ]
    assert store.member_codes("BK0475") == {"600000", "000002", "000003"}
    # unchanged third write: nothing recorded, nothing duplicated
    again = store.write_board("r3", BK1, mem("600000", "000002", "000003"), at=T0 + 2 * DAY)
    assert (again.joined, again.left) == (0, 0)
    assert store.changes(since=T0 + 2 * DAY) == []


def test_members_as_of_returns_the_earlier_set(store: Store) -> None:
    store.write_board("r1", BK1, mem("600000", "600001"), at=T0)
    store.write_board("r2", BK1, mem("600000", "000001"), at=T0 + DAY)
    assert store.members("BK0475", as_of=T0 - timedelta(seconds=1)) == []
    codes = lambda d: [m.code for m in store.members("BK0475", as_of=d)]  # noqa: E731
    assert codes(T0) == ["600000", "600001"]  # valid_from is inclusive
    assert codes(T0 + DAY / 2) == ["600000", "600001"]
    assert codes(T0 + DAY) == ["000001", "600000"]  # valid_to is exclusive
    assert codes(datetime(2030, 1, 1)) == ["000001", "600000"]  # naive = UTC
    # the same instant in another zone is the same answer
    tz8 = datetime(2026, 5, 1, 20, 0, tzinfo=UTC).astimezone(
        __import__("datetime").timezone(timedelta(hours=8)))
    assert codes(tz8) == ["600000", "600001"]


def test_changes_filters_by_board_and_window(store: Store) -> None:
    store.write_boards("r1", [(BK1, mem("600000")), (BK2, mem("000001"))], at=T0)
    store.write_boards("r2", [(BK1, mem("600001")), (BK2, mem("000002"))], at=T0 + DAY)
    store.write_boards("r3", [(BK1, mem("600002")), (BK2, mem("000002"))], at=T0 + 2 * DAY)
    assert len(store.changes()) == 2 + 4 + 2
    only = store.changes(board_code="BK0001")
    assert {c.board_code for c in only} == {"BK0001"} and len(only) == 1 + 2
    window = store.changes(since=T0 + DAY, until=T0 + 2 * DAY)  # until is exclusive
    assert {(c.board_code, c.stock_code, c.event) for c in window} == {
        ("BK0475", "600000", "leave"), ("BK0475", "600001", "join"),
        ("BK0001", "000001", "leave"), ("BK0001", "000002", "join")}
    assert all(c.run_id == "r2" for c in window)
    assert store.changes(board_code="BK0001", since=T0 + 2 * DAY) == []


def test_stock_boards_lists_present_and_past(store: Store) -> None:
    store.write_boards("r1", [(BK1, mem("600000")), (BK2, mem("600000"))], at=T0)
    store.write_board("r2", BK2, mem("000001"), at=T0 + DAY)
    rows = store.stock_boards("600000")
    assert [(b.code, since, until) for b, since, until in rows] == [
        ("BK0001", T0, T0 + DAY), ("BK0475", T0, None)]
    assert rows[1].board == BK1
    assert store.stock_boards("999999") == []


def test_mark_deleted_closes_history_and_revival(store: Store) -> None:
    store.write_board("r1", BK1, mem("600000", "600001"), at=T0)
    assert store.mark_deleted("BK0475", "r2", T0 + DAY) == 2
    assert store.member_codes("BK0475") == set()
    [row] = store.board_list()
    assert row.deleted_at == T0 + DAY and row.member_count == 0
    assert row.checksum == checksum([])
    assert [m.code for m in store.members("BK0475", as_of=T0)] == ["600000", "600001"]
    assert {(c.stock_code, c.event, c.run_id) for c in store.changes(since=T0 + DAY)} == {
        ("600000", "leave", "r2"), ("600001", "leave", "r2")}
    assert "BK0475" not in store.board_checksums()
    # listed again: revived, and never-synced-since so an incremental run fetches it
    store.upsert_boards([BK1], at=T0 + 2 * DAY)
    [row] = store.board_list("industry")
    assert row.deleted_at is None and row.synced_at is None
    assert row.first_seen_at == T0 and row.last_seen_at == T0 + 2 * DAY
    res = store.write_board("r3", BK1, mem("600000"), at=T0 + 2 * DAY)
    assert (res.joined, res.first_write) == (1, True)
    assert [(s, u) for _, s, u in store.stock_boards("600000")] == [
        (T0, T0 + DAY), (T0 + 2 * DAY, None)]


def test_board_list_filter_and_upsert_keeps_write_columns(store: Store) -> None:
    store.write_board("r1", BK1, mem("600000"), at=T0)
    store.upsert_boards([Board("BK0475", "renamed", "industry"), BK2], at=T0 + DAY)
    rows = {r.code: r for r in store.board_list()}
    assert rows["BK0475"].name == "renamed" and rows["BK0475"].member_count == 1
    assert rows["BK0475"].synced_at == T0 and rows["BK0475"].last_run_id == "r1"
    assert rows["BK0001"].member_count is None and rows["BK0001"].synced_at is None
    assert [r.code for r in store.board_list("concept")] == ["BK0001"]


def test_board_checksums_recomputed_from_memberships(store: Store, db_url: str) -> None:
    store.write_boards("r1", [(BK1, mem("600000", "000001")), (BK2, [])], at=T0)
    assert store.board_checksums() == {"BK0475": checksum(["600000", "000001"]),
                                       "BK0001": checksum([])}
    with store.engine.begin() as conn:  # a row changed behind the tool's back
        conn.execute(sa.text("DELETE FROM memberships WHERE stock_code = '000001'"))
    stored = {r.code: r.checksum for r in store.board_list()}
    assert store.board_checksums()["BK0475"] != stored["BK0475"]


# --- all-or-nothing ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [
    (Board("BK47", "x", "industry"), mem("600000")),
    (Board("BK0002", "x", "industry"), [Member("60000", "x", 1)]),
    (Board("BK0002", "x", "industry"), [Member("60000a", "x", 1)]),
    (Board("BK0002", "x", "industry"), mem("600000", "600000")),
    (Board("BK0002", "x", "industry"), [Member("600000", "nul\x00", 1)]),
    (Board("BK0002", "x", "industry"), [Member("600000", "x", "1")]),  # type: ignore[arg-type]
    (BK2, mem("000001")),  # the same board twice in one batch
], ids=["board-code", "short-stock", "alpha-stock", "duplicate", "nul", "market", "twice"])
def test_batch_with_one_invalid_board_writes_nothing(store: Store, bad: Any) -> None:
    store.write_board("r1", BK2, mem("000009"), at=T0)
    before = (store.board_list(), store.changes())
    with pytest.raises(BadRequest) as info:
        store.write_boards("r2", [(BK1, mem("600000")), (BK2, mem("000001")), bad],
                           at=T0 + DAY)
    assert isinstance(info.value, ValueError)
    assert (store.board_list(), store.changes()) == before


def test_db_failure_at_the_last_statement_rolls_back_everything(store: Store) -> None:
    store.write_board("r1", BK1, mem("600000", "600001"), at=T0)
    before = (store.board_list(), store.members("BK0475"), store.changes())

    @sa.event.listens_for(store.engine, "before_cursor_execute", retval=True)
    def sabotage(conn: Any, cursor: Any, statement: str, params: Any, context: Any,
                 executemany: bool) -> tuple[str, Any]:
        # the last step of the merge: boards, history and leavers were already changed
        if statement.lstrip().startswith("INSERT INTO memberships"):
            return "SELECT * FROM no_such_table_boom", type(params)()
        return statement, params

    with pytest.raises(StorageError) as info:
        store.write_boards("r2", [(BK2, mem("000001")), (BK1, mem("600000", "000002"))],
                           at=T0 + DAY)
    assert not isinstance(info.value, DatabaseUnavailable)
    assert isinstance(info.value.__cause__, sa.exc.SQLAlchemyError)
    sa.event.remove(store.engine, "before_cursor_execute", sabotage)
    assert (store.board_list(), store.members("BK0475"), store.changes()) == before
    store.write_board("r2", BK1, mem("600000", "000002"), at=T0 + DAY)  # and it recovers
    assert store.member_codes("BK0475") == {"600000", "000002"}


@pytest.mark.pg
def test_pg_backend_terminated_mid_write_is_unavailable_and_rolled_back(pg_url: str) -> None:
    store = Store(pg_url)
    store.init_schema()
    store.write_board("r1", BK1, mem("600000", "600001"), at=T0)
    before = (store.board_list(), store.members("BK0475"), store.changes())
    admin = _pg_admin(pg_url)

    @sa.event.listens_for(store.engine, "before_cursor_execute")
    def cut(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().startswith("INSERT INTO membership_history"):
            with admin.cursor() as cur:  # the DBA kills our session mid-transaction
                cur.execute("SELECT pg_terminate_backend(%s)",
                            (cursor.connection.get_backend_pid(),))

    with pytest.raises(DatabaseUnavailable) as info:
        store.write_board("r2", BK1, mem("600000", "000002"), at=T0 + DAY)
    sa.event.remove(store.engine, "before_cursor_execute", cut)
    admin.close()
    assert isinstance(info.value.__cause__, sa.exc.DBAPIError)
    assert (store.board_list(), store.members("BK0475"), store.changes()) == before
    res = store.write_board("r2", BK1, mem("600000", "000002"), at=T0 + DAY)  # fresh conn
    assert (res.joined, res.left) == (1, 1)
    store.dispose()


@pytest.mark.pg
def test_pg_terminated_idle_connections_are_replaced(pg_url: str) -> None:
    store = Store(pg_url)
    store.init_schema()
    store.write_board("r1", BK1, mem("600000"), at=T0)
    assert _terminate_others(pg_url) >= 1
    # pool_pre_ping notices the dead pooled connection and reconnects: no error, no loss
    assert store.member_codes("BK0475") == {"600000"}
    store.write_board("r2", BK1, mem("600001"), at=T0 + DAY)
    assert store.member_codes("BK0475") == {"600001"}
    store.dispose()


def test_unreachable_database_is_unavailable_and_password_hidden() -> None:
    store = Store("postgresql://user:canary-s3cret@127.0.0.1:1/nowhere")
    assert "canary-s3cret" not in repr(store) and "canary-s3cret" not in store.url
    with pytest.raises(DatabaseUnavailable) as info:
        store.init_schema()
    assert "canary-s3cret" not in str(info.value)


def test_unsupported_or_malformed_url_is_storage_error() -> None:
    with pytest.raises(StorageError):
        Store("mysql://u:p@h/db")
    with pytest.raises(StorageError) as info:
        Store("::not a url:canary@")
    assert "canary" not in str(info.value)


# --- content ---------------------------------------------------------------------------------

NASTY = ["tab\there", "new\nline", "cr\r\nlf", "com,ma", 'qu"ote', "back\\slash", "\\N",
         "\\.", "", " lead", "trail ", "平安银行", "emoji 🚀", "semi;colon", "'single'",
         "NULL", "a|b", "\\t literal", "mixed\t,\"\\\n中"]


def test_nasty_names_round_trip(store: Store) -> None:
    members = [Member(f"{i:06d}", name, i % 3) for i, name in enumerate(NASTY)]
    board = Board("BK0999", 'board\t"with",\\odd\nname 概念', "concept")
    store.write_board("r1", board, members, at=T0)
    assert store.members("BK0999") == members
    assert store.members("BK0999", as_of=T0) == members
    assert store.board_list()[0].name == board.name
    # a rename of a staying member is kept (current and open interval), not a join/leave
    renamed = [Member(m.code, m.name + "·新", m.market) for m in members]
    res = store.write_board("r2", board, renamed, at=T0 + DAY)
    assert (res.joined, res.left) == (0, 0)
    assert store.members("BK0999") == renamed == store.members("BK0999", as_of=T0 + DAY)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.text(st.characters(blacklist_categories=("Cs",),
                                            blacklist_characters="\x00"), max_size=12),
                      min_size=1, max_size=8))
def test_arbitrary_names_round_trip(store: Store, names: list[str]) -> None:
    members = [Member(f"{600000 + i}", name, 1) for i, name in enumerate(names)]
    store.write_board("r1", BK1, members)
    assert store.members("BK0475") == members


def test_large_board_and_large_churn(store: Store) -> None:
    big = [Member(f"{i:06d}", f"股票{i}\t,", i % 2) for i in range(3700)]
    res = store.write_board("r1", BK1, big, at=T0)
    assert (res.rows, res.joined) == (3700, 3700)
    nxt = big[500:] + [Member(f"{i:06d}", "new", 1) for i in range(900000, 900300)]
    res = store.write_board("r2", BK1, nxt, at=T0 + DAY)
    assert (res.rows, res.joined, res.left) == (3500, 300, 500)
    assert len(store.members("BK0475", as_of=T0)) == 3700
    assert store.member_codes("BK0475") == {m.code for m in nxt}
    assert len(store.changes(since=T0 + DAY)) == 800


# --- run records ------------------------------------------------------------------------------


def test_run_records(store: Store) -> None:
    params = {"db_url": "postgresql://u:canary-pw@h/db", "proxy_api_key": "canary-key",
              "max_ips": 100, "kinds": ["industry"]}
    store.start_run("r1", "incremental", params, "host-a", 123, at=T0)
    store.start_run("r2", "force", {}, "host-a", 124, at=T0 + DAY)
    store.finish_run("r1", "partial", {"ok": 3, "failed": 1}, {"timeout": 2}, 7,
                     at=T0 + timedelta(minutes=5))
    r1 = store.run("r1")
    assert r1 is not None
    assert (r1.mode, r1.status, r1.started_at, r1.finished_at, r1.ips_used, r1.host, r1.pid) == (
        "incremental", "partial", T0, T0 + timedelta(minutes=5), 7, "host-a", 123)
    assert r1.totals == {"ok": 3, "failed": 1} and r1.errors == {"timeout": 2}
    assert r1.params["max_ips"] == 100 and r1.params["kinds"] == ["industry"]
    assert "canary" not in repr(r1)
    assert [r.id for r in store.runs()] == ["r2", "r1"]
    assert [r.id for r in store.runs(limit=1)] == ["r2"]
    assert store.run("nope") is None
    # a resumed run goes back to running; finishing an unknown run still records it
    store.start_run("r1", "incremental", params, "host-b", 999)
    assert store.run("r1").status == "running"  # type: ignore[union-attr]
    store.finish_run("r-lost", "abandoned", {}, {}, 0)
    assert store.run("r-lost").status == "abandoned"  # type: ignore[union-attr]


# --- the run lock -----------------------------------------------------------------------------


def test_second_lock_raises_locked_naming_the_holder(db_url: str) -> None:
    a, b = Store(db_url), Store(db_url)
    a.init_schema()
    with a.lock("host-a pid 1"):
        with pytest.raises(Locked) as info:
            with b.lock("host-b pid 2"):
                pytest.fail("second holder got the lock")
        assert info.value.holder == "host-a pid 1"
        assert "host-a pid 1" in str(info.value)
        assert info.value.error_class == "locked"
    with b.lock("host-b pid 2"):  # released on exit
        pass
    with pytest.raises(RuntimeError):  # and released when the block raises
        with a.lock("host-a"):
            raise RuntimeError("boom")
    with b.lock("host-b"):
        pass
    a.dispose()
    b.dispose()


def test_lock_works_before_the_schema_exists(db_url: str) -> None:
    with Store(db_url).lock("early"):
        with pytest.raises(Locked):
            with Store(db_url).lock("late"):
                pass


def test_sqlite_lock_names_its_holder_and_since_from_the_clock(sqlite_url: str) -> None:
    clock = FakeClock()
    a = Store(sqlite_url, clock=clock)
    with a.lock("holder a"):
        path = a.lock_path()
        assert path is not None
        since = clock.wall().isoformat(timespec="seconds")
        assert path.read_text() == f"holder a\nsince {since}\n"
        with pytest.raises(Locked, match=re.escape(f"holder a (since {since})")):
            with Store(sqlite_url).lock("b"):
                pass
    a.dispose()


@pytest.mark.pg
def test_pg_lock_records_its_holder_at_the_clock_time(pg_url: str) -> None:
    clock = FakeClock()
    a = Store(pg_url, clock=clock)
    a.init_schema()
    with a.lock("holder a"):
        with a.engine.connect() as conn:
            row = conn.execute(sa.text("SELECT holder, acquired_at FROM sync_lock")).one()
        assert (row.holder, row.acquired_at) == ("holder a", clock.wall())
    a.dispose()


def test_memory_lock_is_process_local() -> None:
    s = Store("sqlite://")
    with s.lock("a"):
        with pytest.raises(Locked):
            with s.lock("b"):
                pass
    with s.lock("b"):
        pass


@pytest.mark.pg
def test_pg_lock_released_when_holder_session_terminated(pg_url: str) -> None:
    a, b = Store(pg_url), Store(pg_url)
    a.init_schema()
    with a.lock("doomed holder"):
        with pytest.raises(Locked) as info:
            with b.lock("waiter"):
                pass
        assert info.value.holder == "doomed holder"
        assert _terminate_others(pg_url) >= 1  # the holder's session dies (crash, DBA)
        with b.lock("waiter"):  # never stale
            pass
    # the dead holder's exit did not raise and the lock stays free
    with b.lock("waiter again"):
        pass
    a.dispose()
    b.dispose()


@pytest.mark.pg
def test_pg_lost_lock_session_is_retaken_before_a_write(pg_url: str) -> None:
    a, b = Store(pg_url), Store(pg_url)
    a.init_schema()
    with a.lock("holder a"):
        _terminate_others(pg_url)  # the outage also kills the lock session
        a.write_board("r1", BK1, mem("600000"), at=T0)  # re-took the lock first
        with pytest.raises(Locked) as info:
            with b.lock("b"):
                pass
        assert info.value.holder == "holder a"
    a.dispose()
    b.dispose()


@pytest.mark.pg
def test_pg_write_after_losing_the_lock_to_another_sync_writes_nothing(pg_url: str) -> None:
    a, b = Store(pg_url), Store(pg_url)
    a.init_schema()
    with a.lock("holder a"):
        _terminate_others(pg_url)
        with b.lock("holder b"):  # another sync got in while a's session was gone
            with pytest.raises(Locked) as info:
                a.write_board("r1", BK1, mem("600000"), at=T0)
            assert info.value.holder == "holder b"
            with pytest.raises(Locked):
                a.mark_deleted("BK0475", "r1", T0)
    assert b.member_codes("BK0475") == set() and b.board_list() == []
    a.dispose()
    b.dispose()


def test_sqlite_lock_of_a_killed_process_is_not_stale(sqlite_url: str) -> None:
    Store(sqlite_url).init_schema()
    code = textwrap.dedent(f"""
        import signal, sys
        from boardsync.store import Store
        with Store({sqlite_url!r}).lock("child pid holder"):
            sys.stdout.write("locked\\n"); sys.stdout.flush()
            signal.pause()  # until the SIGKILL
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(Locked) as info:
            with Store(sqlite_url).lock("parent"):
                pass
        assert info.value.holder == "child pid holder"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    with Store(sqlite_url).lock("parent"):  # the kernel released it with the process
        pass


# --- write path economy (bench/db_write.py measures the speed) -------------------------------


def test_unchanged_rewrite_writes_only_the_boards_rows(store: Store) -> None:
    store.write_boards("r1", [(BK1, mem("600000", "000001")), (BK2, mem("300750"))], at=T0)
    seen: list[str] = []

    @sa.event.listens_for(store.engine, "before_cursor_execute")
    def spy(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()[:3]).upper())

    res = store.write_boards("r2", [(BK1, mem("000001", "600000")), (BK2, mem("300750"))],
                             at=T0 + DAY)
    sa.event.remove(store.engine, "before_cursor_execute", spy)
    assert [(r.joined, r.left, r.first_write) for r in res] == [(0, 0, False), (0, 0, False)]
    writes = [s for s in seen if s.startswith(("INSERT", "UPDATE", "DELETE", "COPY"))]
    assert writes == ["INSERT INTO BOARDS"]
    rows = {r.code: r for r in store.board_list()}
    assert rows["BK0475"].last_run_id == "r2" and rows["BK0475"].synced_at == T0 + DAY


def test_init_schema_drops_retired_indexes(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.exec_driver_sql("CREATE INDEX ix_memberships_stock ON memberships (stock_code)")
        conn.exec_driver_sql(
            "CREATE INDEX ix_history_board_to ON membership_history (board_code, valid_to)")
    store.init_schema()
    with store.engine.connect() as conn:
        names = {ix["name"] for t in ("memberships", "membership_history")
                 for ix in sa.inspect(conn).get_indexes(t)}
    assert "ix_memberships_stock" not in names and "ix_history_board_to" not in names
    assert {"ix_history_board_from", "ux_history_open"} <= names


_CLOCK = iter(range(1, 1_000_000))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lists=st.lists(st.dictionaries(st.sampled_from([f"60000{i}" for i in range(8)]),
                                      st.tuples(st.sampled_from(["a", "b", "名"]),
                                                st.integers(0, 1)), max_size=8),
                      min_size=1, max_size=4))
def test_any_sequence_of_writes_diffs_exactly(store: Store,
                                              lists: list[dict[str, tuple[str, int]]]) -> None:
    for members in lists:
        before = {m.code: m for m in store.members("BK0475")}
        at = T0 + next(_CLOCK) * DAY
        new = [Member(code, name, market) for code, (name, market) in members.items()]
        res = store.write_board("rX", BK1, new, at=at)
        assert (res.joined, res.left) == (len(members.keys() - before.keys()),
                                          len(before.keys() - members.keys()))
        assert res.first_write == (not before)
        assert store.members("BK0475") == sorted(new, key=lambda m: m.code)
        assert store.members("BK0475", as_of=at) == sorted(new, key=lambda m: m.code)
        assert [m.code for m in store.members("BK0475", as_of=at - DAY / 2)] == sorted(before)
        [row] = store.board_list()
        assert (row.member_count, row.checksum) == (len(new), checksum(members))
