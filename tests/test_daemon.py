"""The daemon: scheduling steps with an injected clock, real threads with ms schedules, the
real HTTP endpoint on 127.0.0.1:0, real signals, and the real ``boardsync daemon`` process."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from boardsync.cli.exitcodes import exit_code
from boardsync.cli.signals import daemon_signals
from boardsync.config import load_settings
from boardsync.daemon import Daemon, is_failure
from boardsync.daemon_job import SyncJob
from boardsync.errors import DatabaseUnavailable, Locked
from boardsync.health import ErrorCollector, HealthServer, Telemetry, parse_address
from boardsync.logjson import JsonFormatter
from boardsync.schedule import IntervalSchedule, parse_cron
from boardsync.threads import start_thread
from helpers import T0, FakeClock, closed_port, parse_metrics, wait_until


@dataclass
class FakeSummary:
    """The fields of :class:`boardsync.outcomes.Summary` the daemon and telemetry read."""

    status: str = "ok"
    run_id: str = "r"
    ok: int = 3
    failed: int = 0
    rows_written: int = 120
    ips_extracted: int = 2
    errors: dict[str, int] = field(default_factory=lambda: {"timeout": 1})
    latency: dict[str, float | None] = field(default_factory=dict)


@pytest.fixture
def stopper() -> Iterator[list[Daemon]]:
    """Daemons registered here are always stopped, even when a test fails."""
    daemons: list[Daemon] = []
    yield daemons
    for d in daemons:
        d.request_stop()
        d.request_stop()
        if len(d._threads) < 2:  # stepped by the test: no scheduler thread to finish
            d.close()
        d.wait(5)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


# -- stepping the scheduler -----------------------------------------------------------------


def test_fast_schedule_completes_cycles(stopper: list[Daemon]) -> None:
    runs: list[float] = []

    def run_once() -> FakeSummary:
        runs.append(time.monotonic())
        return FakeSummary()

    d = Daemon(IntervalSchedule(0.01), run_once)
    stopper.append(d)
    d.start()
    assert wait_until(lambda: d.runs_finished >= 3)
    d.request_stop()
    assert d.wait(5)
    assert len(runs) >= 3 and d.failures == 0
    assert d.telemetry.status()["runs"]["ok"] == d.runs_finished


def test_overlapping_tick_is_skipped(stopper: list[Daemon]) -> None:
    release = threading.Event()
    started = threading.Event()

    def slow() -> FakeSummary:
        started.set()
        release.wait(10)
        return FakeSummary()

    clock = FakeClock()
    d = Daemon(IntervalSchedule(60), slow, clock=clock)
    stopper.append(d)
    d.start(scheduler=False)  # the test steps the scheduler at the fake clock's times
    d.step()  # the first tick is at once
    assert wait_until(started.is_set)
    assert d.runs_started == 1 and d.next_tick == T0 + timedelta(seconds=60)
    clock.advance(60)
    d.step()  # the 08:01 tick: a run is going -> skipped
    clock.advance(60)
    d.step()  # and the 08:02 one
    assert d.ticks_skipped == 2 and d.runs_started == 1
    release.set()
    assert wait_until(lambda: d.runs_finished == 1)
    clock.advance(60)
    d.step()
    assert wait_until(lambda: d.runs_finished == 2)
    metrics = parse_metrics(d.telemetry.metrics_text().decode())
    assert metrics["boardsync_skipped_ticks_total"] == 2
    assert d.status()["daemon"]["ticks_skipped"] == 2


def test_failures_back_off_but_never_past_the_next_tick(stopper: list[Daemon]) -> None:
    outcomes: list[Any] = [DatabaseUnavailable("db down"), FakeSummary(status="partial"),
                           FakeSummary(status="partial"), FakeSummary(status="ok")]
    done = threading.Semaphore(0)

    def run_once() -> FakeSummary:
        outcome = outcomes.pop(0)
        done.release()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    clock = FakeClock()
    d = Daemon(parse_cron("0 * * * *", "UTC"), run_once, clock=clock, retry_base=60,
               retry_cap=3600, max_wait=0.01)
    stopper.append(d)
    d.start(scheduler=False)
    d.step()  # the first step only sets the first tick
    assert d.next_tick == T0 + timedelta(hours=1)

    def run_at(t: datetime) -> None:
        clock.advance_to(t)
        d.step()
        assert done.acquire(timeout=10)
        assert wait_until(d.idle.is_set)

    run_at(T0 + timedelta(hours=1))  # 09:00 tick -> DatabaseUnavailable
    assert d.failures == 1 and d.retry_at == T0 + timedelta(hours=1, minutes=1)
    run_at(d.retry_at)  # 09:01 retry -> partial
    assert d.failures == 2 and d.retry_at == T0 + timedelta(hours=1, minutes=3)
    run_at(d.retry_at)  # 09:03 retry -> partial: next wait 4 min -> 09:07
    assert d.failures == 3 and d.retry_at == T0 + timedelta(hours=1, minutes=7)
    d.retry_cap = 30  # shows the rule from the other side: capped at 30 s
    run_at(d.retry_at)  # ok -> back to the schedule
    assert d.failures == 0 and d.retry_at is None and d.next_tick == T0 + timedelta(hours=2)
    assert d.telemetry.status()["runs"] == {"error": 1, "partial": 2, "ok": 1}


def test_retry_is_dropped_when_the_tick_comes_first(stopper: list[Daemon]) -> None:
    clock = FakeClock()

    def run_once() -> FakeSummary:
        return FakeSummary(status="partial")

    d = Daemon(IntervalSchedule(90), run_once, clock=clock, retry_base=120)
    stopper.append(d)
    d.start(scheduler=False)
    d.step()
    assert wait_until(lambda: d.runs_finished == 1)
    assert d.failures == 1 and d.retry_at is None  # 120 s > the 90 s tick: the tick retries


def test_outcomes() -> None:
    assert is_failure(Locked("x")) and is_failure(FakeSummary(status="partial"))
    assert not is_failure(FakeSummary(status="ok"))
    assert not is_failure(FakeSummary(status="interrupted"))
    assert exit_code(FakeSummary(status="ok")) == 0
    assert exit_code(FakeSummary(status="partial")) == 1
    assert exit_code(FakeSummary(status="nothing_to_do")) == 3
    assert exit_code(Locked("x")) == 4
    assert exit_code(DatabaseUnavailable("x")) == 2
    assert exit_code(RuntimeError("bug")) == 70
    assert exit_code(None) == 5


def test_once_runs_one_cycle(stopper: list[Daemon]) -> None:
    d = Daemon(IntervalSchedule(0.001), lambda: FakeSummary(status="nothing_to_do"), once=True)
    stopper.append(d)
    d.start()
    assert d.wait(10)
    assert d.runs_started == 1 and d.last_outcome.status == "nothing_to_do"


# -- the endpoint -----------------------------------------------------------------------------


@pytest.fixture
def served(stopper: list[Daemon]) -> Iterator[tuple[Daemon, str, list[FakeSummary]]]:
    summaries = [
        FakeSummary(status="ok", ok=5, rows_written=700, ips_extracted=3,
                    errors={"timeout": 2, "blocked": 1}),
        FakeSummary(status="partial", ok=4, failed=1, rows_written=300, ips_extracted=4,
                    errors={"timeout": 1, "http_status": 2}),
        FakeSummary(status="ok", ok=0, rows_written=0, ips_extracted=1, errors={}),
    ]
    queue = list(summaries)
    telemetry = Telemetry()
    gate = threading.Event()

    def run_once() -> FakeSummary:
        telemetry.start(10)
        telemetry.observe_latencies([0.02, 0.2, 2.0])
        telemetry.tick({"done": 4, "ok": 3, "failed": 1, "retrying": 2, "ips": 2})
        if not queue:
            gate.wait(10)  # the 4th run stays "current" so /status shows it
            return FakeSummary()
        return queue.pop(0)

    d = Daemon(IntervalSchedule(0.005), run_once, telemetry=telemetry, retry_base=0.001)
    stopper.append(d)
    server = HealthServer("127.0.0.1", 0, status=d.status, metrics=telemetry.metrics_text,
                          healthy=d.healthy)
    http_stop = threading.Event()
    start_thread(server, http_stop, "test-http")
    d.start()
    try:
        def fourth_run_in_progress() -> bool:
            current = telemetry.current_view()  # None between runs
            return d.runs_finished == 3 and current is not None and current["done"] == 4

        assert wait_until(fourth_run_in_progress)
        yield d, server.url, summaries
    finally:
        gate.set()
        http_stop.set()


def test_healthz_and_status(served: tuple[Daemon, str, list[FakeSummary]]) -> None:
    d, url, summaries = served
    assert get(url + "/healthz") == (200, "ok\n")
    code, body = get(url + "/status")
    assert code == 200
    status = json.loads(body)
    assert status["daemon"]["runs_finished"] == 3 and status["daemon"]["state"] == "running"
    cur = status["current_run"]
    assert cur["progress_pct"] == 40.0 and cur["ok"] == 3 and cur["failed"] == 1
    assert cur["retrying"] == 2 and cur["ips"] == 2 and cur["eta_s"] is not None
    assert status["last_run"]["status"] == "ok" and status["last_run"]["rows_written"] == 0
    assert status["runs"] == {"ok": 2, "partial": 1}
    assert get(url + "/nope")[0] == 404
    d.request_stop()
    assert get(url + "/healthz")[0] == 503  # stopping: not healthy any more


def test_metrics_parse_and_match_the_summaries(
        served: tuple[Daemon, str, list[FakeSummary]]) -> None:
    _d, url, summaries = served
    code, text = get(url + "/metrics")
    assert code == 200
    m = parse_metrics(text)
    assert m['boardsync_runs_total{status="ok"}'] == 2
    assert m['boardsync_runs_total{status="partial"}'] == 1
    assert m["boardsync_boards_synced_total"] == sum(s.ok for s in summaries)
    assert m["boardsync_rows_written_total"] == sum(s.rows_written for s in summaries)
    assert m["boardsync_ips_extracted_total"] == sum(s.ips_extracted for s in summaries)
    for cls in ("timeout", "blocked", "http_status"):
        want = sum(s.errors.get(cls, 0) for s in summaries)
        assert m[f'boardsync_errors_total{{error_class="{cls}"}}'] == want
    assert m["boardsync_request_latency_seconds_count"] == 3 * 4
    assert m['boardsync_request_latency_seconds_bucket{le="0.25"}'] == 2 * 4
    assert m["boardsync_run_in_progress"] == 1


def test_last_errors_come_from_the_log(stopper: list[Daemon]) -> None:
    telemetry = Telemetry()
    handler = ErrorCollector(telemetry)
    log = logging.getLogger("boardsync.test_daemon")
    log.addHandler(handler)
    try:
        for i in range(12):
            log.warning("Worker %d: blocked", i, extra={"board": f"BK{i:04d}"})
        log.info("not an error")
    finally:
        log.removeHandler(handler)
    errors = telemetry.status()["last_errors"]
    assert len(errors) == 10
    assert errors[-1]["message"] == "Worker 11: blocked" and errors[-1]["board"] == "BK0011"
    assert errors[0]["message"] == "Worker 2: blocked"


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:9108") == ("127.0.0.1", 9108)
    assert parse_address(":9108") == ("127.0.0.1", 9108)
    assert parse_address("9108") == ("127.0.0.1", 9108)
    assert parse_address("[::1]:9108") == ("::1", 9108)
    with pytest.raises(ValueError):
        parse_address("localhost:http")


def test_json_log_lines() -> None:
    record = logging.LogRecord("boardsync.sync", logging.WARNING, __file__, 1,
                               "Worker %s: 板块 %s\nblocked", ("worker-2", "BK0475"), None)
    record.run, record.board, record.worker = "20261123T020000Z-ab12", "BK0475", "-"
    line = JsonFormatter().format(record)
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["level"] == "WARNING" and doc["logger"] == "boardsync.sync"
    assert doc["message"] == "Worker worker-2: 板块 BK0475\nblocked"
    assert doc["run"] == "20261123T020000Z-ab12" and doc["board"] == "BK0475"
    assert doc["worker"] is None and doc["time"].endswith("Z")


# -- signals, in process ------------------------------------------------------------------


def _stoppable(stop: threading.Event, started: threading.Event) -> Callable[[], FakeSummary]:
    """A run that, like Sync, goes on until its stop event is set."""

    def run_once() -> FakeSummary:
        started.set()
        stop.wait(30)
        return FakeSummary(status="interrupted")

    return run_once


def test_sigterm_stops_gracefully(stopper: list[Daemon]) -> None:
    stop, started = threading.Event(), threading.Event()
    d = Daemon(IntervalSchedule(0.01), _stoppable(stop, started), stop=stop,
               shutdown_timeout=5)
    stopper.append(d)
    with daemon_signals(d):
        d.start()
        assert wait_until(started.is_set)
        os.kill(os.getpid(), signal.SIGTERM)
        assert d.wait(5 * 1.1 + 1)
    assert d.last_outcome.status == "interrupted" and d.runs_started == 1


def test_second_signal_forces(stopper: list[Daemon]) -> None:
    stop, started = threading.Event(), threading.Event()

    def stubborn() -> FakeSummary:  # ignores the graceful stop, honours force
        started.set()
        d.force.wait(30)
        return FakeSummary(status="interrupted")

    d = Daemon(IntervalSchedule(0.01), stubborn, stop=stop, shutdown_timeout=60)
    stopper.append(d)
    with daemon_signals(d):
        d.start()
        assert wait_until(started.is_set)
        os.kill(os.getpid(), signal.SIGINT)
        assert not d.wait(0.05)
        os.kill(os.getpid(), signal.SIGINT)
        assert d.wait(10)
    assert d.force.is_set()


def test_sighup_reloads_config_and_keeps_old_on_error(
        tmp_path: Path, stopper: list[Daemon]) -> None:
    config = tmp_path / "boardsync.toml"
    config.write_text("workers = 3\n")
    stop, force = threading.Event(), threading.Event()
    telemetry = Telemetry()
    job = SyncJob(lambda: load_settings(config_path=config, env={}), stop=stop, force=force,
                  telemetry=telemetry)
    seen: list[int] = []

    def run_once() -> FakeSummary:
        seen.append(job.settings.workers)  # what a Sync built now would get
        return FakeSummary()

    d = Daemon(IntervalSchedule(0.01), run_once, reload=job.reload, stop=stop, force=force,
               telemetry=telemetry)
    stopper.append(d)
    with daemon_signals(d):
        d.start()
        assert wait_until(lambda: len(seen) >= 2)
        config.write_text("workers = 5\n")
        os.kill(os.getpid(), signal.SIGHUP)
        assert wait_until(lambda: seen[-1] == 5)
        config.write_text("workers = -1\n")  # invalid: logged, old settings kept
        os.kill(os.getpid(), signal.SIGHUP)
        assert wait_until(lambda: not d.hup.is_set())
        n = len(seen)
        assert wait_until(lambda: len(seen) >= n + 2)
        assert seen[-1] == 5 and d.reloads == 1
        d.request_stop()
        assert d.wait(5)
    assert d.runs_finished >= 4 and d.next_tick is not None  # the schedule survived


# -- the real command ---------------------------------------------------------------------


def _sync_works() -> bool:
    try:
        import boardsync.run  # noqa: F401
        import boardsync.sim  # noqa: F401
        from boardsync.sim import Simulator  # noqa: F401
    except ImportError:
        return False
    return True


def _start_daemon(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    port = closed_port()
    cmd = [sys.executable, "-m", "boardsync", "--log-format", "json", "daemon",
           "--every", "1s", "--http", f"127.0.0.1:{port}",
           "--db", f"sqlite:///{tmp_path / 'b.db'}", "--state", str(tmp_path / "state.json"),
           "--progress", "none", "--shutdown-timeout", "5", *extra]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=os.environ | {"BOARDSYNC_LOG_LEVEL": "INFO"})
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return get(url + "/healthz")[0] == 200
        except OSError:
            return proc.poll() is not None
    assert wait_until(up, 60), "daemon did not come up"
    assert proc.poll() is None, proc.communicate()
    return proc, url


def _status(url: str) -> dict[str, Any]:
    return json.loads(get(url + "/status")[1])


def test_sigterm_ends_the_real_daemon(tmp_path: Path) -> None:
    # Against the simulator when the sync works end to end; otherwise against a dead
    # upstream, where every run fails fast and the daemon must keep going regardless.
    extra = (["--sim", "clean", "--sim-time-scale", "0.01"] if _sync_works()
             else ["--upstream-url", "http://127.0.0.1:9", "--max-retry", "0"])
    proc, url = _start_daemon(tmp_path, *extra)
    try:
        assert wait_until(lambda: _status(url)["daemon"]["runs_finished"] >= 1, 120)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=5 * 1.1 + 1 + 10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "message", "run", "board", "worker"}
                         <= set(doc) for doc in lines)
    assert any(doc["message"].startswith("Daemon: stopped") for doc in lines)


@pytest.mark.slow
@pytest.mark.skipif(not _sync_works(), reason="sync/simulator not importable yet")
def test_daemon_against_the_simulator_completes_syncs(tmp_path: Path) -> None:
    # The industry boards only: two whole runs, not two days' quota of IPs (at time scale
    # 0.01 an IP lives 0.6 s, and a loaded machine spends many more of them per run).
    proc, url = _start_daemon(tmp_path, "--sim", "clean", "--sim-time-scale", "0.01",
                              "--max-age", "0", "--kinds", "industry")
    try:
        assert wait_until(lambda: _status(url)["daemon"]["runs_finished"] >= 2, 300)
        status = _status(url)
        metrics = parse_metrics(get(url + "/metrics")[1])
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert status["runs"].get("ok", 0) >= 2, (status, err[-3000:])
    assert status["last_run"]["ok"] > 0 and status["last_run"]["rows_written"] > 0
    runs = sum(v for k, v in metrics.items() if k.startswith("boardsync_runs_total"))
    assert runs == sum(status["runs"].values())
    assert metrics["boardsync_request_latency_seconds_count"] > 0
    assert proc.returncode == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [([], "--every or --cron"), (["--every", "1m", "--cron", "* * * * *"], "--every or --cron"),
     (["--cron", "61 * * * *"], "cron"), (["--every", "soon"], "every"),
     (["--cron", "0 9 * * *", "--timezone", "Nowhere/Town"], "timezone"),
     (["--every", "1m", "--http", "127.0.0.1:port"], "http"),
     (["--every", "1m", "--workers", "-3"], "workers")],
)
def test_daemon_usage_errors_exit_2(args: list[str], needle: str) -> None:
    from click.testing import CliRunner

    from boardsync.cli import cli

    result = CliRunner().invoke(cli, ["daemon", *args], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert needle in result.output
