"""LeakyBucket: exact spacing on an injected clock, alone and shared by real threads."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boardsync.errors import ConfigError, Interrupted
from boardsync.proxy import LeakyBucket
from helpers import T0, FakeClock


class VirtualClock:
    """Virtual time shared by ``participants`` real threads.

    Time stands still while any participant is running; when every live participant is
    inside ``sleep``, the clock jumps to the earliest wake-up target and wakes exactly those
    sleepers (under one lock). So a thread that sleeps "until its slot" wakes with ``now()``
    equal to the slot, whatever the real OS scheduling was: the test sees exact times.
    Each participant calls :meth:`done` when it finishes. A :class:`boardsync.clock.Clock`:
    ``wait`` is a sleep unless the event is already set, ``wall`` follows the virtual time.
    """

    def __init__(self, participants: int, start: float = 0.0) -> None:
        self._cond = threading.Condition()
        self._t = start
        self._active = participants
        self._targets: list[float] = []

    def now(self) -> float:
        with self._cond:
            return self._t

    def _advance(self) -> None:
        if self._active == 0 and self._targets:
            self._t = max(self._t, min(self._targets))
            woken = [x for x in self._targets if x <= self._t]
            self._targets = [x for x in self._targets if x > self._t]
            self._active += len(woken)
            self._cond.notify_all()

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._cond:
            target = self._t + seconds
            self._targets.append(target)
            self._active -= 1
            self._advance()
            while self._t < target:
                if not self._cond.wait(timeout=5.0):
                    raise AssertionError("virtual clock stalled")

    def wait(self, event: threading.Event, seconds: float | None) -> bool:
        if event.is_set():
            return True
        if seconds is None:
            raise AssertionError("an unbounded wait would stall virtual time")
        self.sleep(seconds)
        return event.is_set()

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.now())

    def done(self) -> None:
        with self._cond:
            self._active -= 1
            self._advance()


def test_single_thread_spacing_is_exact() -> None:
    clock = FakeClock(100.0)
    bucket = LeakyBucket(2.0, clock=clock)
    times = []
    for _ in range(5):
        bucket.acquire()
        times.append(clock.now())
    assert times == [100.0, 102.0, 104.0, 106.0, 108.0]
    assert clock.sleeps == [2.0, 2.0, 2.0, 2.0]


def test_idle_time_is_not_banked() -> None:
    """After a long idle period only one call goes at once (no burst, unlike a token bucket)."""
    clock = FakeClock(100.0)
    bucket = LeakyBucket(2.0, clock=clock)
    bucket.acquire()
    clock.advance(60)
    bucket.acquire()
    assert clock.now() == 160.0
    bucket.acquire()
    assert clock.now() == 162.0


def test_wait_time_is_pure() -> None:
    clock = FakeClock(100.0)
    bucket = LeakyBucket(2.0, clock=clock)
    assert bucket.wait_time() == 0.0
    bucket.acquire()
    assert bucket.wait_time() == 2.0
    assert bucket.wait_time() == 2.0  # asking again reserves nothing
    clock.advance(0.5)
    assert bucket.wait_time() == 1.5
    clock.advance(5)
    assert bucket.wait_time() == 0.0
    assert clock.sleeps == []


def test_zero_interval_means_no_limit() -> None:
    clock = FakeClock(100.0)
    bucket = LeakyBucket(0, clock=clock)
    for _ in range(10):
        bucket.acquire()
    assert clock.now() == 100.0 and clock.sleeps == []
    assert bucket.wait_time() == 0.0


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_bad_interval_is_config_error(bad: float) -> None:
    with pytest.raises(ConfigError):
        LeakyBucket(bad)


def test_delay_pushes_the_next_slot_later() -> None:
    clock = FakeClock(100.0)
    bucket = LeakyBucket(2.0, clock=clock)
    bucket.acquire()  # at 100; next slot 102
    bucket.delay(5.0)  # provider: retry in 5 s -> 105
    assert bucket.wait_time() == 5.0
    bucket.delay(1.0)  # a shorter delay never pulls the slot earlier
    assert bucket.wait_time() == 5.0
    bucket.acquire()
    assert clock.now() == 105.0
    bucket.acquire()
    assert clock.now() == 107.0


def test_delay_before_first_use() -> None:
    clock = FakeClock(100.0)
    bucket = LeakyBucket(2.0, clock=clock)
    bucket.delay(3.0)
    bucket.acquire()
    assert clock.now() == 103.0


def test_threads_share_one_spacing_exactly() -> None:
    """8 real threads × 5 calls: return times on the shared clock are exactly 1.5 s apart."""
    n_threads, per_thread, interval = 8, 5, 1.5
    clock = VirtualClock(n_threads, start=10.0)
    bucket = LeakyBucket(interval, clock=clock)
    returns: list[float] = []
    slots: list[float] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for _ in range(per_thread):
                slot = bucket.acquire()
                t = clock.now()
                with lock:
                    returns.append(t)
                    slots.append(slot)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)
        finally:
            clock.done()

    threads = [threading.Thread(target=run) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    assert sorted(returns) == [10.0 + i * interval for i in range(n_threads * per_thread)]
    assert sorted(slots) == sorted(returns)


def test_real_threads_real_clock_slots_are_spaced() -> None:
    """With the real clock: slots are spaced by the interval and nobody returns early."""
    interval = 0.004
    bucket = LeakyBucket(interval)
    got: list[tuple[float, float]] = []
    lock = threading.Lock()

    def run() -> None:
        for _ in range(3):
            slot = bucket.acquire()
            with lock:
                got.append((slot, time.monotonic()))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    slots = sorted(s for s, _ in got)
    assert len(slots) == 12
    assert all(b - a >= interval - 1e-9 for a, b in zip(slots, slots[1:], strict=False))
    assert all(returned >= slot for slot, returned in got)


def test_stop_event_interrupts_the_wait_and_gives_the_slot_back() -> None:
    clock = FakeClock(100.0)
    bucket = LeakyBucket(2.0, clock=clock)
    bucket.acquire()
    stop = threading.Event()
    stop.set()
    with pytest.raises(Interrupted):
        bucket.acquire(stop)
    assert bucket.wait_time() == 2.0  # the abandoned slot did not push the queue back
    bucket.acquire()
    assert clock.now() == 102.0


class StopArrivesClock(FakeClock):
    """A fake clock on which a stop request arrives while the bucket is waiting."""

    def __init__(self) -> None:
        super().__init__(100.0)
        self.waits: list[float | None] = []

    def wait(self, event: threading.Event, seconds: float | None) -> bool:
        self.waits.append(seconds)
        self.advance(0.5)
        event.set()
        return True


def test_stop_event_wait_is_one_clock_wait_until_the_slot() -> None:
    clock = FakeClock(100.0)
    bucket = LeakyBucket(2.0, clock=clock)
    bucket.acquire()
    bucket.acquire(threading.Event())  # not set: waits the whole 2 s on the event
    assert clock.now() == 102.0 and clock.sleeps == [2.0]


def test_stop_arriving_mid_wait_interrupts_and_gives_the_slot_back() -> None:
    clock = StopArrivesClock()
    bucket = LeakyBucket(2.0, clock=clock)
    bucket.acquire()
    with pytest.raises(Interrupted):
        bucket.acquire(threading.Event())
    assert clock.waits == [2.0] and clock.now() == 100.5
    assert bucket.wait_time() == 1.5  # the abandoned slot at 102 was given back


@settings(max_examples=200, deadline=None)
@given(
    interval=st.floats(min_value=0.0, max_value=10.0),
    ops=st.lists(
        st.one_of(
            st.just(("acquire", 0.0)),
            st.tuples(st.just("idle"), st.floats(min_value=0.0, max_value=20.0)),
            st.tuples(st.just("delay"), st.floats(min_value=0.0, max_value=20.0)),
        ),
        max_size=30,
    ),
)
def test_property_acquires_never_closer_than_interval(
    interval: float, ops: list[tuple[str, float]]
) -> None:
    clock = FakeClock(0.0)
    bucket = LeakyBucket(interval, clock=clock)
    times: list[float] = []
    for op, x in ops:
        if op == "acquire":
            bucket.acquire()
            times.append(clock.now())
        elif op == "idle":
            clock.advance(x)
        else:
            bucket.delay(x)
            assert bucket.wait_time() >= x - 1e-9
    for a, b in zip(times, times[1:], strict=False):
        assert b - a >= interval - 1e-9
