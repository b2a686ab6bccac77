"""Nothing lost, nothing duplicated: real SIGKILLs and SIGTERMs against a real sync process.

The simulator runs in this test process (so its counters survive the kills); ``boardsync
sync`` runs as a child process pointed at it, with every duration scaled down.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from boardsync.sim import Simulator, load_scenario
from helpers import assert_db_equals_truth, pause, wait_until

SCALE = 0.01
#: Slower runs, for tests that must act while a sync is still going (~3 s for SMALL).
SLOW = 0.05
PYTHON = sys.executable


def record(name: str, value: Any) -> None:
    """Keep a figure for the README's Reliability section (only when asked to).

    ``RELIABILITY_FIGURES=/path/figures.json pytest tests/test_reliability*.py``
    merges each test's figures into that JSON file; without the variable this does nothing.
    """
    path = os.environ.get("RELIABILITY_FIGURES")
    if not path:
        return
    target = Path(path)
    data = json.loads(target.read_text()) if target.exists() else {}
    data[name] = value
    target.write_text(json.dumps(data, indent=1, sort_keys=True))


def sync_env(sim: Any, db_url: str, state: Path, scale: float = SCALE,
             **extra: str) -> dict[str, str]:
    """Environment for a child ``boardsync sync`` against ``sim`` at its time scale."""
    SCALE = scale  # noqa: N806 - the durations below read as the reference run's
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOARDSYNC_")}
    env.update(
        BOARDSYNC_DB_URL=db_url,
        BOARDSYNC_STATE_PATH=str(state),
        BOARDSYNC_UPSTREAM_URL=sim.upstream_url,
        BOARDSYNC_DIRECTORY_URL=sim.directory_url,
        BOARDSYNC_PROXY="api",
        BOARDSYNC_PROXY_API_URL=sim.extract_url,
        BOARDSYNC_PROXY_API_KEY=sim.api_key,
        BOARDSYNC_EXTRACT_INTERVAL=str(2.0 * SCALE),
        BOARDSYNC_IP_TTL=str(45.0 * SCALE),
        BOARDSYNC_REQ_DELAY_MIN=str(1.0 * SCALE),
        BOARDSYNC_REQ_DELAY_MAX=str(2.0 * SCALE),
        BOARDSYNC_CONNECT_TIMEOUT="0.5",
        BOARDSYNC_READ_TIMEOUT="0.5",
        BOARDSYNC_STAGGER=str(1.0 * SCALE),
        BOARDSYNC_SHUTDOWN_TIMEOUT="5",
        BOARDSYNC_BREAKER_COOLDOWN=str(30.0 * SCALE),
        BOARDSYNC_PROGRESS="log",
        BOARDSYNC_LOG_INTERVAL="0.2",
        BOARDSYNC_MAX_IPS="100000",
    )
    env.update(extra)
    return env


def boardsync(*args: str) -> list[str]:
    return [PYTHON, "-m", "boardsync", *args]


#: A small market (80 boards, ~5000 memberships): a whole sync takes about a second.
SMALL = {"stocks": 800, "industry_boards": 20, "industry_memberships": 1000,
         "concept_boards": 60, "concept_memberships": 4000, "largest_board_size": 400}


@contextmanager
def simulator(name: str = "clean", seed: int = 5, scale: float = SCALE,
              **overrides: Any) -> Iterator[Any]:
    """The simulator at ``scale`` with the SMALL market (``overrides`` on top)."""
    scn = load_scenario(name).with_overrides(**(SMALL | overrides))
    with Simulator(scn, time_scale=scale, seed=seed) as sim:
        yield sim


def ok_boards(state: Path) -> set[str]:
    data = json.loads(state.read_text())
    return {code for code, b in data["boards"].items() if b.get("status") == "ok"}


def wait_for(predicate: Any, proc: subprocess.Popen[bytes], limit: float = 120.0) -> bool:
    """Poll ``predicate`` until true; False once the process has exited without it."""
    wait_until(lambda: predicate() or proc.poll() is not None, limit, every=0.01)
    return bool(predicate())


def file_stamp(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except FileNotFoundError:
        return (0, 0)
    return (st.st_size, st.st_mtime_ns)


#: SIGKILL trials per run of the kill test.
KILLS = 12
#: The kill test runs slower than the others so every scheduled kill lands before the end.
KILL_SCALE = 0.03


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(sqlite_url: str,
                                                               tmp_path: Path) -> None:
    """KILLS SIGKILLs, each restart without --force; then the database equals the truth.

    The schedule is fixed up front so every kill happens: two at random early moments
    (start-up, board lists), the rest when the written-board count reaches targets spread
    over the run, leaving at least 60 boards (well over a second of work) after the last.
    Every other counted kill waits for the SQLite WAL to change, so it lands while a batch
    is being written (or just after the commit, before the state file records it).
    """
    state = tmp_path / "state.json"
    wal = Path(sqlite_url.removeprefix("sqlite:///") + "-wal")
    rng = random.Random(20261122)
    with Simulator(load_scenario("clean"), time_scale=KILL_SCALE, seed=5) as sim:
        env = sync_env(sim, sqlite_url, state, scale=KILL_SCALE,
                       BOARDSYNC_KINDS="industry,concept")
        truth = sim.truth()
        targets = sorted(rng.sample(range(1, len(truth) - 60), KILLS - 2))
        schedule: list[int | None] = [None, None, *targets]
        snapshots: list[tuple[set[str], dict[str, int]]] = []
        mid_write = 0
        for i, target in enumerate(schedule):
            log = tmp_path / f"run{i}.log"
            with log.open("wb") as err:
                proc = subprocess.Popen(boardsync("sync"), env=env, stdout=subprocess.DEVNULL,
                                        stderr=err)
            if target is None:
                pause(rng.uniform(0.05, 0.8))
            else:
                assert wait_for(lambda t=target: state.exists() and len(ok_boards(state)) >= t,
                                proc), f"run {i} ended early: {log.read_text()[-2000:]}"
                if i % 2:
                    seen = file_stamp(wal)
                    if wait_for(lambda seen=seen: file_stamp(wal) != seen, proc, limit=5):
                        mid_write += 1
                else:
                    pause(rng.uniform(0, 0.03))
            assert proc.poll() is None, f"run {i} finished before its kill"
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            done = ok_boards(state) if state.exists() else set()  # must parse after each kill
            snapshots.append((done, dict(sim.counters()["requests_by_board"])))
        rc = subprocess.run(boardsync("sync"), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, timeout=300).returncode
        assert rc == 0, f"final run exited {rc}"
        final_counts = sim.counters()["requests_by_board"]
    assert len(snapshots) == KILLS
    assert mid_write >= 1
    assert_db_equals_truth(sqlite_url, truth)
    for done, counts in snapshots:
        refetched = [c for c in done if final_counts.get(c, 0) != counts.get(c, 0)]
        assert refetched == [], "boards finished before a kill were fetched again"
    assert ok_boards(state) == set(truth)
    record("sigkill", {"kills": len(snapshots), "kills_on_wal_activity": mid_write,
                       "boards": len(truth), "rows": sum(len(m) for m in truth.values()),
                       "rows_lost": 0, "rows_duplicated": 0})


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_stops_gracefully_then_resumes(sqlite_url: str, tmp_path: Path,
                                               signum: int) -> None:
    with simulator("clean", seed=9, scale=SLOW) as sim:
        # The signal must land mid-run: a whole sync of the small market takes about a second
        # and the state file is written debounced, so the run may be over by the time 20
        # boards show; such an attempt proves nothing and is made again on a fresh database.
        for attempt in range(5):
            sqlite_url = f"sqlite:///{tmp_path}/attempt{attempt}.db"
            state = tmp_path / f"state{attempt}.json"
            env = sync_env(sim, sqlite_url, state, scale=SLOW)
            proc = subprocess.Popen(boardsync("sync"), env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL)
            assert wait_for(lambda: state.exists() and len(ok_boards(state)) >= 20, proc)
            proc.send_signal(signum)
            out, _ = proc.communicate(timeout=30)
            if proc.returncode != 0:
                break
        assert proc.returncode == 5, out
        data = json.loads(state.read_text())
        assert data["current_run"], "an interrupted run stays current, to be resumed"
        run = next(r for r in data["runs"] if r["id"] == data["current_run"])
        assert run["status"] == "interrupted"
        # no board is lost in flight: each is written ok or back in the queue (pending)
        assert {b["status"] for b in data["boards"].values()} <= {"ok", "pending"}
        done_before = ok_boards(state)
        counts = dict(sim.counters()["requests_by_board"])
        rc = subprocess.run(boardsync("sync"), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, timeout=300).returncode
        assert rc == 0
        after = sim.counters()["requests_by_board"]
        assert [c for c in done_before if after.get(c, 0) != counts.get(c, 0)] == []
        assert_db_equals_truth(sqlite_url, sim.truth())


#: A small market where a hang lasts 30 s real (hangs are switched on mid-run).
HANGING = SMALL | {"hang_s": 3000.0, "ip_lifetime_s": 1e6}


def start_hanging(sim: Simulator, rate: float) -> None:
    """From now on ``rate`` of the upstream's requests hang (the anti-bot draws faults)."""
    from boardsync.sim.antibot import AntiBot

    with sim.state.lock:
        sim.state.antibot = AntiBot(sim.state.scenario.with_overrides(fault_hang=rate),
                                    sim.seed)


def stop_hanging(sim: Simulator) -> None:
    start_hanging(sim, 0.0)


@pytest.mark.slow
@pytest.mark.parametrize("second_signal", [False, True])
def test_stop_is_bounded_by_shutdown_timeout_or_second_signal(sqlite_url: str, tmp_path: Path,
                                                              second_signal: bool) -> None:
    """Workers stuck in hung requests: the stop still ends in time, state saved, exit 5.

    One SIGTERM with --shutdown-timeout 1 abandons the stuck boards when the timeout is up;
    with a 300 s timeout, a second signal stops at once. Either way the next run finishes.
    """
    state = tmp_path / "state.json"
    log = tmp_path / "stop.log"
    scn = load_scenario("clean").with_overrides(**HANGING)
    with Simulator(scn, time_scale=SCALE, seed=12) as sim:
        env = sync_env(sim, sqlite_url, state, BOARDSYNC_READ_TIMEOUT="120", BOARDSYNC_IP_TTL="600",
                       BOARDSYNC_SHUTDOWN_TIMEOUT="300" if second_signal else "1")
        with log.open("wb") as err:
            proc = subprocess.Popen(boardsync("sync"), env=env, stdout=subprocess.DEVNULL,
                                    stderr=err)
        assert wait_for(lambda: state.exists() and json.loads(state.read_text())["boards"], proc)
        start_hanging(sim, 0.5)  # the board lists are in: now the member fetches stall
        assert wait_for(lambda: sim.counters()["faults"].get("hang", 0) >= 3, proc)
        proc.send_signal(signal.SIGTERM)
        if second_signal:
            assert wait_for(lambda: "stop requested" in log.read_text(), proc)
            proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 5
        text = log.read_text()
        assert ("second signal: stopping at once" if second_signal
                else "shutdown timeout: abandoning in-flight boards") in text
        assert "Traceback" not in text
        data = json.loads(state.read_text())
        run = next(r for r in data["runs"] if r["id"] == data["current_run"])
        assert run["status"] == "interrupted"
        assert {b["status"] for b in data["boards"].values()} <= {"ok", "pending", "retrying"}
        done_before, counts = ok_boards(state), dict(sim.counters()["requests_by_board"])
        stop_hanging(sim)
        rc = subprocess.run(boardsync("sync"), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, timeout=300).returncode
        assert rc == 0
        after = sim.counters()["requests_by_board"]
        assert [c for c in done_before if after.get(c, 0) != counts.get(c, 0)] == []
        assert_db_equals_truth(sqlite_url, sim.truth())
        record(f"stop_second_signal_{second_signal}", {"faults": sim.counters()["faults"]})


@pytest.mark.slow
def test_second_sync_is_locked_out_and_names_the_holder(db_url: str, tmp_path: Path) -> None:
    with simulator("clean", seed=4, scale=SLOW) as sim:
        env = sync_env(sim, db_url, tmp_path / "a.json", scale=SLOW)
        first = subprocess.Popen(boardsync("sync"), env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        try:
            assert wait_for(lambda: (tmp_path / "a.json").exists(), first)
            env2 = dict(env, BOARDSYNC_STATE_PATH=str(tmp_path / "b.json"))
            second = subprocess.run(boardsync("sync"), env=env2, capture_output=True, text=True,
                                    timeout=60)
            assert second.returncode == 4, second.stderr
            assert f"pid {first.pid}" in second.stderr
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        # The killed holder leaves no stale lock: the next sync gets in and finishes.
        rc = subprocess.run(boardsync("sync"), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, timeout=300).returncode
        assert rc == 0
