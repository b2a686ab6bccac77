"""The audit library: history queries, state overview, board trail and verify.

Day-1/day-2 data is written through the real :class:`Store` (with run ids and times) and a
real :class:`StateFile`, exactly as the sync writes them, on SQLite and PostgreSQL. The
``verify`` rules are also checked as a pure function over hand-made digests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from boardsync import audit
from boardsync.errors import ConfigError, StateError
from boardsync.models import Board, Member, checksum
from boardsync.state import StateFile
from boardsync.store import BoardDigest, Store, board_digests
from helpers import FakeClock

D1 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
D2 = datetime(2026, 5, 2, 8, 0, tzinfo=UTC)
RUN1, RUN2 = "20260501T080000Z-day1", "20260502T080000Z-day2"

BANK = Board("BK0475", "银行", "industry")
WINE = Board("BK0477", "酿酒行业", "industry")
EV = Board("BK0493", "新能源车", "concept")
NAMES = {"600000": "浦发银行", "000001": "平安银行", "601398": "工商银行", "601988": "中国银行",
         "600519": "贵州茅台", "000858": "五粮液", "000568": "泸州老窖", "300750": "宁德时代"}

DAY1 = {BANK: {"600000", "000001", "601398"}, WINE: {"600519", "000858"},
        EV: {"600000", "300750"}}
DAY2 = {BANK: {"600000", "000001", "601988"}, WINE: {"600519", "000858", "000568"},
        EV: {"300750"}}
#: what run 2 must record: (board, stock) pairs
JOINED2 = {("BK0475", "601988"), ("BK0477", "000568")}
LEFT2 = {("BK0475", "601398"), ("BK0493", "600000")}


def _members(codes: set[str]) -> list[Member]:
    return [Member(c, NAMES[c], 1 if c.startswith("6") else 0) for c in sorted(codes)]


@dataclass
class World:
    """Two synced days in a real database and a real state file."""

    db_url: str
    state_path: Path
    store: Store


def _write_day(store: Store, state: StateFile, run_id: str, at: datetime,
               day: dict[Board, set[str]]) -> None:
    """Do what one sync run does to the store and the state file (see sync._flush)."""
    store.start_run(run_id, "force", {"workers": 6, "proxy_api_key": "s3cret"}, "host", 1,
                    at=at)
    state.begin_run(run_id, "force", {"workers": 6})
    items = [(board, _members(codes)) for board, codes in day.items()]
    results = store.write_boards(run_id, items, at=at)
    for (board, _), res in zip(items, results, strict=True):
        state.update_board(board.code, status="ok", attempts=1, rows=res.rows,
                           checksum=res.checksum, run_id=run_id, synced_at=at.isoformat(),
                           kind=board.kind, name=board.name, last_error_class=None)
    totals = {"ok": len(items), "failed": 0, "rows_written": sum(r.rows for r in results),
              "joined": sum(r.joined for r in results), "left": sum(r.left for r in results)}
    store.finish_run(run_id, "ok", totals, {"timeout": 2}, 3, at=at + timedelta(minutes=5))
    state.finish_run(run_id, "ok", totals, {"extracted": 3}, {"timeout": 2})
    state.save(force=True)


def build_world(db_url: str, tmp_path: Path) -> World:
    """Day 1 (run 1 at D1) and day 2 (run 2 at D2) written through Store and StateFile."""
    store = Store(db_url)
    store.init_schema()
    state_path = tmp_path / "state.json"
    state = StateFile(state_path, debounce_ms=0)
    _write_day(store, state, RUN1, D1, DAY1)
    _write_day(store, state, RUN2, D2, DAY2)
    return World(db_url, state_path, store)


def tamper_sql(db_url: str, sql: str) -> None:
    """Change the database behind the tool's back."""
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text(sql)).rowcount == 1
    finally:
        engine.dispose()


def tamper_state(path: Path, change: Any) -> None:
    """Edit the state file as JSON behind the tool's back."""
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Any:
    w = build_world(db_url, tmp_path)
    yield w
    w.store.dispose()


# --- history queries -------------------------------------------------------------------------


def test_members_as_of_day1_end_of_day_and_between_runs(world: World) -> None:
    for when in (audit.as_of_instant("2026-05-01"), D1, D2 - timedelta(seconds=1),
                 audit.as_of_instant("2026-05-01T23:00:00+00:00")):
        rows = audit.member_rows(world.store, "BK0475", when)
        assert {r["stock_code"] for r in rows} == DAY1[BANK], when
    assert {r["stock_code"] for r in audit.member_rows(world.store, "bk0475")} == DAY2[BANK]
    assert audit.member_rows(world.store, "BK0475", D1 - timedelta(seconds=1)) == []
    assert audit.member_rows(world.store, "BK0477", audit.as_of_instant("2026-05-02"))[0] == {
        "board_code": "BK0477", "stock_code": "000568", "stock_name": "泸州老窖", "market": 0}


def test_changes_lists_exactly_the_joins_and_leaves(world: World) -> None:
    run2 = audit.change_rows(world.store, run_id=RUN2)
    assert {(r["board_code"], r["stock_code"]) for r in run2 if r["event"] == "join"} == JOINED2
    assert {(r["board_code"], r["stock_code"]) for r in run2 if r["event"] == "leave"} == LEFT2
    assert all(r["at"] == D2 for r in run2)
    # the same by time window: day 2 only
    window = audit.change_rows(world.store, since=audit.parse_time("2026-05-02", option="s"),
                               until=audit.parse_time("2026-05-02", option="u",
                                                      end_of_day=True))
    assert window == run2
    # day 1: every member joined (first write)
    day1 = audit.change_rows(world.store, until=D2)
    assert len(day1) == sum(len(v) for v in DAY1.values())
    assert {r["event"] for r in day1} == {"join"}
    only_bank = audit.change_rows(world.store, board="BK0475", since=D2)
    assert [(r["event"], r["stock_code"]) for r in only_bank] == [("leave", "601398"),
                                                                  ("join", "601988")]


def test_stock_lists_current_and_past_boards_with_dates(world: World) -> None:
    rows = audit.stock_rows(world.store, "600000")
    assert [(r["board_code"], r["since"], r["until"], r["current"]) for r in rows] == [
        ("BK0475", D1, None, True), ("BK0493", D1, D2, False)]
    assert rows[1]["board_name"] == "新能源车" and rows[1]["kind"] == "concept"
    with pytest.raises(ConfigError, match="stock 688888 is in no board"):  # not "none"
        audit.stock_rows(world.store, "688888")


def test_runs_and_run_detail(world: World) -> None:
    rows = audit.run_rows(world.store)
    assert [r["id"] for r in rows] == [RUN2, RUN1]
    assert rows[0]["joined"] == 2 and rows[0]["left"] == 2 and rows[0]["ips_used"] == 3
    assert rows[0]["errors"] == "timeout=2" and rows[0]["duration_s"] == 300.0
    assert [r["id"] for r in audit.run_rows(world.store, limit=1)] == [RUN2]
    detail = audit.run_detail(world.store, RUN2)
    assert detail["params"]["proxy_api_key"] == "***"
    assert (detail["history_joins"], detail["history_leaves"]) == (2, 2)
    with pytest.raises(ConfigError, match="no run"):
        audit.run_detail(world.store, "nope")
    with pytest.raises(ConfigError, match="--limit"):
        audit.run_rows(world.store, limit=0)


def test_bad_input_is_config_error_before_any_query(world: World) -> None:
    with pytest.raises(ConfigError, match="board code"):
        audit.member_rows(world.store, "BK47")
    with pytest.raises(ConfigError, match="not in the database"):
        audit.member_rows(world.store, "BK9999")
    with pytest.raises(ConfigError, match="stock code"):
        audit.stock_rows(world.store, "60000")
    with pytest.raises(ConfigError, match="--since: not a date"):
        audit.parse_time("yesterday", option="--since")


def test_parse_time_rules() -> None:
    assert audit.parse_time("2026-05-01", option="x") == datetime(2026, 5, 1, tzinfo=UTC)
    assert audit.parse_time("2026-05-01", option="x", end_of_day=True) == datetime(
        2026, 5, 2, tzinfo=UTC)
    assert audit.parse_time("2026-05-01T16:00+08:00", option="x", end_of_day=True) == datetime(
        2026, 5, 1, 8, tzinfo=UTC)
    assert audit.parse_time("2026-05-01T08:00:00Z", option="x") == D1
    assert audit.as_of_instant("2026-05-01") == datetime(2026, 5, 2, tzinfo=UTC) - timedelta(
        microseconds=1)


def test_open_store_refuses_missing_file_and_missing_schema(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        audit.open_store(f"sqlite:///{tmp_path / 'typo.db'}")
    assert not (tmp_path / "typo.db").exists()  # and did not create it
    Store(f"sqlite:///{tmp_path / 'empty.db'}").engine.connect().close()
    with pytest.raises(ConfigError, match="no boardsync tables"):
        audit.open_store(f"sqlite:///{tmp_path / 'empty.db'}")


def test_load_state_missing_and_corrupt(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="does not exist"):
        audit.load_state(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(StateError, match="not valid JSON"):
        audit.load_state(bad)


# --- state inspection -----------------------------------------------------------------------


def test_state_overview_counts_stale_failures_last_run(world: World) -> None:
    state = StateFile(world.state_path, debounce_ms=0)
    state.load()
    state.update_board("BK0477", status="failed", attempts=10, last_error_class="timeout",
                       run_id="r3")
    state.update_board("BK0999", status="pending", kind="industry", name="新板块")
    state.save(force=True)
    ov = audit.state_overview(audit.load_state(world.state_path), max_age_s=20 * 3600,
                              now=D2 + timedelta(hours=10))
    assert ov["boards_by_kind"] == {"concept": {"ok": 1}, "industry": {"failed": 1, "ok": 1,
                                                                       "pending": 1}}
    assert ov["stale"] == []
    assert ov["never_synced"] == ["BK0999"]
    assert [(f["code"], f["status"], f["attempts"], f["last_error_class"], f["error_counts"])
            for f in ov["failures"]] == [("BK0477", "failed", 10, "timeout", {"timeout": 1})]
    assert ov["last_run"]["id"] == RUN2 and ov["runs_total"] == 2
    later = audit.state_overview(audit.load_state(world.state_path), max_age_s=20 * 3600,
                                 now=D2 + timedelta(hours=30))
    assert [s["code"] for s in later["stale"]] == ["BK0475", "BK0477", "BK0493"]
    assert later["stale"][0]["age_h"] == 30.0
    text = audit.format_overview(later, world.state_path)
    for needle in ("Boards: 4", "Stale (last synced more than 20h ago): 3", "Failures: 1",
                   f"Last run: {RUN2} (force) ok", "last error timeout", "Never synced: 1"):
        assert needle in text


def test_state_overview_reads_the_time_from_the_clock(world: World) -> None:
    data = audit.load_state(world.state_path)
    clock = FakeClock(wall=D2 + timedelta(hours=30))
    ov = audit.state_overview(data, max_age_s=20 * 3600, clock=clock)
    assert ov == audit.state_overview(data, max_age_s=20 * 3600, now=clock.wall())
    assert [s["code"] for s in ov["stale"]] == ["BK0475", "BK0477", "BK0493"]


def test_board_trail_shows_both_sides_and_the_runs(world: World) -> None:
    trail = audit.board_trail(world.store, audit.load_state(world.state_path), "BK0475")
    assert trail["agrees"] and trail["problems"] == []
    assert trail["state"]["written_by"] == [RUN1, RUN2]
    assert trail["state"]["checksum"] == trail["database"]["checksum"] == checksum(DAY2[BANK])
    assert trail["database"]["members"] == 3
    assert [(r["run_id"], r["joined"], r["left"], r["wrote"], r["run_status"])
            for r in trail["runs"]] == [(RUN1, 3, 0, True, "ok"), (RUN2, 1, 1, True, "ok")]
    text = audit.format_trail(trail)
    assert "agree on this board" in text and f"{RUN2}" in text
    with pytest.raises(ConfigError, match="neither"):
        audit.board_trail(world.store, {}, "BK0001")


# --- verify against a real database ---------------------------------------------------------


def _verify(world: World) -> audit.VerifyResult:
    return audit.verify_store(world.store, audit.load_state(world.state_path))


def _problems(result: audit.VerifyResult) -> set[tuple[str, str]]:
    return {(p.board, p.problem) for p in result.problems}


def test_verify_consistent_data_passes(world: World) -> None:
    result = _verify(world)
    assert result.ok, result.problems
    assert (result.boards_checked, result.rows_checked) == (3, 7)


@pytest.mark.parametrize(("sql", "expected"), [
    ("UPDATE memberships SET stock_code = '688001' WHERE board_code = 'BK0475' "
     "AND stock_code = '000001'",
     {"checksum_mismatch", "db_checksum_changed", "history_mismatch"}),
    ("DELETE FROM memberships WHERE board_code = 'BK0475' AND stock_code = '000001'",
     {"rows_mismatch", "checksum_mismatch", "db_rows_changed", "db_checksum_changed",
      "history_mismatch"}),
    ("INSERT INTO memberships (board_code, stock_code, stock_name, market, since_run_id, "
     "since_at) VALUES ('BK0475', '688001', 'x', 1, 'evil', '2026-05-03 00:00:00')",
     {"rows_mismatch", "checksum_mismatch", "db_rows_changed", "db_checksum_changed",
      "history_mismatch"}),
])
def test_verify_catches_rows_changed_behind_the_tools_back(world: World, sql: str,
                                                           expected: set[str]) -> None:
    tamper_sql(world.db_url, sql)
    result = _verify(world)
    assert _problems(result) == {("BK0475", p) for p in expected}


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d["boards"]["BK0477"].update(checksum="0" * 64), {("BK0477",
                                                                  "checksum_mismatch")}),
    (lambda d: d["boards"]["BK0477"].update(rows=99), {("BK0477", "rows_mismatch")}),
    (lambda d: d["boards"].pop("BK0493"), {("BK0493", "missing_in_state")}),
    (lambda d: d["boards"]["BK0477"].update(checksum="garbage"),
     {("BK0477", "bad_state_record")}),
    (lambda d: d["boards"]["BK0477"].update(run_id=RUN1), {("BK0477", "run_mismatch")}),
    (lambda d: d["boards"].__setitem__("BK0999", {"status": "ok", "rows": 1,
                                                  "checksum": checksum(["600000"])}),
     {("BK0999", "missing_in_db")}),
])
def test_verify_catches_a_tampered_state_file(world: World, change: Any,
                                              expected: set[tuple[str, str]]) -> None:
    tamper_state(world.state_path, change)
    assert _problems(_verify(world)) == expected


def test_verify_deleted_board_agrees_and_history_is_kept(world: World) -> None:
    world.store.mark_deleted("BK0493", "r3", D2 + timedelta(days=1))
    state = StateFile(world.state_path, debounce_ms=0)
    state.update_board("BK0493", status="deleted", run_id="r3")
    state.save(force=True)
    assert _verify(world).ok
    assert {r["stock_code"] for r in audit.member_rows(world.store, "BK0493", D2)} == {
        "300750"}


def test_board_digests_recompute_every_side(world: World) -> None:
    digests = board_digests(world.store)
    bank = digests["BK0475"]
    assert bank.rows == bank.stored_rows == bank.open_rows == 3
    assert bank.checksum == bank.stored_checksum == bank.open_checksum == checksum(DAY2[BANK])
    assert bank.last_run_id == RUN2


# --- verify rules, pure ---------------------------------------------------------------------


def _digest(code: str = "BK0475", codes: tuple[str, ...] = ("600000",), **kw: Any,
            ) -> BoardDigest:
    c = checksum(codes)
    base = BoardDigest(code=code, kind="industry", deleted_at=None, last_run_id="r1",
                       synced_at=D1, stored_rows=len(codes), stored_checksum=c,
                       rows=len(codes), checksum=c, open_rows=len(codes), open_checksum=c)
    return replace(base, **kw)


def _rec(**kw: Any) -> dict[str, Any]:
    return {"status": "ok", "rows": 1, "checksum": checksum(["600000"]), "run_id": "r1"} | kw


@pytest.mark.parametrize(("rec", "digest", "expected"), [
    (_rec(), _digest(), []),
    # failed after an earlier ok: still compares the last written checksum
    (_rec(status="failed", run_id="r2"), _digest(), []),
    (_rec(status="failed", rows=2), _digest(), ["rows_mismatch"]),
    (_rec(), _digest(codes=(), rows=0, checksum=checksum([]), stored_rows=None,
                     stored_checksum=None, open_checksum=checksum([]), open_rows=0),
     ["no_rows_in_db"]),
    (_rec(), _digest(deleted_at=D2, rows=0, checksum=checksum([]), stored_rows=0,
                     stored_checksum=checksum([]), open_rows=0, open_checksum=checksum([])),
     ["deleted_in_db", "no_rows_in_db"]),
    (_rec(status="deleted"), _digest(deleted_at=D2, codes=()), []),
    (_rec(status="deleted"), _digest(), ["not_deleted_in_db"]),
    ({"status": "pending"}, _digest(), ["unrecorded_write"]),
    ({"status": "pending"}, None, []),
    ({"status": "ok", "rows": 1}, _digest(), ["bad_state_record"]),
    (_rec(rows="1"), _digest(), ["bad_state_record"]),
    (_rec(), None, ["missing_in_db"]),
    (None, _digest(), ["missing_in_state"]),
    (None, _digest(last_run_id=None, codes=()), []),  # listed, never written
    (None, _digest(deleted_at=D2, codes=()), []),
])
def test_verify_rules(rec: dict[str, Any] | None, digest: BoardDigest | None,
                      expected: list[str]) -> None:
    result = audit.verify({"BK0475": rec} if rec is not None else {},
                          {"BK0475": digest} if digest is not None else {})
    assert [p.problem for p in result.problems] == expected
    assert all(p.problem in audit.PROBLEMS for p in result.problems)


def test_verify_summary_lines() -> None:
    bad = audit.verify({"BK0475": _rec(rows=5)}, {"BK0475": _digest()})
    assert bad.summary().startswith("verify: 1 disagreement(s) in 1 board(s)")
    assert bad.problems[0].line() == "BK0475 rows_mismatch: state 5 rows, database 1"
    assert audit.verify({}, {}).summary().startswith("verify: ok: 0 boards")
