"""State shared by the simulator's components: clock, lock, market, anti-bot rules, counters."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..clock import SYSTEM, Clock
from .antibot import AntiBot
from .exits import Exits, aliases_supported
from .market import Market
from .scenario import Scenario


@dataclass
class Counters:
    """Everything the simulator counts; mutated under ``SimState.lock``."""

    requests: int = 0
    not_found: int = 0
    requests_by_board: Counter[str] = field(default_factory=Counter)
    requests_by_identity: Counter[str] = field(default_factory=Counter)
    #: the identities that asked each board's pages ("list": the board lists' pages)
    identities_by_board: dict[str, set[str]] = field(default_factory=dict)
    list_requests: int = 0
    bans: int = 0
    banned_requests: int = 0
    banned_closed: int = 0
    banned_403: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    ips_issued: int = 0
    ips_doa: int = 0
    ips_bad: int = 0
    ips_expired: int = 0
    extract_calls: int = 0
    extract_refused_too_fast: int = 0
    extract_refused_quota: int = 0
    extract_refused_key: int = 0
    extract_refused_other: int = 0
    gateway_requests: int = 0
    gateway_refused: int = 0
    gateway_auth_failed: int = 0
    tunnel_requests: int = 0
    gateway_tunnels: int = 0  # CONNECT tunnels opened
    # per host and route ("29.push2/api"), per ban signal, per client fingerprint class
    requests_by_route: Counter[str] = field(default_factory=Counter)
    refused_by_route: Counter[str] = field(default_factory=Counter)
    bans_by_signal: Counter[str] = field(default_factory=Counter)
    banned_by_signal: Counter[str] = field(default_factory=Counter)
    requests_by_fingerprint: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in vars(self).items():
            if isinstance(value, Counter):
                out[key] = dict(value)
            elif isinstance(value, dict):  # of sets
                out[key] = {k: set(v) for k, v in value.items()}
            else:
                out[key] = value
        return out


class SimState:
    """One simulator's mutable world. ``now()`` is simulated seconds since start.

    ``clock`` is the one source of time for every part of the simulator (the upstream's
    timestamps and the provider's expiry times read its wall time through :meth:`wall`), so
    a test or benchmark that injects a clock controls all of them at once.
    """

    def __init__(self, scenario: Scenario, seed: int, time_scale: float,
                 clock: Clock = SYSTEM) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        self.scenario = scenario
        self.seed = seed
        self.time_scale = time_scale
        self.lock = threading.RLock()
        self.market = Market(scenario, seed)
        self.antibot = AntiBot(scenario, seed)
        self.counters = Counters()
        self.exits = Exits(aliases_supported())
        self.outage: str | None = None
        self.shrink: dict[str, float] = {}
        self.list_loss: dict[str, float] = {}  # kind -> share of its boards the lists hide
        self.clock = clock
        self._t0 = clock.now()

    def now(self) -> float:
        """Simulated seconds since the simulator started."""
        return (self.clock.now() - self._t0) / self.time_scale

    def wall(self) -> datetime:
        """The real time of day (aware UTC), for timestamps served to clients."""
        return self.clock.wall()

    def real(self, sim_seconds: float) -> float:
        """Real seconds for a simulated duration."""
        return sim_seconds * self.time_scale
