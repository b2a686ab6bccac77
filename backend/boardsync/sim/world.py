"""Worlds nobody tuned for: every rule but the market drawn from documented ranges by one seed.

The calibrated scenarios are one guess at East Money's rules; the field reports
(``EASTMONEY_API.md`` section 13) say nobody has published the real ones and that they differ by
network, host and route. A client that only works in the calibrated worlds has learned a
constant, not a behaviour. ``draw_world(seed, base)`` keeps ``base``'s market (and its fault
rates, day length and other knobs not listed below) and draws the rest from :data:`RANGES`
with ``random.Random(f"world:{seed}")``, so ``--world-seed 42`` is the same world on every
machine and in every run.

:data:`RANGES` is the one table of what may be drawn. A range that spans an order of magnitude
or more is drawn log-uniformly (``log=True``): a rate of 0.2-5 req/s drawn uniformly would be
above 1 req/s 83 % of the time, log-uniformly half the time, which is what "nobody knows the
order of magnitude" means. Drawn floats keep three significant digits so the printed rules are
the served ones.

Plausibility rules, so every world is hostile but possible:

- a window (at most N requests per W seconds) must be able to bind: N is a share
  (``window_fill``) of the ``burst + rate * W`` the token bucket already allows in W; a second
  window is longer (at least twice W) and tighter on average (N2 / W2 < N1 / W1) yet allows
  more in all (N2 > N1), else one of the two could never be the one that refuses;
- latency: the p99 is 2-6 times the median and at most 5 s;
- at least one (clist host, route) pair is ``ok`` for every client, including a library's, so
  some route always syncs; the board directory host (``quote``) is left healthy;
- the ban signal is one of the four pure ones (``close_or_403`` is the calibrated mix);
- the daily quota starts at the reference scenario's 200, which one reference sync fits in.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from typing import Any

from .hosts import CLIST_HOSTS, ROUTES
from .scenario import CHOICES, Scenario


@dataclass(frozen=True, slots=True)
class Span:
    """A documented range ``[low, high]``; ``log`` draws log-uniformly, ``integer`` rounds."""

    low: float
    high: float
    unit: str
    log: bool = False
    integer: bool = False

    def draw(self, rng: random.Random) -> float:
        """One value in ``[low, high]``: an int when ``integer``, else three significant digits.

        Integers are drawn on ``[low - 0.5, high + 0.5]`` and rounded, so the two ends are as
        likely as the values between them.
        """
        lo, hi = (self.low - 0.5, self.high + 0.5) if self.integer else (self.low, self.high)
        if self.log:
            x = math.exp(rng.uniform(math.log(max(lo, 1e-9)), math.log(hi)))
        else:
            x = rng.uniform(lo, hi)
        x = float(round(x)) if self.integer else float(f"{x:.3g}")
        return min(max(x, self.low), self.high)


#: Every drawn knob's range (simulated seconds). Keys that are not ``Scenario`` fields shape
#: one: ``windows`` (count, ``window_s``, ``window_fill``), ``latency_tail`` (p99 / median),
#: ``intermittent_share`` / ``stale_lag_s`` (the arguments of those route healths).
RANGES: dict[str, Span] = {
    "rate_per_s": Span(0.2, 5.0, "req/s per exit IP", log=True),
    "burst": Span(1, 10, "requests", log=True, integer=True),
    "windows": Span(0, 2, "windows", integer=True),
    "window_s": Span(30.0, 1800.0, "s, the first window's W", log=True),
    "window_second_factor": Span(2.0, 10.0, "x the first W (at most 3600 s)", log=True),
    "window_fill": Span(0.3, 0.9, "of what the bucket allows in W"),
    "concurrency_cap": Span(1, 20, "requests in flight per exit IP", log=True, integer=True),
    "ban_s": Span(30.0, 7200.0, "s", log=True),
    "extract_max_num": Span(1, 20, "IPs per extraction call", log=True, integer=True),
    "ip_lifetime_s": Span(30.0, 300.0, "s", log=True),
    "extract_quota_per_day": Span(200, 5000, "IPs a day", log=True, integer=True),
    "extract_min_interval_s": Span(0.1, 10.0, "s between extraction calls", log=True),
    "ip_doa_fraction": Span(0.0, 0.3, "of issued IPs"),
    "tunnel_rotate_s": Span(15.0, 600.0, "s per tunnel exit IP", log=True),
    "latency_median_s": Span(0.05, 1.0, "s", log=True),
    "latency_tail": Span(2.0, 6.0, "x the median, for the p99 (at most 5 s)"),
    "intermittent_share": Span(0.2, 0.9, "of requests answered"),
    "stale_lag_s": Span(5.0, 120.0, "s behind", log=True),
}
#: The ban signals a world may draw (the pure ones; ``close_or_403`` is the calibrated mix).
BAN_SIGNALS: tuple[str, ...] = ("close", "403", "null_data", "captcha")
#: Route health kinds and their weights (``intermittent`` and ``stale`` get drawn arguments).
ROUTE_HEALTH: tuple[tuple[str, float], ...] = (
    ("ok", 0.4), ("refuse", 0.15), ("refuse:library", 0.15), ("intermittent", 0.2),
    ("stale", 0.1))
LATENCY_P99_MAX_S = 5.0
WINDOW_MAX_S = 3600.0
#: The ``Scenario`` fields a world draws; every other field is ``base``'s.
DRAWN_KEYS: tuple[str, ...] = (
    "rate_per_s", "burst", "windows", "concurrency_cap", "ban_s", "ban_signal",
    "extract_max_num", "ip_lifetime_s", "ttl_format", "extract_quota_per_day",
    "extract_min_interval_s", "ip_doa_fraction", "tunnel_rotate_s", "latency_median_s",
    "latency_p99_s", "routes")


def _windows(rng: random.Random, rate: float, burst: float) -> tuple[tuple[int, float], ...]:
    """Zero to two ``(N, W)`` windows that can each be the one that refuses (module docstring)."""
    count = int(RANGES["windows"].draw(rng))
    if count == 0:
        return ()
    w1 = RANGES["window_s"].draw(rng)
    n1 = max(2, math.floor(RANGES["window_fill"].draw(rng) * (burst + rate * w1)))
    if count == 1:
        return ((n1, w1),)
    w2 = float(f"{min(WINDOW_MAX_S, w1 * RANGES['window_second_factor'].draw(rng)):.3g}")
    allowed2 = burst + rate * w2
    hi = min(math.ceil(n1 * w2 / w1) - 1, math.floor(0.9 * allowed2))
    n2 = min(max(math.floor(RANGES["window_fill"].draw(rng) * allowed2), n1 + 1), hi)
    return ((n1, w1), (n2, w2))


def _health(rng: random.Random) -> str:
    kinds, weights = zip(*ROUTE_HEALTH, strict=True)
    kind = rng.choices(kinds, weights=weights)[0]
    if kind == "intermittent":
        return f"intermittent:{RANGES['intermittent_share'].draw(rng):g}"
    if kind == "stale":
        return f"stale:{RANGES['stale_lag_s'].draw(rng):g}"
    return kind


def draw_routes(rng: random.Random) -> tuple[tuple[str, str], ...]:
    """A health for every clist (host, route) pair, at least one of them ``ok``."""
    pairs = {f"{h}/{r}": _health(rng) for h in CLIST_HOSTS for r in ROUTES}
    if "ok" not in pairs.values():
        pairs[rng.choice(sorted(pairs))] = "ok"
    return tuple(pairs.items())


def _draw(rng: random.Random) -> dict[str, Any]:
    """Every drawn knob, in a fixed order (the order is part of what a seed means)."""
    d: dict[str, Any] = {key: RANGES[key].draw(rng) for key in ("rate_per_s", "burst")}
    d["windows"] = _windows(rng, d["rate_per_s"], d["burst"])
    d["concurrency_cap"] = int(RANGES["concurrency_cap"].draw(rng))
    d["ban_s"] = RANGES["ban_s"].draw(rng)
    d["ban_signal"] = rng.choice(BAN_SIGNALS)
    d["extract_max_num"] = int(RANGES["extract_max_num"].draw(rng))
    d["ip_lifetime_s"] = RANGES["ip_lifetime_s"].draw(rng)
    d["ttl_format"] = rng.choice(CHOICES["ttl_format"])
    d["extract_quota_per_day"] = int(RANGES["extract_quota_per_day"].draw(rng))
    for key in ("extract_min_interval_s", "ip_doa_fraction", "tunnel_rotate_s",
                "latency_median_s"):
        d[key] = RANGES[key].draw(rng)
    p99 = min(LATENCY_P99_MAX_S, d["latency_median_s"] * RANGES["latency_tail"].draw(rng))
    d["latency_p99_s"] = float(f"{p99:.3g}")
    d["routes"] = draw_routes(rng)
    return d


def draw_world(seed: int, base: Scenario) -> Scenario:
    """The world of ``seed``: ``base`` with every :data:`DRAWN_KEYS` knob drawn, named
    ``world-<seed>``.

    Args:
        seed: any int; the same seed gives the same world (``random.Random(f"world:{seed}")``,
            independent of the simulator's own ``--seed``, which still seeds the market).
        base: the scenario whose market and undrawn knobs the world keeps.
    """
    drawn = _draw(random.Random(f"world:{seed}"))
    return dataclasses.replace(base, name=f"world-{seed}", **drawn)


def _windows_text(windows: tuple[tuple[int, float], ...]) -> str:
    return ", ".join(f"{n} per {w:g} s" for n, w in windows) or "none"


def describe_world(s: Scenario) -> list[str]:
    """The drawn rules as text lines for a terminal (the admin ``/scenario`` serves them all)."""
    routes: dict[str, list[str]] = {}
    for key, health in s.routes:
        host, _, route = key.partition("/")
        routes.setdefault(host, []).append(f"{route} {health}")
    lines = [
        f"world      {s.name} (market kept: {s.stocks} stocks, {s.industry_boards} industry "
        f"+ {s.concept_boards} concept boards)",
        f"pace       {s.rate_per_s:g} req/s per exit IP, burst {s.burst:g}; windows "
        f"{_windows_text(s.windows)}; at most {s.concurrency_cap} in flight",
        f"bans       {s.ban_s:g} s, signalled by {s.ban_signal}",
        f"provider   up to {s.extract_max_num} IP{'' if s.extract_max_num == 1 else 's'} a call, "
        f"calls >= "
        f"{s.extract_min_interval_s:g} s apart, {s.extract_quota_per_day} IPs a day",
        f"ips        live {s.ip_lifetime_s:g} s (TTL given as {s.ttl_format}), "
        f"{s.ip_doa_fraction:.0%} dead on arrival; tunnel rotates every {s.tunnel_rotate_s:g} s",
        f"latency    median {s.latency_median_s:g} s, p99 {s.latency_p99_s:g} s",
    ]
    for i, (host, healths) in enumerate(routes.items()):
        lines.append(f"{'routes' if i == 0 else '':<10} {host + ':':<12} {', '.join(healths)}")
    return lines
