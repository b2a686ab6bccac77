"""The proxy manager: hands each worker a fresh IP for its exclusive use.

Why it exists: the upstream bans an identity that asks too fast, and IPs are bought from a
provider that is throttled (the :class:`~boardsync.proxy.bucket.LeakyBucket`) and rationed
(``max_ips``; each IP lives about a minute). The manager gives each worker its own IP with a
jittered TTL so workers do not all rotate at once, never extracts more than ``max_ips``, and
never hands an IP out again once a worker called :meth:`ProxyManager.mark_failed` on it. What
kind of source it draws from is the source's business (:class:`~boardsync.proxy.sources.
ProxySource`): the manager only asks whether it offers one shared proxy and whether its supply
is a free list or bought IP by IP.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import deque

from ..clock import SYSTEM, Clock
from ..errors import ConfigError, ExtractionThrottled, Interrupted, ProxyError, QuotaExhausted
from .bucket import LeakyBucket
from .sources import ProxySource
from .spacing import CallSpacing, PacedCalls
from .ttl import jittered_ttl
from .values import Proxy, ProxyEndpoint, ProxyStats

logger = logging.getLogger(__name__)


class ProxyManager:
    """Hands each worker a fresh, live proxy for its exclusive use.

    Extraction sources: the pool holds extracted IPs not yet handed out (each with its
    jittered TTL, counted from extraction since that is when the provider's clock starts).
    When the pool is empty, the caller extracts — through the bucket, so provider calls are
    spaced as the provider's answers showed (:class:`~boardsync.proxy.spacing.PacedCalls`); a
    "too fast" reply waits what the provider asked and tries again. The budget (``max_ips``)
    is reserved under the lock *before* the call, so threads racing to extract can never
    overshoot it together; the lock is never held while sleeping or doing HTTP.

    A source that offers a shared proxy (:meth:`ProxySource.shared`: direct, tunnel): every
    caller gets that proxy; evictions are counted but not acted on (rotation is the tunnel's
    job). A source with a free supply (:meth:`ProxySource.supply`: a static list): round-robin
    without quota or pacing, skipping evicted entries.

    Args:
        source: a :class:`ProxySource`.
        max_ips: most IPs to extract in this run (every IP counts, dead on arrival or not).
        ttl_s: how long to keep an IP before rotating (capped by the provider's TTL).
        ttl_jitter: ± fraction applied to each TTL (0 = none).
        bucket: the shared :class:`LeakyBucket` for provider calls.
        clock: ``expires_at`` values are on its ``now``; the bucket has its own clock.
        rng: randomness for the jitter.
        batch: IPs asked per provider call (extras wait in the pool).
        demand_sized: ask each call for only as many IPs as callers are waiting for at that
            moment (at least 1, at most ``batch``), so a replacement for one evicted IP does
            not pull a whole batch that would then age unused in the pool. False = always
            ``batch``.
        prefetch: with ``demand_sized``, IPs the *first* call asks for (at most ``batch``),
            for the workers about to start: with ``prefetch`` = workers + 1 one call serves
            the board-list fetch and every worker, instead of one call (one ``interval``) per
            worker. 0 = no prefetch.
        max_throttle_retries: "too fast" replies tolerated in a row before giving up
            (raising :class:`ExtractionThrottled`).
        spacing: what the provider's answers showed of its call limit (:class:`CallSpacing`;
            default: the bucket's interval, never probed shorter).
    """

    def __init__(
        self,
        source: ProxySource,
        *,
        max_ips: int,
        ttl_s: float,
        ttl_jitter: float = 0.15,
        bucket: LeakyBucket,
        clock: Clock = SYSTEM,
        rng: random.Random | None = None,
        batch: int = 1,
        max_throttle_retries: int = 10,
        demand_sized: bool = False,
        prefetch: int = 0,
        spacing: CallSpacing | None = None,
    ) -> None:
        if max_ips < 0:
            raise ConfigError(f"max_ips must be >= 0, got {max_ips}", key="max_ips")
        if not ttl_s > 0:
            raise ConfigError(f"ip TTL must be > 0 s, got {ttl_s}", key="ip_ttl")
        if not 0 <= ttl_jitter < 1:
            raise ConfigError(f"ip TTL jitter must be in [0, 1), got {ttl_jitter}",
                              key="ip_ttl_jitter")
        self.source = source
        self.max_ips = max_ips
        self.ttl_s = ttl_s
        self.ttl_jitter = ttl_jitter
        self.bucket = bucket
        #: the provider's calls, spaced as its answers showed (one at a time: extract lock)
        self.paced = PacedCalls(source, bucket, spacing or CallSpacing(bucket.interval_s,
                                                                       probe=False), clock)
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self.batch = max(1, batch)
        self.demand_sized = demand_sized
        self._prefetch = max(0, prefetch)  # consumed by the first extraction call
        self._waiting = 0  # callers inside acquire() without a proxy yet
        self.max_throttle_retries = max(0, max_throttle_retries)
        self._cond = threading.Condition(threading.Lock())
        self._extract_lock = threading.Lock()  # one extraction call in flight at a time
        self._pool: deque[Proxy] = deque()
        self._in_use: dict[str, Proxy] = {}
        self._dead: set[str] = set()
        self._reserved = 0  # IPs budgeted to extraction calls in flight
        self._provider_quota_out: str | None = None
        self._extracted = self._expired = self._failed = 0
        self._throttled = self._calls = 0
        self._shared_users = 0
        self._shared = source.shared()
        self._supply = source.supply()

    # -- queries --

    def is_alive(self, proxy: Proxy) -> bool:
        """True while ``proxy`` is within its TTL and has not been evicted."""
        if self._shared is not None and proxy.key == self._shared.key:
            return True
        with self._cond:
            dead = proxy.key in self._dead
        return not dead and self._clock.now() < proxy.expires_at

    def remaining_ips(self) -> int | None:
        """IPs still allowed by ``max_ips`` (``None`` = the source is not rationed)."""
        if self._supply is not None:
            return None
        with self._cond:
            return max(0, self.max_ips - self._extracted)

    def stats(self) -> ProxyStats:
        """A snapshot of the counters."""
        with self._cond:
            in_use = self._shared_users if self._shared is not None else len(self._in_use)
            return ProxyStats(self._extracted, self._expired, self._failed, in_use,
                              self._throttled, self._calls)

    # -- hand out / give back --

    def acquire(self, timeout: float | None = None,
                stop_event: threading.Event | None = None) -> Proxy:
        """A fresh live proxy for the caller's exclusive use.

        Args:
            timeout: most seconds (on the clock) to wait for the bucket or for other threads'
                extractions (``None`` = no limit).
            stop_event: when set, stop waiting and raise :class:`Interrupted`.

        Raises:
            QuotaExhausted: ``max_ips`` is spent (or the provider's quota) and nothing is
                pooled; or a static list whose every entry was evicted.
            ExtractionThrottled: still "too fast" after ``max_throttle_retries`` waits.
            ProviderAuthError, ProviderError: the provider call failed.
            Interrupted: ``stop_event`` was set.
            ProxyError: ``timeout`` passed.
        """
        if stop_event is not None and stop_event.is_set():
            raise Interrupted("stop requested before acquiring a proxy")
        if self._shared is not None:
            with self._cond:
                self._shared_users += 1
            return self._shared
        if self._supply is not None:
            return self._acquire_listed(self._supply)
        deadline = None if timeout is None else self._clock.now() + timeout
        with self._cond:
            self._waiting += 1
        try:
            return self._acquire_extracted(deadline, stop_event)
        finally:
            with self._cond:
                self._waiting -= 1

    def _acquire_extracted(self, deadline: float | None, stop_event: threading.Event | None
                           ) -> Proxy:
        """:meth:`acquire` for extraction sources: pooled, else extract (demand-sized)."""
        while True:
            with self._cond:
                proxy = self._take_pooled()
                if proxy is not None:
                    return proxy
                if self._provider_quota_out is not None:
                    raise QuotaExhausted(self._provider_quota_out)
                budget = self.max_ips - self._extracted - self._reserved
                if budget <= 0:
                    if self._reserved == 0:
                        raise QuotaExhausted(
                            f"max_ips reached: {self._extracted} of {self.max_ips} IPs extracted"
                        )
                    # Others are extracting the last IPs; one may come back spare (or fail
                    # and free its budget). Wait for them rather than give up early.
                    self._wait_for_others(deadline, stop_event)
                    continue
                n = min(self.batch, budget)
                if self.demand_sized:
                    n = min(n, max(1, self._waiting - self._reserved, self._prefetch))
                    self._prefetch = 0
                self._reserved += n
            try:
                proxy = self._extract(n, deadline, stop_event)
            finally:
                with self._cond:
                    self._reserved -= n
                    self._cond.notify_all()
            if proxy is not None:
                return proxy

    def _wait_for_others(self, deadline: float | None, stop_event: threading.Event | None
                         ) -> None:
        """Called with the lock held: wait a little for in-flight extractions to finish."""
        if stop_event is not None and stop_event.is_set():
            raise Interrupted("stop requested while waiting for a proxy")
        if deadline is not None and self._clock.now() >= deadline:
            raise ProxyError("no proxy became available within the timeout")
        # Real-time wait: woken by notify_all when any extraction finishes.
        self._cond.wait(0.05)

    def _take_pooled(self) -> Proxy | None:
        """Lock held: pop the first live pooled proxy (expired ones are counted and dropped)."""
        t = self._clock.now()
        while self._pool:
            p = self._pool.popleft()
            if p.key in self._dead or p.key in self._in_use:
                continue
            if t >= p.expires_at:
                self._expired += 1
                logger.debug("Proxy %s: expired in the pool before use", p.key)
                continue
            self._in_use[p.key] = p
            return p
        return None

    def _extract(self, n: int, deadline: float | None, stop_event: threading.Event | None
                 ) -> Proxy | None:
        """One extraction of up to ``n`` IPs through the bucket; returns one for the caller.

        Returns ``None`` when every IP returned was unusable (evicted before, already held);
        the caller loops, and the budget bounds the loop.
        """
        throttled = 0
        while True:
            if deadline is not None and self.bucket.wait_time() > deadline - self._clock.now():
                raise ProxyError("no proxy available within the timeout (extraction bucket)")
            # One caller at a time reserves a slot *and* makes the call: a slot reserved while
            # an earlier call is still in flight could not honour that call's answer time.
            with self._extract_lock:
                with self._cond:  # the call before ours may have pooled one for us
                    proxy = self._take_pooled()
                if proxy is not None:
                    return proxy
                self.bucket.acquire(stop_event)
                with self._cond:
                    # Another thread may have pooled spare IPs while we queued on the bucket.
                    proxy = self._take_pooled()
                    if proxy is not None:
                        return proxy
                    n = self._call_size(n)
                    if n <= 0:
                        return None  # the ration went to calls before ours
                    self._calls += 1
                try:
                    endpoints = self.paced.fetch(n)
                except ExtractionThrottled as e:
                    with self._cond:
                        self._throttled += 1
                    throttled += 1
                    if throttled > self.max_throttle_retries:
                        raise
                    logger.info("Proxy manager: provider says too fast (%s); waiting %.2f s", e,
                                self.bucket.wait_time())
                    continue
                except QuotaExhausted as e:
                    with self._cond:
                        self._provider_quota_out = f"provider quota exhausted: {e}"
                    logger.warning("Proxy manager: provider quota exhausted: %s", e)
                    raise
            return self._admit(endpoints, n)

    def _call_size(self, n: int) -> int:
        """Lock held, calls serialised: the IPs this call asks for, decided when it is made.

        Demand-sized calls ask for every caller waiting then (each arrived asking for one
        while the others were still on their way; the pool is empty, or it would have
        served us), within the batch and what ``max_ips`` leaves. Example: 17 workers
        admitted at once, batch 20 -> one call for 17, not 17 calls for one.
        """
        left = self.max_ips - self._extracted
        if self.demand_sized:
            n = max(n, self._waiting)
        return min(n, self.batch, left)

    def _admit(self, endpoints: list[ProxyEndpoint], n: int) -> Proxy | None:
        """Count and pool what the provider returned; hand one to the caller."""
        if len(endpoints) > n:
            logger.debug("Proxy manager: provider returned %d IPs for %d asked; keeping %d",
                         len(endpoints), n, n)
            endpoints = endpoints[:n]
        t = self._clock.now()
        with self._cond:
            self._extracted += len(endpoints)
            fresh: list[Proxy] = []
            for ep in endpoints:
                if ep.key in self._dead:
                    logger.info("Proxy %s: re-issued by the provider but evicted before; "
                                "skipped", ep.key)
                    continue
                if ep.key in self._in_use or any(p.key == ep.key for p in self._pool):
                    logger.info("Proxy %s: re-issued while already held; skipped", ep.key)
                    continue
                ttl = jittered_ttl(self.ttl_s, self.ttl_jitter, ep.ttl_s, self._rng)
                fresh.append(Proxy(ep.key, ep.url(), t + ttl, ep.identity_hint, t, ep.ttl_s))
            if not fresh:
                return None
            mine = fresh[0]
            self._in_use[mine.key] = mine
            self._pool.extend(fresh[1:])
            logger.debug("Proxy %s: extracted (%d of %d used)", mine.key, self._extracted,
                         self.max_ips)
            return mine

    def _acquire_listed(self, supply: int) -> Proxy:
        """A free list of ``supply`` entries: the next one not evicted and not held; share one
        if all are held."""
        with self._cond:
            shared: ProxyEndpoint | None = None
            for _ in range(max(1, supply)):
                fetched = self.source.fetch(1)
                if not fetched:
                    break
                ep = fetched[0]
                if ep.key in self._dead:
                    continue
                if ep.key in self._in_use:
                    shared = shared or ep
                    continue
                self._calls += 1
                self._extracted += 1
                ttl = jittered_ttl(self.ttl_s, self.ttl_jitter, ep.ttl_s, self._rng)
                now = self._clock.now()
                p = Proxy(ep.key, ep.url(), now + ttl, born=now, stated_life=ep.ttl_s)
                self._in_use[p.key] = p
                return p
            if shared is not None:
                # More workers than proxies: sharing beats blocking a worker indefinitely.
                logger.info("Proxy %s: every static proxy is in use; sharing one", shared.key)
                ttl = jittered_ttl(self.ttl_s, self.ttl_jitter, shared.ttl_s, self._rng)
                return Proxy(shared.key, shared.url(), self._clock.now() + ttl)
        raise QuotaExhausted("every proxy in the static list has been evicted")

    def release(self, proxy: Proxy) -> None:
        """Give back a proxy whose TTL ran out (or at shutdown): counted expired, never reused."""
        with self._cond:
            if self._shared is not None and proxy.key == self._shared.key:
                self._shared_users = max(0, self._shared_users - 1)
                return
            if self._in_use.get(proxy.key) is proxy:
                del self._in_use[proxy.key]
                self._expired += 1
            self._cond.notify_all()

    def mark_failed(self, proxy: Proxy, reason: str) -> None:
        """Evict ``proxy`` now: its key is never handed out again, even if re-extracted.

        For a shared proxy (direct, tunnel) the failure is counted but nothing is evicted:
        there is nothing else to switch to, and rotating exit IPs is the tunnel's own job.
        """
        with self._cond:
            self._failed += 1
            if self._shared is not None and proxy.key == self._shared.key:
                self._shared_users = max(0, self._shared_users - 1)
                logger.info("Proxy %s: failed (%s); not evicted, rotation is the %s's job",
                            proxy.key, reason, "tunnel" if proxy.url else "direct mode")
                return
            self._dead.add(proxy.key)
            if self._in_use.get(proxy.key) is proxy:
                del self._in_use[proxy.key]
            self._pool = deque(p for p in self._pool if p.key != proxy.key)
            self._cond.notify_all()
        logger.debug("Proxy %s: evicted (%s)", proxy.key, reason)

