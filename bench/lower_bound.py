"""Lower bounds on time and on IPs for a scenario's rules alone (pure), for every rule shape.

The rules (``backend/boardsync/scenarios/reference.toml`` and ``Scenario``): every exit IP has
a token bucket of ``burst`` requests refilled at ``rate`` per second, any number of sliding
windows (at most ``N`` requests in any ``W`` seconds) and a cap of ``cap`` requests in flight
(each in flight ``latency`` seconds), and breaking any of them bans the IP for ``ban_s``; an IP
lives ``lifetime`` seconds from its extraction; the provider serves one extraction call per
``interval`` seconds, each returning at most ``max_num`` IPs, and at most ``quota`` IPs a day.

``Rules.served(elapsed)`` bounds what one IP can have had admitted ``elapsed`` seconds after
its extraction: the smallest of the bucket's ``burst + rate * elapsed``, each window's
``N * (floor(elapsed / W) + 1)`` and the cap's ``cap * (floor(elapsed / latency) + 1)``
(Little's law: at most ``cap / latency`` per second), each stopping at the IP's end of life.
The most requests any client can get served by ``T`` with ``n`` IPs is therefore reached by
taking the IPs as early as possible (``max_num`` per call, calls at ``0, interval, 2 *
interval, ...``) and sending every request the rules allow. The smallest ``T`` at which that
reaches the requests needed is the time bound for ``n`` IPs; it falls as ``n`` grows, down to
the bound with the whole quota. See ``docs/BENCHMARKS.md`` ("The lower bound" and "Bounds for
every rule shape") for the arithmetic. Nothing here sleeps or measures: ``python
bench/lower_bound.py`` prints the tables.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rules:
    """What the scenario allows (simulated seconds). ``rate = inf``: no bucket; ``cap = 0`` or
    ``latency = 0``: no concurrency bound; ``windows = ()``: none; ``lifetime`` must be finite.
    """

    rate: float = 1.0  # requests/s per identity (token refill)
    burst: float = 5.0  # token bucket size (a fresh IP starts full)
    lifetime: float = 60.0  # IP lifetime from extraction
    interval: float = 2.0  # minimum seconds between extraction calls
    max_num: int = 20  # IPs per extraction call at most
    quota: int = 200  # IPs per day
    windows: tuple[tuple[int, float], ...] = ()  # (at most N requests, per W seconds) each
    cap: int = 0  # requests in flight per identity at most (0 = no cap)
    latency: float = 0.0  # seconds each request is in flight (for the cap)
    ban_s: float = 60.0  # ban length: a ban refills the bucket, so a short one can pay

    @classmethod
    def from_scenario(cls, scenario: Any, latency: float | None = None) -> Rules:
        """The rules of a ``boardsync.sim.Scenario``; ``latency`` defaults to its median."""
        return cls(rate=scenario.rate_per_s, burst=scenario.burst,
                   lifetime=scenario.ip_lifetime_s, interval=scenario.extract_min_interval_s,
                   max_num=scenario.extract_max_num, quota=scenario.extract_quota_per_day,
                   windows=tuple((int(n), float(w)) for n, w in scenario.windows),
                   cap=scenario.concurrency_cap, ban_s=scenario.ban_s,
                   latency=scenario.latency_median_s if latency is None else latency)

    @property
    def bucket_rate(self) -> float:
        """Long-run rate the bucket allows: ``rate``, or ``burst / ban_s`` when bans pay.

        The simulator refills the bucket when a ban starts, so a client that breaks it on
        purpose gets ``burst`` per ``ban_s``: 5 per 2 s = 2.5/s beats 1/s; 5 per 60 s does not.
        """
        if self.ban_s <= 0:
            return math.inf
        return max(self.rate, self.burst / self.ban_s)

    def served(self, elapsed: float, ended: bool = False) -> float:
        """Most requests one IP can have had admitted ``elapsed`` s after its extraction.

        ``ended``: the IP's life is over (``elapsed`` is then ``lifetime``; requests were sent
        in ``[0, lifetime)``). Example (reference rules): ``served(40) = 5 + 40 = 45``; with a
        window 200/60 s instead, ``served(40) = 200`` and ``served(60, ended=True) = 200``.
        """
        bounds = [math.inf]
        if not math.isinf(self.bucket_rate):
            bounds.append(self.burst + self.bucket_rate * elapsed)
        steps = list(self.windows)
        if self.cap and self.latency > 0:  # Little's law: cap per latency, as a window
            steps.append((self.cap, self.latency))
        for n, w in steps:
            spans = math.ceil(self.lifetime / w) if ended else math.floor(elapsed / w) + 1
            bounds.append(n * spans)
        return min(bounds)

    @property
    def per_ip(self) -> float:
        """Most requests one IP can ever serve: ``burst + rate * lifetime`` (5 + 60 = 65)."""
        return self.served(self.lifetime, ended=True)


def requests_needed(board_sizes: Iterable[int], list_pages: int, page_size: int = 100) -> int:
    """Pages a complete sync must fetch: ``sum(ceil(size / 100))`` + the board-list pages.

    An empty board still costs its first page (``data: null`` or an empty ``diff``).
    """
    return sum(max(1, math.ceil(s / page_size)) for s in board_sizes) + list_pages


def list_pages_needed(boards_per_kind: Iterable[int], page_size: int = 100) -> int:
    """Board-list pages: 86 industry + 441 concept boards -> 1 + 5 = 6."""
    return sum(max(1, math.ceil(n / page_size)) for n in boards_per_kind)


def arrival_times(n: int, rules: Rules) -> list[float]:
    """Earliest extraction time of each of ``n`` IPs: ``max_num`` per call, calls ``interval``
    apart starting at 0. Example: 45 IPs, 20 per call, 2 s -> 20 at 0, 20 at 2, 5 at 4."""
    return [(i // rules.max_num) * rules.interval for i in range(n)]


def supply(t: float, n: int, rules: Rules) -> float:
    """Most requests ``n`` IPs (taken as early as possible) can have served by time ``t``."""
    total = 0.0
    for t0 in arrival_times(n, rules):
        if t < t0:
            break
        end = t0 + rules.lifetime
        total += rules.served(min(t, end) - t0, ended=t >= end)
    return total


def time_lower_bound(requests: float, n: int, rules: Rules) -> float:
    """Smallest ``T`` with ``supply(T, n) >= requests``; ``inf`` when ``n`` IPs cannot do it.

    Example: 905 requests, 20 IPs from one call: 20 * (5 + T) >= 905 -> T = 40.25 s.
    """
    n = min(n, rules.quota)
    if n <= 0 or supply(math.inf, n, rules) < requests:
        return math.inf
    if supply(0.0, n, rules) >= requests:  # the rules admit it all at once (no bucket, no cap)
        return 0.0
    lo, hi = 0.0, (n // rules.max_num + 1) * rules.interval + rules.lifetime
    for _ in range(100):  # bisection to ~1e-12 s: supply is monotone in T
        mid = (lo + hi) / 2
        if supply(mid, n, rules) >= requests:
            hi = mid
        else:
            lo = mid
    return hi


def ip_lower_bound(requests: float, rules: Rules) -> int:
    """Fewest IPs that can serve ``requests``: ``ceil(requests / (burst + rate * lifetime))``.

    Example: 905 / 65 -> 14 IPs (and then the time bound is close to the lifetime). It can
    exceed ``quota``: then no client finishes within a quota day (``time_lower_bound`` is inf).
    """
    if requests <= 0:
        return 0
    return max(1, math.ceil(requests / rules.per_ip))


def expected_requests(requests: int, fault_rate: float) -> float:
    """Requests sent in expectation when each fails independently with ``fault_rate`` and a
    failed page is sent again: ``requests / (1 - fault_rate)`` (a geometric number of tries)."""
    return requests / (1.0 - fault_rate)


def frontier(requests: float, rules: Rules, ips: Iterable[int]) -> list[tuple[int, float]]:
    """``(n, time_lower_bound(requests, n))`` for each ``n``: the time/IP trade-off curve."""
    return [(n, time_lower_bound(requests, n, rules)) for n in ips]


#: A few rule shapes (EASTMONEY_API.md section 13's reported thresholds among them), each a
#: change to the reference rules; the provider (2 s, 20 per call, 200 a day) stays the same.
SHAPES: tuple[tuple[str, Rules], ...] = (
    ("reference: bucket 1/s, burst 5, ban 60 s", Rules()),
    ("bucket 5/s, burst 10", Rules(rate=5.0, burst=10.0)),
    ("bucket 1/s, burst 5, ban 2 s (bans pay)", Rules(ban_s=2.0)),
    ("windows 200/60 s + 300/300 s", Rules(rate=math.inf, windows=((200, 60.0), (300, 300.0)))),
    ("same windows, IP life 1 h", Rules(rate=math.inf, windows=((200, 60.0), (300, 300.0)),
                                        lifetime=3600.0)),
    ("cap 10 at 0.35 s (28.6/s)", Rules(rate=math.inf, cap=10, latency=0.35)),
    ("cap 2 at 0.35 s + bucket 5/s, burst 10", Rules(rate=5.0, burst=10.0, cap=2,
                                                     latency=0.35)),
    ("all: 5/s b10, 200/60+300/300, cap 10", Rules(rate=5.0, burst=10.0, cap=10, latency=0.35,
                                                   windows=((200, 60.0), (300, 300.0)),
                                                   lifetime=3600.0)),
)


def shape_rows(requests: float, ips: Iterable[int] = (20, 200)
               ) -> list[tuple[str, float, int, float, list[float]]]:
    """Per shape: ``(label, per IP, IP bound, time at the IP bound, [time at each n])``."""
    rows = []
    for label, rules in SHAPES:
        n_lb = ip_lower_bound(requests, rules)
        rows.append((label, rules.per_ip, n_lb, time_lower_bound(requests, n_lb, rules),
                     [time_lower_bound(requests, n, rules) for n in ips]))
    return rows


def main() -> None:
    rules = Rules()
    r = requests_needed([], 0) + 899 + list_pages_needed([86, 441])
    print(f"requests needed {r}; IP lower bound {ip_lower_bound(r, rules)}")
    for n, t in frontier(r, rules, (14, 20, 24, 30, 40, 48, 60, 100, 200)):
        print(f"  {n:4d} IPs -> time >= {t:7.2f} s")
    print(f"\nbounds for every rule shape ({r} requests; IPs: 20 per call, one call per 2 s, "
          f"quota 200; IP life 60 s unless said)")
    print(f"  {'shape':40s} {'per IP':>7s} {'IPs >=':>6s} {'at it':>8s} {'20 IPs':>8s} "
          f"{'quota':>8s}")
    for label, per_ip, n_lb, t_lb, (t20, tq) in shape_rows(r):
        print(f"  {label:40s} {per_ip:7.0f} {n_lb:6d} {t_lb:7.2f}s {t20:7.2f}s {tq:7.2f}s")


if __name__ == "__main__":
    main()
