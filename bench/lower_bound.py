"""The reference scenario's lower bounds on time and on IPs, from its rules alone (pure).

The rules (``backend/boardsync/scenarios/reference.toml``): every exit IP has a token bucket
of ``burst`` requests refilled at ``rate`` per second (exceed it and the IP is banned); an IP
lives ``lifetime`` seconds from its extraction; the provider serves one extraction call per
``interval`` seconds, each returning at most ``max_num`` IPs, and at most ``quota`` IPs a day.

One IP extracted at time ``t0`` can serve at most ``burst + rate * (min(T, t0 + lifetime) -
t0)`` requests by time ``T``. The most requests any client can get served by ``T`` with ``n``
IPs is therefore reached by taking the IPs as early as possible (``max_num`` per call, calls at
``0, interval, 2 * interval, ...``) and sending every request the buckets allow. The smallest
``T`` at which that reaches the requests needed is the time bound for ``n`` IPs; it falls as
``n`` grows, down to the bound with the whole quota. See ``docs/BENCHMARKS.md`` for the
arithmetic. Nothing here sleeps or measures: ``python bench/lower_bound.py`` prints the table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Rules:
    """What the scenario allows (simulated seconds)."""

    rate: float = 1.0  # requests/s per identity (token refill)
    burst: float = 5.0  # token bucket size (a fresh IP starts full)
    lifetime: float = 60.0  # IP lifetime from extraction
    interval: float = 2.0  # minimum seconds between extraction calls
    max_num: int = 20  # IPs per extraction call at most
    quota: int = 200  # IPs per day

    @property
    def per_ip(self) -> float:
        """Most requests one IP can ever serve: ``burst + rate * lifetime`` (5 + 60 = 65)."""
        return self.burst + self.rate * self.lifetime


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
        total += rules.burst + rules.rate * (min(t, t0 + rules.lifetime) - t0)
    return total


def time_lower_bound(requests: float, n: int, rules: Rules) -> float:
    """Smallest ``T`` with ``supply(T, n) >= requests``; ``inf`` when ``n`` IPs cannot do it.

    Example: 905 requests, 20 IPs from one call: 20 * (5 + T) >= 905 -> T = 40.25 s.
    """
    n = min(n, rules.quota)
    if n <= 0 or supply(math.inf, n, rules) < requests:
        return math.inf
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

    Example: 905 / 65 -> 14 IPs (and then the time bound is close to the lifetime).
    """
    return math.ceil(requests / rules.per_ip)


def expected_requests(requests: int, fault_rate: float) -> float:
    """Requests sent in expectation when each fails independently with ``fault_rate`` and a
    failed page is sent again: ``requests / (1 - fault_rate)`` (a geometric number of tries)."""
    return requests / (1.0 - fault_rate)


def frontier(requests: float, rules: Rules, ips: Iterable[int]) -> list[tuple[int, float]]:
    """``(n, time_lower_bound(requests, n))`` for each ``n``: the time/IP trade-off curve."""
    return [(n, time_lower_bound(requests, n, rules)) for n in ips]


def main() -> None:
    rules = Rules()
    r = requests_needed([], 0) + 899 + list_pages_needed([86, 441])
    print(f"requests needed {r}; IP lower bound {ip_lower_bound(r, rules)}")
    for n, t in frontier(r, rules, (14, 20, 24, 30, 40, 48, 60, 100, 200)):
        print(f"  {n:4d} IPs -> time >= {t:7.2f} s")


if __name__ == "__main__":
    main()
