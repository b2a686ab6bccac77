"""How long the provider's IPs live, learned from what it says and from how they end.

Why: how many IPs a sync needs is the work divided by what one IP serves in its life, and
the life is the provider's (PROXY_PROVIDERS.md: plans of 30 s, 60 s, 1-2 min, 5-25 min).
A provider that states it (``ip:port,seconds`` or an expiry time) is believed; otherwise the
life is read off the IPs themselves: an IP that died after serving is one sample, and an IP
still alive at age ``a`` proves the life is at least ``a``. Until then the configured
``ip_life`` is assumed. Pure arithmetic over observations, times on the run's clock.
"""

from __future__ import annotations

import statistics
import threading
from collections import deque

#: Samples kept of each kind (the latest win: a provider's plan can change mid-day).
SAMPLES = 64
#: Deaths needed before they outvote the assumed life (one early death proves little).
MIN_DEATHS = 3


class IpLife:
    """The provider's IP lifetime as far as it is known.

    Args:
        assumed: seconds assumed until the provider states a life or IPs are seen to die
            (the ``ip_life`` setting).
        most: seconds an IP is kept at most (``ip_ttl``): never estimated longer.
    """

    def __init__(self, assumed: float, most: float = float("inf")) -> None:
        self.assumed = assumed
        self.most = most
        self._stated: deque[float] = deque(maxlen=SAMPLES)
        self._deaths: deque[float] = deque(maxlen=SAMPLES)
        self._oldest = 0.0  # the greatest age any IP was seen alive at
        self._lock = threading.Lock()

    def stated(self, life_s: float | None) -> None:
        """The provider stated an IP's life at extraction (``None``: it states none)."""
        if life_s is not None and life_s > 0:
            with self._lock:
                self._stated.append(life_s)

    def alive_at(self, age_s: float) -> None:
        """An IP answered at ``age_s`` seconds after extraction: the life is at least that."""
        with self._lock:
            self._oldest = max(self._oldest, age_s)

    def died(self, age_s: float) -> None:
        """An IP that had served was refused by the proxy ``age_s`` s after its extraction."""
        with self._lock:
            self._deaths.append(age_s)

    def estimate(self) -> float:
        """Seconds a fresh IP is expected to live.

        Stated lives win (their median); else the median death once :data:`MIN_DEATHS` were
        seen; else the assumed life; never less than the oldest age seen alive, never more
        than ``most``. Example: assumed 60, deaths at 29, 31, 30 -> 30; an IP alive at 95
        -> 95.
        """
        with self._lock:
            if self._stated:
                life = statistics.median(self._stated)
            elif len(self._deaths) >= MIN_DEATHS:
                life = statistics.median(self._deaths)
            else:
                life = self.assumed
            return min(self.most, max(life, self._oldest))

    def source(self) -> str:
        """Where :meth:`estimate` comes from, in words (for logs and ``--explain``)."""
        with self._lock:
            if self._stated:
                return f"the provider's stated lifetimes ({len(self._stated)})"
            if len(self._deaths) >= MIN_DEATHS:
                return f"the median of {len(self._deaths)} IPs seen to die"
            return "the assumed ip_life (no lifetime stated, too few IPs seen to die)"
