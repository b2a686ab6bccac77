"""``bench/lower_bound.py``: the time and IP bounds for every rule shape, against hand
arithmetic (docs/BENCHMARKS.md) and against the simulator's own anti-bot decisions."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from boardsync.sim import load_scenario
from boardsync.sim.antibot import AntiBot

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from lower_bound import (  # noqa: E402 - bench/ is not a package
    SHAPES,
    Rules,
    ip_lower_bound,
    shape_rows,
    supply,
    time_lower_bound,
)

R = 905  # the reference sync's pages


@pytest.mark.parametrize(("n", "t"), [(14, 59.64), (20, 40.25), (24, 33.04), (30, 25.83),
                                      (48, 15.35), (200, 8.05)])
def test_reference_figures_quoted_in_the_docs(n: int, t: float) -> None:
    assert time_lower_bound(R, n, Rules()) == pytest.approx(t, abs=0.005)


def test_reference_per_ip_and_ip_bound() -> None:
    rules = Rules()
    assert rules.per_ip == 65 and rules.served(40.0) == 45 and rules.bucket_rate == 1.0
    assert ip_lower_bound(R, rules) == 14


def test_rules_from_the_reference_scenario() -> None:
    assert Rules.from_scenario(load_scenario("reference")) == Rules(latency=0.35)


def test_short_ban_pays_for_the_bucket() -> None:
    """A ban refills the bucket: burst 5 per 2 s ban beats 1/s (2.5/s); per 60 s it does not."""
    assert Rules(ban_s=2.0).bucket_rate == 2.5 and Rules(ban_s=60.0).bucket_rate == 1.0
    assert Rules(ban_s=2.0).per_ip == 5 + 2.5 * 60


def test_window_is_a_staircase_ending_with_the_ip() -> None:
    w = Rules(rate=math.inf, windows=((200, 60.0),), lifetime=150.0)
    assert [w.served(t) for t in (0.0, 59.99, 60.0, 119.99, 120.0)] == [200, 200, 400, 400, 600]
    assert w.per_ip == 600  # requests at 0, 60, 120 all before the IP's end at 150
    assert Rules(rate=math.inf, windows=((200, 60.0),)).per_ip == 200  # life 60: one span


def test_several_windows_and_a_bucket_take_the_smallest() -> None:
    both = Rules(rate=5.0, burst=10.0, windows=((200, 60.0), (300, 300.0)), lifetime=3600.0)
    assert both.served(0.0) == 10  # the bucket's burst
    assert both.served(100.0) == 300  # 5/s would give 510, 200/min 400, 300/5 min 300
    assert both.per_ip == 300 * 12
    assert time_lower_bound(R, 1, both) == pytest.approx(900.0)  # 905 > 900 at t = 600


def test_concurrency_cap_is_littles_law() -> None:
    cap = Rules(rate=math.inf, cap=10, latency=0.35)
    assert cap.served(0.0) == 10 and cap.served(0.35) == 20
    assert cap.served(35.0) == pytest.approx(10 / 0.35 * 35.0, abs=10)  # cap / latency per s
    assert time_lower_bound(R, 1, cap) == pytest.approx(90 * 0.35)  # 91 rounds of 10
    assert Rules(rate=math.inf, cap=10).per_ip == math.inf  # no latency: no bound from it


def test_no_rule_and_too_small_a_quota() -> None:
    free = Rules(rate=math.inf)
    assert ip_lower_bound(R, free) == 1 and time_lower_bound(R, 1, free) == 0.0
    assert time_lower_bound(R, 10, Rules(quota=10)) == math.inf  # 10 x 65 < 905
    assert ip_lower_bound(R, Rules(quota=10)) == 14


def test_supply_counts_only_ips_extracted_by_then() -> None:
    rules = Rules()
    assert supply(0.0, 40, rules) == 20 * 5  # the second call's 20 come at t = 2
    assert supply(2.0, 40, rules) == 20 * 7 + 20 * 5


def test_every_shape_has_finite_bounds() -> None:
    rows = shape_rows(R)
    assert [r[0] for r in rows] == [label for label, _ in SHAPES]
    for _, per_ip, n_lb, t_lb, times in rows:
        assert per_ip * n_lb >= R and math.isfinite(t_lb) and all(map(math.isfinite, times))


@pytest.mark.parametrize("windows", [((3, 10.0),), ((2, 1.0), (5, 10.0))])
def test_window_bound_is_what_the_simulator_admits(windows: tuple[tuple[int, float], ...]
                                                   ) -> None:
    """Sending as early as the simulator admits reaches ``served`` exactly, never more."""
    scn = load_scenario("clean").with_overrides(latency_median_s=0.0, rate_per_s=1e9,
                                                burst=1e9, windows=windows, ban_s=0.0)
    ab = AntiBot(scn, seed=1)
    rules = Rules(rate=math.inf, windows=windows, lifetime=40.0)
    admitted = 0
    for step in range(0, 400):  # every 0.1 s, ask as often as admitted, one refusal each
        t = step / 10
        while not ab.judge("ip", t, is_members=True).banned:
            admitted += 1
        assert admitted <= rules.served(t)
        if step % 10 == 0 and len(windows) == 1:
            assert admitted == rules.served(t)
