"""Progress for people and for logs: a tqdm bar on a terminal, periodic log lines otherwise.

Also formats the end-of-run summary, so the CLI and the daemon print the same thing.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

from tqdm import tqdm

from .clock import SYSTEM, Clock

logger = logging.getLogger(__name__)


class Progress:
    """Shows boards done/total, ok/failed/retrying and IPs used while a run goes.

    Args:
        mode: ``bar`` (tqdm), ``log`` (a line every ``interval`` seconds), ``none``, or
            ``auto`` (bar when ``stream`` is a terminal, else log lines).
        stream: where the bar goes (stderr by default, so stdout stays clean for data).
        interval: seconds between log lines (``log`` mode).
        clock: its monotonic time spaces the log lines.
    """

    def __init__(self, mode: str = "auto", *, stream: TextIO | None = None,
                 interval: float = 10.0, clock: Clock = SYSTEM) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "log"
        self.mode = mode
        self.interval = interval
        self.clock = clock
        self._bar: Any = None
        self._total = 0
        self._last_log = 0.0
        self._done = 0
        self._started = False

    def start(self, total: int) -> None:
        self._started = True
        self._total = total
        self._last_log = self.clock.now()
        if self.mode == "bar":
            self._bar = tqdm(total=total, unit="board", file=self.stream, dynamic_ncols=True,
                             desc="boards", smoothing=0.1)
        elif self.mode == "log":
            logger.info("Progress: 0/%d boards", total)

    def add(self, more: int) -> None:
        """``more`` boards joined the run: each kind's list adds its boards as it arrives
        (the first call starts the display, like :meth:`start`)."""
        if not self._started:
            self.start(more)
            return
        self._total += more
        if self._bar is not None:
            self._bar.total = self._total
            self._bar.refresh()
        elif self.mode == "log" and more:
            logger.info("Progress: %d/%d boards (more listed)", self._done, self._total)

    def tick(self, snap: dict[str, int]) -> None:
        """Update with the manager's counters: done, ok, failed, retrying, ips."""
        if self._bar is not None:
            if snap["done"] > self._done:
                self._bar.update(snap["done"] - self._done)
                self._done = snap["done"]
            self._bar.set_postfix(ok=snap["ok"], failed=snap["failed"],
                                  retrying=snap["retrying"], ips=snap["ips"], refresh=False)
        elif self.mode == "log" and self.clock.now() - self._last_log >= self.interval:
            self._last_log = self.clock.now()
            pct = 100.0 * snap["done"] / self._total if self._total else 100.0
            logger.info("Progress: %d/%d boards (%.0f%%) ok=%d failed=%d retrying=%d ips=%d",
                        snap["done"], self._total, pct, snap["ok"], snap["failed"],
                        snap["retrying"], snap["ips"])

    def close(self, snap: dict[str, int]) -> None:
        if self._bar is not None:
            self.tick(snap)
            self._bar.close()
            self._bar = None


def format_summary(summary: Any) -> str:
    """The human summary of a run (counts, rows, IPs, errors by class, latency, duration)."""
    s = summary
    lat = s.latency or {}

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v * 1000:.0f}ms"

    lines = [
        f"Run {s.run_id} ({s.mode}): {s.status}"
        + (f" - {s.stop_reason}" if s.stop_reason else ""),
        f"  boards      {s.ok}/{s.boards_total} ok, {s.failed} failed, {s.suspicious} suspicious,"
        f" {s.not_written} not written, {s.skipped} skipped (fresh), {s.deleted} deleted",
        f"  rows        {s.rows_written:,} memberships written ({s.joined:,} joined,"
        f" {s.left:,} left)",
        f"  requests    {s.requests:,} ({s.retries:,} board retries)",
        f"  proxy IPs   {s.ips_extracted} extracted, {s.ips_failed} evicted, {s.ips_expired}"
        " expired",
        "  errors      " + (", ".join(f"{k}={v}" for k, v in s.errors.items()) or "none"),
        f"  latency     p50 {ms(lat.get('p50'))}  p95 {ms(lat.get('p95'))}"
        f"  p99 {ms(lat.get('p99'))}",
        f"  duration    {s.duration_s:.1f}s",
    ]
    if s.remaining:
        shown = ", ".join(s.remaining[:20]) + (" ..." if len(s.remaining) > 20 else "")
        lines.append(f"  remaining   {len(s.remaining)} boards: {shown}")
    if s.failed_boards:
        lines.append("  failed      " + ", ".join(s.failed_boards[:20]))
    if s.suspicious_boards:
        lines.append("  suspicious  " + ", ".join(s.suspicious_boards[:20]))
    return "\n".join(lines)
