"""The learner of the upstream's allowance: how fast one identity may ask, learned as it goes.

Why: nobody knows East Money's per-identity limit and it moves (EASTMONEY_API.md section 13),
so it is measured from the only signals there are: answers (admitted) and ban signals (not).
One learner is shared by every worker (the rule is the upstream's); each identity (the peer
address the upstream sees) keeps its history in it. The model: per identity a token bucket
(``rate``, ``burst``), windows (N per W s) and ``concurrency``; each proven or refuted.
**One number is probed at a time, by one identity** (the prober), so a ban during its probe
refutes it; probes double, then bisect; probing stops after ``probe_bans`` bans (5 % of the
run's IPs). A ban at proven values exceeded a limit the model lacks: a window, or the rate is
withdrawn. Method and figures: docs/BENCHMARKS.md, "The learner". Waits: :func:`wait_for`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

from .allowance import Allowance
from .evidence import (
    BANNED_RETRY_MAX_S,
    BANNED_RETRY_S,
    RATE_PRECISION,
    UNSEEN_BURST,
    Identity,
    burst_shown,
    exercised,
    led,
    probe_value,
    probing_base,
    rate_evidence,
    wait_for,
)

logger = logging.getLogger(__name__)

MIN_RATE = 0.01  # the rate is never withdrawn below one request per 100 s
#: Share of a run's IPs that probing may cost (issue 14: at most about 5 %).
PROBE_SHARE = 0.05
#: Bans at a proven rate are believed (it is withdrawn) once this many were seen, on at
#: least :data:`UNEXPLAINED_SHARE` of the identities started since: until then they are a
#: board's or an IP's own (data:null, a re-issued IP). A rate assumed, not shown: at two.
UNEXPLAINED_MIN = 2
UNEXPLAINED_SHARE = 0.25
MAX_IDENTITIES = 4096  # distinct identities whose history is kept (oldest forgotten first)
#: Probed in this order, one at a time (a shared identity's ban stops every worker: rate
#: first); bought IPs too: the young follow the rate's prober, which needs no burst.
PARAMS, PER_IP = ("rate", "burst", "concurrency"), ("rate", "burst")
#: A prober not heard of for this many proven spacings has ended: a fresh one takes over.
QUIET_SPACINGS = 10.0
#: A rate prober that followed its probe unbanned this share of an IP's life showed it.
LIFE_SHARE = 0.75


class Learner:
    """The shared learner: paces every identity and learns from each answer and ban.

    Args:
        allowance: where to start (a stored one, decayed; or :class:`Allowance` ()).
        probe_bans: bans probing may cost in this run (then it stops and keeps what is proven).
        shared: identities are shared by several workers (direct, tunnel): concurrency probed.
        assumed: the rate is the start's, not a stored one: the second ban at it withdraws
            it, however many identities started (once: then as for a shown rate).
        wall: wall-clock epoch now (``learned_at``); save: called with each new allowance.
    """

    def __init__(self, allowance: Allowance | None = None, *, probe_bans: int = 1,
                 shared: bool = False, wall: Callable[[], float] = lambda: 0.0,
                 save: Callable[[Allowance], None] | None = None, assumed: bool = False) -> None:
        self.allowance = allowance or Allowance()
        self.assumed = assumed  # the rate is where a run starts, not yet shown by an answer
        self.probe_bans = max(0, probe_bans)
        self.shared = shared
        self.params = PARAMS if shared else PER_IP
        self.burst_deferred = False  # a burst jump was all admitted: wait for a rate bound
        self.spent = 0  # bans spent on probes
        self.probe: str | None = None
        self.value = 0.0  # the probed value
        self.evidence = 0  # admitted requests that tested the probe
        self.max_count = 0  # most requests any identity had admitted without a ban
        self.unexplained = 0  # bans at proven values not yet corroborated
        self.started = 0  # identities that sent their first request since the last withdrawal
        self.generation = 0  # bumped at every change of the allowance in force
        self.withdrawn = 0  # the first generation after the allowance was last lowered
        self.prober: str | None = None  # the one identity paced at the probed value
        self._wall = wall
        self._save = save
        #: an IP's expected life in seconds (the crew's estimate): a rate prober that lived
        #: :data:`LIFE_SHARE` of it has shown its probe
        self.life: Callable[[], float] | None = None
        self.leader: str | None = None  # the prober whose schedule the young follow
        self._ids: dict[str, Identity] = {}
        self._lock = threading.Lock()
        self._next_probe()

    # -- the allowance in force --

    def current(self, key: str | None = None, age: float = 0.0) -> tuple[float, float, int]:
        """``(rate, burst, concurrency)`` for ``key`` (None: the prober's) ``age`` s after its
        first request: proven values, the probed one raised for the prober only."""
        a = self.allowance
        rate, burst, conc = a.rate_at(age), float(a.burst), a.concurrency
        if key is not None and key == self.leader != self.prober:
            return max(rate, a.young_rate), burst, conc  # it goes first, extending its proof
        if key is not None and key != self.prober:
            return rate, burst, conc
        if self.probe == "rate":
            rate = self.value
        elif self.probe == "burst":
            burst = self.value
        elif self.probe == "concurrency":
            conc = int(self.value)
        return rate, burst, conc

    def wants_prober(self) -> bool:  # a probe waits for a fresh identity (an extra IP)
        return self.probe is not None and self.prober is None and not self.shared

    def per_life(self, life_s: float) -> float:  # one fresh identity's, at proven values
        return self.allowance.per_life(life_s)

    def _ident(self, key: str) -> Identity:
        ident = self._ids.get(key)
        if ident is None:
            if len(self._ids) >= MAX_IDENTITIES:
                self._ids.pop(next(iter(self._ids)))
            ident = self._ids[key] = Identity(tokens=self.current()[1])
        return ident

    def _claim(self, key: str, ident: Identity, now: float) -> None:
        """Make ``key`` the prober when the probe has none (or its identity went quiet: an
        IP that expired says nothing): a fresh identity, or the shared one."""
        if self.probe is None or key == self.prober:
            return
        held = self._ids.get(self.prober) if self.prober is not None else None
        if held is not None and held.stamp is not None and \
                now - held.stamp < QUIET_SPACINGS / self.allowance.rate:
            return
        if ident.first is None or self.shared:  # from what is proven by now
            value = probe_value(self.probe, self._base(), self.shared, self.burst_deferred)
            if value is None:
                self._next_probe()
                if self.probe is None:
                    return
            else:
                self.value = value
            self.prober, ident.generation, ident.tested = key, self.generation, 0
            logger.debug("Pacing: %s %g probed by %s", self.probe, self.value, key)
            ident.tokens = self.current()[1]

    def released(self, key: str) -> None:
        """The worker let ``key`` go (its IP expired or was evicted): the probe is free."""
        with self._lock:
            if key == self.prober:
                self.prober = None
            self.leader = None if key == self.leader else self.leader  # its proof stays

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
            self._claim(key, ident, now)
            age = now - ident.first if ident.first is not None else 0.0
            rate, burst, conc = self.current(key, age)
            if not ident.aged and ident.stamp is not None and rate < self.allowance.young_rate:
                ident.aged, ident.tokens, ident.stamp = True, 0.0, now  # see Identity.aged
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
                self.started += 1
            return 0.0

    # -- signals --

    def answered(self, key: str, now: float, shown: bool = True) -> None:
        """A request of ``key`` was admitted (an answer, or a failure that is not a ban); not
        ``shown`` (``data: null``): it ends a ban's wait, and is a failure, not evidence."""
        with self._lock:
            ident = self._ident(key)
            ident.in_flight = max(0, ident.in_flight - 1)
            if ident.banned:  # the first answer after a ban: the identity is fresh again
                ident.banned, ident.count, ident.first = False, 0, now
                ident.tokens, ident.stamp = self.current(key)[1] - 1.0, now
                ident.starts.clear()
                ident.starts.append(now)
            if not shown:
                return ident.failure(now)
            ident.failed_at = None
            ident.answered_at = now
            ident.count += 1
            self.max_count = max(self.max_count, ident.count)
            if key == self.prober:
                self._tested(key, ident)
            elif key == self.leader:
                new = led(self.allowance, ident)
                self._changed(new, save=new.young_span > 1.1 * self.allowance.young_span)

    def failed(self, key: str, now: float) -> None:
        """A request of ``key`` failed (maybe the first of a ban): its time is kept."""
        with self._lock:
            ident = self._ident(key)
            ident.in_flight = max(0, ident.in_flight - 1)
            ident.failure(now)

    def banned(self, key: str, now: float) -> None:
        """The policy judged ``key`` banned: learn from its history once per ban."""
        with self._lock:
            ident = self._ident(key)
            if ident.banned:
                return
            ident.banned = True
            if ident.count == 0 and ident.in_flight == 0:
                # refused at its first request: it came banned (re-issued); nothing to learn
                ident.banned_at, ident.refusals = now, 0
                self._changed(dataclasses.replace(self.allowance,
                                                  bans=self.allowance.bans + 1))
                return
            paced = ident.generation if ident.failed_at is None else ident.failed_generation
            if paced < self.withdrawn:  # paced by a value already withdrawn (or lowered)
                self._changed(dataclasses.replace(self.allowance,
                                                  bans=self.allowance.bans + 1))
                return
            ident.banned_at, ident.refusals = now, 0
            if key == self.leader != self.prober:  # past its proof: the proof stays, spent
                self.leader, self.spent = None, self.spent + 1
                self._changed(dataclasses.replace(self.allowance,
                                                  bans=self.allowance.bans + 1))
                return
            at = ident.failed_at if ident.failed_at is not None else now
            span = at - ident.first if ident.first is not None else 0.0
            probed = key == self.prober and exercised(self.probe, self.value, self.allowance, ident)
            if key == self.prober:
                self.prober = None
            self._learn_ban(ident.count, span, probed)

    # -- learning (lock held) --

    def _tested(self, key: str, ident: Identity) -> None:
        """Weigh the prober's history since fresh (k admitted, starts spanning d) as evidence.

        ``d`` runs from the first request's start to the last one's answer, which contains
        the span of arrivals the upstream judged, however long each request travelled.
        Rate: :func:`~boardsync.evidence.rate_evidence` (for any age, and for the young);
        the next prober probes on once it is within :data:`RATE_PRECISION`.
        Burst: once the prober spent the probed burst,
        ``k - r * d`` for the refuted rate r (the refill while replies came back); a burst
        the refill could explain is proven only as far as shown, and closed there (asking
        request after request cannot show more). Concurrency: 8 requests at it.
        """
        a, v = self.allowance, self.value
        span = ident.span  # first start to last answer
        if self.probe == "rate":
            most = a.burst_refuted - 1 if a.burst_refuted else a.burst + UNSEEN_BURST
            life = self.life() if self.life is not None and not self.shared else 0.0
            new, shown, took = rate_evidence(a, v, ident, most, LIFE_SHARE * life if life
                                             else 0.0, leading=key == self.leader)
            if new != a:
                self.assumed = self.assumed and new.rate <= a.rate
                if took and key != self.leader:
                    logger.info("Pacing: rate %.3g followed for %.1f s without a ban: proven "
                                "for identities that young", new.young_rate, new.young_span)
                    self.leader = key
                # a leader's every answer moves its proof: stored when it moved by 10 %
                self._changed(new, save=new.rate > a.rate * 1.02 or shown >= v / RATE_PRECISION
                              or new.young_span > 1.1 * a.young_span
                              or new.young_rate > 1.02 * a.young_rate)
            if shown >= v / RATE_PRECISION:  # the probe is shown: probe on from there
                logger.info("Pacing: rate %.3g shown without a ban; now proven", shown)
                self._next_probe()
            return
        if self.probe == "burst":
            if ident.count < int(v):
                return
            if not self.shared and not a.rate_refuted:  # no bound on the refill: nothing
                logger.info("Pacing: burst %g admitted, but nothing bounds the refill yet; "
                            "the burst waits for the rate", v)
                self.burst_deferred = True
                self._next_probe()
                return
            shown = burst_shown(ident.count, span, a.rate_refuted or 2 * a.rate)
            if shown >= int(v):
                self._accept()
                return
            burst = max(a.burst, shown)
            logger.info("Pacing: burst %g spent but %d shown (refill); burst %d, closed", v,
                        shown, burst)
            # closed, not refuted: the rate's evidence keeps the bound a ban set (or the
            # unseen burst), since a larger burst may hide behind the refill
            self._changed(dataclasses.replace(a, burst=burst, burst_closed=True))
            self._next_probe()
            return
        if ident.in_flight + 1 >= int(v):
            self.evidence += 1
        if self.evidence >= 8:
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
            elif self.probe == "burst":  # k admitted, then refused: the burst is at most k
                a = dataclasses.replace(a, burst_refuted=min(int(v), max(a.burst, count) + 1))
            else:
                a = dataclasses.replace(a, concurrency_refuted=int(v))
            logger.info("Pacing: ban while probing %s %g: refuted (%d of %d probe bans "
                        "spent)", self.probe, v, self.spent, self.probe_bans)
        elif count < a.burst:  # refused within the proven burst: it was not proven enough
            a = dataclasses.replace(a, burst=max(1, count), burst_refuted=a.burst)
            logger.info("Pacing: ban within the burst after %d requests: burst %d", count, a.burst)
        elif count >= self.max_count and count > a.burst + 1:
            window = (max(1, count), round(max(2.0 * span, 1.0), 3))
            a = dataclasses.replace(a, windows=(*a.windows, window))
            logger.info("Pacing: ban with nothing probed after %d requests in %.1f s: a limit "
                        "beyond the bucket; learned a window of %d per %g s", count, span,
                        *window)
        elif self.unexplained + 1 < max(UNEXPLAINED_MIN, 0 if self.assumed else
                                        UNEXPLAINED_SHARE * self.started):
            # a ban at proven values may be its own (data:null, an IP banned before)
            self.unexplained += 1
            logger.info("Pacing: ban at the proven allowance after %d requests (%d of %d "
                        "identities since): not believed yet", count, self.unexplained,
                        self.started)
            self._changed(dataclasses.replace(a, bans=a.bans + 1))
            return
        else:
            refuted = a.rate
            a = dataclasses.replace(a, rate=max(refuted / 2, MIN_RATE), rate_refuted=refuted,
                                    young_rate=0.0, young_span=0.0)
            logger.info("Pacing: bans with nothing probed: rate %g withdrawn: %g", refuted, a.rate)
            self.assumed = False  # once: what it is withdrawn to is counted like a shown rate
        if not (self.probe and exercised):  # lowered (a probe's ban leaves it assumed): its
            self.unexplained = self.started = 0  # bans count afresh, none paced before it
            self.withdrawn = self.generation + 1
        self._changed(dataclasses.replace(a, bans=a.bans + 1))
        self._next_probe()

    def _next_probe(self) -> None:
        """Probe the first number not yet known closely, while the budget lasts."""
        self.probe, self.evidence, self.prober = None, 0, None
        self.generation += 1
        if self.spent >= self.probe_bans:
            return
        for param in self.params:
            value = probe_value(param, self._base(), self.shared, self.burst_deferred)
            if value is not None:
                self.probe, self.value = param, value
                return

    def _base(self) -> Allowance:  # what probes start from
        return probing_base(self.allowance)

    def _changed(self, a: Allowance, save: bool = True) -> None:
        if a.young_rate and a.burst > self.allowance.burst:
            # the young's schedule was followed with the smaller burst: for the larger one
            # only the rate for any age is proven (the rate is probed again from there)
            a = dataclasses.replace(a, young_rate=0.0, young_span=0.0)
        self.allowance = dataclasses.replace(a, learned_at=self._wall())
        if self._save is not None and save:
            try:
                self._save(self.allowance)
            except Exception as e:  # noqa: BLE001 - learning must not stop the run
                logger.warning("Pacing: could not store the learned allowance: %s", e)

