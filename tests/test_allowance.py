"""The learner of the allowance, stepped with a fake clock over scripted upstream rules.

A tiny rule (token bucket, sliding window, concurrency cap) stands for the upstream; each
test drives the learner as the worker does (reserve, answered / failed, banned) and checks it
settles below the limit and backs off on every ban signal. No sockets, no sleeping.
"""

from __future__ import annotations

from collections import deque

import pytest

from boardsync.allowance import Allowance, Learner, decayed, next_probe, wait_for
from boardsync.store.allowance import AllowanceStore


class Rule:
    """One identity's upstream rule: bucket (rate, burst), windows, a ban refusing all."""

    def __init__(self, rate: float, burst: float, windows: tuple[tuple[int, float], ...] = ()
                 ) -> None:
        self.rate, self.burst, self.windows = rate, burst, windows
        self.tokens, self.stamp = burst, None
        self.admitted: deque[float] = deque()
        self.banned = False

    def admit(self, t: float) -> bool:
        if self.banned:
            return False
        if self.stamp is not None:
            self.tokens = min(self.burst, self.tokens + (t - self.stamp) * self.rate)
        self.stamp = t
        broken = self.tokens < 1 or any(
            len(self.admitted) >= n and self.admitted[-n] > t - w for n, w in self.windows)
        if broken:
            self.banned = True
            return False
        self.tokens -= 1
        self.admitted.append(t)
        return True


def drive(learner: Learner, rule_of, *, requests: int, latency: float = 0.1,
          life: float = 60.0) -> tuple[int, float]:
    """One worker, fresh identities (an extraction API): a banned or expired IP is replaced.
    Returns (bans, simulated seconds)."""
    t, bans, ip, born = 0.0, 0, 0, 0.0
    rule = rule_of()
    done = 0
    while done < requests:
        key = f"ip{ip}"
        if t - born >= life:
            ip, born, rule = ip + 1, t, rule_of()
            continue
        wait = learner.reserve(key, t)
        if wait > 0:
            t += wait
            continue
        t += latency
        if rule.admit(t - latency):
            learner.answered(key, t)
            done += 1
        else:
            learner.failed(key, t)
            learner.banned(key, t)
            bans += 1
            ip, born, rule = ip + 1, t, rule_of()
    return bans, t


def test_rate_converges_below_the_limit_and_a_ban_refutes_the_probe() -> None:
    learner = Learner(probe_bans=10)
    bans, _ = drive(learner, lambda: Rule(rate=2.0, burst=1), requests=3000)
    a = learner.allowance
    assert a.rate <= 2.0  # never settles above the limit
    assert a.rate >= 2.0 / 1.5  # and within reach of it
    assert bans <= learner.probe_bans + 2


def test_burst_is_learned_below_the_bucket() -> None:
    learner = Learner(Allowance(rate=0.25, rate_refuted=0.26), probe_bans=10)
    drive(learner, lambda: Rule(rate=0.3, burst=6), requests=800, latency=0.05)
    assert 2 <= learner.allowance.burst <= 6


def test_window_is_learned_from_a_ban_with_nothing_probed() -> None:
    learner = Learner(Allowance(rate=1.0, rate_refuted=1.05, burst=1, burst_refuted=2),
                      probe_bans=0)
    bans, _ = drive(learner, lambda: Rule(rate=5.0, burst=5, windows=((20, 600.0),)),
                    requests=200, life=300.0)
    assert learner.allowance.windows, "the window ban became a learned window"
    n, w = learner.allowance.windows[0]
    assert n <= 20 and w >= 19.0
    assert bans <= 5  # each window ban is learned; fresh IPs then stop at the window


def test_concurrency_waits_instead_of_overspending_a_shared_identity() -> None:
    learner = Learner(Allowance(rate=100.0, burst=100), probe_bans=0, shared=True)
    assert learner.reserve("direct", 0.0) == 0.0
    assert learner.reserve("direct", 0.0) > 0  # a second worker waits: 1 in flight allowed
    learner.answered("direct", 0.1)
    assert learner.reserve("direct", 0.1) == 0.0


def test_concurrency_probe_is_refuted_by_a_ban() -> None:
    learner = Learner(Allowance(rate=100.0, rate_refuted=101.0, burst=100,
                                burst_refuted=101), probe_bans=3, shared=True)
    assert learner.probe == "concurrency" and learner.value == 2
    assert learner.reserve("direct", 0.0) == 0.0
    assert learner.reserve("direct", 0.0) == 0.0  # two in flight under the probe
    learner.failed("direct", 0.1)
    learner.banned("direct", 0.1)
    assert learner.allowance.concurrency_refuted == 2
    assert learner.allowance.concurrency == 1


@pytest.mark.parametrize("signal", ["close", "403", "null_data", "captcha"])
def test_every_ban_signal_backs_off(signal: str) -> None:
    """The worker reports any ban signal the policy names as one ``banned`` call: the probed
    value is refuted and the identity waits before it is asked again."""
    learner = Learner(probe_bans=5, shared=True)
    probed = learner.value
    assert learner.reserve("direct", 0.0) == 0.0
    learner.answered("direct", 0.1)  # past its burst of 1: the next request tests the rate
    assert learner.reserve("direct", 0.1 + 1 / probed) == 0.0
    learner.failed("direct", 1.2)
    learner.banned("direct", 1.2)
    assert learner.allowance.rate_refuted == probed
    assert learner.current()[0] < probed
    assert learner.reserve("direct", 1.3) > 10  # a banned shared identity rests


def test_wait_for_is_pure_arithmetic() -> None:
    learner = Learner(Allowance(rate=1.0, burst=1), probe_bans=0)
    learner.reserve("a", 10.0)
    ident = learner._ids["a"]
    assert wait_for(ident, 1.0, 1.0, (), 1, 10.4) == pytest.approx(0.6)
    assert wait_for(ident, 1.0, 1.0, ((1, 5.0),), 5, 11.0) == pytest.approx(4.001)


def test_next_probe_doubles_then_bisects() -> None:
    assert next_probe("rate", Allowance(rate=1.0)) == 2.0
    assert next_probe("rate", Allowance(rate=1.0, rate_refuted=2.0)) == pytest.approx(2 ** 0.5)
    assert next_probe("rate", Allowance(rate=1.0, rate_refuted=1.05)) is None
    assert next_probe("burst", Allowance(burst=4, burst_refuted=8)) == 6


def test_decay_halves_the_excess_and_forgets_old_refutations() -> None:
    a = Allowance(rate=2.0, burst=9, rate_refuted=2.2, windows=((10, 60.0),))
    assert decayed(a, 0) == a
    day = decayed(a, 86400.0)
    assert day.rate == pytest.approx(1.25) and day.burst == 5
    assert day.rate_refuted == 0 and day.windows == ()


def test_the_allowance_survives_a_restart(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/a.db"
    saved = Allowance(rate=1.5, burst=4, windows=((30, 120.0),), learned_at=1000.0)
    AllowanceStore(url, "push2").save(saved.to_json(), saved.learned_at)
    found = AllowanceStore(url, "push2").load()
    assert found is not None
    assert Allowance.from_json(found[0]) == saved and found[1] == 1000.0
    assert AllowanceStore(url, "other").load() is None
