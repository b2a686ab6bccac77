"""Anti-bot rules of the simulated upstream: per-identity limits, bans, random faults.

Every decision is drawn from a random stream owned by the client identity (exit IP), seeded
from ``(seed, identity)``, so the same sequence of requests from one identity meets the same
sequence of faults and latencies whatever other identities do at the same time.

The rules, per identity, any combination of them (``Scenario``: ``rate_per_s``/``burst``,
``windows``, ``concurrency_cap``, ``ban_s``, ``ban_signal``):

* **token bucket**: ``burst`` tokens, refilled at ``rate_per_s``; an admitted request spends
  one, a request that finds less than one token breaks the rule.
* **sliding windows** ``(N, W)``: a request at ``t`` breaks the rule when ``N`` requests were
  already *admitted* in ``(t - W, t]``; so at most ``N`` admitted requests fall in any
  half-open span of ``W`` seconds (the ``N``-th at 0 and the next at exactly ``W`` is fine).
* **concurrency cap** ``c``: a request breaks the rule when ``c`` admitted requests of the
  identity are in flight; one is in flight from its arrival until the handler returns its
  reply (latency and hangs included; :meth:`AntiBot.release` ends it).

Breaking any rule starts a ban of ``ban_s``: that request and every request arriving before
``now + ban_s`` are refused with the scenario's ban signal. Refused requests are not admitted:
they spend no token, do not count in any window, are never in flight, and do not lengthen the
ban. When a ban starts the bucket is refilled (a fresh allowance once the ban is over, as it
always was), but window history is kept, so a ban never lets a window admit more than ``N``.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass

from .scenario import FAULT_CLASSES, Scenario

#: z-score of the 99th percentile of a standard normal distribution.
Z99 = 2.3263478740408408


@dataclass(slots=True)
class Verdict:
    """What the upstream does with one request: serve normally, or ``ban``/``fault`` it.

    ``signal`` is how a banned request is refused (``close``, ``403``, ``null_data``,
    ``captcha``); ``rule`` names the rule a ban-starting request broke (``bucket``,
    ``window N/W``, ``concurrency``). An admitted request (not banned) is in flight until
    :meth:`AntiBot.release`.
    """

    latency_s: float  # simulated seconds before answering
    banned: bool = False
    ban_new: bool = False  # this request started the ban
    ban_close: bool = False  # banned: close without response (signal == "close")
    fault: str | None = None
    signal: str | None = None
    rule: str | None = None


class Identity:
    """Token bucket, window history, requests in flight, ban state and random stream."""

    __slots__ = ("name", "tokens", "stamp", "banned_until", "rng", "requests", "admitted",
                 "in_flight")

    def __init__(self, name: str, seed: int, burst: float, history: int) -> None:
        self.name = name
        self.tokens = burst
        self.stamp: float | None = None
        self.banned_until = -math.inf
        self.rng = random.Random(f"{seed}:identity:{name}")
        self.requests = 0
        #: arrival times of the last ``history`` admitted requests (the largest window's N)
        self.admitted: deque[float] = deque(maxlen=history)
        self.in_flight = 0


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
        self._history = max((int(n) for n, _ in s.windows), default=0)

    def identity(self, name: str) -> Identity:
        ident = self.identities.get(name)
        if ident is None:
            ident = self.identities[name] = Identity(name, self.seed, self.scenario.burst,
                                                     self._history)
        return ident

    def is_banned(self, name: str, now: float) -> bool:
        return self.identity(name).banned_until > now

    def release(self, name: str) -> None:
        """An admitted request of ``name`` got its reply: it is no longer in flight."""
        ident = self.identity(name)
        ident.in_flight = max(0, ident.in_flight - 1)

    def _signal(self, u_ban: float) -> str:
        s = self.scenario
        if s.ban_signal == "close_or_403":  # the calibrated mix, one draw per banned request
            return "close" if u_ban < s.ban_close_fraction else "403"
        return s.ban_signal

    def _broken_rule(self, ident: Identity, now: float) -> str | None:
        """The first rule a request at ``now`` breaks (bucket already refilled), or None."""
        s = self.scenario
        if ident.tokens < 1.0:
            return "bucket"
        admitted = ident.admitted
        for n, w in s.windows:
            # N admitted in (now - W, now] <=> the N-th most recent one is after now - W.
            if len(admitted) >= n and admitted[-n] > now - w:
                return f"window {n}/{w:g}"
        if s.concurrency_cap and ident.in_flight >= s.concurrency_cap:
            return "concurrency"
        return None

    def judge(self, name: str, now: float, *, is_members: bool) -> Verdict:
        """One request from ``name`` at simulated time ``now``.

        Three draws per request, always (latency, fault, ban mix), to keep streams aligned:
        the calibrated scenarios meet the same draws whatever rules are added.
        """
        s = self.scenario
        ident = self.identity(name)
        ident.requests += 1
        z = ident.rng.gauss(0.0, 1.0)
        u_fault = ident.rng.random()
        u_ban = ident.rng.random()
        latency = math.exp(self._mu + self._sigma * z) if self._mu is not None else 0.0
        if ident.banned_until > now:
            signal = self._signal(u_ban)
            return Verdict(latency, banned=True, ban_close=signal == "close", signal=signal)
        # Token bucket: refill since the last request, then spend one token.
        if ident.stamp is not None:
            ident.tokens = min(s.burst, ident.tokens + (now - ident.stamp) * s.rate_per_s)
        ident.stamp = now
        rule = self._broken_rule(ident, now)
        if rule is not None:
            ident.banned_until = now + s.ban_s
            ident.tokens = s.burst  # a fresh allowance once the ban is over
            signal = self._signal(u_ban)
            return Verdict(latency, banned=True, ban_new=True, ban_close=signal == "close",
                           signal=signal, rule=rule)
        ident.tokens -= 1.0
        if self._history:
            ident.admitted.append(now)
        ident.in_flight += 1
        for bound, cls in self._cumulative:
            if u_fault < bound:
                if cls == "null_data" and not is_members:
                    break
                return Verdict(latency, fault=cls)
        return Verdict(latency)
