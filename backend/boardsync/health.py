"""What the daemon knows about its runs, and the loopback HTTP endpoint that shows it.

:class:`Telemetry` is the one place run results land: it is the ``progress`` object handed to
each :class:`~boardsync.run.Run` (so ``/status`` sees the current run live), it records
each finished run's :class:`~boardsync.outcomes.Summary` into Prometheus metrics, and keeps the
last ten warnings/errors (fed by :class:`ErrorCollector`, a logging handler the CLI attaches).

:class:`HealthServer` serves ``/healthz``, ``/status`` (JSON) and ``/metrics`` (the Prometheus
text format, produced by ``prometheus_client`` from the daemon's own registry — not the
process-global one, so several daemons in one test process do not collide). It is meant for
loopback: it has no authentication, and ``/status`` shows board codes and error messages.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from . import __version__
from .clock import SYSTEM, Clock, iso

logger = logging.getLogger(__name__)

#: Request latency buckets (seconds): upstream pages take tens of ms to a few seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: How many recent warnings/errors ``/status`` shows.
LAST_ERRORS = 10
#: The values ``boardsync_last_run_status{status}`` takes (one is 1, the others 0).
RUN_STATUSES = ("ok", "partial", "nothing_to_do", "interrupted", "abandoned", "error")


def _iso_epoch(ts: float) -> str:
    """A log record's ``created`` (epoch seconds) as ISO 8601 to the second."""
    return iso(datetime.fromtimestamp(ts, UTC))


class Telemetry:
    """Live and historical run data for ``/status`` and ``/metrics``; thread-safe.

    Args:
        progress: an inner progress display (bar or log lines) that every call is forwarded
            to; ``None`` shows nothing.
        clock: its monotonic time gives the progress rate and ETA, its wall time the
            timestamps shown to people.
    """

    def __init__(self, *, progress: Any = None, clock: Clock = SYSTEM) -> None:
        self.inner = progress
        self.clock = clock
        self._lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs = Counter("boardsync_runs", "Sync runs by final status.", ["status"], registry=r)
        self.boards = Counter("boardsync_boards_synced", "Boards fetched and written (ok).",
                              registry=r)
        self.rows = Counter("boardsync_rows_written", "Membership rows written.", registry=r)
        self.ips = Counter("boardsync_ips_extracted", "Proxy IPs extracted from the provider.",
                           registry=r)
        self.errors = Counter("boardsync_errors", "Errors by class (requests and runs).",
                              ["error_class"], registry=r)
        self.skipped = Counter("boardsync_skipped_ticks",
                               "Scheduled ticks skipped because a sync was still running.",
                               registry=r)
        self.latency = Histogram("boardsync_request_latency_seconds",
                                 "Upstream request latency.", buckets=LATENCY_BUCKETS, registry=r)
        self.running = Gauge("boardsync_run_in_progress", "1 while a sync is running.",
                             registry=r)
        self.last_success = Gauge("boardsync_last_success_timestamp_seconds",
                                  "When the last ok/nothing-to-do run ended (epoch s).",
                                  registry=r)
        self._last_run_metrics(r)
        self.current: dict[str, Any] | None = None
        self.last_run: dict[str, Any] | None = None
        self.recent_errors: deque[dict[str, Any]] = deque(maxlen=LAST_ERRORS)
        self.run_counts: dict[str, int] = {}
        self.skipped_count = 0

    def _last_run_metrics(self, r: CollectorRegistry) -> None:
        """What a Prometheus user looks for first: the build, the last run's duration,
        status and failed/suspicious boards, the next run's time (the daemon sets its
        function), and the client library's own process and platform collectors."""
        Info("boardsync_build", "The running boardsync build.", registry=r).info(
            {"version": __version__})
        self.last_duration = Gauge("boardsync_last_run_duration_seconds",
                                   "How long the last run took.", registry=r)
        self.last_status = Gauge("boardsync_last_run_status",
                                 "1 for the last run's status, 0 for the others.", ["status"],
                                 registry=r)
        for status in RUN_STATUSES:
            self.last_status.labels(status=status).set(0)
        self.last_failed = Gauge("boardsync_last_run_failed_boards",
                                 "Boards the last run failed.", registry=r)
        self.last_suspicious = Gauge("boardsync_last_run_suspicious_boards",
                                     "Boards the last run held back as suspicious.", registry=r)
        self.next_run = Gauge("boardsync_next_run_timestamp_seconds",
                              "When the next run is due (epoch s; 0 when none is).",
                              registry=r)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)

    def _set_last_status(self, status: str) -> None:
        for known in {*RUN_STATUSES, status}:
            self.last_status.labels(status=known).set(1 if known == status else 0)

    # -- the progress protocol (called by Sync from its manager thread) ------------------

    def _fresh_run(self) -> dict[str, Any]:
        return {"started": self.clock.now(), "started_at": iso(self.clock.wall()), "total": None,
                "done": 0, "ok": 0, "failed": 0, "suspicious": 0, "unwritten": 0,
                "retrying": 0, "ips": 0, "errors": {}}

    def run_started(self) -> None:
        """A run begins (before it knows how many boards): /status shows it at once."""
        with self._lock:
            self.current = self._fresh_run()
        self.running.set(1)
        if self.inner is not None:
            self.inner.reset()  # this run's boards only, whatever the last run left

    def start(self, total: int) -> None:
        with self._lock:
            if self.current is None:
                self.current = self._fresh_run()
            self.current["total"] = total
            self.current["counting_from"] = self.clock.now()
        if self.inner is not None:
            self.inner.start(total)

    def add(self, more: int) -> None:
        """``more`` boards joined the run's total (a kind's board list arrived)."""
        with self._lock:
            if self.current is None:
                self.current = self._fresh_run()
            self.current.setdefault("counting_from", self.clock.now())
            self.current["total"] = (self.current.get("total") or 0) + more
        if self.inner is not None:
            self.inner.add(more)

    def tick(self, snap: dict[str, Any]) -> None:
        with self._lock:
            if self.current is not None:
                self.current.update({k: snap.get(k, 0) for k in
                                     ("done", "ok", "failed", "suspicious", "unwritten",
                                      "retrying", "ips")})
                self.current["errors"] = dict(snap.get("errors") or {})
        if self.inner is not None:
            self.inner.tick(snap)

    def close(self, snap: dict[str, Any]) -> None:
        self.tick(snap)
        if self.inner is not None:
            self.inner.close(snap)

    # -- results --------------------------------------------------------------------------

    def observe_latencies(self, latencies: Iterable[float]) -> None:
        """Feed one run's request latencies (seconds) into the histogram."""
        for value in list(latencies):
            self.latency.observe(value)

    def record_run(self, summary: Any) -> None:
        """Count a finished run: status, boards, rows, IPs, errors by class."""
        status = str(summary.status)
        self.runs.labels(status=status).inc()
        self.boards.inc(summary.ok)
        self.rows.inc(summary.rows_written)
        self.ips.inc(summary.ips_extracted)
        for error_class, n in (summary.errors or {}).items():
            self.errors.labels(error_class=error_class).inc(n)
        if status in ("ok", "nothing_to_do"):
            self.last_success.set(self.clock.wall().timestamp())
        self._set_last_status(status)
        self.last_duration.set(getattr(summary, "duration_s", 0.0) or 0.0)
        self.last_failed.set(getattr(summary, "failed", 0) or 0)
        self.last_suspicious.set(getattr(summary, "suspicious", 0) or 0)
        result = {k: getattr(summary, k) for k in (
            "run_id", "mode", "status", "boards_total", "ok", "failed", "suspicious",
            "not_written", "skipped", "deleted", "rows_written", "joined", "left", "requests",
            "retries", "ips_extracted", "ips_failed", "ips_expired", "duration_s",
            "stop_reason") if hasattr(summary, k)}
        result["errors"] = dict(summary.errors or {})
        result["latency"] = dict(getattr(summary, "latency", {}) or {})
        result["remaining"] = len(getattr(summary, "remaining", ()) or ())
        result["failed_boards"] = list(getattr(summary, "failed_boards", ()) or ())[:20]
        result["hosts"] = list(getattr(summary, "hosts", ()) or ())  # per-lane health
        self._finish(status, result)

    def record_failure(self, exc: BaseException) -> None:
        """Count a run that raised instead of returning a summary (locked, database down...)."""
        error_class = getattr(exc, "error_class", None) or "unexpected"
        self.runs.labels(status="error").inc()
        self.errors.labels(error_class=error_class).inc()
        self._set_last_status("error")
        self._finish("error", {"status": "error", "error_class": error_class,
                               "message": str(exc)})

    def _finish(self, status: str, result: dict[str, Any]) -> None:
        result["finished_at"] = iso(self.clock.wall())
        with self._lock:
            self.current = None
            self.last_run = result
            self.run_counts[status] = self.run_counts.get(status, 0) + 1
        self.running.set(0)

    def skipped_tick(self) -> None:
        with self._lock:
            self.skipped_count += 1
        self.skipped.inc()

    def add_error(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.recent_errors.append(entry)

    # -- views ----------------------------------------------------------------------------

    def current_view(self) -> dict[str, Any] | None:
        """The running sync: counters, progress % and a linear ETA; None when idle."""
        with self._lock:
            cur = dict(self.current) if self.current is not None else None
        if cur is None:
            return None
        now = self.clock.now()
        total, done = cur.get("total"), cur["done"]
        elapsed = now - cur.pop("started")
        counting = cur.pop("counting_from", None)
        pct = eta = None
        if total:
            pct = round(100.0 * done / total, 1)
            if done and counting is not None:
                rate = done / max(now - counting, 1e-9)
                eta = round((total - done) / rate, 1)
        elif total == 0:
            pct = 100.0
        return cur | {"elapsed_s": round(elapsed, 1), "progress_pct": pct, "eta_s": eta}

    def status(self) -> dict[str, Any]:
        with self._lock:
            last, errors, counts = self.last_run, list(self.recent_errors), dict(self.run_counts)
            skipped = self.skipped_count
        return {"current_run": self.current_view(), "last_run": last, "last_errors": errors,
                "runs": counts, "skipped_ticks": skipped}

    def metrics_text(self) -> bytes:
        return generate_latest(self.registry)


class ErrorCollector(logging.Handler):
    """A logging handler (WARNING and up) that keeps recent records for ``/status``.

    The CLI attaches it to the ``boardsync`` logger; the library never installs handlers.
    """

    def __init__(self, telemetry: Telemetry, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.telemetry = telemetry

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry = {"time": _iso_epoch(record.created), "level": record.levelname,
                     "logger": record.name, "message": record.getMessage()}
            for key in ("run", "board", "worker"):
                value = getattr(record, key, None)
                if value not in (None, "-"):
                    entry[key] = value
            self.telemetry.add_error(entry)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        path = self.path.split("?", 1)[0]
        try:
            if path == "/healthz":
                ok = self.server.healthy()
                self._send(200 if ok else 503, b"ok\n" if ok else b"unhealthy\n",
                           "text/plain; charset=utf-8")
            elif path == "/status":
                body = json.dumps(self.server.status(), indent=2, default=str).encode()
                self._send(200, body + b"\n", "application/json")
            elif path == "/metrics":
                self._send(200, self.server.metrics(), CONTENT_TYPE_LATEST)
            else:
                self._send(404, b"not found: try /healthz, /status, /metrics\n",
                           "text/plain; charset=utf-8")
        except Exception:  # noqa: BLE001 - a broken view must not kill the server thread
            logger.exception("Health: %s failed", path)
            self._send(500, b"internal error\n", "text/plain; charset=utf-8")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("Health: %s " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    healthy: Callable[[], bool]
    status: Callable[[], dict[str, Any]]
    metrics: Callable[[], bytes]


class _Server6(_Server):
    address_family = socket.AF_INET6


class HealthServer:
    """``/healthz``, ``/status`` and ``/metrics`` on ``host:port`` (port 0 picks a free one).

    A :class:`~boardsync.threads.Runnable`: ``loop()`` serves one request (or times out after
    ``poll`` seconds so a stop is noticed), so it runs on the common thread skeleton.
    """

    def __init__(self, host: str, port: int, *, status: Callable[[], dict[str, Any]],
                 metrics: Callable[[], bytes], healthy: Callable[[], bool] = lambda: True,
                 poll: float = 0.2) -> None:
        server_class = _Server6 if ":" in host else _Server
        self.httpd = server_class((host, port), _Handler)
        self.httpd.timeout = poll
        self.httpd.status = status
        self.httpd.metrics = metrics
        self.httpd.healthy = healthy

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    def initialize(self) -> None:
        logger.info("Health: serving /healthz /status /metrics on %s", self.url)

    def loop(self) -> bool:
        self.httpd.handle_request()
        return True

    def shutdown(self) -> None:
        self.httpd.server_close()


def parse_address(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``"127.0.0.1:9108"``, ``":9108"``, ``"9108"``, ``"[::1]:9108"`` -> (host, port).

    Raises:
        ValueError: no valid port.
    """
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.lstrip(":")
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
    else:
        host, port_text = "", text
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:9108)")
    return host or default_host, int(port_text)
