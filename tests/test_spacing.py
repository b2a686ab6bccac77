"""The spacing of extraction calls learned from the provider's answers (proxy/spacing.py).

Pure arithmetic first (what each served or refused gap teaches), then through the manager on
a fake clock with a scripted provider that refuses calls closer than its own interval, and
through the simulator's provider, whose refusal names its interval.
"""

from __future__ import annotations

import random

import pytest

from boardsync.errors import ExtractionThrottled
from boardsync.proxy import LeakyBucket, ProxyManager
from boardsync.proxy.spacing import FLOOR_DIVISOR, CallSpacing
from boardsync.proxy.values import ProxyEndpoint
from helpers import FakeClock


def test_halves_while_short_and_stops_at_the_first_refusal() -> None:
    sp = CallSpacing(2.0)
    assert sp.gap(short=True) == 2.0  # nothing served at a known gap yet
    sp.served(None)  # the first call has no gap
    sp.served(2.0)
    assert sp.gap(short=False) == 2.0 and sp.gap(short=True) == 1.0
    sp.served(1.0)
    sp.served(0.5)
    sp.refused(0.25)
    # refused at 0.25, served at 0.5: within 2x, so no more probing (each costs a refusal)
    assert sp.gap(short=True) == sp.gap(short=False) == 0.5
    assert sp.refusals == 1


def test_never_closer_than_the_start_without_probe() -> None:
    sp = CallSpacing(2.0, probe=False)
    sp.served(2.0)
    assert sp.gap(short=True) == 2.0
    sp.refused(2.0)  # stricter than 2 s: from there up, probe or not
    assert sp.gap(short=False) == 4.0


def test_a_stricter_provider_is_learned_from_above() -> None:
    sp = CallSpacing(2.0)
    sp.refused(2.0)
    assert sp.gap(short=False) == 4.0
    sp.refused(4.0)
    assert sp.gap(short=False) == 8.0
    sp.served(8.0)
    assert sp.gap(short=False) == 8.0
    # short: bisected between the refused 4 and the served 8? within 2x: stays
    assert sp.gap(short=True) == 8.0
    sp.served(9.0)  # a longer served gap teaches nothing new
    assert sp.served_s == 8.0


def test_a_refusal_at_the_served_gap_forgets_it() -> None:
    sp = CallSpacing(2.0)
    sp.served(1.0)
    sp.refused(1.5)  # the provider became stricter than the gap it served before
    assert sp.served_s is None and sp.gap(short=True) == 3.0
    sp.served(3.0)
    assert sp.gap(short=False) == 3.0


def test_bisects_between_a_far_refusal_and_a_served_gap() -> None:
    sp = CallSpacing(2.0)
    sp.refused(2.0)
    sp.served(8.0)  # e.g. served after a long idle stretch
    assert sp.refused_s == 2.0
    assert sp.gap(short=True) == pytest.approx(4.0)  # sqrt(2 x 8)
    assert sp.gap(short=False) == 8.0


def test_the_floor_bounds_halving() -> None:
    sp = CallSpacing(2.0)
    floor = 2.0 / FLOOR_DIVISOR
    gap = 2.0
    for _ in range(20):
        sp.served(gap)
        gap = sp.gap(short=True)
    assert gap == pytest.approx(floor) and sp.refusals == 0


def test_zero_interval_stays_zero() -> None:
    sp = CallSpacing(0.0)
    sp.served(0.0)
    assert sp.gap(short=True) == 0.0


class IntervalProvider:
    """A provider that serves one IP per call and refuses ("retry in `retry_s`") a call
    closer than `interval_s` to the last one it served; every call recorded on the clock."""

    def __init__(self, clock: FakeClock, interval_s: float, retry_s: float) -> None:
        self.clock, self.interval_s, self.retry_s = clock, interval_s, retry_s
        self.served: list[float] = []
        self.refused: list[float] = []

    def shared(self) -> None:
        return None

    def supply(self) -> None:
        return None

    def fetch(self, count: int) -> list[ProxyEndpoint]:
        now = self.clock.now()
        if self.served and now - self.served[-1] < self.interval_s:
            self.refused.append(now)
            raise ExtractionThrottled("too fast", retry_after=self.retry_s)
        self.served.append(now)
        return [ProxyEndpoint(f"10.1.0.{len(self.served)}", 8000, None)]


def test_manager_learns_a_shorter_spacing_when_batches_are_short() -> None:
    clock = FakeClock()
    prov = IntervalProvider(clock, interval_s=0.3, retry_s=1.0)
    pm = ProxyManager(prov, max_ips=50, ttl_s=60.0, bucket=LeakyBucket(2.0, clock=clock),
                      clock=clock, rng=random.Random(1), batch=5,
                      spacing=CallSpacing(2.0))
    for _ in range(10):
        pm.acquire()  # each call asks for 5 and is served 1: short
    gaps = [b - a for a, b in zip(prov.served, prov.served[1:])]
    # 2 s -> 1 -> 0.5 -> 0.25 refused (waits the provider's 1 s) -> 0.5 from then on
    assert gaps[:3] == pytest.approx([2.0, 1.0, 0.5])
    assert len(prov.refused) == 1 and prov.refused[0] - prov.served[3] == pytest.approx(0.25)
    assert gaps[3] == pytest.approx(1.25)  # the refusal's answer + the provider's 1 s
    assert gaps[4:] == pytest.approx([0.5] * (len(gaps) - 4))
    assert pm.stats().throttled_calls == 1


def test_manager_without_probe_never_calls_closer_than_the_interval() -> None:
    clock = FakeClock()
    prov = IntervalProvider(clock, interval_s=0.3, retry_s=1.0)
    pm = ProxyManager(prov, max_ips=50, ttl_s=60.0, bucket=LeakyBucket(2.0, clock=clock),
                      clock=clock, rng=random.Random(1), batch=5,
                      spacing=CallSpacing(2.0, probe=False))
    for _ in range(5):
        pm.acquire()
    gaps = [b - a for a, b in zip(prov.served, prov.served[1:])]
    assert gaps == pytest.approx([2.0] * 4) and prov.refused == []


def test_manager_lengthens_the_spacing_for_a_stricter_provider() -> None:
    clock = FakeClock()
    prov = IntervalProvider(clock, interval_s=7.0, retry_s=2.0)
    pm = ProxyManager(prov, max_ips=50, ttl_s=60.0, bucket=LeakyBucket(2.0, clock=clock),
                      clock=clock, rng=random.Random(1), batch=1, spacing=CallSpacing(2.0))
    for _ in range(8):
        pm.acquire()
    # refused at 2 and 4, served at 8: from then on every call is served at 8 s
    assert len(prov.refused) == 2
    gaps = [b - a for a, b in zip(prov.served, prov.served[1:])]
    assert gaps[1:] == pytest.approx([8.0] * (len(gaps) - 1))
