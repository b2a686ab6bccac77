"""The learner of the upstream's allowance: how fast one identity may ask, learned as it goes.

Why: nobody knows East Money's per-identity limit and it moves (EASTMONEY_API.md section 13:
a rate, a burst, windows and a connection cap are reported, none verified), so it is measured
from the only signals there are: answers (admitted) and ban signals (not). The rule is the
upstream's, so one learner is shared by every worker; each identity (the peer address the
upstream sees: this host in direct mode, an exit IP otherwise) keeps its own history in it.

The model (docs/BENCHMARKS.md, "The learner"): per identity a token bucket of ``burst``
requests refilled at ``rate`` per second, any learned windows (at most N per W seconds) and at
most ``concurrency`` requests in flight. Each number has a proven value (admitted without a
ban) and, once a ban refuted a larger one, a refuted value. **One number is probed at a
time**: only it runs above its proven value, so a ban during its probe refutes it and nothing
else. A probe doubles the proven value until the first refusal, then bisects between proven
and refuted, and stops within 10 % (rate) or one request (burst, concurrency). Probing stops
for good once ``probe_bans`` bans were spent on it (the run's budget: 5 % of its IPs). A ban
while nothing is probed exceeded a limit the model does not have: it becomes a window of the
count the identity had reached over twice the span it took, and the last accepted step of
the rate is withdrawn.

Waits are pure numbers (:func:`wait_for`); the worker sleeps them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

#: A learner with no stored allowance starts at one request per 2 s (the reference script's
#: slowest delay, the pace its users ran unbanned), no burst, one in flight.
START_RATE = 0.5
MIN_RATE = 0.01  # the rate is never withdrawn below one request per 100 s
#: Fresh identities that must spend a probed burst before it is proven (a slow reply's refill
#: may have helped one).
BURST_EVIDENCE = 3
#: Requests a true burst may hide beyond the proven one (section 13: up to 10 connections).
UNSEEN_BURST = 10
#: Rate probes stop when refuted / proven is at most this (10 % of the allowance unused).
RATE_PRECISION = 1.1
#: Seconds of age in which a stored value loses half its excess over the start (a quota day).
HALF_LIFE_S = 86400.0
#: Share of a run's IPs that probing may cost (issue 14: at most about 5 %).
PROBE_SHARE = 0.05
#: Most distinct identities whose history is kept (older ones are forgotten first).
MAX_IDENTITIES = 4096
PARAMS = ("rate", "burst", "concurrency")  # probed in this order, one at a time


@dataclass(frozen=True)
class Allowance:
    """One identity's allowance: proven values, refuted ones (0 = none), ``learned_at`` the
    wall-clock epoch of the last change (0 = never learned)."""

    rate: float = START_RATE
    burst: int = 1
    concurrency: int = 1
    windows: tuple[tuple[int, float], ...] = ()
    rate_refuted: float = 0.0
    burst_refuted: int = 0
    concurrency_refuted: int = 0
    bans: int = 0
    learned_at: float = 0.0

    def per_life(self, life_s: float) -> float:
        """Requests one identity may send in ``life_s``: ``burst + rate * life``, or a window's
        ``N * ceil(life / W)`` when smaller. Example: burst 5, 1/s, 45 s -> 50."""
        bounds = [self.burst + self.rate * life_s]
        bounds += [n * max(1, math.ceil(life_s / w)) for n, w in self.windows]
        return min(bounds)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Allowance:
        values = {k: v for k, v in data.items() if k in {f.name for f in dataclasses.fields(cls)}}
        values["windows"] = tuple((int(n), float(w)) for n, w in values.get("windows", ()))
        return cls(**values)


def decayed(a: Allowance, age_s: float, half_life_s: float = HALF_LIFE_S) -> Allowance:
    """``a`` trusted less with age: the proven excess over the start halves per half-life,
    and refuted values older than a half-life are forgotten (the limit may have been raised).

    Example: rate 2.0 learned a day ago (start 0.5): 0.5 + 1.5 / 2 = 1.25.
    """
    if age_s <= 0:
        return a
    f = 0.5 ** (age_s / half_life_s)
    start = Allowance()
    keep = age_s < half_life_s
    return dataclasses.replace(
        a, rate=start.rate + (a.rate - start.rate) * f,
        burst=max(1, math.floor(1 + (a.burst - 1) * f)),
        concurrency=max(1, math.floor(1 + (a.concurrency - 1) * f)),
        windows=a.windows if keep else (),
        rate_refuted=a.rate_refuted if keep else 0.0,
        burst_refuted=a.burst_refuted if keep else 0,
        concurrency_refuted=a.concurrency_refuted if keep else 0)


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
    lo_i = a.burst if param == "burst" else a.concurrency
    hi_i = a.burst_refuted if param == "burst" else a.concurrency_refuted
    if not hi_i:
        return float(lo_i * 2)
    return float((lo_i + hi_i) // 2) if hi_i - lo_i > 1 else None


@dataclass
class Identity:
    """One identity's history as the upstream sees it (admitted requests since it was fresh)."""

    tokens: float
    stamp: float | None = None
    starts: deque[float] = field(default_factory=deque)  # start times, the last hour
    count: int = 0  # requests admitted since fresh
    first: float | None = None
    in_flight: int = 0
    failed_at: float | None = None  # first failure since the last success
    banned: bool = False
    banned_at: float = 0.0
    generation: int = 0  # the learner's generation it was last paced under
    tested: int = 0  # its requests past the burst under the current probe
    refusals: int = 0  # requests let through since the ban (each waits twice as long)


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


class Learner:
    """The shared learner: paces every identity and learns from each answer and ban.

    Args:
        allowance: where to start (a stored one, decayed; or :class:`Allowance` ()).
        probe_bans: bans probing may cost in this run (then it stops and keeps what is proven).
        shared: identities are shared by several workers (direct, tunnel): the concurrency is
            probed; with one worker per identity it cannot matter and is not.
        wall: wall-clock epoch now (``learned_at``); save: called with each new allowance.
    """

    def __init__(self, allowance: Allowance | None = None, *, probe_bans: int = 1,
                 shared: bool = False, wall: Callable[[], float] = lambda: 0.0,
                 save: Callable[[Allowance], None] | None = None) -> None:
        self.allowance = allowance or Allowance()
        self.probe_bans = max(0, probe_bans)
        self.params = PARAMS if shared else PARAMS[:2]
        self.spent = 0  # bans spent on probes
        self.probe: str | None = None
        self.value = 0.0  # the probed value
        self.evidence = 0  # admitted requests that tested the probe
        self.max_count = 0  # most requests any identity had admitted without a ban
        self.generation = 0  # bumped at every change of the allowance in force
        self._wall = wall
        self._save = save
        self._ids: dict[str, Identity] = {}
        self._lock = threading.Lock()
        self._next_probe()

    # -- the allowance in force --

    def current(self) -> tuple[float, float, int]:
        """``(rate, burst, concurrency)`` used now: proven values, the probed one raised."""
        a = self.allowance
        rate, burst, conc = a.rate, float(a.burst), a.concurrency
        if self.probe == "rate":
            rate = self.value
        elif self.probe == "burst":
            burst = self.value
        elif self.probe == "concurrency":
            conc = int(self.value)
        return rate, burst, conc

    def per_life(self, life_s: float) -> float:
        """Requests one fresh identity may send in ``life_s`` under the proven allowance."""
        return self.allowance.per_life(life_s)

    def _ident(self, key: str) -> Identity:
        ident = self._ids.get(key)
        if ident is None:
            if len(self._ids) >= MAX_IDENTITIES:
                self._ids.pop(next(iter(self._ids)))
            ident = self._ids[key] = Identity(tokens=self.current()[1])
        return ident

    def reserve(self, key: str, now: float) -> float:
        """0 and the request is started, or the seconds to wait; atomic (shared identities)."""
        with self._lock:
            ident = self._ident(key)
            if ident.banned:
                due = ident.banned_at + min(BANNED_RETRY_MAX_S,
                                            BANNED_RETRY_S * 2 ** ident.refusals)
                if now < due:
                    return due - now
                ident.refusals += 1
                ident.in_flight += 1
                return 0.0
            rate, burst, conc = self.current()
            wait = wait_for(ident, rate, burst, self.allowance.windows, conc, now)
            if wait > 0:
                return wait
            if ident.generation != self.generation:
                ident.generation, ident.tested = self.generation, 0
            tokens = ident.tokens
            if ident.stamp is not None:
                tokens += (now - ident.stamp) * rate
            ident.tokens = min(burst, tokens) - 1.0
            ident.stamp = now
            ident.starts.append(now)
            while ident.starts and ident.starts[0] < now - 3600.0:
                ident.starts.popleft()
            ident.in_flight += 1
            if ident.first is None:
                ident.first = now
            return 0.0

    # -- signals --

    def answered(self, key: str, now: float) -> None:
        """A request of ``key`` was admitted (an answer, or a failure that is not a ban)."""
        with self._lock:
            ident = self._ident(key)
            ident.in_flight = max(0, ident.in_flight - 1)
            if ident.banned:  # the first answer after a ban: the identity is fresh again
                ident.banned, ident.count, ident.first = False, 0, now
                ident.tokens, ident.stamp = self.current()[1] - 1.0, now
                ident.starts.clear()
                ident.starts.append(now)
            ident.failed_at = None
            ident.count += 1
            self.max_count = max(self.max_count, ident.count)
            self._tested(ident)

    def failed(self, key: str, now: float) -> None:
        """A request of ``key`` failed (maybe the first of a ban): its time is kept."""
        with self._lock:
            ident = self._ident(key)
            ident.in_flight = max(0, ident.in_flight - 1)
            if ident.failed_at is None:
                ident.failed_at = now

    def banned(self, key: str, now: float) -> None:
        """The policy judged ``key`` banned: learn from its history once per ban."""
        with self._lock:
            ident = self._ident(key)
            if ident.banned:
                return
            ident.banned = True
            if ident.generation != self.generation:  # paced by a value already withdrawn
                self._changed(dataclasses.replace(self.allowance,
                                                  bans=self.allowance.bans + 1))
                return
            ident.banned_at, ident.refusals = now, 0
            at = ident.failed_at if ident.failed_at is not None else now
            span = at - ident.first if ident.first is not None else 0.0
            self._learn_ban(ident.count, span, self._exercised(ident))

    def _exercised(self, ident: Identity) -> bool:
        """Whether the refused request was one only the probe allowed: within the probed
        burst, past the proven burst for a rate probe, at the probed concurrency."""
        if self.probe == "burst":
            return ident.count < self.value
        if self.probe == "rate":
            return ident.count >= self.allowance.burst
        return self.probe == "concurrency" and ident.in_flight + 1 >= self.value

    # -- learning (lock held) --

    def _tested(self, ident: Identity) -> None:
        """Count an admitted request as evidence for the probe when it exercised it."""
        if self.probe is None:
            return
        rate, burst, conc = self.current()
        a = self.allowance
        if self.probe == "burst":
            ok = ident.count == int(self.value)  # a fresh identity spent the probed burst
            need = BURST_EVIDENCE
        elif self.probe == "rate":
            # one identity past its burst, paced at the probed rate: at twice the true rate a
            # true burst of B drains within 2 B requests; B is unknown, so B = the proven
            # burst plus UNSEEN_BURST (the largest burst section 13's reports name)
            ok = ident.count > burst and ident.generation == self.generation
            need = 2 * (a.burst + UNSEEN_BURST)
            if ok:
                ident.tested += 1
                self.evidence = max(self.evidence, ident.tested)
            ok = False
        else:
            ok = ident.in_flight + 1 >= conc
            need = 8
        if ok:
            self.evidence += 1
        if self.evidence >= need:
            self._accept()

    def _accept(self) -> None:
        a, v = self.allowance, self.value
        if self.probe == "rate":
            a = dataclasses.replace(a, rate=v)
        elif self.probe == "burst":
            a = dataclasses.replace(a, burst=int(v))
        else:
            a = dataclasses.replace(a, concurrency=int(v))
        logger.info("Pacing: %s %g admitted without a ban; now proven", self.probe, v)
        self._changed(a)
        self._next_probe()

    def _learn_ban(self, count: int, span: float, exercised: bool) -> None:
        a = self.allowance
        if self.probe is not None and exercised:
            self.spent += 1
            v = self.value
            if self.probe == "rate":
                a = dataclasses.replace(a, rate_refuted=v)
            elif self.probe == "burst":
                a = dataclasses.replace(a, burst_refuted=int(v))
            else:
                a = dataclasses.replace(a, concurrency_refuted=int(v))
            logger.info("Pacing: ban while probing %s %g: refuted (%d of %d probe bans "
                        "spent)", self.probe, v, self.spent, self.probe_bans)
        elif count < a.burst:  # refused within the proven burst: it was not proven enough
            a = dataclasses.replace(a, burst=max(1, count), burst_refuted=a.burst)
            logger.info("Pacing: ban within the burst after %d requests: burst now %d", count,
                        a.burst)
        elif count >= self.max_count:
            window = (max(1, count), round(max(2.0 * span, 1.0), 3))
            a = dataclasses.replace(a, windows=(*a.windows, window))
            logger.info("Pacing: ban with nothing probed after %d requests in %.1f s: a limit "
                        "beyond the bucket; learned a window of %d per %g s", count, span,
                        *window)
        else:
            refuted = a.rate
            a = dataclasses.replace(a, rate=max(refuted / 2, MIN_RATE), rate_refuted=refuted)
            logger.info("Pacing: ban with nothing probed: rate %g withdrawn, now %g", refuted,
                        a.rate)
        self._changed(dataclasses.replace(a, bans=a.bans + 1))
        self._next_probe()

    def _next_probe(self) -> None:
        """Probe the first number not yet known closely, while the budget lasts."""
        self.probe, self.evidence = None, 0
        self.generation += 1
        if self.spent >= self.probe_bans:
            return
        for param in self.params:
            value = next_probe(param, self.allowance)
            if value is not None:
                self.probe, self.value = param, value
                return

    def _changed(self, a: Allowance) -> None:
        self.allowance = dataclasses.replace(a, learned_at=self._wall())
        if self._save is not None:
            try:
                self._save(self.allowance)
            except Exception as e:  # noqa: BLE001 - learning must not stop the run
                logger.warning("Pacing: could not store the learned allowance: %s", e)

