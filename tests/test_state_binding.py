"""The state file bound to its database, the database as the authority (issue 15, items 1-3).

Real ``boardsync sync`` processes against the simulator (SIGKILLed where a test says so), real
SQLite files and PostgreSQL; audits through the CLI runner.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from boardsync.cli import cli
from boardsync.config import load_settings
from boardsync.store import Store
from helpers import assert_db_equals_truth
from test_reliability import SLOW, boardsync, ok_boards, simulator, sync_env, wait_for


def sync(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(boardsync("sync", *args), env=env, capture_output=True, text=True,
                          timeout=300)


def audit(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def errors(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("boardsync: error:")]


def start_then_kill(env: dict[str, str], state: Path, boards: int) -> None:
    """Start a sync, SIGKILL it once ``boards`` boards are ok in its state file."""
    proc = subprocess.Popen(boardsync("sync"), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: state.exists() and len(ok_boards(state)) >= boards, proc)
        assert proc.poll() is None, "the run ended before its kill"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_default_state_path_follows_the_database() -> None:
    def path(**flags: str) -> str:
        return load_settings(flags, env={}, config_path=None).state_path

    assert path() == "data/boardsync.state.json"  # beside the default data/boardsync.db
    assert path(db_url="sqlite:////tmp/x/demo.db") == "/tmp/x/demo.state.json"
    assert path(db_url="postgresql://root@127.0.0.1:5432/test") == \
        "data/127.0.0.1-5432-test.state.json"
    assert path(db_url="postgresql://u:pw@db.internal/boardsync") == \
        "data/db.internal-5432-boardsync.state.json"
    assert path(db_url="postgresql://root@127.0.0.1:5432/test", state_path="s.json") == "s.json"


def test_a_state_file_of_another_database_stops_everything_touching_neither(
        db_url: str, tmp_path: Path) -> None:
    """sync, state show/board/verify with A's file against B: one line, exit 2; A's file and
    B's database unchanged. The file records A's identity and URL (exact, password masked),
    and A's run ids carry it."""
    state_a = tmp_path / "a.state.json"
    other = f"sqlite:///{tmp_path / 'other.db'}"
    with simulator("clean", seed=3) as sim:
        assert sync(sync_env(sim, db_url, state_a)).returncode == 0
        assert audit("db", "init", "--db", other).exit_code == 0
        before = state_a.read_bytes()
        refused = sync(sync_env(sim, other, state_a))
    data = json.loads(before)
    store = Store(db_url)
    assert data["db_id"] == store.identity()
    assert data["db_url"] == db_url and data["runs"][0]["params"]["db_url"] == db_url
    assert data["runs"][0]["id"].split("-")[1] == data["db_id"][:4]
    assert refused.returncode == 2, refused.stderr
    assert len(errors(refused.stderr)) == 1 and "belongs to another database" in refused.stderr
    assert "Traceback" not in refused.stderr
    for args in (["state", "show"], ["state", "board", "BK0001"], ["state", "verify"]):
        r = audit(*args, "--db", other, "--state", str(state_a))
        assert r.exit_code == 2, (args, r.output)
        assert len(errors(r.stderr)) == 1 and "another database" in r.stderr, args
    assert state_a.read_bytes() == before
    b = Store(other)
    assert b.runs() == [] and b.board_list() == []


def test_an_old_state_file_is_adopted_by_its_database_and_refused_by_another(
        sqlite_url: str, tmp_path: Path) -> None:
    """A file without an identity (older boardsync): adopted by the database that shares its
    runs, refused with what to do by a database that does not."""
    state = tmp_path / "s.json"
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    with simulator("clean", seed=3) as sim:
        env = sync_env(sim, sqlite_url, state)
        assert sync(env).returncode == 0
        old = json.loads(state.read_text())
        del old["db_id"], old["db_url"]
        state.write_text(json.dumps(old))
        assert audit("db", "init", "--db", fresh).exit_code == 0
        refused = sync(sync_env(sim, fresh, state))
        assert refused.returncode == 2 and "records no database" in refused.stderr
        assert "state export" in refused.stderr
        assert audit("state", "verify", "--db", sqlite_url, "--state", str(state)).exit_code == 0
        again = sync(env, "--max-age", "0")
        assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(state.read_text())["db_id"] == Store(sqlite_url).identity()


def test_state_export_rebuilds_the_file_from_the_database(db_url: str, tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    with simulator("clean", seed=3) as sim:
        assert sync(sync_env(sim, db_url, state)).returncode == 0
    kept = json.loads(state.read_text())
    state.write_text("{ damaged")
    r = audit("state", "export", "--db", db_url, "--state", str(state))
    assert r.exit_code == 0, r.output
    rebuilt = json.loads(state.read_text())
    assert rebuilt["boards"] == kept["boards"]
    assert [x["id"] for x in rebuilt["runs"]] == [x["id"] for x in kept["runs"]]
    assert rebuilt["db_id"] == kept["db_id"] and rebuilt["current_run"] is None
    assert audit("state", "verify", "--db", db_url, "--state", str(state)).exit_code == 0
    fresh = tmp_path / "new-host" / "s.json"  # a host that never saw the file
    assert audit("state", "export", "--db", db_url, "--state", str(fresh)).exit_code == 0
    assert audit("state", "verify", "--db", db_url, "--state", str(fresh)).exit_code == 0
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert audit("db", "init", "--db", other).exit_code == 0
    refused = audit("state", "export", "--db", other, "--state", str(state))
    assert refused.exit_code == 2 and json.loads(state.read_text()) == rebuilt


@pytest.mark.pg
def test_a_run_killed_on_one_host_resumes_on_another(pg_url: str, tmp_path: Path) -> None:
    """Two processes with their own state directories, one PostgreSQL: the first is SIGKILLed
    mid-run; the second, which never saw its file, resumes the same run and fetches no board
    the first had written."""
    url = pg_url.replace("://root@", "://root:CANARY_pw9@")
    host1, host2 = tmp_path / "host1" / "state.json", tmp_path / "host2" / "state.json"
    with simulator("clean", seed=9, scale=SLOW) as sim:
        start_then_kill(sync_env(sim, url, host1, scale=SLOW), host1, 20)
        store = Store(url)
        [killed] = store.runs()
        assert killed.status == "running"
        written = {b.code for b in store.board_list() if b.last_run_id == killed.id}
        assert len(written) >= 20
        counts = dict(sim.counters()["requests_by_board"])
        second = sync(sync_env(sim, url, host2, scale=SLOW))
        assert second.returncode == 0, second.stderr[-2000:]
        after, truth = sim.counters()["requests_by_board"], sim.truth()
    assert [c for c in written if after.get(c, 0) != counts.get(c, 0)] == []
    assert [(r.id, r.status) for r in store.runs()] == [(killed.id, "ok")]
    assert_db_equals_truth(url, truth)
    data = json.loads(host2.read_text())
    assert [r["id"] for r in data["runs"]] == [killed.id] and data["current_run"] is None
    assert ok_boards(host2) == set(truth)
    assert data["db_url"] == url.replace("CANARY_pw9", "***")
    assert "CANARY_pw9" not in host2.read_text()


def test_force_after_an_interrupted_run_starts_anew_and_syncs_every_board(
        sqlite_url: str, tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    with simulator("clean", seed=9, scale=SLOW) as sim:
        env = sync_env(sim, sqlite_url, state, scale=SLOW)
        start_then_kill(env, state, 10)
        interrupted = json.loads(state.read_text())["current_run"]
        before = dict(sim.counters()["requests_by_board"])
        forced = sync(env, "--force")
        assert forced.returncode == 0, forced.stderr[-2000:]
        after, truth = sim.counters()["requests_by_board"], sim.truth()
    assert [c for c in truth if after.get(c, 0) <= before.get(c, 0)] == []
    runs = {r.id: r.status for r in Store(sqlite_url).runs()}
    assert runs.pop(interrupted) == "abandoned"
    assert list(runs.values()) == ["ok"]
    assert_db_equals_truth(sqlite_url, truth)


def test_a_state_file_failing_mid_run_still_closes_the_run_record(sqlite_url: str,
                                                                  tmp_path: Path) -> None:
    """The state path turns into a directory mid-run (a save cannot replace it, even as
    root): exit 2 with one line, no traceback, the run closed ``partial`` in the database;
    once the path is usable again the next run resumes it and finishes exactly."""
    state = tmp_path / "st" / "state.json"
    log = tmp_path / "sync.log"
    with simulator("clean", seed=9, scale=SLOW) as sim:
        env = sync_env(sim, sqlite_url, state, scale=SLOW)
        with log.open("wb") as err:
            proc = subprocess.Popen(boardsync("sync"), env=env, stdout=subprocess.DEVNULL,
                                    stderr=err)
        assert wait_for(lambda: state.exists() and len(ok_boards(state)) >= 5, proc)
        state.unlink()
        state.mkdir()
        (state / "in-the-way").write_text("x")
        assert proc.wait(timeout=120) == 2
        text = log.read_text()
        assert len(errors(text)) == 1 and "state file" in errors(text)[0], text[-2000:]
        assert "Traceback" not in text
        [run] = Store(sqlite_url).runs()
        assert run.status == "partial" and run.finished_at is not None
        shutil.rmtree(state)
        resumed = sync(env, "--max-age", "0")
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        truth = sim.truth()
    runs = [(r.id, r.status) for r in Store(sqlite_url).runs()]
    if run.totals["remaining"]:  # boards were left: the same run is resumed and finished
        assert runs == [(run.id, "ok")]
    else:  # the failing save came after the last write: nothing to resume
        assert runs[1:] == [(run.id, "partial")] and runs[0][1] == "ok"
    assert_db_equals_truth(sqlite_url, truth)


def test_one_database_stop_logs_one_error_and_the_last_attempt_no_retry(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A database that is gone: each attempt but the last says "retry in", the last says
    "giving up"; the batches after the stop are recorded without another ERROR."""
    from boardsync.models import Board, Member
    from boardsync.outcomes import Fetched, Listed
    from boardsync.run import Run
    from helpers import FakeClock, closed_port

    settings = load_settings({"db_url": f"sqlite:///{tmp_path}/b.db", "kinds": "industry",
                              "state_path": str(tmp_path / "s.json"), "progress": "none",
                              "write_batch": "1", "db_retries": "3"}, env={}, config_path=None)
    run = Run(settings, clock=FakeClock())
    run.store.init_schema()
    run.begin()
    boards = [Board(f"BK000{i}", f"b{i}", "industry") for i in range(1, 4)]
    run.handle(Listed("industry", boards))
    gone = f"postgresql://root@127.0.0.1:{closed_port()}/x"
    run.writer.store = Store(gone)  # the database goes away under the writer
    with caplog.at_level("DEBUG", logger="boardsync"):
        for board in boards:
            run.handle(Fetched(board, [Member("600000", "s", 1)], 1))
            run.step()
    attempts = [r.getMessage() for r in caplog.records if "attempt" in r.getMessage()]
    assert len(attempts) == 3 and all("retry in" in m for m in attempts[:2])
    assert "giving up" in attempts[-1] and "retry in" not in attempts[-1]
    stops = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(stops) == 1 and "could not write" in stops[0].getMessage()
    assert run.summary.not_written == 3


def test_stray_tracebacks_go_through_the_log(tmp_path: Path) -> None:
    """A thread that dies and an error in a finaliser: logged lines, no bare traceback."""
    import sys

    code = ("import threading\n"
            "from boardsync.cli.common import setup_logging\n"
            "setup_logging('INFO')\n"
            "class Cursor:\n"
            "    def __del__(self):\n"
            "        raise RuntimeError('closed on a terminated connection')\n"
            "Cursor()\n"
            "t = threading.Thread(target=lambda: 1 / 0, name='worker-7')\n"
            "t.start(); t.join()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, cwd=tmp_path)
    assert "Traceback" not in r.stderr, r.stderr
    assert "closed on a terminated connection" in r.stderr
    assert "Thread worker-7 died: ZeroDivisionError" in r.stderr
