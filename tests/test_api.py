"""The Python API (``boardsync.open``) on the audit world, SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

import boardsync
from boardsync.errors import ConfigError
from test_audit import BANK, DAY1, DAY2, JOINED2, LEFT2, RUN1, RUN2, World, build_world


@pytest.fixture
def db(db_url: str, tmp_path: Path) -> Any:
    world: World = build_world(db_url, tmp_path)
    world.store.dispose()
    with boardsync.open(db_url) as handle:
        yield handle


def test_import_boardsync_exposes_open_without_loading_the_database_layer() -> None:
    code = ("import sys, boardsync; assert callable(boardsync.open); "
            "assert 'sqlalchemy' not in sys.modules; print(boardsync.Member.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "Member"


def test_members_now_and_as_of_are_frozen_rows_with_string_codes(db: Any) -> None:
    now = db.members("BK0475")
    assert {m.stock_code for m in now} == DAY2[BANK]
    assert all(isinstance(m, boardsync.Member) and isinstance(m.stock_code, str) for m in now)
    assert "000001" in {m.stock_code for m in now}
    with pytest.raises(dataclasses.FrozenInstanceError):
        now[0].stock_code = "x"  # type: ignore[misc]
    for as_of in ("2026-05-01", date(2026, 5, 1)):
        assert {m.stock_code for m in db.members("BK0475", as_of=as_of)} == DAY1[BANK]


def test_boards_changes_stock_and_runs(db: Any) -> None:
    boards = db.boards()
    assert [b.code for b in boards] == ["BK0475", "BK0477", "BK0493"]
    assert [b.code for b in db.boards(kind="concept")] == ["BK0493"]
    run2 = db.changes(run=RUN2)
    assert {(c.board_code, c.stock_code) for c in run2 if c.event == "join"} == JOINED2
    assert {(c.board_code, c.stock_code) for c in run2 if c.event == "leave"} == LEFT2
    assert db.changes(run="latest") == run2
    assert {c.stock_code for c in db.changes(board="BK0475", since="2026-05-02")} == {
        "601988", "601398"}
    stock = db.stock("600000")
    assert {(s.board_code, s.current) for s in stock} == {("BK0475", True), ("BK0493", False)}
    runs = db.runs()
    assert [r.id for r in runs] == [RUN2, RUN1]
    assert runs[0].status == "ok" and runs[0].errors == {"timeout": 2}


def test_bad_input_raises_config_error_and_pandas_keeps_codes_as_strings(
        db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for call, message in [
        (lambda: db.members("BK47"), "not a board code"),
        (lambda: db.members("BK9999"), "board BK9999 is not in the database"),
        (lambda: db.stock("999999"), "stock 999999 is in no board"),
        (lambda: db.changes(run="nope"), "no run 'nope'"),
        (lambda: db.changes(since="last week"), "not a date"),
    ]:
        with pytest.raises(ConfigError, match=message):
            call()
    pytest.importorskip("pandas")
    frame = db.members("BK0475").to_pandas()
    assert list(frame.columns) == ["board_code", "stock_code", "stock_name", "market"]
    assert "000001" in set(frame["stock_code"])
    assert len(db.changes(run=RUN1).to_pandas()) == sum(len(v) for v in DAY1.values())
    monkeypatch.setitem(sys.modules, "pandas", None)  # what an absent package looks like
    with pytest.raises(ImportError, match=r"pip install 'boardsync\[pandas\]'"):
        db.members("BK0475").to_pandas()


def test_open_a_missing_sqlite_file_is_refused_and_not_created(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        boardsync.open(f"sqlite:///{tmp_path / 'none.db'}")
    assert not (tmp_path / "none.db").exists()
