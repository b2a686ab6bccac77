"""Run counters shared by workers and the manager: requests, latencies, errors by class.

Thread-safe and cheap; the summary, the progress line and (later) the daemon's ``/metrics``
read from one :class:`RunMetrics`.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of already-sorted values by nearest rank; None when empty.

    Nearest rank keeps it exact and simple: p50 of [1, 2, 3, 4] is 2 (rank ceil(0.5 * 4) = 2).
    """
    if not sorted_values:
        return None
    rank = max(1, -(-int(q * 1000) * len(sorted_values) // 1000))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class RunMetrics:
    """Counters of one run; every method is safe to call from any thread."""

    requests: int = 0
    retries: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def on_request(self, latency_s: float, error_class: str | None) -> None:
        """Record one HTTP request to the upstream (the client's hook)."""
        with self._lock:
            self.requests += 1
            self.latencies.append(latency_s)
            if error_class:
                self.errors[error_class] += 1

    def on_error(self, error_class: str) -> None:
        """Record a failure that did not come from a single request (e.g. incomplete board)."""
        with self._lock:
            self.errors[error_class] += 1

    def on_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def latency_percentiles(self) -> dict[str, float | None]:
        """p50/p95/p99 request latency in seconds."""
        with self._lock:
            values = sorted(self.latencies)
        return {f"p{int(q * 100)}": percentile(values, q) for q in (0.5, 0.95, 0.99)}

    def errors_by_class(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self.errors.items()))
