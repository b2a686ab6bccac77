"""The leaky bucket that spaces extraction calls: a forced minimum interval across threads.

Why a GCRA with zero burst (one shared "next allowed time") and not a token bucket: providers
enforce a minimum *spacing* between calls ("请2秒后再试"), not an average rate, so idle time must
not be banked into a burst.
"""

from __future__ import annotations

import logging
import math
import threading

from ..clock import SYSTEM, Clock
from ..errors import ConfigError, Interrupted

logger = logging.getLogger(__name__)


class LeakyBucket:
    """A forced minimum interval between calls, shared by every thread.

    State is one "next allowed time" (``_next``). :meth:`acquire` *reserves* the slot under the
    lock (``slot = max(now, _next)``; ``_next = slot + interval``) and sleeps until it outside
    the lock, so N threads that arrive together leave at ``t, t+I, t+2I, ...`` — exactly the
    provider's spacing, in arrival order, and no thread holds the lock while sleeping.

    Args:
        interval_s: minimum seconds between two calls; ``0`` means no limit.
        clock: the clock to read and sleep on; injected so tests step it exactly.

    Raises:
        ConfigError: ``interval_s`` is negative, NaN or infinite.
    """

    def __init__(
        self,
        interval_s: float,
        *,
        clock: Clock = SYSTEM,
    ) -> None:
        if not interval_s >= 0 or math.isinf(interval_s):
            raise ConfigError(f"leaky bucket interval must be >= 0 s, got {interval_s!r}",
                              key="extract_interval")
        self.interval_s = float(interval_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._next: float | None = None  # None: never used, the first call goes at once

    def wait_time(self) -> float:
        """Seconds until a call made now would be allowed (no side effect; 0 = go now)."""
        with self._lock:
            if self._next is None:
                return 0.0
            return max(0.0, self._next - self._clock.now())

    def _reserve(self) -> float:
        """Take the next slot; returns its time on the injected clock."""
        with self._lock:
            t = self._clock.now()
            slot = t if self._next is None else max(t, self._next)
            self._next = slot + self.interval_s
            return slot

    def _cancel(self, slot: float) -> None:
        """Give back a slot nobody will use, if nothing was reserved after it."""
        with self._lock:
            if self._next == slot + self.interval_s:
                self._next = slot

    def acquire(self, stop_event: threading.Event | None = None) -> float:
        """Block until this caller's slot; returns the slot time (on the injected clock).

        With a ``stop_event`` the wait is ``clock.wait(stop_event, ...)``, so a stop request
        ends it at once; then the slot is given back (when it is the last one) and
        :class:`Interrupted` is raised.
        """
        slot = self._reserve()
        while True:
            remaining = slot - self._clock.now()
            if remaining <= 0:
                return slot
            if stop_event is None:
                self._clock.sleep(remaining)
            elif self._clock.wait(stop_event, remaining):
                self._cancel(slot)
                raise Interrupted("stop requested while waiting for the extraction bucket")

    def delay(self, seconds: float) -> None:
        """Make the next slot no earlier than ``seconds`` from now (the provider said too fast).

        Never moves the next slot earlier: a provider "retry in 1 s" must not cancel spacing
        already promised to queued callers.
        """
        with self._lock:
            target = self._clock.now() + max(0.0, seconds)
            self._next = target if self._next is None else max(self._next, target)

    def space(self, seconds: float) -> None:
        """Make the next slot exactly ``seconds`` from now, earlier than promised or later.

        For a caller that alone reserves slots (the manager makes one extraction call at a
        time): once a call's answer is in, the gap to the next is what the provider's answers
        showed (:class:`~boardsync.proxy.spacing.CallSpacing`), not the interval promised
        when the call was sent.
        """
        with self._lock:
            self._next = self._clock.now() + max(0.0, seconds)
