"""The anti-bot rules as pure decisions: simulated time is stepped exactly, nothing sleeps.

Bucket, each sliding window, several windows at once, the concurrency cap, ban expiry and the
ban signals; and a pin that the calibrated scenarios (no windows, no cap, ``close_or_403``)
meet exactly the verdicts they met before these rules existed.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from boardsync.errors import ConfigError
from boardsync.sim import Scenario, load_scenario
from boardsync.sim.antibot import AntiBot, Verdict

#: No latency, an unlimited bucket and no faults unless a test sets them.
PLAIN = {"latency_median_s": 0.0, "rate_per_s": 1e9, "burst": 1e9, "ban_s": 1.0}


def bot(**overrides: Any) -> AntiBot:
    return AntiBot(load_scenario("clean").with_overrides(**(PLAIN | overrides)), seed=3)


def verdicts(ab: AntiBot, times: list[float], who: str = "a") -> list[str]:
    """``ok`` / the broken rule (a new ban) / ``banned`` for one request at each time."""
    out = []
    for t in times:
        v = ab.judge(who, t, is_members=True)
        out.append(v.rule or "banned" if v.banned else "ok")
    return out


# -- the calibrated scenarios keep every draw and decision ---------------------------------

#: sha256 of the verdicts of a scripted 600-request, 3-identity timeline, computed from the
#: anti-bot code as it was before windows, caps and ban signals were added (commit 5c38a08).
PINNED = {
    ("reference", "slow"): "754f80fb185d6f46882d2b2f969d19cd580f75484cb595fd27439d9bc21627e8",
    ("reference", "fast"): "23c22aec7bbe475d1647d4f3f7096275cd69da9e567fa8b497150d8f9919eb7f",
    ("clean", "slow"): "8b1cac0f7c8553c954b91f504bd38d1ac16906ad137e776ab4c5021adadc9960",
    ("clean", "fast"): "9eb02946a40929dc1ddf87e46c5845b6d3d2808dc2cdc00b5c3380d028b9c4a9",
    ("hostile", "slow"): "b5739e9efabe2444cf95cc0e1f24990f8a29664c8a1af37f1452adc6e1d39166",
    ("hostile", "fast"): "a380a2fba94a9a92e86c4e3dccccc8f955231f2ba790992d7229b06e54a0b020",
}
GAPS = {"slow": (0.05, 0.3, 1.1, 0.0, 2.5), "fast": (0.05, 0.1, 0.0, 0.2, 0.4)}


def timeline(name: str, pace: str) -> list[tuple[Any, ...]]:
    """Three identities; bursts that break the bucket, bans, a 70 s gap every 97 requests."""
    ab = AntiBot(load_scenario(name), 11)
    out: list[tuple[Any, ...]] = []
    t = 0.0
    for i in range(600):
        who = ("a", "b", "c")[i % 3 if i < 300 else (i // 7) % 3]
        t += GAPS[pace][i % 5] if i % 97 else 70.0
        v = ab.judge(who, t, is_members=i % 4 != 0)
        out.append((who, round(t, 6), repr(v.latency_s), v.banned, v.ban_new, v.ban_close,
                    v.fault))
    return out


@pytest.mark.parametrize(("name", "pace"), sorted(PINNED))
def test_calibrated_scenarios_keep_their_verdicts(name: str, pace: str) -> None:
    assert hashlib.sha256(repr(timeline(name, pace)).encode()).hexdigest() == PINNED[name, pace]


def test_calibrated_verdicts_spelled_out() -> None:
    """A readable slice of the pinned hostile timeline (first banned and faulted requests)."""
    picked = [x for x in timeline("hostile", "fast") if x[3] or x[6]][:4]
    assert picked == [
        ("c", 71.05, "0.9997040411387934", False, False, False, "truncated"),
        ("a", 71.45, "1.4907482347944945", True, True, True, None),
        ("b", 71.5, "0.7374346007480828", True, True, False, None),
        ("c", 71.6, "0.35616300524604666", True, True, False, None),
    ]


def test_rules_never_shift_the_random_draws() -> None:
    """Latencies and faults per request are the same with or without windows and a cap."""
    kw = {"latency_median_s": 0.35, "fault_reset": 0.3}
    free, ruled = bot(**kw), bot(windows=((2, 1.0),), concurrency_cap=1, **kw)
    times = [i * 0.3 for i in range(40)]
    a = [free.judge("x", t, is_members=True) for t in times]
    b = [ruled.judge("x", t, is_members=True) for t in times]
    assert [v.latency_s for v in a] == [v.latency_s for v in b]
    assert any(v.banned for v in b)
    assert all(x.fault == y.fault for x, y in zip(a, b, strict=True) if not y.banned)


# -- each rule ---------------------------------------------------------------------------

def test_bucket_bans_the_request_after_the_burst_and_refills_at_rate() -> None:
    ab = bot(rate_per_s=1.0, burst=3.0, ban_s=2.0)
    assert verdicts(ab, [0.0, 0.0, 0.0, 0.0]) == ["ok", "ok", "ok", "bucket"]
    # Banned until 2.0; the bucket was refilled when the ban started.
    assert verdicts(ab, [1.999, 2.0, 2.0, 2.0, 2.0]) == ["banned", "ok", "ok", "ok", "bucket"]
    assert verdicts(ab, [4.0, 5.0, 6.0, 7.0]) == ["ok", "ok", "ok", "ok"]  # 1/s forever


def test_window_admits_n_per_w_exactly() -> None:
    """At most 3 admitted in any half-open 10 s: (t - 10, t]."""
    ab = bot(windows=((3, 10.0),), ban_s=0.25)
    assert verdicts(ab, [0.0, 1.0, 2.0, 9.5]) == ["ok", "ok", "ok", "window 3/10"]
    # 9.75: the ban is over; the window still holds 0, 1, 2 (a ban clears no history).
    assert verdicts(ab, [9.6, 9.75]) == ["banned", "window 3/10"]
    # At exactly 10.0 the request at 0 has left the window; banned requests never counted.
    assert verdicts(ab, [10.0, 10.5]) == ["ok", "window 3/10"]
    assert verdicts(ab, [11.0, 12.0, 12.0]) == ["ok", "ok", "window 3/10"]


def test_several_windows_at_once() -> None:
    """200/min and 300/5 min shaped small: 2 per 1 s and 3 per 10 s, both enforced."""
    ab = bot(windows=((2, 1.0), (3, 10.0)), ban_s=0.25)
    assert verdicts(ab, [0.0, 0.5, 0.75]) == ["ok", "ok", "window 2/1"]
    assert verdicts(ab, [1.0]) == ["ok"]  # (0, 1]: one admitted; (-9, 1]: two
    assert verdicts(ab, [2.5]) == ["window 3/10"]  # 2/1 alone would allow it
    assert verdicts(ab, [10.0, 10.25]) == ["ok", "window 3/10"]  # 0 left; 0.5, 1, 10 in
    assert verdicts(ab, [10.5]) == ["ok"]  # 0.5 has left (0.5, 10.5]
    assert verdicts(ab, [10.75]) == ["window 2/1"]  # 10.0 and 10.5 within (9.75, 10.75]


def test_concurrency_cap_bans_the_request_after_c_in_flight() -> None:
    ab = bot(concurrency_cap=2, ban_s=1.0)
    assert verdicts(ab, [0.0, 0.0, 0.0]) == ["ok", "ok", "concurrency"]
    assert verdicts(ab, [0.5]) == ["banned"]
    assert verdicts(ab, [1.0]) == ["concurrency"]  # the ban is over, both still in flight
    ab.release("a")
    assert verdicts(ab, [2.0, 2.0]) == ["ok", "concurrency"]
    ab.release("a")
    ab.release("a")
    assert verdicts(ab, [3.0, 3.0, 3.0]) == ["ok", "ok", "concurrency"]
    assert verdicts(ab, [3.0], who="b") == ["ok"]  # per identity


def test_ban_length_seconds_to_hours_and_no_lengthening() -> None:
    for ban in (2.0, 3600.0, 6 * 3600.0):
        ab = bot(rate_per_s=1.0, burst=1.0, ban_s=ban)
        assert verdicts(ab, [0.0, 0.0]) == ["ok", "bucket"]
        # Requests during the ban are refused and do not extend it.
        steps = [ban * f for f in (0.1, 0.5, 0.999999)]
        assert verdicts(ab, steps) == ["banned"] * 3
        assert ab.is_banned("a", ban * 0.999999) and not ab.is_banned("a", ban)
        assert verdicts(ab, [ban]) == ["ok"]


# -- ban signals ---------------------------------------------------------------------------

def _ban_signals(ab: AntiBot, n: int) -> list[str | None]:
    ab.judge("a", 0.0, is_members=True)
    out: list[Verdict] = [ab.judge("a", 0.0, is_members=False) for _ in range(n)]
    assert all(v.banned for v in out)
    return [v.signal for v in out]


@pytest.mark.parametrize("signal", ["close", "403", "null_data", "captcha"])
def test_fixed_ban_signal(signal: str) -> None:
    ab = bot(rate_per_s=1.0, burst=1.0, ban_s=10.0, ban_signal=signal)
    assert set(_ban_signals(ab, 20)) == {signal}


def test_close_or_403_is_the_calibrated_mix() -> None:
    ab = bot(rate_per_s=1.0, burst=1.0, ban_s=10.0, ban_close_fraction=0.7)
    got = _ban_signals(ab, 400)
    assert set(got) == {"close", "403"}
    assert 0.6 < got.count("close") / len(got) < 0.8


# -- validation ------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    {"windows": ((0, 60.0),)}, {"windows": ((200, 0.0),)}, {"windows": ((200,),)},
    {"windows": ((2.5, 60.0),)}, {"windows": ((True, 60.0),)}, {"concurrency_cap": -1},
    {"concurrency_cap": 2.0}, {"ban_signal": "tarpit"}, {"ban_s": -1.0},
])
def test_invalid_rule_knobs(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Scenario(**bad)


def test_valid_rule_knobs() -> None:
    scn = Scenario(windows=((200, 60.0), (300, 300)), concurrency_cap=10, ban_s=7200.0,
                   ban_signal="captcha")
    assert scn.windows == ((200, 60.0), (300, 300))
