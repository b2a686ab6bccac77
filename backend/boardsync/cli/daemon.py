"""``boardsync daemon``: incremental syncs on a schedule, with an optional status endpoint.

Only wiring lives here (flags, signal handlers, logging handlers, exit codes); the scheduler
is :mod:`boardsync.daemon`, the schedules :mod:`boardsync.schedule`, the endpoint
:mod:`boardsync.health`.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import click

from ..config import FIELDS, Settings, load_settings
from ..errors import BoardsyncError, ConfigError, Locked, StateError, StorageError
from . import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    STATUS_EXIT,
    _flag_options,
    fail,
)

logger = logging.getLogger(__name__)


def exit_code(outcome: Any) -> int:
    """The process exit code for one run's outcome (a summary, an exception, or None)."""
    if outcome is None:
        return EXIT_INTERRUPTED  # stopped before the run started
    if isinstance(outcome, Locked):
        return EXIT_LOCKED
    if isinstance(outcome, ConfigError | StateError | StorageError):
        return EXIT_USAGE
    if isinstance(outcome, BoardsyncError):
        return EXIT_PARTIAL
    if isinstance(outcome, BaseException):
        return EXIT_INTERNAL
    return STATUS_EXIT.get(outcome.status, EXIT_PARTIAL)


@contextmanager
def _signals(daemon: Any) -> Iterator[None]:
    """SIGINT/SIGTERM request a stop (twice: force), SIGHUP a reload; handlers set flags only."""

    def on_stop(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal API
        daemon.request_stop()

    def on_hup(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal API
        daemon.request_reload()

    wanted = {signal.SIGINT: on_stop, signal.SIGTERM: on_stop}
    if hasattr(signal, "SIGHUP"):
        wanted[signal.SIGHUP] = on_hup
    if threading.current_thread() is not threading.main_thread():
        yield  # tests calling from a thread: no handlers possible
        return
    previous = {sig: signal.signal(sig, handler) for sig, handler in wanted.items()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _error_collector(telemetry: Any) -> Iterator[None]:
    """Feed WARNING+ records of the ``boardsync`` loggers to /status's last errors."""
    from ..health import ErrorCollector
    from ..logctx import ContextFilter

    handler = ErrorCollector(telemetry)
    handler.addFilter(ContextFilter())
    root = logging.getLogger("boardsync")
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


def register(cli: click.Group) -> None:
    """Add ``boardsync daemon`` to the command group."""

    @cli.command("daemon")
    @_flag_options
    @click.option("--every", metavar="DURATION",
                  help="Run every DURATION (30s, 30m, 1h30m, 1d), the first run at once.")
    @click.option("--cron", metavar="EXPR",
                  help='Run on a 5-field cron schedule, e.g. "30 15 * * 1-5" (15:30 weekdays).')
    @click.option("--timezone", "tz_name", default="Asia/Shanghai", show_default=True,
                  help="Time zone of --cron and of times in logs and /status.")
    @click.option("--once", is_flag=True,
                  help="Run one scheduled cycle and exit with that sync's exit code.")
    @click.option("--http", "http_addr", metavar="HOST:PORT",
                  help="Serve /healthz, /status and /metrics here (off unless given; "
                       "no auth, keep it on loopback), e.g. 127.0.0.1:9108.")
    @click.option("--retry-min", default="1m", show_default=True,
                  help="Wait before retrying a failed run; doubles per failure.")
    @click.option("--retry-max", default="1h", show_default=True,
                  help="Longest retry wait (a retry never comes after the next tick).")
    @click.option("--sim", "sim_scenario", metavar="SCENARIO",
                  help="Sync from the bundled simulator (started once for the daemon's life).")
    @click.option("--sim-time-scale", type=float, default=0.05, show_default=True,
                  help="Simulator time scale; client durations are scaled the same way.")
    @click.option("--sim-seed", type=int, default=7, show_default=True, help="Simulator seed.")
    @click.pass_obj
    def daemon(obj: dict[str, Any], every: str | None, cron: str | None, tz_name: str,
               once: bool, http_addr: str | None, retry_min: str, retry_max: str,
               sim_scenario: str | None, sim_time_scale: float, sim_seed: int,
               **flags: Any) -> None:
        """Run incremental syncs on a schedule until SIGTERM/SIGINT; SIGHUP reloads config.

        A tick that comes while a sync is still running is skipped (and counted). A failed
        or partial run is retried after --retry-min, doubling up to --retry-max, but never
        later than the next tick. The schedule flags are not reloaded by SIGHUP; the
        settings (config file, environment) are.

        \b
        Examples:
          boardsync daemon --cron "30 15 * * 1-5" --http 127.0.0.1:9108
          boardsync --log-format json daemon --every 30m
          boardsync daemon --every 2s --sim clean --sim-time-scale 0.01 --max-age 0

        \b
        Exit codes: 0 after a requested stop; with --once, the sync's own code
        (0 ok, 1 partial, 2 config, 3 nothing to do, 4 locked, 5 interrupted).
        """
        from ..daemon import Daemon, SyncJob
        from ..health import HealthServer, Telemetry, parse_address
        from ..progress import Progress
        from ..schedule import IntervalSchedule, get_timezone, parse_cron, parse_duration
        from ..threads import start_thread

        if bool(every) == bool(cron):
            fail("daemon: give exactly one of --every or --cron", EXIT_USAGE)
        settings_flags = {k: v for k, v in flags.items() if k in FIELDS}

        def load() -> Settings:
            return load_settings(settings_flags, config_path=obj.get("config"),
                                 preset=obj.get("preset"))

        try:
            tz = get_timezone(tz_name)
            schedule: Any = (IntervalSchedule(parse_duration(every)) if every
                             else parse_cron(cron or "", tz))
            retry_base = parse_duration(retry_min, "retry-min")
            retry_cap = parse_duration(retry_max, "retry-max")
            address = parse_address(http_addr) if http_addr else None
            settings = load()
        except ConfigError as e:
            fail(str(e), EXIT_USAGE)
        except ValueError as e:
            fail(f"http: {e}", EXIT_USAGE)
        if address and address[0] not in ("127.0.0.1", "::1", "localhost"):
            logger.warning("Daemon: --http %s is not loopback; the endpoint has no "
                           "authentication", http_addr)

        stop, force = threading.Event(), threading.Event()
        telemetry = Telemetry(progress=Progress(settings.progress,
                                                interval=settings.log_interval))
        with ExitStack() as stack:
            adapt = None
            if sim_scenario:
                adapt = _start_simulator(stack, settings, sim_scenario, sim_time_scale, sim_seed)
            try:
                job = SyncJob(load, stop=stop, force=force, telemetry=telemetry, adapt=adapt)
            except ConfigError as e:
                fail(str(e), EXIT_USAGE)
            runner = Daemon(schedule, job, telemetry=telemetry, reload=job.reload, tz=tz,
                            retry_base=retry_base, retry_cap=retry_cap,
                            shutdown_timeout=job.shutdown_timeout, once=once, stop=stop,
                            force=force)
            stack.enter_context(_error_collector(telemetry))
            stack.enter_context(_signals(runner))
            if address:
                try:
                    server = HealthServer(*address, status=runner.status,
                                          metrics=telemetry.metrics_text, healthy=runner.healthy)
                except OSError as e:
                    fail(f"http: cannot listen on {http_addr}: {e}", EXIT_USAGE)
                http_stop = threading.Event()
                stack.callback(http_stop.set)
                start_thread(server, http_stop, "daemon-http")
                logger.info("Daemon: status endpoint %s/status", server.url)
            runner.start()
            while not runner.wait(0.2):
                pass
        if once:
            sys.exit(exit_code(runner.last_outcome))
        sys.exit(EXIT_OK)


def _start_simulator(stack: ExitStack, settings: Settings, scenario: str, time_scale: float,
                     seed: int) -> Any:
    """Start the simulator for the daemon's whole life; return the settings adapter."""
    from ..demo import scaled, simulated

    try:
        _sim_settings, sim = stack.enter_context(
            simulated(settings, scenario, time_scale=time_scale, seed=seed))
    except (ConfigError, FileNotFoundError) as e:
        fail(str(e), EXIT_USAGE)
    endpoints = {"upstream_url": sim.upstream_url, "proxy": "api",
                 "proxy_api_url": sim.extract_url, "proxy_api_key": sim.api_key}

    def adapt(s: Settings) -> Settings:
        return scaled(s, time_scale, **endpoints)

    return adapt
