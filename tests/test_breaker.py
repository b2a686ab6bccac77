"""Circuit breaker: opens on failures spread over IPs, probes once after the cool-down."""

from __future__ import annotations

import threading

from boardsync.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from helpers import FakeClock


def test_failures_on_one_ip_do_not_open_below_consecutive_limit() -> None:
    b = CircuitBreaker(distinct_ips=3, cooldown=10, clock=FakeClock(100.0))
    for _ in range(8):
        assert b.record_failure("connection", "1.1.1.1:80") is False
    assert b.state == CLOSED and b.before_request()


def test_spread_failures_open_and_pause() -> None:
    clock = FakeClock(100.0)
    b = CircuitBreaker(distinct_ips=3, cooldown=10, clock=clock)
    assert not b.record_failure("http_status", "a")
    assert not b.record_failure("connection", "b")
    assert b.record_failure("timeout", "c")
    assert b.state == OPEN and b.opens == 1
    assert b.before_request() is False
    assert b.wait_time() == 10
    clock.advance(4)
    assert b.wait_time() == 6


def test_success_in_between_resets_the_count() -> None:
    b = CircuitBreaker(distinct_ips=2, cooldown=10, clock=FakeClock(100.0))
    b.record_failure("connection", "a")
    b.record_success()
    assert not b.record_failure("connection", "b")
    assert b.state == CLOSED


def test_ban_classes_do_not_count() -> None:
    b = CircuitBreaker(distinct_ips=2, cooldown=10, clock=FakeClock(100.0))
    for ip in "abcdef":
        assert not b.record_failure("blocked", ip)
        assert not b.record_failure("proxy_dead", ip)
    assert b.state == CLOSED


def test_half_open_lets_exactly_one_probe_then_closes_on_success() -> None:
    clock = FakeClock(100.0)
    b = CircuitBreaker(distinct_ips=2, cooldown=10, clock=clock)
    b.record_failure("connection", "a")
    b.record_failure("connection", "b")
    clock.advance(10)
    assert b.before_request() is True
    assert b.state == HALF_OPEN
    assert b.before_request() is False  # only one probe at a time
    assert b.wait_time() > 0
    b.record_success()
    assert b.state == CLOSED and b.before_request()


def test_failed_probe_reopens_for_a_doubled_cooldown_up_to_the_cap() -> None:
    clock = FakeClock(100.0)
    b = CircuitBreaker(distinct_ips=2, cooldown=10, max_cooldown=30, clock=clock)
    b.record_failure("connection", "a")
    b.record_failure("connection", "b")
    for expected in (20, 30, 30):
        clock.advance(b.wait_time() + 0.1)
        assert b.before_request()
        assert b.record_failure("http_5xx", "c") is True
        assert b.state == OPEN
        assert b.wait_time() == expected
    clock.advance(31)
    assert b.before_request()
    b.record_success()
    assert b.state == CLOSED and b.cooldown == 10


def test_probe_failing_for_another_reason_lets_the_next_caller_probe() -> None:
    clock = FakeClock(100.0)
    b = CircuitBreaker(distinct_ips=2, cooldown=10, clock=clock)
    b.record_failure("http_5xx", "a")
    b.record_failure("http_5xx", "b")
    clock.advance(11)
    assert b.before_request() and not b.before_request()
    assert b.record_failure("proxy_dead", "a") is False
    assert b.state == HALF_OPEN and b.before_request()


def test_disabled_breaker_never_opens() -> None:
    b = CircuitBreaker(distinct_ips=0, cooldown=10, consecutive=0, clock=FakeClock(100.0))
    for ip in "abcdefgh":
        assert not b.record_failure("connection", ip)
    assert b.before_request()


def test_a_probe_abandoned_by_its_owner_is_free_again_and_only_its_owner_frees_it() -> None:
    """A worker that claimed the half-open probe and then retired (or was stopped) sends
    nothing: unless it gives the probe back, no request ever closes the breaker."""
    clock = FakeClock(100.0)
    b = CircuitBreaker(distinct_ips=2, cooldown=10, clock=clock)
    b.record_failure("connection", "a")
    b.record_failure("connection", "b")
    clock.advance(10)
    assert b.before_request() is True  # this thread holds the probe

    other = threading.Thread(target=b.abandon)  # another thread cannot free it
    other.start()
    other.join()
    assert b.before_request() is False

    b.abandon()
    assert b.state == HALF_OPEN and b.before_request() is True  # the next caller probes
    b.record_success()
    assert b.state == CLOSED
