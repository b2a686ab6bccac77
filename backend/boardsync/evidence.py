"""One identity's history as the upstream sees it: when it may send, and what it proves.

Why apart from the learner: this is pure arithmetic over one identity, testable alone. An
identity that was admitted ``k`` requests whose starts span ``d`` seconds, without a
ban, shows the upstream's bucket holds ``burst + rate * d >= k`` (a bucket admits at most that
many in any span). One inequality, two unknowns: given an upper bound on one number, it is a
lower bound on the other, and a lower bound is what may be paced at without a ban. Counting
consecutive requests instead (the learner's first version) proves nothing about a rate until
a guessed hidden burst is drained, and a burst sent request after request is helped by the
refill while the replies come back (8 "admitted" where the bucket holds 5).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .allowance import Allowance

#: Requests a true burst may hide beyond the proven one (section 13: up to 10 connections).
UNSEEN_BURST = 10
#: Rate probes stop when refuted / proven is at most this (10 % of the allowance unused).
RATE_PRECISION = 1.1


def rate_shown(count: int, span_s: float, burst_max: float) -> float:
    """The least rate an identity's history proves: ``(count - burst_max) / span`` (0 if none).

    ``burst_max`` is the largest burst the upstream may have (one below a refuted burst, or
    the proven burst plus what section 13's reports say it may hide).
    Example: 61 requests over 60 s, at most 11 of them the burst's -> 50 / 60 = 0.83/s.
    """
    if span_s <= 0 or count <= burst_max:
        return 0.0
    return (count - burst_max) / span_s


def rate_followed(starts: Sequence[float], burst: float, last_answer: float) -> float:
    """The least ``(i - burst) / (t_i - t_1)`` over an identity's history (the last request
    timed at its answer, which the upstream's arrival precedes): for an identity that was not
    banned, a bucket ``(that rate, burst)`` stays within the upstream's on every interval up
    to the history's span, whatever the upstream's burst and rate (both bounds are linear in
    the interval's length and hold at its two ends; docs/BENCHMARKS.md, "The learner").

    Example: starts 0, 1, 2, 3 (answered at 3.2), burst 1 -> min(1/1, 2/2, 3/3.2) = 0.94.
    """
    seq = list(starts)
    if len(seq) < 2:
        return 0.0
    first = seq[0]
    times = [*seq[1:-1], max(seq[-1], last_answer)]
    rates = [(i - burst) / (t - first) for i, t in enumerate(times, 2) if i > burst]
    return min((r for r in rates if r > 0), default=0.0)


def rate_evidence(a: Allowance, v: float, ident: Identity, most: float, lived_s: float, *,
                  leading: bool) -> tuple[Allowance, float, bool]:
    """A rate prober's history weighed (pure): the allowance it leaves, the rate it showed
    for the probe ``v``, and whether its schedule is now the one the young follow.

    For any age: ``(count - most) / span`` (:func:`rate_shown`, ``most`` the largest burst
    the upstream may have). For identities no older than it (``lived_s`` > 0: bought IPs,
    which live and die, not a shared identity): the rate it followed
    (:func:`rate_followed`), proven up to its span (``young_rate``, ``young_span``). A new
    prober's proof replaces the leader's once it is as fast and as old (or lived
    ``lived_s``), so no follower is ever slowed below what it followed; the leader's own
    always does. The probe counts as shown by the first, or by the second once the prober
    sent ``2 (most + 1)`` requests (a probe twice the true rate drains any burst it may
    hide within that many) or lived ``lived_s``, having followed at least half the probe.
    """
    span = ident.span
    shown = min(rate_shown(ident.count, span, most), v)
    if shown > a.rate and (not a.rate_refuted or shown < a.rate_refuted):
        a = replace(a, rate=shown)
    young_shown, took = 0.0, False
    if lived_s > 0:
        followed = min(rate_followed(ident.starts, a.burst, ident.answered_at or 0.0), v)
        replaces = leading or not a.young_span or (
            followed >= a.young_rate and span >= min(a.young_span, lived_s))
        if followed > a.rate and replaces:
            a, took = replace(a, young_rate=followed, young_span=round(span, 3)), True
            done = span >= lived_s or ident.count >= 2 * (most + 1)
            # a prober its own work kept below the probe still showed what it followed:
            # the next probe starts from that (doubled), not from the probe
            young_shown = v if done and followed >= v / 2 else 0.0
    if a.young_rate <= a.rate:
        a = replace(a, young_rate=0.0, young_span=0.0)
    return a, max(shown, young_shown), took


def led(a: Allowance, ident: Identity) -> Allowance:
    """The leader's proof, extended by its history so far (pure): it goes on at the young
    rate past its span after the probe moved on, which shows that rate for older identities
    too (its schedule only ever slows the followers it leads, never speeds them past it)."""
    span = ident.span
    if span <= a.young_span:
        return a
    followed = min(rate_followed(ident.starts, a.burst, ident.answered_at or 0.0), a.young_rate)
    if followed <= a.rate:
        return a
    return replace(a, young_rate=followed, young_span=round(span, 3))


def burst_shown(count: int, span_s: float, rate_max: float) -> int:
    """The least burst an identity's history from fresh proves: ``count - rate_max * span``,
    to the nearest request (0 if none). ``rate_max`` is a refuted rate (the bucket refills no
    faster); rounding errs by at most half a request, which the proven rate's margin below
    the refuted one refills.

    Example: 8 requests whose starts span 2.8 s, rate at most 1.09/s -> round(4.95) = 5.
    """
    if rate_max <= 0 or math.isinf(rate_max):
        return 0
    return max(0, math.floor(count - rate_max * max(0.0, span_s) + 0.5))


@dataclass
class Identity:
    """One identity's history as the upstream sees it (admitted requests since it was fresh)."""

    tokens: float
    stamp: float | None = None
    starts: deque[float] = field(default_factory=deque)  # start times, the last hour
    count: int = 0  # requests admitted since fresh
    first: float | None = None
    #: when its last admitted request was answered: the upstream saw that request arrive at
    #: some moment between its start and this, so ``answered_at - first`` holds every span the
    #: upstream measured (a start-to-start span can be shorter than the upstream's when the
    #: last request travelled longer than the first, and proves a rate above the true one)
    answered_at: float | None = None
    in_flight: int = 0
    failed_at: float | None = None  # first failure since the last success
    failed_generation: int = 0  # the learner's generation that failed request was paced by
    banned: bool = False
    banned_at: float = 0.0
    generation: int = 0  # the learner's generation it was last paced under
    tested: int = 0  # its requests past the burst under the current probe
    refusals: int = 0  # requests let through since the ban (each waits twice as long)
    #: it outlived the young rate's span: its bucket was spent at the young rate, which the
    #: upstream may refill slower, so it restarts empty at the rate for any age
    aged: bool = False

    def failure(self, now: float) -> None:
        """A request failed (or proved nothing) at ``now``: the first since the last success
        is kept, with the generation it was paced under (a ban judged later starts there)."""
        if self.failed_at is None:
            self.failed_at, self.failed_generation = now, self.generation

    @property
    def span(self) -> float:
        """From its first request's start to its last one's answer: that holds every arrival
        the upstream judged, however long each request travelled."""
        return (self.answered_at or self.stamp or 0.0) - (self.first or 0.0)


#: A banned shared identity is asked again after this many seconds, doubling each time (to
#: at most the max): a refused request does not lengthen a ban, but costs a board a retry.
BANNED_RETRY_S, BANNED_RETRY_MAX_S = 15.0, 600.0


def wait_for(ident: Identity, rate: float, burst: float, windows: tuple[tuple[int, float], ...],
             concurrency: int, now: float) -> float:
    """Seconds until ``ident`` may start a request under the given allowance (pure).

    Bucket: ``(1 - tokens) / rate``; window (N, W): until the N-th latest start leaves the
    span; concurrency: a short poll. Example: rate 1/s, 0.4 token left -> 0.6 s."""
    waits = [0.0]
    tokens = min(burst, ident.tokens)
    if ident.stamp is not None:
        tokens = min(burst, tokens + (now - ident.stamp) * rate)
    if tokens < 1.0 - 1e-9:  # a rounding error's worth is no wait (it could not advance)
        waits.append((1.0 - tokens) / rate)
    for n, w in windows:
        if len(ident.starts) >= n:
            oldest = ident.starts[-n]
            if oldest > now - w:
                waits.append(oldest + w - now + 1e-3)
    if ident.in_flight >= concurrency:
        waits.append(0.02)
    return max(waits)


def next_probe(param: str, a: Allowance) -> float | None:
    """The value to try for ``param`` next, or None when it is known closely enough.

    Doubling until the first refusal, then bisection (geometric for the rate).
    Example: rate proven 1.0, refuted 2.0 -> 1.414; proven 1.3, refuted 1.414 -> None.
    """
    if param == "rate":
        lo, hi = a.rate, a.rate_refuted
        if not hi:
            return lo * 2
        return math.sqrt(lo * hi) if hi / lo > RATE_PRECISION else None
    if param == "burst" and a.burst_closed:
        return None
    lo_i = a.burst if param == "burst" else a.concurrency
    hi_i = a.burst_refuted if param == "burst" else a.concurrency_refuted
    if not hi_i:
        return float(lo_i * 2)
    return float((lo_i + hi_i) // 2) if hi_i - lo_i > 1 else None


def probe_value(param: str, a: Allowance, shared: bool, deferred: bool) -> float | None:
    """:func:`next_probe`, but a bought IP's burst (not ``shared``) is first probed in one
    jump (proven + :data:`UNSEEN_BURST`), and is bisected only once a refuted rate bounds the
    refill that helps a burst sent request after request (``deferred``: a jump was all
    admitted, so it waits for that bound)."""
    if param != "burst" or shared or a.rate_refuted:
        return next_probe(param, a)
    if a.burst_refuted or a.burst_closed or deferred:
        return None
    return float(a.burst + UNSEEN_BURST)


def exercised(probe: str | None, value: float, a: Allowance, ident: Identity) -> bool:
    """Whether a prober's refused request was one only the probe allowed: within the probed
    burst, past the proven burst for a rate probe, at the probed concurrency."""
    if probe == "burst":
        return ident.count < value
    if probe == "rate":
        return ident.count >= a.burst
    return probe == "concurrency" and ident.in_flight + 1 >= value


def probing_base(a: Allowance) -> Allowance:
    """What probes start from: the young rate when it is the faster (the next probe doubles
    or bisects from the fastest schedule an identity was seen to follow unbanned)."""
    return replace(a, rate=a.young_rate) if a.young_rate > a.rate else a
