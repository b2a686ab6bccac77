"""The spacing of extraction calls, learned from the provider's own answers.

Why: providers state their call limit in their documents (kdl "1秒10次", zhima "请2秒后再试",
PROXY_PROVIDERS.md), plans differ by two orders of magnitude, and the user rarely knows which
applies. A fixed spacing is one plan's: 2 s leaves a provider that serves a call every 0.13 s
one IP per 2 s when each call returns one IP, and calls a 7-s provider three times per IP
served, each a "too fast" refusal. What the provider does is the only evidence: a call it
served ``g`` seconds after the last served call's answer shows its limit is at most about
``g`` (it measured at least that between the two arrivals); a call it refused shows the limit
is above ``g``. The spacing in force is the shortest served gap; it is probed shorter (halved
until the first refusal) only after the provider returned fewer IPs than a call asked for the
callers waiting (its batch limit binds), so a provider whose batches cover the demand is
never asked faster than it was first asked. Each probe costs at most one refusal, whose wait
(the provider's "retry in N s") the manager honours. Pure arithmetic: the manager calls it
under its one-call-at-a-time lock.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..clock import Clock
from ..errors import ExtractionThrottled

if TYPE_CHECKING:
    from .bucket import LeakyBucket
    from .sources import ProxySource
    from .values import ProxyEndpoint

#: Probing stops once refused and served gaps are within this ratio: halving stops at the
#: first refusal. Each bisection step would risk another refusal, whose "retry in N s" (N is
#: often the provider's interval rounded up to a second) costs more than the gap it saves.
PRECISION = 2.0
#: Never closer than the configured spacing divided by this (16 calls/s at the 2-s default).
FLOOR_DIVISOR = 32.0


class CallSpacing:
    """The gap to leave after an extraction call's answer before the next call.

    Args:
        start_s: the configured ``extract_interval``: the spacing before anything is known.
        probe: whether gaps shorter than ``start_s`` may be tried (``extract_probe``); a
            refusal lengthens the spacing either way.
    """

    def __init__(self, start_s: float, probe: bool = True) -> None:
        self.start_s = max(0.0, start_s)
        self.probe = probe and start_s > 0
        self.served_s: float | None = None  # the shortest gap a call was served at
        self.refused_s = 0.0  # the longest gap a call was refused at (0: none)
        self.refusals = 0

    @property
    def floor_s(self) -> float:
        return self.start_s / FLOOR_DIVISOR

    def served(self, gap_s: float | None) -> None:
        """A call ``gap_s`` after the last served call's answer was served (None: the first)."""
        if gap_s is None:
            return
        self.served_s = gap_s if self.served_s is None else min(self.served_s, gap_s)
        if self.refused_s >= self.served_s:  # the provider relented: the refusal is old news
            self.refused_s = 0.0

    def refused(self, gap_s: float | None) -> None:
        """A call ``gap_s`` after the last served call's answer was refused as too fast."""
        self.refusals += 1
        if gap_s is None:
            return
        self.refused_s = max(self.refused_s, gap_s)
        if self.served_s is not None and gap_s >= self.served_s:
            self.served_s = None  # stricter than it was: learned again from above

    def gap(self, short: bool) -> float:
        """Seconds from this answer to the next call (pure in the state).

        ``short``: the provider returned fewer IPs than asked, so only a shorter gap serves
        the callers left waiting sooner. Examples: start 2 s, served at 2 and 1: short ->
        0.5, not short -> 1; then refused at 0.5: 1 either way (halving stops at the first
        refusal); start 2 s, refused at 2: 4 until a call is served.
        """
        if self.served_s is None:  # nothing served at a known gap yet: from the start up
            return max(self.start_s, 2.0 * self.refused_s)
        served = self.served_s
        if not (short and self.probe):
            return served
        if not self.refused_s:
            return max(served / 2.0, min(served, self.floor_s))  # halved, down to the floor
        if served / self.refused_s <= PRECISION:
            return served
        return math.sqrt(self.refused_s * served)


class PacedCalls:
    """The provider's extraction calls, each followed by the gap its answers showed.

    For one caller at a time (the manager's extraction lock). The gap runs from a call's
    *answer*: the provider measures arrivals and received the call before answering, so
    answer + gap is always far enough apart (send times are not). After a "too fast"
    refusal: what the provider asked, and no sooner than the learned gap after the last call
    it served (the gap it measures).
    """

    def __init__(self, source: ProxySource, bucket: LeakyBucket, spacing: CallSpacing,
                 clock: Clock) -> None:
        self.source, self.bucket, self.spacing, self._clock = source, bucket, spacing, clock
        self._served_at: float | None = None  # the last served call's answer

    def fetch(self, n: int) -> list[ProxyEndpoint]:
        """``source.fetch(n)``, timed and spaced; its exceptions pass through."""
        sent = self._clock.now()
        gap = None if self._served_at is None else sent - self._served_at
        try:
            endpoints = self.source.fetch(n)
        except ExtractionThrottled as e:
            self.spacing.refused(gap)
            now = self._clock.now()
            due = now if self._served_at is None else self._served_at
            self.bucket.space(max(e.retry_after or 0.0, due + self.spacing.gap(False) - now))
            raise
        except BaseException:
            self.bucket.space(self.spacing.gap(False))
            raise
        self._served_at = self._clock.now()
        self.spacing.served(gap)
        # fewer than asked: the provider's batch limit binds, and only a shorter gap serves
        # the callers left waiting sooner (a fuller call would not)
        self.bucket.interval_s = self.spacing.gap(len(endpoints) < n)
        self.bucket.space(self.bucket.interval_s)
        return endpoints
