"""The terminal and machines (issue 15 items 6, 7, 10): log lines above the bar, counters that
add up, per-run totals and run ids in the daemon, the summary record, the Prometheus metrics.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from boardsync.cli import cli
from boardsync.cli.common import BarSafeHandler
from boardsync.daemon import Daemon
from boardsync.health import Telemetry
from boardsync.ledger import Ledger
from boardsync.logctx import ContextFilter, bind
from boardsync.metrics import RunMetrics
from boardsync.outcomes import Summary
from boardsync.progress import SUMMARY_FIELDS, Progress
from boardsync.schedule import IntervalSchedule
from boardsync.state import StateFile
from helpers import FakeClock, parse_metrics, wait_until

SNAP = {"done": 10, "ok": 6, "failed": 2, "suspicious": 1, "unwritten": 1, "retrying": 3,
        "ips": 4, "errors": {"timeout": 5, "blocked": 2}}


def test_log_lines_go_above_the_bar_not_onto_it() -> None:
    out = io.StringIO()
    bar = Progress("bar", stream=out)
    bar.add(10)
    bar.tick(SNAP | {"done": 3})
    handler = BarSafeHandler(out)
    handler.setFormatter(logging.Formatter("LOG %(message)s"))
    log = logging.getLogger("boardsync.test_terminal")
    log.addHandler(handler)
    try:
        log.warning("first")
        bar.tick(SNAP | {"done": 5})
        log.warning("second")
    finally:
        log.removeHandler(handler)
    bar.close(SNAP)
    text = out.getvalue()
    for message in ("LOG first\n", "LOG second\n"):
        before = text[:text.index(message)]
        assert before.endswith("\r")  # the bar was cleared: the line starts at column 0
        assert "boards:" not in before.rsplit("\n", 1)[-1].rsplit("\r", 2)[-1]
        after = text[text.index(message) + len(message):]
        assert after.startswith("\rboards:")  # and the bar is drawn again below the line


def test_the_bars_counters_add_up_and_show_errors_by_class(tmp_path: Path) -> None:
    out = io.StringIO()
    bar = Progress("bar", stream=out)
    bar.add(10)
    bar.close(SNAP)
    assert ("10/10" in out.getvalue() and "ok=6 failed=2 suspicious=1 unwritten=1 retrying=3 "
            "ips=4 | timeout=5 blocked=2" in out.getvalue())
    summary = Summary(run_id="r", mode="force", ok=6, failed=2, suspicious=1, not_written=1)
    metrics = RunMetrics()
    metrics.on_request(0.1, "timeout")
    snap = Ledger(summary, StateFile(tmp_path / "s.json"), FakeClock(), metrics).snapshot(4)
    assert snap["done"] == snap["ok"] + snap["failed"] + snap["suspicious"] + snap["unwritten"]
    assert snap["errors"] == {"timeout": 1}


def test_the_daemons_display_counts_each_run_alone(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    telemetry = Telemetry(progress=Progress("log", interval=0.0, clock=clock), clock=clock)
    with caplog.at_level(logging.INFO, logger="boardsync.progress"):
        for _run in range(2):
            telemetry.run_started()
            telemetry.add(86)
            telemetry.add(441)
            telemetry.close(SNAP | {"done": 527})
    totals = [r.getMessage() for r in caplog.records if "more listed" in r.getMessage()]
    assert totals == ["Progress: 0/527 boards (more listed)"] * 2  # not 1,054 of 527


@pytest.fixture
def context_log() -> Iterator[list[logging.LogRecord]]:
    """Every boardsync record with the context the CLI's filter gives it."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    bind(run=None)  # whatever an earlier test's run left on this thread
    handler = Keep(logging.DEBUG)
    handler.addFilter(ContextFilter())
    root = logging.getLogger("boardsync")
    old = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    yield records
    root.removeHandler(handler)
    root.setLevel(old)
    bind(run=None)


def test_daemon_lines_between_runs_carry_no_previous_run(
        context_log: list[logging.LogRecord]) -> None:
    started: list[str] = []

    def run_once() -> Any:
        run_id = f"R{len(started) + 1}"
        bind(run=run_id)  # what Run.begin does on the runner thread
        started.append(run_id)
        return Summary(run_id=run_id, mode="incremental", status="ok")

    clock = FakeClock()
    d = Daemon(IntervalSchedule(60), run_once, clock=clock)
    d.start(scheduler=False)
    try:
        d.step()
        assert wait_until(lambda: d.runs_finished == 1)
        clock.advance(60)
        d.step()
        assert wait_until(lambda: d.runs_finished == 2)
    finally:
        d.close()
    starting = [r for r in context_log if "starting run 2" in r.getMessage()]
    assert starting and all(r.run == "-" for r in starting)  # type: ignore[attr-defined]
    ended = [r for r in context_log if "run 2 ended" in r.getMessage()]
    assert [r.run for r in ended] == ["R2"]  # type: ignore[attr-defined]


def _sync(tmp_path: Path, *extra: str) -> Any:
    args = ["--log-format", "json", "sync", "--sim", "clean", "--sim-time-scale", "0.01",
            "--kinds", "industry", "--boards", "BK0475,BK0477", "--progress", "none",
            "--db", f"sqlite:///{tmp_path / 'b.db'}", "--state", str(tmp_path / "s.json"),
            *extra]
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def test_json_logs_end_with_the_summary_record_and_summary_json_writes_it(
        tmp_path: Path) -> None:
    first = _sync(tmp_path, "--summary-json", str(tmp_path / "summary.json"))
    assert first.exit_code == 0, first.output
    lines = [json.loads(line) for line in first.stderr.splitlines()]
    last = lines[-1]
    assert last["message"].startswith("Run ") and last["run"] == last["summary"]["run_id"]
    assert sum("summary" in line for line in lines) == 1
    record = json.loads((tmp_path / "summary.json").read_text())
    assert record == last["summary"]
    assert list(record) == ["record", "version", *SUMMARY_FIELDS]
    assert record["status"] == "ok" and record["ok"] == 2 and record["boards_total"] == 2
    # every "Run <id>:" line names its own run, resumed or new, never the previous one
    second = _sync(tmp_path, "--force")
    runs = [json.loads(line) for line in second.stderr.splitlines()]
    named = [r for r in runs if r["message"].startswith("Run ")]
    assert named and all(r["message"].split()[1].rstrip(":") == r["run"] for r in named)
    assert {r["run"] for r in named} == {runs[-1]["summary"]["run_id"]} != {record["run_id"]}


def test_metrics_a_prometheus_user_expects() -> None:
    clock = FakeClock()
    gate = threading.Event()

    def run_once() -> Summary:
        gate.wait(5)
        return Summary(run_id="r", mode="incremental", status="partial", ok=5, failed=2,
                       suspicious=1, duration_s=12.5)

    d = Daemon(IntervalSchedule(600), run_once, clock=clock)
    d.start(scheduler=False)
    try:
        before = parse_metrics(d.telemetry.metrics_text().decode())
        assert before["boardsync_next_run_timestamp_seconds"] == 0
        d.step()
        gate.set()
        assert wait_until(lambda: d.runs_finished == 1)
    finally:
        d.close()
    m = parse_metrics(d.telemetry.metrics_text().decode())
    import boardsync
    assert m[f'boardsync_build_info{{version="{boardsync.__version__}"}}'] == 1
    assert m["boardsync_last_run_duration_seconds"] == 12.5
    assert m['boardsync_last_run_status{status="partial"}'] == 1
    assert m['boardsync_last_run_status{status="ok"}'] == 0
    assert m["boardsync_last_run_failed_boards"] == 2
    assert m["boardsync_last_run_suspicious_boards"] == 1
    assert d.next_tick is not None and d.retry_at is not None  # partial: retried first
    assert m["boardsync_next_run_timestamp_seconds"] == d.retry_at.timestamp()
    assert m["process_cpu_seconds_total"] >= 0 and m["process_resident_memory_bytes"] > 0
    assert any(k.startswith("python_info{") for k in m)
