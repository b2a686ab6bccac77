"""Sizing made live (issue 14): the IPs' lifetime learned, the crew admitting IPs as the work
needs them, and one extraction call for every worker waiting at once.

The crew is driven through its public methods with a real task queue, a real learner and
holders whose IPs are plain values; times are numbers, no sleeping.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from boardsync.allowance import Allowance
from boardsync.config import load_settings
from boardsync.crew import Crew, more_ips_needed
from boardsync.learner import Learner
from boardsync.lifetime import MIN_DEATHS, IpLife
from boardsync.models import Board
from boardsync.pacing import PacingConfig, RateController
from boardsync.proxy import Proxy
from boardsync.queue import LocalTaskQueue, Task
from test_proxy import ScriptedSource, manager


def test_a_stated_life_wins_over_deaths_and_the_assumption() -> None:
    life = IpLife(assumed=60.0)
    assert life.estimate() == 60.0
    for age in (29.0, 31.0, 30.0):
        life.died(age)
    assert life.estimate() == 30.0  # the median death, once enough were seen
    life.stated(180.0)
    assert life.estimate() == 180.0
    assert "stated" in life.source()


def test_too_few_deaths_prove_nothing_and_an_old_ip_proves_a_longer_life() -> None:
    life = IpLife(assumed=60.0, most=200.0)
    for age in range(MIN_DEATHS - 1):
        life.died(5.0 + age)  # early deaths (a bad IP) do not outvote the assumption yet
    assert life.estimate() == 60.0
    life.alive_at(95.0)
    assert life.estimate() == 95.0
    life.alive_at(500.0)
    assert life.estimate() == 200.0  # never beyond what an IP is kept at most (ip_ttl)


def test_more_ips_needed_compares_capacity_with_the_work_waiting() -> None:
    assert more_ips_needed(300, 4 * 40.0)
    assert not more_ips_needed(300, 9 * 40.0)
    assert not more_ips_needed(0, 0.0)


@dataclass
class Held:
    """A worker's slot as the crew reads it."""

    current: Proxy | None = None

    @property
    def live(self) -> bool:
        return self.current is not None


def crew_with(pages: int, *, rate: float = 1.0, burst: int = 5, life_s: float = 60.0
              ) -> tuple[Crew, LocalTaskQueue]:
    settings = load_settings({"proxy": "api", "pacing": "learn", "ip_life": life_s, "ip_ttl": 300.0,
                              "proxy_api_url": "http://127.0.0.1:1/get"}, env={},
                             config_path=None)
    learner = Learner(Allowance(rate=rate, burst=burst, rate_refuted=rate * 1.05,
                                burst_refuted=burst + 1), probe_bans=0)
    rate_ctl = RateController(PacingConfig.of(settings), learner)
    tasks = LocalTaskQueue()
    for i in range(pages // 100):
        tasks.put(Task(0, Board(f"BK{i:04d}", f"b{i}", "concept"), 0.0))
    sizes = {f"BK{i:04d}": 100 for i in range(pages // 100)}  # one page each
    crew = Crew(settings, tasks, rate_ctl, sizes, lambda: False)
    return crew, tasks


def test_the_crew_admits_ips_until_their_allowance_covers_the_work() -> None:
    # 1,000 pages; one fresh IP serves 5 + 1/s x 60 s (its life) = 65 of them
    crew, _ = crew_with(100_000)
    slots = [Held() for _ in range(40)]
    for i, slot in enumerate(slots):
        crew.join(i, slot)
    admitted = [i for i in range(40) if crew.admit(i, now=0.0)]
    assert len(admitted) == 16  # IPs needed = 1,000 / 65, rounded up
    assert not crew.admit(39, now=0.0)


def test_held_ips_count_for_what_is_left_of_their_life() -> None:
    # 130 pages; two IPs extracted at t=0 of a 60-s life, paced at 1/s, horizon 60 s
    def crew_at(now: float) -> bool:
        crew, _ = crew_with(13_000)
        for i in range(2):
            crew.join(i, Held(Proxy(f"ip{i}", None, 1e9, born=0.0)))
        crew.join(2, Held())
        return crew.admit(2, now=now)

    assert crew_at(0.0)  # 2 x 60 = 120 < 130: a third IP is needed
    assert crew_at(50.0)  # 2 x 10 s left = 20 < 130
    crew, _ = crew_with(5_000)  # 50 pages: 120 covers them
    for i in range(2):
        crew.join(i, Held(Proxy(f"ip{i}", None, 1e9, born=0.0)))
    crew.join(2, Held())
    assert not crew.admit(2, now=0.0)


def test_without_a_learner_every_worker_takes_an_ip() -> None:
    settings = load_settings({"proxy": "api", "pacing": "fixed",
                              "proxy_api_url": "http://127.0.0.1:1/get"}, env={},
                             config_path=None)
    crew = Crew(settings, LocalTaskQueue(), RateController(PacingConfig.of(settings)), {},
                lambda: False)
    crew.join(0, Held())
    assert crew.admit(0, now=0.0)


def test_callers_arriving_together_share_one_extraction_call() -> None:
    src = ScriptedSource(pause=0.3)  # the first call is in flight while the rest arrive
    pm = manager(src, batch=20, demand_sized=True)
    go = threading.Barrier(10)
    got: list[str] = []

    def take() -> None:
        go.wait()
        got.append(pm.acquire().key)

    threads = [threading.Thread(target=take) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 10
    assert len(src.calls) <= 2  # not one call per caller
    assert pm.stats().extracted == 10


def test_a_probe_waiting_for_a_fresh_ip_gets_one_extra_once_per_quiet_spell() -> None:
    """Every IP held covers the work, so no fresh IP would come while they live, and the
    probe waits for one (a rate probe needs an identity's history from fresh): the crew
    takes one extra IP for it, and no second one until the prober had time to claim it
    (10 proven spacings)."""
    crew, _ = crew_with(5_000)  # 50 pages: the two held IPs' 120 cover them
    learner = crew.rate.learner
    assert learner is not None
    for i in range(2):
        crew.join(i, Held(Proxy(f"ip{i}", None, 1e9, born=0.0)))
    for i in (2, 3):
        crew.join(i, Held())
    assert not crew.admit(2, now=0.0)  # nothing probed (probe_bans 0): nothing extra
    learner.probe, learner.value, learner.prober = "rate", 2.0, None
    assert learner.wants_prober()
    assert crew.admit(2, now=1.0)  # one extra IP, for the probe alone
    assert not crew.admit(3, now=5.0)  # within 10 s (10 spacings at 1/s): not another
    assert crew.admit(3, now=11.5)  # the probe is still waiting: another chance


def test_young_holders_count_at_the_young_rate() -> None:
    """Two IPs taken at t=0, a 60-s horizon: at the young rate (1/s to 60 s) they serve 120
    pages, enough for 80; at the rate for any age (0.5/s) only 60, and a third is taken."""
    def admits(young: float) -> bool:
        crew, _ = crew_with(8_000, rate=0.5)
        learner = crew.rate.learner
        assert learner is not None
        learner.allowance = replace(learner.allowance, young_rate=young, young_span=60.0)
        for i in range(2):
            crew.join(i, Held(Proxy(f"ip{i}", None, 1e9, born=0.0)))
        crew.join(2, Held())
        return crew.admit(2, now=0.0)

    assert admits(0.0) and not admits(1.0)
