"""How long a worker waits before its next request on its current IP.

Three policies (:meth:`Pacer.delay` for the first two, the learner's ``reserve`` for the third):

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

* ``learn`` (the default) — the allowance is learned (:mod:`boardsync.learner`): one
  :class:`~boardsync.learner.Learner` shared by every worker paces each identity the
  upstream sees and learns from answers and bans; what it learned is stored in the database
  (:func:`learner_for`) and the next run starts from it (:func:`starting_allowance`).
  :func:`explain_pacing` says all of that in words (``boardsync sync --explain``).

Waits are computed here as pure numbers; the worker does the sleeping.
"""

from __future__ import annotations

import logging
import math
import random
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .allowance import HALF_LIFE_S, START_RATE, Allowance, decayed
from .durations import human_duration
from .learner import PROBE_SHARE, Learner
from .lifetime import IpLife
from .redact import scrub
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
    ``learn``) the shared :class:`~boardsync.learner.Learner`."""

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


@dataclass(frozen=True)
class StartingAllowance:
    """Where a learning run starts, and what was found in the database to start from.

    Args:
        upstream: the host the allowance is stored under.
        first: the start when nothing is stored (one request per ``req_delay_max``).
        start: where this run starts: ``stored`` decayed by its age, else ``first``.
        stored: the allowance as stored; None when nothing was found.
        age_s: seconds since ``stored`` was learned (None: nothing stored).
        learned_at: the wall-clock epoch it was stored with (None: nothing stored).
        no_database: the SQLite file that does not exist yet ("" = none missing): nothing
            was read, nothing created.
        error: why the store could not be read ("" = it was read, or there was none).
    """

    upstream: str
    first: Allowance
    start: Allowance
    stored: Allowance | None = None
    age_s: float | None = None
    learned_at: float | None = None
    no_database: str = ""
    error: str = ""


def upstream_host(settings: Settings) -> str:
    """The host a learned allowance is stored under (the rule is the upstream's)."""
    return urlsplit(settings.upstream_url).netloc or "push2.eastmoney.com"


def starting_allowance(settings: Settings, clock: Clock,
                       store: AllowanceStore | None = None) -> StartingAllowance:
    """The stored allowance of this upstream, decayed by its age, or the first start.

    Reads and never raises: a run without its memory still runs, and ``--explain`` says why.
    Creates nothing either (no SQLite file, no table). Example: rate 2.0 stored a day ago,
    ``req_delay_max`` 2 s (first rate 0.5) -> the run starts at 0.5 + 1.5 / 2 = 1.25 req/s.

    Args:
        store: the store to read (None: one for ``settings.db_url`` and this upstream).
    """
    upstream = upstream_host(settings)
    # one request per the fixed pacing's slowest delay: a rate in the run's own time, so a
    # simulated run (every duration scaled) starts where a real one does in its time
    first = Allowance(rate=1.0 / settings.req_delay_max) if settings.req_delay_max > 0 \
        else Allowance()
    store = store or AllowanceStore(settings.db_url, upstream)
    if (missing := store.sqlite_file_missing()) is not None:
        return StartingAllowance(upstream, first, first, no_database=str(missing))
    try:
        found = store.load()
        stored = Allowance.from_json(found[0]) if found is not None else None
    except Exception as e:  # noqa: BLE001 - a run without its memory still runs
        # the first line only (SQLAlchemy appends the SQL), without any password in it
        why = scrub(str(e).splitlines()[0] if str(e) else type(e).__name__, settings.db_url)
        return StartingAllowance(upstream, first, first, error=why)
    if found is None or stored is None:
        return StartingAllowance(upstream, first, first)
    age = max(0.0, clock.wall().timestamp() - found[1])
    return StartingAllowance(upstream, first, decayed(stored, age, start=first), stored, age,
                             found[1])


def learner_for(settings: Settings, clock: Clock, found: StartingAllowance | None = None,
                *, save: bool = True) -> Learner:
    """The run's learner: the stored allowance of this upstream (decayed by its age towards
    the start) or the start, one request per ``req_delay_max``; saved back at every change.

    Args:
        found: where to start, already read (None: read it now, :func:`starting_allowance`).
        save: store what is learned, and log where the run starts; False for a learner
            only looked at (``--explain``, whose text says where it starts).
    """
    store = AllowanceStore(settings.db_url, upstream_host(settings))
    found = found or starting_allowance(settings, clock, store)
    start = found.start
    if save and found.error:
        logger.warning("Pacing: could not read the stored allowance: %s", found.error)
    elif save and found.stored is not None:
        logger.info("Pacing: starting from the allowance learned %.0f s ago: rate %.3g/s, "
                    "burst %d, concurrency %d, windows %s", found.age_s, start.rate,
                    start.burst, start.concurrency, start.windows or "none")

    def store_it(a: Allowance) -> None:
        store.save(a.to_json(), a.learned_at)

    return Learner(start, probe_bans=probe_budget(settings),
                   shared=settings.proxy in ("direct", "tunnel"),
                   wall=lambda: clock.wall().timestamp(), save=store_it if save else None,
                   assumed=found.stored is None)


# -- in words (``boardsync sync --explain``) --


def describe_allowance(a: Allowance, *, bans: bool = False) -> str:
    """One allowance in words: rate and spacing, burst, concurrency, windows, refuted values
    (only those a ban refuted) and, with ``bans``, the bans counted."""
    parts = [f"{a.rate:.3g} req/s (one every {1.0 / a.rate:.3g} s)" if a.rate > 0
             else "no rate", f"burst {a.burst}", f"concurrency {a.concurrency}"]
    windows = ", ".join(f"at most {n} per {w:g} s" for n, w in a.windows)
    parts.append(f"windows: {windows}" if windows else "no windows")
    if a.young_rate > a.rate:
        parts.append(f"{a.young_rate:.3g} req/s for an IP's first {a.young_span:.0f} s (a "
                     "prober followed it that long unbanned)")
    if a.rate_refuted:
        parts.append(f"a ban refuted {a.rate_refuted:.3g} req/s")
    if a.burst_refuted:
        parts.append(f"a ban refuted a burst of {a.burst_refuted}")
    if a.burst_closed:
        parts.append("the burst closed at what requests sent one after another can show")
    if a.concurrency_refuted:
        parts.append(f"a ban refuted {a.concurrency_refuted} in flight")
    if bans:
        parts.append(f"bans counted {a.bans}")
    return ", ".join(parts)


def _explain_found(settings: Settings, found: StartingAllowance) -> list[str]:
    """What the database held for this upstream, and where the run starts because of it."""
    if found.stored is not None and found.age_s is not None:
        when = datetime.fromtimestamp(found.learned_at or 0.0, UTC)
        first = found.first
        return [
            f"stored allowance for {found.upstream}: learned {human_duration(found.age_s)} ago "
            f"({when:%Y-%m-%d %H:%M:%S} UTC)",
            f"  as stored: {describe_allowance(found.stored, bans=True)}",
            f"  the run starts from it decayed by its age (its excess over the start, "
            f"{first.rate:.3g} req/s, burst {first.burst}, concurrency {first.concurrency}, "
            f"halves every {human_duration(HALF_LIFE_S)}; refuted values and windows older than "
            f"that are forgotten): {describe_allowance(found.start)}"]
    if found.no_database:
        why = f"no database yet ({found.no_database} does not exist; nothing was created)"
    elif found.error:
        why = f"could not read the stored allowance ({found.error})"
    else:
        why = f"nothing stored yet for {found.upstream}"
    per = (f"1 request per req_delay_max = {settings.req_delay_max:g} s"
           if settings.req_delay_max > 0
           else f"1 request per {1.0 / START_RATE:g} s (req_delay_max is 0)")
    return [f"{why}: the run starts at {per} ({found.first.rate:.3g} req/s), burst "
            f"{found.first.burst}, concurrency {found.first.concurrency}, and learns up "
            f"from there"]


def _explain_per_identity(settings: Settings, a: Allowance) -> str:
    """What one identity may serve at the allowance the run starts from."""
    if settings.proxy in ("direct", "tunnel"):
        minute = a.per_life(60.0)
        return (f"per identity: one identity ({settings.proxy}) serves every worker, so about "
                f"burst + rate x 60 s = {a.burst} + {a.rate:.3g} x 60 = {minute:.0f} "
                f"requests in its first minute, then {a.rate * 60:.0f} a minute")
    if settings.proxy == "api":
        life = IpLife(settings.ip_life, settings.ip_ttl).estimate()
        taken = (f"an IP is taken to live {life:g} s (ip_life {settings.ip_life:g} s, kept "
                 f"at most ip_ttl {settings.ip_ttl:g} s, until the provider states a lifetime "
                 f"or IPs are seen to die)")
    else:
        life = settings.ip_ttl
        taken = f"an IP is kept ip_ttl = {life:g} s"
    young = a.young_within(life)
    bucket = a.burst + a.served_between(0.0, life)
    n = a.per_life(life)
    text = (f"per IP: {taken}, so one IP may serve about burst + young rate x its first "
            f"{young:g} s + rate x the rest = {a.burst} + {a.young_rate:.3g} x {young:g} + "
            f"{a.rate:.3g} x {life - young:g}" if young else f"per IP: {taken}, so one IP may "
            f"serve about burst + rate x life = {a.burst} + {a.rate:.3g} x {life:g}")
    text += f" = {bucket:.0f} requests in its life"
    if n < bucket - 1e-9:
        text += f"; a learned window caps that at {n:.0f}"
    return text


def explain_pacing(settings: Settings, clock: Clock,
                   found: StartingAllowance | None = None) -> str:
    """How a run with ``settings`` paces its requests, in words a user can check.

    Learn pacing: what the database holds for this upstream (as stored, its age, and the
    decayed values the run starts from), the probe budget and what one IP may serve. Fixed
    and adaptive: what they do with their settings. Reads, never writes; never raises.

    Args:
        found: learn pacing: the allowance already read (None: read it now).
    """
    if settings.pacing == "fixed":
        return (f"pacing: fixed. After every request a worker waits a random "
                f"{settings.req_delay_min:g}-{settings.req_delay_max:g} s (req_delay_min to "
                f"req_delay_max) on its IP, whatever the upstream allows; nothing is learned "
                f"or stored (pacing = learn learns the allowance instead).")
    if settings.pacing == "adaptive":
        c = PacingConfig.of(settings)
        start = max(c.floor, c.delay_max)
        return (f"pacing: adaptive. One spacing between requests on an IP, shared by every "
                f"worker and learned by AIMD: it starts at {start:g} s (req_delay_max), each "
                f"success takes {c.step:g} s off down to pacing_floor {c.floor:g} s, each ban "
                f"multiplies it by {c.backoff:g} (up to {4 * start:g} s); a fresh IP may send "
                f"{max(1.0, c.burst):g} request(s) back to back (pacing_burst). Nothing is "
                f"stored between runs.")
    found = found or starting_allowance(settings, clock)
    budget = probe_budget(settings)
    bans = f"{budget} ban{'' if budget == 1 else 's'}"
    if settings.proxy in ("direct", "tunnel"):
        cost = (f"probe budget: {bans}. One identity ({settings.proxy}) is shared by every "
                f"worker, so a ban while probing stops every worker for the ban's length")
    else:
        cost = (f"probe budget: {bans} ({PROBE_SHARE:.0%} of max_ips {settings.max_ips}, at "
                f"least 1). Only one fresh identity at a time runs above what is proven, "
                f"probing one number, so each ban it takes costs one IP")
    lines = [
        "pacing: learn. One learner shared by every worker paces each identity the upstream "
        "sees (a token bucket of a rate and a burst, windows learned from bans, requests in "
        "flight), learns from answers and bans, and stores what it learned in the database "
        "for the next run.",
        *_explain_found(settings, found),
        f"{cost}; after {bans} spent on probing the run keeps what is proven and probes no "
        f"more.",
        _explain_per_identity(settings, found.start),
    ]
    return "\n".join(lines)
