"""``boardsync daemon``: incremental syncs on a schedule, with an optional status endpoint.

Only wiring lives here (flags, signal handlers, logging handlers, exit codes); the scheduler
is :mod:`boardsync.daemon`, one run :mod:`boardsync.daemon_job`, the schedules
:mod:`boardsync.schedule`, the endpoint :mod:`boardsync.health`.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

import click

from ..clock import SYSTEM
from ..config import Settings
from ..daemon import Daemon
from ..daemon_job import SyncJob
from ..demo import endpoints_of, scaled, simulated
from ..durations import parse_duration
from ..errors import ConfigError
from ..health import ErrorCollector, HealthServer, Telemetry, parse_address
from ..logctx import ContextFilter
from ..progress import Progress
from ..schedule import IntervalSchedule, Schedule, get_timezone, parse_cron
from ..threads import start_thread
from .common import fail, load_cli_settings, settings_loader, settings_options
from .exitcodes import EXIT_OK, EXIT_USAGE, exit_code
from .signals import daemon_signals

logger = logging.getLogger(__name__)

#: Hosts ``--http`` may bind without a warning (the endpoint has no authentication).
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class _Plan:
    """The daemon's own flags, parsed: when to run, how to retry, where to serve."""

    schedule: Schedule
    tz: tzinfo
    retry_base: float
    retry_cap: float
    address: tuple[str, int] | None


def _plan(every: str | None, cron: str | None, tz_name: str, retry_min: str, retry_max: str,
          http_addr: str | None) -> _Plan:
    """Parse the schedule flags; a bad one exits 2 with one line naming it."""
    if bool(every) == bool(cron):
        fail("daemon: give exactly one of --every or --cron", EXIT_USAGE)
    try:
        tz = get_timezone(tz_name)
        schedule: Schedule = (IntervalSchedule(parse_duration(every, "every")) if every
                              else parse_cron(cron or "", tz))
        return _Plan(schedule, tz, parse_duration(retry_min, "retry-min"),
                     parse_duration(retry_max, "retry-max"),
                     parse_address(http_addr) if http_addr else None)
    except ConfigError as e:
        fail(str(e), EXIT_USAGE)
    except ValueError as e:
        fail(f"http: {e}", EXIT_USAGE)


@contextmanager
def _error_collector(telemetry: Telemetry) -> Iterator[None]:
    """Feed WARNING+ records of the ``boardsync`` loggers to /status's last errors."""
    handler = ErrorCollector(telemetry)
    handler.addFilter(ContextFilter())
    root = logging.getLogger("boardsync")
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


def _start_simulator(stack: ExitStack, settings: Settings, scenario: str, time_scale: float,
                     seed: int) -> Callable[[Settings], Settings]:
    """Start the simulator for the daemon's whole life; return the settings adapter."""
    try:
        _sim_settings, sim = stack.enter_context(
            simulated(settings, scenario, time_scale=time_scale, seed=seed))
    except (ConfigError, FileNotFoundError) as e:
        fail(str(e), EXIT_USAGE)
    endpoints = endpoints_of(sim)

    def adapt(s: Settings) -> Settings:
        return scaled(s, time_scale, **endpoints)

    return adapt


def _build_daemon(stack: ExitStack, plan: _Plan, load: Callable[[], Settings],
                  settings: Settings, once: bool,
                  adapt: Callable[[Settings], Settings] | None) -> Daemon:
    """The scheduler and its job, sharing one pair of stop events and one telemetry."""
    stop, force = threading.Event(), threading.Event()
    telemetry = Telemetry(progress=Progress(settings.progress, interval=settings.log_interval,
                                            clock=SYSTEM), clock=SYSTEM)
    try:
        job = SyncJob(load, stop=stop, force=force, telemetry=telemetry, adapt=adapt,
                      clock=SYSTEM)
    except ConfigError as e:
        fail(str(e), EXIT_USAGE)
    runner = Daemon(plan.schedule, job, telemetry=telemetry, reload=job.reload, clock=SYSTEM,
                    tz=plan.tz, retry_base=plan.retry_base, retry_cap=plan.retry_cap,
                    shutdown_timeout=job.shutdown_timeout, once=once, stop=stop, force=force)
    stack.enter_context(_error_collector(telemetry))
    stack.enter_context(daemon_signals(runner))
    return runner


def _serve_http(stack: ExitStack, runner: Daemon, address: tuple[str, int],
                http_addr: str | None) -> None:
    """Serve /healthz, /status and /metrics on its own thread until the stack closes."""
    try:
        server = HealthServer(*address, status=runner.status,
                              metrics=runner.telemetry.metrics_text, healthy=runner.healthy)
    except OSError as e:
        fail(f"http: cannot listen on {http_addr}: {e}", EXIT_USAGE)
    http_stop = threading.Event()
    stack.callback(http_stop.set)
    start_thread(server, http_stop, "daemon-http")
    logger.info("Daemon: status endpoint %s/status", server.url)


@click.command("daemon")
@settings_options
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
    plan = _plan(every, cron, tz_name, retry_min, retry_max, http_addr)
    load = settings_loader(obj, flags)
    settings = load_cli_settings(obj, flags)
    if plan.address and plan.address[0] not in _LOOPBACK:
        logger.warning("Daemon: --http %s is not loopback; the endpoint has no "
                       "authentication", http_addr)
    with ExitStack() as stack:
        adapt = (_start_simulator(stack, settings, sim_scenario, sim_time_scale, sim_seed)
                 if sim_scenario else None)
        runner = _build_daemon(stack, plan, load, settings, once, adapt)
        if plan.address:
            _serve_http(stack, runner, plan.address, http_addr)
        runner.start()
        while not runner.wait(0.2):
            pass
    sys.exit(exit_code(runner.last_outcome) if once else EXIT_OK)
