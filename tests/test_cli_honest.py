"""Honest answers (issue 15 item 4): no silently empty answer with exit 0.

An unknown stock is bad input (exit 2, like an unknown board or run); a date before a board's
history began and a deleted board's current members are true but empty answers, so they
exit 0 with a one-line note on stderr saying why they are empty. Real SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from boardsync.cli import EXIT_USAGE, cli
from test_audit import D2, RUN2, World, build_world


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Any:
    w = build_world(db_url, tmp_path)
    yield w
    w.store.dispose()


def run(world: World, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--db", world.db_url], catch_exceptions=False)


def test_unknown_stock_exits_2_with_one_line(world: World) -> None:
    result = run(world, "stock", "999999")
    assert result.exit_code == EXIT_USAGE and result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "boardsync: error: stock 999999 is in no board of the database" in result.stderr


def test_empty_but_true_answers_say_why_on_stderr(world: World) -> None:
    before = run(world, "members", "BK0475", "--as-of", "2026-04-30", "--format", "csv")
    assert before.exit_code == 0
    assert before.stdout.splitlines() == ["board_code,stock_code,stock_name,market"]
    assert before.stderr.startswith("boardsync: note: 2026-04-30T23:59:59Z is before the "
                                    "history of BK0475, which began 2026-05-01T")
    assert before.stderr.count("\n") == 1
    assert run(world, "members", "BK0475", "--as-of", "2026-05-01").stderr == ""
    world.store.mark_deleted("BK0493", RUN2, at=D2 + timedelta(hours=1))
    gone = run(world, "members", "BK0493", "--format", "csv")
    assert gone.exit_code == 0 and len(gone.stdout.splitlines()) == 1
    assert "boardsync: note: board BK0493 was deleted upstream at 2026-05-02T" in gone.stderr
    past = run(world, "members", "BK0493", "--as-of", "2026-05-02T08:30Z", "--format", "csv")
    assert len(past.stdout.splitlines()) == 2 and past.stderr == ""


def test_latest_names_the_newest_run(world: World) -> None:
    shown = run(world, "runs", "show", "latest", "--format", "json")
    assert shown.exit_code == 0 and f'"id": "{RUN2}"' in shown.stdout
    latest = run(world, "changes", "--run", "latest", "--format", "csv")
    assert latest.stdout == run(world, "changes", "--run", RUN2, "--format", "csv").stdout
