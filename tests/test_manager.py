"""The run's manager stepped by hand: every outcome kind handed to it, no worker thread.

A real SQLite database and state file, a fake clock; :meth:`Run.begin` opens the run,
:meth:`Run.handle` takes one outcome at a time and :meth:`Run.step` writes what is due.
"""

from __future__ import annotations

import json
from pathlib import Path

from boardsync.config import load_settings
from boardsync.models import Board, Member
from boardsync.outcomes import Failed, Fetched, Listed, ListFailed, QuotaOut, Retrying, RunStatus
from boardsync.run import Run
from boardsync.store import Store
from helpers import FakeClock

SMALL = Board("BK0001", "small", "industry", size_hint=3)
BIG = Board("BK0002", "big", "industry", size_hint=300)
OTHER = Board("BK0003", "unknown size", "industry")


def members(n: int, start: int = 600000) -> list[Member]:
    return [Member(f"{start + i:06d}", f"s{i}", 1) for i in range(n)]


def new_run(tmp_path: Path, **overrides: object) -> Run:
    settings = load_settings({"db_url": f"sqlite:///{tmp_path}/b.db",
                              "state_path": str(tmp_path / "state.json"), "kinds": "industry",
                              "directory_url": "",  # no directory: the lists alone
                              "progress": "none", **overrides}, env={}, config_path=None)
    run = Run(settings, clock=FakeClock())
    run.store.init_schema()
    run.begin()
    return run


def state_of(run: Run, code: str) -> str:
    """The board's status in the run's state file (as held: saves are debounced)."""
    record = run.state.board(code)
    assert record is not None, f"{code} is not in the state file"
    return str(record["status"])


def test_a_list_queues_its_boards_biggest_first_and_marks_them_pending(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    run.handle(Listed("industry", [SMALL, BIG, OTHER]))
    assert [t.board.code for t in run.tasks.pending()] == ["BK0002", "BK0001", "BK0003"]
    assert run.summary.boards_total == 3 and not run.lists.pending()
    assert state_of(run, "BK0003") == "pending"
    assert not run.finished()  # three boards open


def test_fetched_boards_are_written_once_the_batch_is_due_then_the_run_is_done(
        tmp_path: Path) -> None:
    run = new_run(tmp_path)
    run.handle(Listed("industry", [SMALL, BIG]))
    run.handle(Fetched(SMALL, members(3), 1))
    run.step()
    assert run.writer.pending and run.summary.ok == 0  # BIG still open, batch not full
    run.clock.advance(0.6)  # type: ignore[attr-defined]
    run.step()
    assert run.summary.ok == 1 and state_of(run, "BK0001") == "ok"
    run.handle(Fetched(BIG, members(300, 300000), 2))
    run.step()  # it holds every open board: written at once
    assert run.summary.ok == 2 and run.finished()
    run.finish()
    assert run.summary.status == RunStatus.OK and run.summary.rows_written == 303
    assert Store(run.settings.db_url).member_codes("BK0002") == {m.code for m in
                                                                 members(300, 300000)}


def test_a_board_that_shrinks_too_much_is_held_back_not_written(tmp_path: Path) -> None:
    first = new_run(tmp_path)
    first.handle(Listed("industry", [BIG]))
    first.handle(Fetched(BIG, members(300), 1))
    first.step()
    first.finish()
    again = new_run(tmp_path, force=False, max_age=0)
    again.handle(Listed("industry", [BIG]))
    again.handle(Fetched(BIG, members(10), 1))
    again.step()
    again.finish()
    assert again.summary.suspicious_boards == ["BK0002"]
    assert again.summary.status == RunStatus.PARTIAL
    assert len(Store(again.settings.db_url).member_codes("BK0002")) == 300


def test_retrying_then_failed_boards_are_recorded_and_end_the_run_partial(
        tmp_path: Path) -> None:
    run = new_run(tmp_path)
    run.handle(Listed("industry", [SMALL]))
    run.handle(Retrying(SMALL, "timeout", 1))
    assert state_of(run, "BK0001") == "retrying" and run.ledger.retrying == {"BK0001"}
    run.handle(Failed(SMALL, "blocked", "HTTP 403", 2))
    assert run.finished()
    run.finish()
    assert run.summary.failed_boards == ["BK0001"] and run.summary.status == RunStatus.PARTIAL
    assert state_of(run, "BK0001") == "failed"
    on_disk = json.loads((tmp_path / "state.json").read_text())  # finish saves at once
    assert on_disk["boards"]["BK0001"]["status"] == "failed"


def test_a_spent_quota_stops_member_fetches_but_not_lists(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    run.handle(QuotaOut("no more IPs today"))
    assert run.fetch_stop.is_set() and not run.list_stop.is_set()
    assert run.summary.stop_reason == "quota exhausted: no more IPs today"


def test_a_list_that_failed_on_quota_ends_the_run_partial_with_its_reason(
        tmp_path: Path) -> None:
    run = new_run(tmp_path)
    run.handle(ListFailed("industry", RunStatus.PARTIAL, "quota exhausted while listing",
                          quota=True))
    assert run.fetch_stop.is_set() and run.finished()
    run.finish()
    assert run.summary.status == RunStatus.PARTIAL
    assert run.summary.stop_reason == "quota exhausted while listing"


def test_nothing_listed_to_do_is_nothing_to_do(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    run.handle(Listed("industry", []))
    assert run.finished()
    run.finish()
    assert run.summary.status == RunStatus.NOTHING_TO_DO


def test_a_board_gone_from_its_list_is_marked_deleted(tmp_path: Path) -> None:
    first = new_run(tmp_path)
    first.handle(Listed("industry", [SMALL, BIG]))
    first.handle(Fetched(SMALL, members(3), 1))
    first.handle(Fetched(BIG, members(300, 300000), 1))
    first.step()
    first.finish()
    again = new_run(tmp_path, force=True)
    again.handle(Listed("industry", [BIG]))
    assert again.summary.deleted == 1 and state_of(again, "BK0001") == "deleted"
    deleted = {r.code for r in again.store.board_list("industry") if r.deleted_at is not None}
    assert deleted == {"BK0001"}


def test_a_resumed_run_whose_boards_were_all_written_before_its_kill_ends_ok(
        tmp_path: Path) -> None:
    """Killed after its last board was written but before it was closed: the next start
    resumes it, fetches nothing, and closes it ok (its boards are), not nothing to do."""
    first = new_run(tmp_path)
    first.handle(Listed("industry", [SMALL, BIG]))
    first.handle(Fetched(SMALL, members(3), 1))
    first.handle(Fetched(BIG, members(300, 300000), 1))
    first.step()
    assert first.summary.ok == 2  # written; then killed: no finish()
    first.state.save(force=True)
    second = new_run(tmp_path)
    assert second.run_id == first.run_id  # resumed
    second.handle(Listed("industry", [SMALL, BIG]))
    assert not second.tasks.pending() and second.finished()
    second.finish()
    assert second.summary.status == RunStatus.OK
    assert [(r.id, r.status) for r in Store(second.settings.db_url).runs()] == [
        (first.run_id, RunStatus.OK)]
