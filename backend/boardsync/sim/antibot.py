"""Anti-bot rules of the simulated upstream: per-identity token buckets, bans, random faults.

Every decision is drawn from a random stream owned by the client identity (exit IP), seeded
from ``(seed, identity)``, so the same sequence of requests from one identity meets the same
sequence of faults and latencies whatever other identities do at the same time.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from .scenario import FAULT_CLASSES, Scenario

#: z-score of the 99th percentile of a standard normal distribution.
Z99 = 2.3263478740408408


@dataclass(slots=True)
class Verdict:
    """What the upstream does with one request: serve normally, or ``ban``/``fault`` it."""

    latency_s: float  # simulated seconds before answering
    banned: bool = False
    ban_new: bool = False  # this request started the ban
    ban_close: bool = False  # banned: close without response (else 403)
    fault: str | None = None


class Identity:
    """Token bucket, ban state and random stream of one client identity."""

    __slots__ = ("name", "tokens", "stamp", "banned_until", "rng", "requests")

    def __init__(self, name: str, seed: int, burst: float) -> None:
        self.name = name
        self.tokens = burst
        self.stamp: float | None = None
        self.banned_until = -math.inf
        self.rng = random.Random(f"{seed}:identity:{name}")
        self.requests = 0


class AntiBot:
    """Decides ban and fault per request; holds no clock (``now`` is passed in, simulated s)."""

    def __init__(self, scenario: Scenario, seed: int) -> None:
        self.scenario = scenario
        self.seed = seed
        self.identities: dict[str, Identity] = {}
        s = scenario
        self._mu = math.log(s.latency_median_s) if s.latency_median_s > 0 else None
        self._sigma = (math.log(s.latency_p99_s / s.latency_median_s) / Z99
                       if s.latency_median_s > 0 and s.latency_p99_s > 0 else 0.0)
        self._cumulative: list[tuple[float, str]] = []
        acc = 0.0
        for cls in FAULT_CLASSES:
            acc += s.fault_rates()[cls]
            self._cumulative.append((acc, cls))

    def identity(self, name: str) -> Identity:
        ident = self.identities.get(name)
        if ident is None:
            ident = self.identities[name] = Identity(name, self.seed, self.scenario.burst)
        return ident

    def is_banned(self, name: str, now: float) -> bool:
        return self.identity(name).banned_until > now

    def judge(self, name: str, now: float, *, is_members: bool) -> Verdict:
        """One request from ``name`` at simulated time ``now``.

        Three draws per request, always (latency, fault, ban mix), to keep streams aligned.
        """
        s = self.scenario
        ident = self.identity(name)
        ident.requests += 1
        z = ident.rng.gauss(0.0, 1.0)
        u_fault = ident.rng.random()
        u_ban = ident.rng.random()
        latency = math.exp(self._mu + self._sigma * z) if self._mu is not None else 0.0
        if ident.banned_until > now:
            return Verdict(latency, banned=True, ban_close=u_ban < s.ban_close_fraction)
        # Token bucket: refill since the last request, then spend one token.
        if ident.stamp is not None:
            ident.tokens = min(s.burst, ident.tokens + (now - ident.stamp) * s.rate_per_s)
        ident.stamp = now
        if ident.tokens < 1.0:
            ident.banned_until = now + s.ban_s
            ident.tokens = s.burst  # a fresh allowance once the ban is over
            return Verdict(latency, banned=True, ban_new=True,
                           ban_close=u_ban < s.ban_close_fraction)
        ident.tokens -= 1.0
        for bound, cls in self._cumulative:
            if u_fault < bound:
                if cls == "null_data" and not is_members:
                    break
                return Verdict(latency, fault=cls)
        return Verdict(latency)
