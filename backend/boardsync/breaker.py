"""A circuit breaker for upstream outages: stop burning IPs when every IP fails alike.

Rotating the IP is the right answer to a ban, and the wrong one to an outage: when East
Money itself returns 502 or resets every connection, each fresh IP fails too and the quota
burns away. The breaker tells the two apart by *spread*: failures on several different IPs
in a row, with no success in between, mean the upstream (not the IP) is down. Then it
opens: workers pause instead of rotating. After ``cooldown`` seconds it lets exactly one
probe request through (half-open); a success closes it, a failure opens it again.

All decisions are pure functions of the injected clock, so tests step it exactly.
"""

from __future__ import annotations

import logging
import threading

from .clock import SYSTEM, Clock
from .policy import OUTAGE_CLASSES

logger = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "OUTAGE_CLASSES", "CircuitBreaker"]


class CircuitBreaker:
    """Opens after failures on ``distinct_ips`` different IPs in a row; probes after a cool-down.

    Args:
        distinct_ips: how many different IPs must fail consecutively (no success anywhere in
            between) before the upstream is considered down. ``0`` disables the breaker.
        consecutive: failures in a row that open it even on one identity (direct or tunnel
            mode, where there is only one IP to fail); ``None`` means ``3 * distinct_ips``.
        cooldown: seconds to stay open before letting one probe through. Each failed probe
            doubles it (up to ``max_cooldown``), so a long outage costs a handful of probes
            (and of fresh IPs for them) rather than one per ``cooldown``; a success resets it.
        max_cooldown: the cap of that doubling; ``None`` means ``8 * cooldown``.
        clock: the injected clock (its monotonic ``now``).
    """

    def __init__(self, distinct_ips: int = 4, cooldown: float = 30.0, *,
                 consecutive: int | None = None, max_cooldown: float | None = None,
                 clock: Clock = SYSTEM) -> None:
        self.distinct_ips = distinct_ips
        self.consecutive = 3 * distinct_ips if consecutive is None else consecutive
        self.base_cooldown = cooldown
        self.max_cooldown = 8 * cooldown if max_cooldown is None else max_cooldown
        self.cooldown = cooldown  # the current one: doubled by each failed probe
        self.now = clock.now
        self.state = CLOSED
        self.opened_at = 0.0
        self.opens = 0
        self._failed_ips: set[str] = set()
        self._failures = 0
        self._probe_out = False
        self._probe_owner = 0  # the thread that holds the half-open probe
        self._lock = threading.Lock()

    def wait_time(self) -> float:
        """Seconds a caller must wait before its next request (0 = go now). Pure."""
        with self._lock:
            if self.state == CLOSED:
                return 0.0
            remaining = self.opened_at + self.cooldown - self.now()
            if self.state == OPEN and remaining > 0:
                return remaining
            if self.state == HALF_OPEN and self._probe_out:
                return max(0.05, self.cooldown / 10)
            return 0.0

    def before_request(self) -> bool:
        """Claim permission for a request; False means wait ``wait_time()`` and ask again."""
        with self._lock:
            if self.state == CLOSED:
                return True
            if self.state == OPEN and self.now() >= self.opened_at + self.cooldown:
                self.state = HALF_OPEN
                self._probe_out = False
                logger.info("Breaker: half-open, letting one probe through")
            if self.state == HALF_OPEN and not self._probe_out:
                self._probe_out = True
                self._probe_owner = threading.get_ident()
                return True
            return False

    def abandon(self) -> None:
        """The caller claimed permission but sends nothing (it retired, was stopped, ran out
        of IPs): a half-open probe it held is free again, or no request would ever close
        the breaker and every worker would wait on it for good."""
        with self._lock:
            if self._probe_out and self._probe_owner == threading.get_ident():
                self._probe_out = False

    def record_success(self) -> None:
        """A request got a valid answer: the upstream is up."""
        with self._lock:
            if self.state != CLOSED:
                logger.info("Breaker: closed, the upstream answers again")
            self.state = CLOSED
            self.cooldown = self.base_cooldown
            self._failed_ips.clear()
            self._failures = 0
            self._probe_out = False

    def record_failure(self, error_class: str, ip_key: str) -> bool:
        """A request failed; returns True when this failure opened the breaker.

        Only outage-like classes (:data:`~boardsync.policy.OUTAGE_CLASSES`) count; a failed
        half-open probe re-opens at once, with the cool-down doubled. A probe that fails for
        another reason (its proxy died, say) tells nothing about the upstream: the next caller
        may probe instead.
        """
        if self.distinct_ips <= 0:
            return False
        if error_class not in OUTAGE_CLASSES:
            with self._lock:
                if self.state == HALF_OPEN:
                    self._probe_out = False
            return False
        with self._lock:
            if self.state == HALF_OPEN:
                self.cooldown = min(self.max_cooldown, self.cooldown * 2)
                self._open()
                return True
            if self.state == OPEN:
                return False
            self._failed_ips.add(ip_key)
            self._failures += 1
            if len(self._failed_ips) >= self.distinct_ips or self._failures >= self.consecutive:
                self._open()
                return True
            return False

    def _open(self) -> None:
        self.state = OPEN
        self.opened_at = self.now()
        self.opens += 1
        self._probe_out = False
        self._failed_ips.clear()
        self._failures = 0
        logger.warning("Breaker: open for %.1fs: failures on %d different IPs in a row look "
                       "like an upstream outage, pausing instead of rotating", self.cooldown,
                       self.distinct_ips)
