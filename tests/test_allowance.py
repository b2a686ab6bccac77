"""The learner of the allowance, stepped with a fake clock over scripted upstream rules.

A tiny rule (token bucket, sliding window, concurrency cap) stands for the upstream; each
test drives the learner as the worker does (reserve, answered / failed, banned) and checks it
settles below the limit and backs off on every ban signal. No sockets, no sleeping.
"""

from __future__ import annotations

from collections import deque

import pytest

from boardsync.allowance import Allowance, decayed
from boardsync.evidence import (
    burst_shown,
    next_probe,
    probe_value,
    rate_followed,
    rate_shown,
    wait_for,
)
from boardsync.learner import Learner
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
            learner.released(key)
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


def test_rate_shown_is_a_lower_bound_from_one_history() -> None:
    """k admitted over d seconds with at most B of them the burst's: (k - B) / d."""
    assert rate_shown(61, 60.0, 11) == pytest.approx(50 / 60)
    assert rate_shown(10, 5.0, 11) == 0.0  # all of it could have been the burst
    assert rate_shown(5, 0.0, 1) == 0.0


def test_burst_shown_takes_the_refill_off_a_sequential_burst() -> None:
    """8 requests one after another over 2.8 s at a refill of at most 1.09/s show 5, not 8."""
    assert burst_shown(8, 2.8, 1.09) == 5
    assert burst_shown(8, 0.0, 1.09) == 8
    assert burst_shown(3, 1.0, 0.0) == 0  # no upper bound on the rate: nothing shown


def test_only_one_identity_runs_above_the_proven_allowance() -> None:
    """A probe is carried by one fresh identity; every other one is paced at proven values,
    so a probe that is too fast costs one IP, not one per worker."""
    learner = Learner(Allowance(rate=1.0, burst_refuted=12), probe_bans=5)  # burst bounded
    assert learner.probe == "rate" and learner.value == 2.0
    for key in ("a", "b", "c"):
        assert learner.reserve(key, 0.0) == 0.0
        learner.answered(key, 0.1)
    assert learner.prober == "a"
    assert learner.reserve("a", 0.5) == 0.0  # at the probe's 2/s
    assert learner.reserve("b", 0.5) > 0  # at the proven 1/s
    learner.released("a")  # its IP expired: the next fresh identity carries the probe
    assert learner.prober is None
    learner.reserve("d", 1.0)
    assert learner.prober == "d"


def test_a_ban_off_the_prober_does_not_refute_the_probe() -> None:
    learner = Learner(Allowance(rate=1.0, burst=2), probe_bans=5)
    learner.reserve("a", 0.0)  # the prober
    learner.reserve("b", 0.0)
    learner.answered("b", 0.1)
    learner.failed("b", 0.2)
    learner.banned("b", 0.2)  # within the proven burst: the burst, not the probed rate
    assert learner.allowance.rate_refuted == 0.0
    assert learner.allowance.burst == 1 and learner.spent == 0


def test_the_rate_rises_with_the_probers_history_and_the_probe_follows() -> None:
    """A prober paced at 2/s for about 60 s without a ban shows (121 - 11) / 60 = 1.83/s,
    within 10 % of the probe: the proven rate rises to it, the next prober probes from there.
    (A burst bounded at 11 by an earlier burst probe: B = 11.)"""
    learner = Learner(Allowance(rate=1.0, burst_refuted=12), probe_bans=5)
    t = 0.0
    while (t == 0.0 or learner.prober == "a") and t < 120.0:  # until the probe is shown
        assert learner.reserve("a", t) == 0.0
        learner.answered("a", t + 0.05)
        t += 0.5
    assert 2.0 / 1.1 <= learner.allowance.rate <= (121 - 11) / 60.0
    assert 55.0 <= t <= 62.0  # (k - 11) / d >= 2 / 1.1 takes d of about 58 s
    learner.released("a")
    learner.reserve("b", 61.0)
    assert learner.prober == "b" and learner.value == pytest.approx(2 * learner.allowance.rate)


def test_a_sequential_burst_is_proven_only_as_far_as_the_refill_allows() -> None:
    """Burst 8 spent one request after another at 0.4 s each, the rate refuted at 1.09/s:
    5 shown (the refill helped), so the burst is 5 and not probed past it."""
    learner = Learner(Allowance(rate=1.0, rate_refuted=1.09, burst=4), probe_bans=5)
    assert learner.probe == "burst" and learner.value == 8
    for i in range(8):
        t = 0.4 * i
        assert learner.reserve("a", t) == 0.0
        learner.answered("a", t + 0.35)
    a = learner.allowance
    assert a.burst == 5 and a.burst_closed and next_probe("burst", a) is None
    assert a.burst_refuted == 0  # no ban bounds it: a larger burst may still hide


def test_closing_a_burst_keeps_the_bound_a_ban_set_for_the_rates_evidence() -> None:
    """A ban bounded the burst at 11 (the 12th refused); bisected to 8 and sent request
    after request only 5 are shown, so it is closed at 5. No ban refuted 6, so the bound
    the rate's evidence allows for stays 11: with 5 instead, 15 requests in 3 s would
    "prove" (15 - 5) / 3 = 3.3/s, twice a true 1.67/s behind a burst of 10 (drawn world-9
    proved 3.28 against a true 1.65 that way)."""
    learner = Learner(Allowance(rate=1.0, rate_refuted=1.09, burst=4, burst_refuted=12),
                      probe_bans=5)
    assert learner.probe == "burst" and learner.value == 8
    for i in range(8):
        t = 0.4 * i
        assert learner.reserve("a", t) == 0.0
        learner.answered("a", t + 0.35)
    a = learner.allowance
    assert a.burst == 5 and a.burst_closed and a.burst_refuted == 12
    assert next_probe("burst", a) is None


def _at_proven_pace(learner: Learner, key: str, t: float, requests: int) -> float:
    """``key`` sends ``requests`` at the learner's pace from ``t``; returns the time after."""
    for _ in range(requests):
        while (wait := learner.reserve(key, t)) > 0:
            t += wait
        t += 0.1
        learner.answered(key, t)
    return t


def test_a_few_stray_bans_at_the_proven_rate_do_not_withdraw_it() -> None:
    """Noise (a board's data:null judged a ban) on 3 of 40 identities paced at a proven
    rate: counted, not believed; the rate stays."""
    learner = Learner(Allowance(rate=1.0, rate_refuted=1.05, burst=5, burst_refuted=6),
                      probe_bans=0)
    t = 0.0
    for i in range(40):
        key = f"ip{i}"
        stray = i % 13 == 5
        t = _at_proven_pace(learner, key, t, 15 if stray else 30)
        if stray:  # a stray ban mid-life
            while (wait := learner.reserve(key, t)) > 0:
                t += wait
            learner.failed(key, t + 0.1)
            learner.banned(key, t + 0.1)
    assert learner.allowance.rate == 1.0
    assert learner.allowance.bans == 3


def test_a_limit_that_fell_is_believed_after_the_first_few_bans() -> None:
    """The stored rate is above the upstream's new limit: nearly every identity is banned
    mid-life, and the rate is withdrawn after the second one."""
    learner = Learner(Allowance(rate=1.0, rate_refuted=1.05, burst=5, burst_refuted=6),
                      probe_bans=0)
    t = _at_proven_pace(learner, "ip0", 0.0, 20)  # the day's first IP lived its life
    for i in range(1, 3):
        key = f"ip{i}"
        t = _at_proven_pace(learner, key, t, 8 + i)
        learner.failed(key, t)
        learner.banned(key, t)
    assert learner.allowance.rate < 1.0 and not learner.allowance.windows


def test_bought_ips_probe_the_rate_first_and_the_burst_once_a_rate_bounds_its_refill(
        ) -> None:
    """Bought IPs probe the rate first (the young follow the prober's schedule, which needs
    no burst bound); the burst comes once a ban refuted a rate, which bounds the refill that
    helps a burst sent request after request. Without that bound a burst would be probed in
    one jump to proven + 10, the most section 13's reports say one may hide."""
    learner = Learner(Allowance(rate=1.0), probe_bans=5)
    assert (learner.probe, learner.value) == ("rate", 2.0)
    learner = Learner(Allowance(rate=1.0, rate_refuted=1.05), probe_bans=5)
    assert (learner.probe, learner.value) == ("burst", 2.0)  # the rate is known closely
    assert probe_value("burst", Allowance(rate=1.0), shared=False, deferred=False) == 11.0
    assert probe_value("burst", Allowance(rate=1.0, burst_refuted=6), shared=False,
                       deferred=False) is None  # bisected only once a rate bounds it


def test_a_burst_refused_within_its_probe_is_at_most_what_was_admitted() -> None:
    """A burst probe of 8 refused after 5 admitted back to back: at most 5 (one IP spent)."""
    learner = Learner(Allowance(rate=1.0, rate_refuted=1.05, burst=4), probe_bans=5)
    assert (learner.probe, learner.value) == ("burst", 8.0)
    rule = Rule(rate=1.0, burst=5)
    t = 0.0
    while True:
        assert learner.reserve("a", t) == 0.0
        if not rule.admit(t):
            learner.failed("a", t + 0.05)
            learner.banned("a", t + 0.05)
            break
        learner.answered("a", t + 0.05)
        t += 0.05
    assert learner.allowance.burst_refuted == 6  # 5 admitted, the 6th refused
    assert learner.allowance.burst == 4  # nothing proven above what was
    assert learner.probe == "burst" and learner.value == 5.0  # bisecting between


def test_a_rate_is_never_proven_above_the_limit_when_requests_travel_unevenly() -> None:
    """The upstream judges arrivals, the client sees starts and answers. When a later
    request travels longer than the first, the upstream's span is longer than the starts'
    and a rate counted over the starts exceeds the true one (here: two requests whose starts
    are 0.26 s apart "prove" 3.8/s against a limit of 2/s); counted up to the last answer it
    cannot, since each arrival lies between its start and its answer."""
    learner = Learner(Allowance(rate=1.9, burst=1, burst_refuted=2), probe_bans=10)
    rule, t, n, highest = Rule(rate=2.0, burst=1), 0.0, 0, 0.0
    key, sent = "ip0", 0
    while n < 200:
        wait = learner.reserve(key, t)
        if wait > 0:
            t += wait
            continue
        transit = 0.0 if sent == 0 else 0.5  # an identity's later requests travel longer
        n, sent = n + 1, sent + 1
        if rule.admit(t + transit):
            learner.answered(key, t + transit + 0.05)
        else:
            learner.failed(key, t + transit)
            learner.banned(key, t + transit)
            key, rule, sent = f"ip{n}", Rule(rate=2.0, burst=1), 0
        highest = max(highest, learner.allowance.rate)
        t += 0.01
    assert highest <= 2.0, highest



# -- the rate followed for an identity's life ------------------------------------------------


def crowd(learner: Learner, rule_of, *, seconds: float, born_every: float = 5.0,
          life: float = 60.0, step: float = 0.05) -> dict[str, int]:
    """Bought IPs on a fake clock: a fresh identity every ``born_every`` s, each living
    ``life`` s (a banned one is replaced at once), every one asking as fast as the learner
    lets it. Returns the bans of the prober and of the others."""
    learner.life = lambda: life
    live: dict[str, tuple[float, Rule]] = {}
    bans = {"prober": 0, "others": 0}
    t, n, next_birth = 0.0, 0, 0.0
    while t < seconds:
        if t >= next_birth:
            live[f"ip{n}"], n, next_birth = (t, rule_of()), n + 1, next_birth + born_every
        for key, (born, rule) in list(live.items()):
            if t - born >= life:
                learner.released(key)
                del live[key]
                continue
            if learner.reserve(key, t) > 0:
                continue
            if rule.admit(t):
                learner.answered(key, t + 0.01)
                continue
            bans["prober" if key == learner.prober else "others"] += 1
            learner.failed(key, t + 0.01)
            learner.banned(key, t + 0.01)
            del live[key]
            live[f"ip{n}"], n = (t, rule_of()), n + 1
        t = round(t + step, 6)
    return bans


def test_a_rate_followed_for_a_life_is_proven_for_identities_that_young() -> None:
    """Burst 5 hides any rate the first life could show for all ages ((k - 10) / d), but
    the prober's own schedule, lived unbanned for most of an IP's life, is safe for any
    identity no older: the young follow it at the probe, the old stay at the start."""
    learner = Learner(Allowance(rate=0.5), probe_bans=1)
    assert (learner.probe, learner.value) == ("rate", 1.0)
    bans = crowd(learner, lambda: Rule(rate=1.2, burst=5), seconds=150.0)
    a = learner.allowance
    assert bans["others"] == 0 and bans["prober"] <= 1  # the next probe (2/s) may be
    assert 0.9 <= a.young_rate <= 1.2 and a.young_span >= 45.0  # 3/4 of the life, unbanned
    assert a.rate < a.young_rate and a.rate_at(a.young_span + 1) == a.rate


def test_followers_of_a_prober_that_is_banned_are_never_banned() -> None:
    """A probe too fast for the true rate (1/s against 0.5/s, a burst of 10 hiding it for
    20 requests): the prober is banned, but every identity that followed it was younger
    at each of its requests than the prober had been, so none is; the probe is refuted."""
    learner = Learner(Allowance(rate=0.5), probe_bans=1)
    assert (learner.probe, learner.value) == ("rate", 1.0)
    bans = crowd(learner, lambda: Rule(rate=0.5, burst=10), seconds=120.0, born_every=2.0)
    assert bans["prober"] == 1 and bans["others"] == 0
    a = learner.allowance
    assert a.rate_refuted == 1.0 and a.rate <= 0.5 and a.young_rate <= 1.0


def test_an_identity_older_than_the_proof_is_paced_at_the_rate_for_any_age() -> None:
    learner = Learner(Allowance(rate=0.5, young_rate=1.0, young_span=10.0), probe_bans=0)
    t, starts = 0.0, []
    while t < 20.0:
        wait = learner.reserve("a", t)
        if wait > 0:
            t += wait
            continue
        starts.append(t)
        learner.answered("a", t)
    gaps = [round(b - a, 3) for a, b in zip(starts, starts[1:], strict=False)]
    assert set(gaps[:9]) == {1.0}  # young: one a second
    assert gaps[-1] == 2.0  # past 10 s: one every 2 s


def test_rate_followed_is_the_slowest_average_from_the_first_request() -> None:
    assert rate_followed([0.0, 1.0, 2.0, 3.0], 1, 3.2) == pytest.approx(3 / 3.2)
    assert rate_followed([0.0, 0.1, 0.2, 10.0], 2, 10.0) == pytest.approx(2 / 10.0)
    assert rate_followed([5.0], 1, 5.1) == 0.0  # one request shows no rate


def test_a_rate_proven_for_young_identities_counts_per_life_by_age() -> None:
    a = Allowance(rate=0.5, burst=2, young_rate=1.0, young_span=30.0)
    assert a.per_life(20.0) == 2 + 20.0
    assert a.per_life(60.0) == 2 + 30.0 + 0.5 * 30.0
    assert Allowance(rate=1.0, burst=2).per_life(60.0) == 62.0


def test_the_leader_goes_on_past_its_proof_and_a_faster_prober_takes_over() -> None:
    """Far below a generous limit (3/s, burst 3) the probe moves on once its prober sent
    2 (most + 1) requests unbanned, not after an IP's life: that prober leads on at its
    rate, extending the young's proof, while the next probes twice as fast and takes the
    lead once it is as fast and as old. Within 150 s of 110-s IPs the young go at 2/s or
    more, followers are never banned, and only probes are."""
    learner = Learner(Allowance(rate=0.5), probe_bans=5)
    bans = crowd(learner, lambda: Rule(rate=3.0, burst=3), seconds=150.0, life=110.0)
    a = learner.allowance
    assert bans["prober"] + bans["others"] <= learner.spent <= 5
    assert 2.0 <= a.young_rate <= 3.0 and a.rate_refuted > a.young_rate


def test_bans_at_the_assumed_start_withdraw_it_at_the_second() -> None:
    """The start (one request per req_delay_max) is an assumption: the second ban at it is
    believed, however many identities started (a rate an answer showed waits for a quarter
    of them): one ban may still be a board's own data:null."""

    def sent(learner: Learner, key: str, t: float, n: int) -> float:
        for _ in range(n):
            while (wait := learner.reserve(key, t)) > 0:
                t += wait
            learner.answered(key, t)
        return t

    for assumed in (True, False):
        learner = Learner(Allowance(rate=0.5), probe_bans=0, assumed=assumed)
        for i in range(10):  # ten identities started
            sent(learner, f"a{i}", 10.0 * i, 5)
        for n, key in enumerate(("b", "c"), 1):  # two refused after 2: not at a new high
            t = sent(learner, key, 100.0 * n, 2)
            learner.failed(key, t + 2.0)
            learner.banned(key, t + 2.0)
            assert learner.allowance.rate == 0.5 or n == 2  # the first is not believed
        assert (learner.allowance.rate < 0.5) is assumed
        assert learner.allowance.windows == ()  # neither is taken for a window


def test_served_between_counts_each_age_at_its_rate() -> None:
    a = Allowance(rate=0.5, young_rate=1.0, young_span=30.0)
    assert a.served_between(20.0, 40.0) == 10.0 + 5.0
    assert a.served_between(35.0, 45.0) == 5.0  # all past the young span
    assert Allowance(rate=0.5).served_between(0.0, 10.0) == 5.0


def test_a_ban_seen_late_is_judged_by_the_pacing_its_first_failure_was_sent_at() -> None:
    """A soft ban's first answers can look like a glitch (a null page the pager asks again)
    and be judged a ban requests later, after the rate that caused it was withdrawn: the
    ban counts, but does not withdraw the new rate again (it was not paced by it)."""

    def one_more(learner: Learner, key: str, t: float) -> float:
        while (wait := learner.reserve(key, t)) > 0:
            t += wait
        return t + 0.1

    learner = Learner(Allowance(rate=0.5), probe_bans=0, assumed=True)
    late = ("x", "y")
    t = 0.0
    for key in late:  # admitted twice, then refused: not yet seen as a ban
        t = _at_proven_pace(learner, key, t, 2)
        t = one_more(learner, key, t)
        learner.failed(key, t)
    for key in ("b", "c"):  # two bans at the assumed start: withdrawn
        t = _at_proven_pace(learner, key, t, 2)
        t = one_more(learner, key, t)
        learner.failed(key, t)
        learner.banned(key, t)
    assert learner.allowance.rate == 0.25
    for key in late:  # asked once more (paced at 0.25), refused again, now judged banned
        t = one_more(learner, key, t)
        learner.failed(key, t)
        learner.banned(key, t)
    assert learner.allowance.rate == 0.25  # not withdrawn again for bans 0.5 caused
    assert learner.allowance.bans == 4


def test_a_refuted_probe_leaves_the_start_assumed() -> None:
    """A probe above the start refuted by a ban says nothing of the start itself: it is
    still an assumption, so the second ban at it is believed however many identities
    started since (drawn world-10: the first probe's ban had made the start count as shown,
    and 14 IPs were banned at it before a quarter of those started had been)."""
    learner = Learner(Allowance(rate=0.5), probe_bans=1, assumed=True)
    t = _at_proven_pace(learner, "prober", 0.0, 3)  # the first fresh identity probes 1.0
    learner.failed("prober", t)
    learner.banned("prober", t)
    assert learner.allowance.rate_refuted == 1.0 and learner.allowance.rate == 0.5
    for i in range(20):  # twenty identities started at the start
        _at_proven_pace(learner, f"a{i}", t + i, 2)
    for key in ("b", "c"):  # refused after 2: below the highest count, so not a window
        t = _at_proven_pace(learner, key, t + 30.0, 2)
        learner.failed(key, t)
        learner.banned(key, t)
    assert learner.allowance.rate < 0.5


def test_a_probe_refuted_meanwhile_does_not_excuse_a_ban_at_the_proven_rate() -> None:
    """Only a lowered allowance excuses bans paced before it: a probe refuted between a
    ban's first failure and its judgment (a soft ban is judged a request later) changed
    nothing the identity was paced by, so its ban is weighed like any other."""
    learner = Learner(Allowance(rate=1.0), probe_bans=1)
    t = _at_proven_pace(learner, "p", 0.0, 2)  # the first fresh identity probes 2.0
    t = _at_proven_pace(learner, "x", t, 2)  # x at the proven 1.0
    while (wait := learner.reserve("x", t)) > 0:
        t += wait
    learner.failed("x", t + 0.1)  # its third request failed: a ban, judged later
    learner.failed("p", t + 0.2)
    learner.banned("p", t + 0.2)  # the probe is refuted meanwhile
    assert learner.allowance.rate_refuted == 2.0 and learner.unexplained == 0
    learner.banned("x", t + 1.0)
    assert learner.unexplained == 1 and learner.allowance.bans == 2


def test_an_answer_that_shows_nothing_ends_a_bans_wait_but_proves_nothing() -> None:
    """A shared identity banned, then asked again: a ``data: null`` answer is an answer (the
    wait is over, other requests may go) but no admission (it counts for no evidence)."""
    learner = Learner(Allowance(rate=1.0, rate_refuted=1.05), probe_bans=0, shared=True)
    t = _at_proven_pace(learner, "direct", 0.0, 5)
    learner.failed("direct", t)
    learner.banned("direct", t)
    assert learner.reserve("direct", t + 1.0) > 0  # banned: the next ask waits
    t += 20.0
    assert learner.reserve("direct", t) == 0.0  # the ban's retry goes
    learner.answered("direct", t + 0.1, shown=False)
    assert learner.max_count == 5  # the null answer proved nothing
    assert learner.reserve("direct", t + 2.0) == 0.0  # but the wait is over
