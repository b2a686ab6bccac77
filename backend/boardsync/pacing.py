"""How long a worker waits before its next request on its current IP.

Two policies, one interface (:meth:`Pacer.delay`):

* ``fixed`` — the reference run's pacing: a uniform random delay in ``[min, max]`` after
  every request. Simple and safe, but it leaves most of what the upstream allows unused.
* ``adaptive`` — pace by what the upstream allows. The anti-bot rule is a per-IP request
  rate, so the wait is measured from the *start* of the previous request on the same IP
  (latency counts towards it) and the target spacing is learned with AIMD, shared by every
  worker: each success shortens the spacing a little (additive increase of the rate), each
  ban doubles it (multiplicative decrease). The spacing never goes below ``floor`` nor above
  ``ceiling``, and a little jitter keeps workers from marching in step.

  Anti-bot rules are usually token buckets (a rate *and* a burst): with ``burst`` > 1 the
  pacer mirrors that bucket for each IP — a fresh IP may send ``burst`` requests back to back,
  then one per ``spacing`` — so every IP is worked at the full allowance from its first
  second instead of idling through its burst. Keep ``burst`` one below what the upstream
  grants: the spare token absorbs arrival jitter (requests sent a spacing apart can arrive a
  little closer together).

* ``learn`` (the default) — the allowance is learned (:mod:`boardsync.allowance`): one
  :class:`~boardsync.allowance.Learner` shared by every worker paces each identity the
  upstream sees and learns from answers and bans; what it learned is stored in the database
  (:func:`learner_for`) and the next run starts from it.

Waits are computed here as pure numbers; the worker does the sleeping.
"""

from __future__ import annotations

import logging
import math
import random
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .allowance import PROBE_SHARE, Allowance, Learner, decayed
from .store.allowance import AllowanceStore

if TYPE_CHECKING:
    from .clock import Clock
    from .config import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PacingConfig:
    """Pacing knobs.

    Args:
        mode: ``fixed`` or ``adaptive``.
        delay_min/delay_max: fixed-mode delay range, seconds (also the adaptive ceiling's
            starting point: adaptive starts at ``delay_max`` and learns down).
        floor: adaptive: never space requests on one IP closer than this, seconds.
        step: adaptive: seconds taken off the spacing per success.
        backoff: adaptive: factor the spacing is multiplied by on a ban (2.0 = halve the rate).
        jitter: adaptive: +- fraction of random jitter on each wait.
        burst: adaptive: requests a fresh IP may send back to back (its token bucket size;
            1 = none: every request waits a full spacing after the previous one).
    """

    mode: str = "fixed"
    delay_min: float = 1.0
    delay_max: float = 2.0
    floor: float = 0.5
    step: float = 0.02
    backoff: float = 2.0
    jitter: float = 0.1
    burst: float = 1.0

    @classmethod
    def of(cls, settings: Settings) -> PacingConfig:
        """The pacing knobs of ``settings``."""
        return cls(mode=settings.pacing, delay_min=settings.req_delay_min,
                   delay_max=settings.req_delay_max, floor=settings.pacing_floor,
                   burst=settings.pacing_burst)


class RateController:
    """The shared AIMD estimate of the safe spacing between requests on one IP, or (mode
    ``learn``) the shared :class:`~boardsync.allowance.Learner`."""

    def __init__(self, config: PacingConfig, learner: Learner | None = None) -> None:
        self.config = config
        self.learner = learner if config.mode == "learn" else None
        self._spacing = max(config.floor, config.delay_max)
        self.bans = 0
        self._lock = threading.Lock()

    @property
    def spacing(self) -> float:
        """Seconds between two requests of one identity, as paced now."""
        if self.learner is not None:
            return 1.0 / self.learner.current()[0]
        return self._spacing

    @spacing.setter
    def spacing(self, value: float) -> None:
        self._spacing = value

    def on_success(self) -> None:
        """Additive increase of the rate: spacing -= step, down to the floor."""
        with self._lock:
            self._spacing = max(self.config.floor, self._spacing - self.config.step)

    def on_ban(self, key: str = "", now: float = 0.0) -> None:
        """Multiplicative decrease of the rate: spacing *= backoff, up to 4x delay_max; the
        learner (mode ``learn``) learns from identity ``key``'s history instead."""
        if self.learner is not None:
            self.learner.banned(key, now)
        with self._lock:
            self.bans += 1
            ceiling = max(self.config.floor, self.config.delay_max) * 4
            self._spacing = min(ceiling, self._spacing * self.config.backoff)


class Pacer:
    """One worker's pacing on its current IP."""

    def __init__(self, config: PacingConfig, controller: RateController,
                 rng: random.Random) -> None:
        self.config = config
        self.controller = controller
        self.rng = rng
        self.last_start: float | None = None
        self.tokens = max(1.0, config.burst)  # modelled tokens left at ``last_start``

    def tokens_at(self, now: float, spacing: float) -> float:
        """The IP's modelled tokens at ``now``: refilled one per ``spacing``, capped at burst."""
        if self.last_start is None:
            return max(1.0, self.config.burst)
        refill = (now - self.last_start) / spacing if spacing > 0 else float("inf")
        return min(max(1.0, self.config.burst), self.tokens + refill)

    def delay(self, now: float) -> float:
        """Seconds to wait before the next request, given the current time. Pure but for rng.

        Fixed: uniform(min, max). Adaptive: e.g. spacing 1.0 s, previous request started at
        t=10.0, now t=10.4 (it took 0.4 s) -> wait 0.6 s (+- jitter). With ``burst`` 4 a fresh
        IP's first four requests wait nothing; the fifth waits until one token has refilled
        (e.g. four requests 0.4 s apart from t=0: at t=1.6, 0.6 s refilled -> wait 0.4 s).
        """
        c = self.config
        if c.mode == "fixed":
            return self.rng.uniform(c.delay_min, c.delay_max)
        if self.last_start is None:
            return 0.0
        spacing = self.controller.spacing * self.rng.uniform(1 - c.jitter, 1 + c.jitter)
        missing = 1.0 - self.tokens_at(now, spacing)
        return max(0.0, missing * spacing)

    def started(self, now: float) -> None:
        """Record that a request starts now on the current IP (it spends one token)."""
        if self.config.mode != "fixed":
            self.tokens = max(0.0, self.tokens_at(now, self.controller.spacing) - 1.0)
        self.last_start = now

    def new_ip(self) -> None:
        """A fresh IP has no history: a full bucket, its first request may go at once."""
        self.last_start = None
        self.tokens = max(1.0, self.config.burst)


def probe_budget(settings: Settings) -> int:
    """Bans probing may cost: :data:`PROBE_SHARE` of the IPs the run may take (at least 1);
    one identity shared by every worker (direct, tunnel) is one IP: a single probe ban."""
    if settings.proxy in ("direct", "tunnel"):
        return 1
    return max(1, math.floor(PROBE_SHARE * settings.max_ips))


def learner_for(settings: Settings, clock: Clock) -> Learner:
    """The run's learner: the stored allowance of this upstream (decayed by its age towards
    the start) or the start, one request per ``req_delay_max``; saved back at every change."""
    upstream = urlsplit(settings.upstream_url).netloc or "push2.eastmoney.com"
    store = AllowanceStore(settings.db_url, upstream)
    # one request per the fixed pacing's slowest delay: a rate in the run's own time, so a
    # simulated run (every duration scaled) starts where a real one does in its time
    first = Allowance(rate=1.0 / settings.req_delay_max) if settings.req_delay_max > 0 \
        else Allowance()
    start = first
    try:
        found = store.load()
    except Exception as e:  # noqa: BLE001 - a run without its memory still runs
        logger.warning("Pacing: could not read the stored allowance: %s", e)
        found = None
    if found is not None:
        stored = Allowance.from_json(found[0])
        age = max(0.0, clock.wall().timestamp() - found[1])
        start = decayed(stored, age, start=first)
        logger.info("Pacing: starting from the allowance learned %.0f s ago: rate %.3g/s, "
                    "burst %d, concurrency %d, windows %s", age, start.rate, start.burst,
                    start.concurrency, start.windows or "none")

    def save(a: Allowance) -> None:
        store.save(a.to_json(), a.learned_at)

    return Learner(start, probe_bans=probe_budget(settings),
                   shared=settings.proxy in ("direct", "tunnel"),
                   wall=lambda: clock.wall().timestamp(), save=save)
