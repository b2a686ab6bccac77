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

    def reset(self) -> None:
        """Forget the last run's totals: a daemon reuses one display for every run, and each
        run's bar counts that run's boards only (not 1,054 then 2,108 of 527)."""
        if self._bar is not None:
            self._bar.close()
        self._bar = None
        self._total = self._done = 0
        self._started = False

    def start(self, total: int) -> None:
        self.reset()
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

    def tick(self, snap: dict[str, Any]) -> None:
        """Update with the manager's counters (:func:`counters`): the bar's count is ``done``
        = ok + failed + suspicious + unwritten, each shown, then errors by class."""
        if self._bar is not None:
            if snap["done"] > self._done:
                self._bar.update(snap["done"] - self._done)
                self._done = snap["done"]
            self._bar.set_postfix_str(counters(snap), refresh=False)
        elif self.mode == "log" and self.clock.now() - self._last_log >= self.interval:
            self._last_log = self.clock.now()
            pct = 100.0 * snap["done"] / self._total if self._total else 100.0
            logger.info("Progress: %d/%d boards (%.0f%%) %s", snap["done"], self._total, pct,
                        counters(snap))

    def close(self, snap: dict[str, Any]) -> None:
        """Show the final counters and end the display (the next run starts afresh)."""
        if self._bar is not None:
            self.tick(snap)
        self.reset()


def counters(snap: dict[str, Any]) -> str:
    """``ok=520 failed=3 suspicious=1 unwritten=0 retrying=2 ips=40 | timeout=7 blocked=2``.

    ``done`` is the sum of the first four, so the bar's count and its ``ok`` differ by
    exactly what is shown; ``errors`` (request errors by class, when the run gives them)
    say why boards failed or are retrying.
    """
    parts = [f"{k}={snap.get(k, 0)}" for k in
             ("ok", "failed", "suspicious", "unwritten", "retrying", "ips")]
    errors = snap.get("errors") or {}
    tail = " ".join(f"{k}={v}" for k, v in sorted(errors.items(), key=lambda kv: -kv[1]))
    return " ".join(parts) + (f" | {tail}" if tail else "")


#: The fields of :func:`summary_record`, in order (documented in the README).
SUMMARY_FIELDS = ("run_id", "mode", "status", "stop_reason", "boards_total", "ok", "failed",
                  "suspicious", "not_written", "skipped", "deleted", "rows_written", "joined",
                  "left", "requests", "retries", "ips_extracted", "ips_failed", "ips_expired",
                  "errors", "latency", "duration_s", "remaining", "failed_boards",
                  "suspicious_boards", "hosts")


def summary_record(summary: Any) -> dict[str, Any]:
    """A run's summary for machines: ``{"record": "summary", "version": 1, ...}``.

    The same numbers as :func:`format_summary`, every list whole (not cut at 20), so a
    script never parses the human text. ``--log-format json`` logs it as the ``summary``
    field of the run's last line; ``sync --summary-json PATH`` writes it to a file.
    """
    doc: dict[str, Any] = {"record": "summary", "version": 1}
    for key in SUMMARY_FIELDS:
        value = getattr(summary, key)
        doc[key] = (dict(value) if isinstance(value, dict) else list(value)
                    if isinstance(value, list) else value)
    doc["status"] = str(summary.status)
    return doc


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
    for h in getattr(s, "hosts", None) or ():  # the upstream pool's lanes, as measured
        lines.append(f"  upstream    {h['host']}/{h['route']} ({h['transport']}): {h['state']},"
                     f" {h['ok']} ok, {h['failed']} failed")
    if s.remaining:
        shown = ", ".join(s.remaining[:20]) + (" ..." if len(s.remaining) > 20 else "")
        lines.append(f"  remaining   {len(s.remaining)} boards: {shown}")
    if s.failed_boards:
        lines.append("  failed      " + ", ".join(s.failed_boards[:20]))
    if s.suspicious_boards:
        lines.append("  suspicious  " + ", ".join(s.suspicious_boards[:20]))
    return "\n".join(lines + _witness_lines(s))


def _codes(codes: list[str], limit: int = 10) -> str:
    return ", ".join(codes[:limit]) + (f" ... ({len(codes)})" if len(codes) > limit else "")


def _witness_lines(s: Any) -> list[str]:
    """What the board directory said against the lists, what was held back, what was
    re-coded, and which boards have no quote: the lines that explain a count that differs."""
    lines: list[str] = []
    directory = getattr(s, "directory", None) or {}
    if directory.get("read") is False:
        lines.append(f"  directory   not read: {directory.get('reason') or 'unknown reason'}")
    for kind, row in (directory.get("kinds") or {}).items():
        extra = [f"only in the directory: {_codes(row['only_directory'])}"
                 if row["only_directory"] else "",
                 f"only listed: {_codes(row['only_listed'])}" if row["only_listed"] else ""]
        lines.append(f"  directory   {kind}: {row['directory']} in the directory, "
                     f"{row['listed']} listed" + "".join(f"; {e}" for e in extra if e))
    for kind, held in (getattr(s, "lists_held_back", None) or {}).items():
        lines.append(f"  held back   the {kind} list has {held['listed']} boards against "
                     f"{held['last_good']} last time: {len(held['kept'])} deletions not "
                     "applied (--accept-shrink applies them)")
    for group, change in (getattr(s, "revamped", None) or {}).items():
        lines.append(f"  revamped    {group}: {len(change['ended'])} codes ended, "
                     f"{len(change['started'])} started")
    unquoted = getattr(s, "unquoted_boards", None) or []
    if unquoted:
        lines.append(f"  no quote    {_codes(unquoted)} (listed by the directory; members "
                     "answer rc 100)")
    return lines
