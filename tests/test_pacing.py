"""Pacing: fixed delays in range; adaptive AIMD spacing measured from request starts."""

from __future__ import annotations

import random

import pytest

from boardsync.pacing import Pacer, PacingConfig, RateController


def test_fixed_delay_stays_in_range() -> None:
    cfg = PacingConfig(mode="fixed", delay_min=1.0, delay_max=2.0)
    pacer = Pacer(cfg, RateController(cfg), random.Random(1))
    delays = [pacer.delay(now=0.0) for _ in range(500)]
    assert min(delays) >= 1.0 and max(delays) <= 2.0
    assert max(delays) - min(delays) > 0.9  # really random across the range


def test_adaptive_waits_from_previous_start_and_first_request_goes_at_once() -> None:
    cfg = PacingConfig(mode="adaptive", delay_max=1.0, floor=0.5, jitter=0.0)
    pacer = Pacer(cfg, RateController(cfg), random.Random(1))
    assert pacer.delay(now=10.0) == 0.0
    pacer.started(10.0)
    assert pacer.delay(now=10.4) == pytest.approx(0.6)
    assert pacer.delay(now=11.5) == 0.0
    pacer.new_ip()
    assert pacer.delay(now=10.1) == 0.0


def test_aimd_additive_increase_multiplicative_decrease_with_bounds() -> None:
    cfg = PacingConfig(mode="adaptive", delay_max=1.0, floor=0.5, step=0.1, backoff=2.0)
    ctl = RateController(cfg)
    assert ctl.spacing == 1.0
    for _ in range(3):
        ctl.on_success()
    assert ctl.spacing == pytest.approx(0.7)
    for _ in range(10):
        ctl.on_success()
    assert ctl.spacing == 0.5  # floor
    ctl.on_ban()
    assert ctl.spacing == 1.0
    for _ in range(10):
        ctl.on_ban()
    assert ctl.spacing == 4.0  # ceiling = 4 x delay_max
    assert ctl.bans == 11


def test_adaptive_jitter_range() -> None:
    cfg = PacingConfig(mode="adaptive", delay_max=1.0, floor=1.0, jitter=0.1)
    pacer = Pacer(cfg, RateController(cfg), random.Random(2))
    pacer.started(0.0)
    waits = [pacer.delay(now=0.0) for _ in range(300)]
    assert min(waits) >= 0.9 - 1e-9 and max(waits) <= 1.1 + 1e-9


def test_burst_lets_a_fresh_ip_send_its_tokens_back_to_back_then_one_per_spacing() -> None:
    cfg = PacingConfig(mode="adaptive", delay_max=1.0, floor=1.0, jitter=0.0, burst=4.0)
    pacer = Pacer(cfg, RateController(cfg), random.Random(1))
    t = 0.0
    for _ in range(4):  # four requests 0.4 s apart (their latency), no wait
        assert pacer.delay(now=t) == 0.0
        pacer.started(t)
        t += 0.4
    # at t=1.6: 4 tokens - 4 spent + 1.6 s refilled = 1.6
    assert pacer.tokens_at(1.6, 1.0) == pytest.approx(1.6)
    pacer.started(1.6)
    assert pacer.delay(now=1.6) == pytest.approx(0.4)  # 0.6 tokens left: 0.4 s to one
    pacer.started(2.0)
    assert pacer.delay(now=2.0) == pytest.approx(1.0)  # steady state: one per spacing
    pacer.new_ip()
    assert pacer.delay(now=2.5) == 0.0  # a fresh IP has a full bucket again
    assert pacer.tokens_at(2.5, 1.0) == 4.0


def test_tokens_never_exceed_the_burst_after_idle_time() -> None:
    cfg = PacingConfig(mode="adaptive", delay_max=1.0, floor=1.0, jitter=0.0, burst=3.0)
    pacer = Pacer(cfg, RateController(cfg), random.Random(1))
    pacer.started(0.0)
    assert pacer.tokens_at(100.0, 1.0) == 3.0
    for t in (100.0, 100.0, 100.0):
        assert pacer.delay(now=t) == 0.0
        pacer.started(t)
    assert pacer.delay(now=100.0) == pytest.approx(1.0)


def test_burst_one_is_plain_spacing_from_the_previous_start() -> None:
    cfg = PacingConfig(mode="adaptive", delay_max=1.0, floor=1.0, jitter=0.0, burst=1.0)
    pacer = Pacer(cfg, RateController(cfg), random.Random(1))
    pacer.started(5.0)
    assert pacer.delay(now=5.3) == pytest.approx(0.7)
    assert pacer.delay(now=7.0) == 0.0


def test_fixed_mode_ignores_the_token_model() -> None:
    cfg = PacingConfig(mode="fixed", delay_min=1.0, delay_max=1.0, burst=5.0)
    pacer = Pacer(cfg, RateController(cfg), random.Random(1))
    pacer.started(0.0)
    assert pacer.delay(now=0.0) == 1.0
