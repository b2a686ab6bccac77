"""Progress displays grow their total as each kind's board list arrives."""

from __future__ import annotations

import io
import logging

import pytest

from boardsync.health import Telemetry
from boardsync.progress import Progress
from helpers import FakeClock


def test_log_progress_starts_on_the_first_list_and_counts_every_list(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    progress = Progress("log", stream=io.StringIO(), interval=10.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="boardsync.progress"):
        progress.add(86)
        progress.add(441)
        clock.advance(10.0)
        progress.tick({"done": 100, "ok": 99, "failed": 1, "retrying": 0, "ips": 3})
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "Progress: 0/86 boards"
    assert messages[1] == "Progress: 0/527 boards (more listed)"
    assert messages[2].startswith("Progress: 100/527 boards (19%)")


def test_bar_total_grows_with_each_list() -> None:
    out = io.StringIO()
    progress = Progress("bar", stream=out)
    progress.add(86)
    progress.add(441)
    progress.close({"done": 527, "ok": 527, "failed": 0, "retrying": 0, "ips": 20})
    assert "527/527" in out.getvalue()


def test_telemetry_total_is_unknown_until_a_list_arrives_then_sums_the_lists() -> None:
    clock = FakeClock()
    inner = Progress("bar", stream=io.StringIO())
    telemetry = Telemetry(progress=inner, clock=clock)
    telemetry.run_started()
    view = telemetry.current_view()
    assert view is not None and view["total"] is None and view["progress_pct"] is None
    telemetry.add(86)
    telemetry.add(441)
    clock.advance(2.0)
    telemetry.tick({"done": 527 // 2, "ok": 263, "failed": 0, "retrying": 0, "ips": 20})
    view = telemetry.current_view()
    assert view is not None and view["total"] == 527
    assert view["progress_pct"] == 49.9 and view["eta_s"] == 2.0
    inner.close({"done": 527, "ok": 527, "failed": 0, "retrying": 0, "ips": 20})


def test_the_summary_explains_the_directory_held_back_lists_revamps_and_no_quote() -> None:
    from boardsync.outcomes import Summary
    from boardsync.progress import format_summary

    s = Summary(run_id="r1", mode="force", status="partial", boards_total=1032, ok=1031)
    s.directory = {"read": True, "boards": 1032, "kinds": {"industry": {
        "directory": 497, "listed": 496, "only_directory": ["BK1362"], "only_listed": []}}}
    s.lists_held_back = {"concept": {"listed": 303, "last_good": 504, "kept": ["BK0001"] * 201}}
    s.revamped = {"industry level 3": {"ended": ["BK1"] * 337, "started": ["BK2"] * 337}}
    s.unquoted_boards = ["BK1362"]
    text = format_summary(s)
    assert "directory   industry: 497 in the directory, 496 listed; only in the directory: " \
           "BK1362" in text
    assert "the concept list has 303 boards against 504 last time: 201 deletions" in text
    assert "industry level 3: 337 codes ended, 337 started" in text
    assert "no quote    BK1362" in text
    unread = Summary(run_id="r2", mode="incremental")
    unread.directory = {"read": False, "reason": "http_status: HTTP 404"}
    assert "directory   not read: http_status: HTTP 404" in format_summary(unread)
