"""The worker stepped by hand: a scripted upstream, a fake clock, no socket, no sleep.

Each test builds one :class:`~boardsync.worker.Worker` over a real queue, a real proxy manager
(a static list of IPs, so evictions are real and counted) and a scripted client, calls its
``loop()`` and reads what it reported.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boardsync.allowance import Allowance
from boardsync.breaker import CircuitBreaker
from boardsync.config import Settings, load_settings
from boardsync.crew import Crew
from boardsync.errors import ConnectionFailed, HTTPStatusError, ProxyDead
from boardsync.learner import Learner
from boardsync.metrics import RunMetrics
from boardsync.models import Board
from boardsync.outcomes import DirectoryRead, Failed, Fetched, Listed, Outcome, Retrying
from boardsync.pacing import PacingConfig, RateController
from boardsync.proxy import LeakyBucket, ProxyManager, StaticListSource
from boardsync.queue import LocalTaskQueue, Task
from boardsync.upstream import (
    Page,
    Pager,
    ProxyLike,
    Query,
    SharedPager,
    Step,
    UpstreamClient,
    board_list_query,
    members_query,
    proxy_key,
)
from boardsync.upstream.transport import Reply
from boardsync.worker import Worker, WorkerContext
from helpers import FakeClock

BOARD = Board("BK0475", "银行", "industry")
STOCKS = [f"{600000 + i:06d}" for i in range(5)]


class ScriptedUpstream(UpstreamClient):
    """The real client with its one request replaced by a script: pages of a fixed market
    ``page_size`` rows at a time; ``faults`` are raised first, in order, for the (fs, page)
    they are keyed by. Records every request; never opens a socket."""

    def __init__(self, market: dict[str, list[dict[str, object]]], page_size: int = 2,
                 faults: dict[tuple[str, int], list[Exception]] | None = None,
                 totals: dict[str, int] | None = None) -> None:
        super().__init__("https://push2.test")
        self.market = market
        self.page_size = page_size
        self.faults = faults or {}
        self.totals = totals or {}
        self.requests: list[tuple[str, int, str]] = []

    def get_page(self, query: Query[Any], pn: int, proxy: ProxyLike | None) -> Page:
        self.requests.append((query.fs, pn, proxy_key(proxy)))
        pending = self.faults.get((query.fs, pn))
        if pending:
            raise self.blame(pending.pop(0), proxy)
        rows = self.market.get(query.fs)
        if rows is None:
            return Page(total=None, rows=())
        chunk = rows[(pn - 1) * self.page_size: pn * self.page_size]
        return Page(total=self.totals.get(query.fs, len(rows)), rows=tuple(chunk))


def member_rows(codes: list[str]) -> list[dict[str, object]]:
    return [{"f12": c, "f14": f"stock {c}", "f13": 1} for c in codes]


def market() -> dict[str, list[dict[str, object]]]:
    return {members_query(BOARD.code).fs: member_rows(STOCKS),
            board_list_query("industry").fs: [{"f12": "BK0475", "f14": "银行"},
                                              {"f12": "BK0477", "f14": "酿酒行业"}]}


class Rig:
    """One worker and everything it touches; ``reported`` collects its outcomes."""

    def __init__(self, tmp_path: Path, upstream: ScriptedUpstream, ips: int = 5,
                 kinds: tuple[str, ...] = (), learner: Learner | None = None,
                 ttl_s: float = 3600.0, **overrides: object) -> None:
        self.clock = FakeClock()
        self.settings: Settings = load_settings(
            {"db_url": f"sqlite:///{tmp_path}/b.db", "req_delay_min": 1.0,
             "req_delay_max": 1.0, "stagger": 0.0, "page_retries": 6, "max_retry": 3,
             **overrides}, env={}, config_path=None)
        ip_file = tmp_path / "ips.txt"
        ip_file.write_text("".join(f"10.0.0.{i}:8080\n" for i in range(1, ips + 1)))
        self.proxies = ProxyManager(StaticListSource(ip_file), max_ips=ips, ttl_s=ttl_s,
                                    bucket=LeakyBucket(0.0, clock=self.clock),
                                    clock=self.clock, rng=random.Random(1))
        self.tasks = LocalTaskQueue()
        self.upstream = upstream
        self.reported: list[Outcome] = []
        pacing = PacingConfig(mode="learn" if learner else "fixed", delay_min=1.0,
                              delay_max=1.0)
        rate = RateController(pacing, learner)
        self.fetch_stop, self.list_stop = threading.Event(), threading.Event()
        self.ctx = WorkerContext(
            run_id="20261201T080000Z-test", settings=self.settings, clock=self.clock,
            tasks=self.tasks, report=self.reported.append, proxies=self.proxies,
            breaker=CircuitBreaker(4, 30.0, clock=self.clock), pacing=pacing, rate=rate,
            metrics=RunMetrics(),
            crew=Crew(self.settings, self.tasks, rate, {}, lambda: False),
            make_client=lambda: upstream,
            fetch_stop=self.fetch_stop, list_stop=self.list_stop, all_done=threading.Event())
        self.worker = Worker(0, self.ctx, kinds, random.Random(2))

    def steps(self, limit: int = 50) -> Iterator[int]:
        """Run ``loop()`` while there is work queued (or lists to fetch)."""
        for n in range(limit):
            if not self.worker.kinds and not len(self.tasks):
                return
            assert self.worker.loop()
            yield n
        raise AssertionError("the worker did not finish in 50 steps")

    def run(self) -> list[Outcome]:
        for _ in self.steps():
            pass
        return self.reported


def test_fetches_every_page_paced_on_the_fake_clock(tmp_path: Path) -> None:
    rig = Rig(tmp_path, ScriptedUpstream(market()))
    rig.tasks.put(Task(0, BOARD))
    (outcome,) = rig.run()
    assert isinstance(outcome, Fetched) and outcome.attempts == 1
    assert [m.code for m in outcome.members] == STOCKS
    assert [pn for _, pn, _ in rig.upstream.requests] == [1, 2, 3]  # 5 rows, 2 per page
    assert rig.clock.sleeps == [1.0, 1.0, 1.0]  # the fixed delay before every request
    assert rig.ctx.metrics.requests == 3 and rig.proxies.stats().failed == 0


class NullOnce(ScriptedUpstream):
    """Page ``pn`` answers ``data: null`` the first time it is asked (a glitch the pager
    asks again, or the first answer of a soft ban)."""

    def __init__(self, pn: int) -> None:
        super().__init__(market())
        self.null_pn = pn

    def get_page(self, query: Query[Any], pn: int, proxy: ProxyLike | None) -> Page:
        if pn == self.null_pn:
            self.null_pn = 0
            self.requests.append((query.fs, pn, proxy_key(proxy)))
            return Page(total=None, rows=())
        return super().get_page(query, pn, proxy)


def test_a_null_page_the_pager_asks_again_proves_nothing_to_the_learner(
        tmp_path: Path) -> None:
    learner = Learner(Allowance(rate=1.0), probe_bans=0)
    rig = Rig(tmp_path, NullOnce(2), learner=learner)
    rig.tasks.put(Task(0, BOARD))
    (outcome,) = rig.run()
    assert isinstance(outcome, Fetched) and [m.code for m in outcome.members] == STOCKS
    assert [pn for _, pn, _ in rig.upstream.requests] == [1, 2, 2, 3]
    # four answers, three with data: the null one is no evidence of admission
    assert learner.max_count == 3 and rig.ctx.metrics.requests == 4


def test_an_ip_that_ends_while_its_worker_waits_for_pacing_is_not_asked(
        tmp_path: Path) -> None:
    """Paced at 0.5/s, the third page is due 4 s after the first, past the IP's 3-s life: the
    worker takes a fresh IP when its wait ends instead of sending on the dead one."""
    learner = Learner(Allowance(rate=0.5), probe_bans=0)
    rig = Rig(tmp_path, ScriptedUpstream(market()), learner=learner, ttl_s=3.0)
    rig.tasks.put(Task(0, BOARD))
    (outcome,) = rig.run()
    assert isinstance(outcome, Fetched) and [m.code for m in outcome.members] == STOCKS
    via = [ip for _, _, ip in rig.upstream.requests]
    assert via[0] == via[1] != via[2]  # pages 1-2 on the first IP, page 3 on a fresh one
    assert rig.proxies.stats().failed == 0


def test_a_reset_page_is_asked_again_in_place_and_the_fourth_in_a_row_rotates(
        tmp_path: Path) -> None:
    fs = members_query(BOARD.code).fs
    resets = [ConnectionFailed("reset") for _ in range(5)]
    rig = Rig(tmp_path, ScriptedUpstream(market(), faults={(fs, 2): resets}))
    rig.tasks.put(Task(0, BOARD))
    (outcome,) = rig.run()
    assert isinstance(outcome, Fetched) and [m.code for m in outcome.members] == STOCKS
    pages = [pn for _, pn, _ in rig.upstream.requests]
    assert pages == [1, 2, 2, 2, 2, 2, 2, 3]  # page 2 asked until it answered, never page 1
    keys = [key for _, _, key in rig.upstream.requests]
    assert len(set(keys[:5])) == 1 and keys[5] != keys[4]  # the 4th reset in a row rotated
    assert rig.proxies.stats().failed == 1


def test_a_page_failing_past_page_retries_requeues_the_board_behind_first_attempts(
        tmp_path: Path) -> None:
    fs = members_query(BOARD.code).fs
    faults = {(fs, 1): [HTTPStatusError("502", status=502) for _ in range(3)]}
    rig = Rig(tmp_path, ScriptedUpstream(market(), faults=faults), page_retries=2,
              breaker_ips=0)
    rig.tasks.put(Task(0, BOARD))
    outcomes = rig.run()
    assert isinstance(outcomes[0], Retrying) and outcomes[0].error_class == "http_5xx"
    assert isinstance(outcomes[1], Fetched) and outcomes[1].attempts == 2
    assert rig.ctx.metrics.retries == 1


def test_a_board_failing_every_attempt_fails_for_good_after_max_retry(tmp_path: Path) -> None:
    fs = members_query(BOARD.code).fs
    faults = {(fs, 1): [HTTPStatusError("404", status=404) for _ in range(10)]}
    rig = Rig(tmp_path, ScriptedUpstream(market(), faults=faults))
    rig.tasks.put(Task(0, BOARD))
    (outcome,) = rig.run()  # a 404 is never retried: one request, one permanent failure
    assert isinstance(outcome, Failed) and outcome.error_class == "http_status"
    assert len(rig.upstream.requests) == 1 and len(rig.tasks) == 0


def test_pages_that_do_not_add_up_retry_the_board_on_the_same_ip(tmp_path: Path) -> None:
    fs = members_query(BOARD.code).fs
    rig = Rig(tmp_path, ScriptedUpstream(market(), totals={fs: 6}), max_retry=2)
    rig.tasks.put(Task(0, BOARD))
    outcomes = rig.run()
    assert [type(o) for o in outcomes] == [Retrying, Failed]
    assert all(o.error_class == "incomplete" for o in outcomes)  # type: ignore[union-attr]
    assert len({key for _, _, key in rig.upstream.requests}) == 1  # the IP was never blamed


def test_a_board_planning_too_many_pages_fails_its_attempt_without_asking_again(
        tmp_path: Path) -> None:
    fs = members_query(BOARD.code).fs
    rig = Rig(tmp_path, ScriptedUpstream(market(), page_size=1, totals={fs: 5000}),
              max_retry=2)
    rig.tasks.put(Task(0, BOARD))
    outcomes = rig.run()
    assert [type(o) for o in outcomes] == [Retrying, Failed]
    assert all(o.error_class == "invalid_json" for o in outcomes)  # type: ignore[union-attr]
    assert [pn for _, pn, _ in rig.upstream.requests] == [1, 1]  # one request per attempt


def test_a_stop_puts_the_board_back_unreported(tmp_path: Path) -> None:
    rig = Rig(tmp_path, ScriptedUpstream(market()))
    rig.tasks.put(Task(0, BOARD))
    rig.fetch_stop.set()
    assert rig.worker.loop() is False  # a stopped worker takes no task
    rig.fetch_stop.clear()
    rig.worker.kinds = []
    task = rig.tasks.get(timeout=0)
    assert task is not None
    rig.fetch_stop.set()
    rig.worker.process(task)
    assert rig.reported == [] and rig.tasks.pending() == [Task(0, BOARD)]
    assert rig.upstream.requests == []


def test_a_lister_lists_its_kind_then_keeps_its_ip_for_members(tmp_path: Path) -> None:
    rig = Rig(tmp_path, ScriptedUpstream(market()), kinds=("industry",))
    assert rig.worker.loop()
    (listed,) = rig.reported
    assert isinstance(listed, Listed) and listed.kind == "industry"
    assert [b.code for b in listed.boards] == ["BK0475", "BK0477"]
    rig.tasks.put(Task(0, BOARD))
    rig.run()
    assert len({key for _, _, key in rig.upstream.requests}) == 1
    assert rig.proxies.stats().extracted == 1


@pytest.mark.parametrize("ips", [1])
def test_without_a_next_ip_the_board_goes_back_and_the_quota_is_reported(
        tmp_path: Path, ips: int) -> None:
    fs = members_query(BOARD.code).fs
    faults = {(fs, 1): [HTTPStatusError("403", status=403)]}  # a ban: rotate at once
    rig = Rig(tmp_path, ScriptedUpstream(market(), faults=faults), ips=ips)
    rig.tasks.put(Task(0, BOARD))
    assert rig.worker.loop()
    assert [type(o).__name__ for o in rig.reported] == ["QuotaOut"]
    assert rig.tasks.pending() == [Task(0, BOARD)]  # nothing lost


class DeadThenServing:
    """A transport whose first ``dead`` GETs find the proxy dead, then serves ``body``."""

    name = "requests"

    def __init__(self, dead: int, body: bytes) -> None:
        self.dead, self.body = dead, body
        self.via: list[str] = []

    def send(self, url: str, **kw: Any) -> Reply:
        self.via.append(kw["key"])
        if len(self.via) <= self.dead:
            raise ProxyDead(f"proxy failed for {url} via {kw['key']}: refused")
        return Reply(200, {}, self.body)


@pytest.mark.parametrize("dead", [1, 2])
def test_a_dead_proxy_under_the_directory_is_let_go_and_the_read_asked_on_a_fresh_ip(
        tmp_path: Path, dead: int) -> None:
    """A proxy that refuses the connection is dead whatever the host: it does not count as
    one of the directory's attempts (an IP kept until it dies may end under this read)."""
    body = json.dumps({"bklist": [{"market": 90, "code": "BK0475", "name": "银行",
                                   "type": 2, "flag": 0}]}).encode()
    transport = DeadThenServing(dead, body)
    upstream = ScriptedUpstream(market())
    upstream.transport = lambda name: transport  # type: ignore[method-assign]
    learner = Learner(Allowance(rate=1.0), probe_bans=0)
    rig = Rig(tmp_path, upstream, kinds=("directory",), learner=learner)
    assert rig.worker.loop()
    (read,) = rig.reported
    assert isinstance(read, DirectoryRead) and read.entries is not None
    assert set(read.entries) == {"BK0475"}
    assert len(set(transport.via)) == dead + 1  # each dead IP let go, then a fresh one
    assert rig.proxies.stats().failed == dead
    # another host (a static file): the clist allowance learned nothing from it, and it
    # waited for no pacing
    assert learner.max_count == 0 and learner.started == 0 and rig.clock.sleeps == []


# -- a fetch shared between workers ------------------------------------------------------------


def shared_fetch(rig: Rig) -> SharedPager[Any]:
    """Page 1 of BOARD taken by an owner elsewhere (its 3 pages planned), shared."""
    query = members_query(BOARD.code)
    pager: Pager[Any] = Pager(query)
    pager.take(rig.upstream.get_page(query, 1, None))
    rig.upstream.requests.clear()
    return SharedPager(pager)


def test_a_help_task_asks_the_pages_left_on_its_own_ip_and_reports_nothing(
        tmp_path: Path) -> None:
    rig = Rig(tmp_path, ScriptedUpstream(market()))
    shared = shared_fetch(rig)
    rig.tasks.put(Task(0, BOARD, share=shared))
    assert rig.run() == []  # the owner reports the board, not its helpers
    assert [pn for _, pn, _ in rig.upstream.requests] == [2, 3]
    assert shared.outcome is Step.DONE and [m.code for m in shared.items] == STOCKS


def test_a_helper_whose_page_keeps_failing_fails_the_fetch_for_its_owner(
        tmp_path: Path) -> None:
    fs = members_query(BOARD.code).fs
    faults = {(fs, 2): [HTTPStatusError("502", status=502) for _ in range(3)]}
    rig = Rig(tmp_path, ScriptedUpstream(market(), faults=faults), page_retries=2,
              breaker_ips=0)
    shared = shared_fetch(rig)
    rig.tasks.put(Task(0, BOARD, share=shared))
    assert rig.run() == []
    assert shared.finished and shared.outcome is None
    assert isinstance(shared.error, HTTPStatusError)  # what the owner will raise
    assert [pn for _, pn, _ in rig.upstream.requests] == [2, 2]  # page 3 was never asked


def test_a_stopped_helper_gives_its_page_back(tmp_path: Path) -> None:
    rig = Rig(tmp_path, ScriptedUpstream(market()))
    shared = shared_fetch(rig)
    rig.fetch_stop.set()
    rig.worker.process(Task(0, BOARD, share=shared))
    assert rig.upstream.requests == [] and shared.unclaimed == 2 and not shared.finished


def test_two_workers_sharing_a_board_ask_each_page_once_and_report_it_whole(
        tmp_path: Path) -> None:
    """One board of 8 pages (one row each), two worker threads: whoever is free claims the
    next page, so page 1 is asked once, every later page once, and one worker reports the
    board, whole and in page order."""
    stocks = [f"{600000 + i:06d}" for i in range(8)]
    rig = Rig(tmp_path, ScriptedUpstream({members_query(BOARD.code).fs: member_rows(stocks)},
                                         page_size=1))
    second = Worker(1, rig.ctx, (), random.Random(3))
    rig.tasks.put(Task(0, BOARD))

    def work(worker: Worker) -> None:
        for _ in range(200):
            if any(isinstance(o, Fetched) for o in rig.reported) and not len(rig.tasks):
                return
            worker.loop()

    threads = [threading.Thread(target=work, args=(w,)) for w in (rig.worker, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    fetched = [o for o in rig.reported if isinstance(o, Fetched)]
    assert len(fetched) == 1 and [m.code for m in fetched[0].members] == stocks
    assert sorted(pn for _, pn, _ in rig.upstream.requests) == list(range(1, 9))
