"""The long-running sync daemon: run a sync on a schedule, never two at once.

Two threads on the common skeleton (:mod:`boardsync.threads`):

* the **scheduler** (:class:`Daemon` itself) decides, at each tick of the
  :mod:`~boardsync.schedule`, whether to start a run; a tick that comes while a run is still
  going is *skipped* (logged and counted in ``/metrics``), never queued, so a slow run cannot
  cause a burst of back-to-back runs afterwards;
* the **runner** executes ``run_once`` (normally a
  :class:`~boardsync.daemon_job.SyncJob`) one call at a time.

Failed runs (an exception, or a ``partial`` result) are retried earlier than the next tick
with a doubling wait (see :func:`~boardsync.schedule.next_attempt` for the rule).

Signals are the CLI's business; its handlers only call :meth:`Daemon.request_stop` and
:meth:`Daemon.request_reload`, which only set events. The scheduler thread does the work:
on stop it lets the running sync stop gracefully (the sync shares the ``stop`` event and has
``shutdown_timeout`` to finish), a second stop request forces it; on reload it calls
``reload()`` between runs, and a bad new configuration is logged and the old one kept. The
schedule itself is never dropped by a reload.

Time comes from one injected :class:`~boardsync.clock.Clock`: its wall time for ticks (cron
needs the time of day), its monotonic time for the shutdown deadline, and its ``wait`` for
every pause, so tests call :meth:`Daemon.step` at the times they choose. The real run for
each tick is :class:`~boardsync.daemon_job.SyncJob`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

from .clock import SYSTEM, Clock, iso
from .errors import BoardsyncError, Locked
from .health import Telemetry
from .logctx import bind
from .schedule import (
    DEFAULT_RETRY_BASE,
    DEFAULT_RETRY_CAP,
    DEFAULT_TIMEZONE,
    Schedule,
    get_timezone,
    next_attempt,
)
from .threads import start_thread

logger = logging.getLogger(__name__)

#: The scheduler re-checks at least this often (seconds), so a wall-clock jump (NTP, suspend)
#: delays a tick by at most this much.
MAX_WAIT = 30.0
#: After a forced stop (second signal), how long the daemon still waits for the run to
#: record its state before leaving anyway (seconds).
FORCE_GRACE = 2.0


def is_failure(outcome: Any) -> bool:
    """Whether a run outcome counts toward the retry backoff.

    An exception (locked, database down, bad config) or a ``partial`` summary is a failure;
    ``ok``, ``nothing_to_do`` and ``interrupted`` (we asked it to stop) are not.
    """
    if isinstance(outcome, BaseException):
        return True
    return getattr(outcome, "status", None) == "partial"


class _Runner:
    """The runner thread's body: take a start request, call ``run_once``, report back."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def initialize(self) -> None:
        pass

    def loop(self) -> bool:
        try:
            self.daemon._jobs.get(timeout=0.2)
        except queue.Empty:
            return True
        self.daemon._execute()
        return True

    def shutdown(self) -> None:
        pass


class Daemon:
    """Runs ``run_once`` on ``schedule`` until stopped (or once, with ``once=True``).

    Args:
        schedule: when to run (:class:`~boardsync.schedule.IntervalSchedule` or
            :class:`~boardsync.schedule.CronSchedule`).
        run_once: does one sync and returns its summary (anything with ``status``, ``ok``,
            ``rows_written``, ``ips_extracted``, ``errors``); may raise.
        telemetry: where results go for ``/status`` and ``/metrics``; None creates one.
        reload: called on the scheduler thread after :meth:`request_reload`; raising keeps
            the old configuration. None: reloading is a no-op (logged).
        clock: wall time for ticks, monotonic time and waits for the scheduler and shutdown.
        tz: time zone of the times shown in logs and ``/status``.
        retry_base, retry_cap: the failure backoff (seconds), see
            :func:`~boardsync.schedule.retry_delay`.
        shutdown_timeout: seconds (or a callable giving them, so a reload can change it) the
            running sync has to stop gracefully.
        once: run one scheduled cycle, then finish.
        stop, force: shared with the sync so one request stops both; None creates them.
        max_wait: longest single sleep of the scheduler (seconds).
    """

    def __init__(
        self,
        schedule: Schedule,
        run_once: Callable[[], Any],
        *,
        telemetry: Telemetry | None = None,
        reload: Callable[[], None] | None = None,
        clock: Clock = SYSTEM,
        tz: tzinfo | str = DEFAULT_TIMEZONE,
        retry_base: float = DEFAULT_RETRY_BASE,
        retry_cap: float = DEFAULT_RETRY_CAP,
        shutdown_timeout: float | Callable[[], float] = 30.0,
        once: bool = False,
        stop: threading.Event | None = None,
        force: threading.Event | None = None,
        max_wait: float = MAX_WAIT,
    ) -> None:
        self.schedule = schedule
        self.run_once = run_once
        self.clock = clock
        self.telemetry = telemetry or Telemetry(clock=clock)
        self.reload = reload
        self.tz = get_timezone(tz) if isinstance(tz, str) else tz
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self._shutdown_timeout = shutdown_timeout
        self.once = once
        self.stop = stop or threading.Event()
        self.force = force or threading.Event()
        self.max_wait = max_wait
        self.wake = threading.Event()
        self.hup = threading.Event()
        self.finished = threading.Event()
        self.idle = threading.Event()
        self.idle.set()
        self._runner_stop = threading.Event()
        self._jobs: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.next_tick: datetime | None = None
        self.retry_at: datetime | None = None
        self.failures = 0
        self.runs_started = 0
        self.runs_finished = 0
        self.ticks_skipped = 0
        self.reloads = 0
        self.last_outcome: Any = None
        self._fired_once = False
        self._done = False
        self._run_started_at: datetime | None = None
        self.telemetry.next_run.set_function(self._next_run_timestamp)

    def _next_run_timestamp(self) -> float:
        """``boardsync_next_run_timestamp_seconds``: the retry if one is due first, else the
        next tick; 0 before the first decision and once stopping."""
        due = self.retry_at or self.next_tick
        return 0.0 if due is None or self.stop.is_set() else due.timestamp()

    # -- requests (safe from signal handlers: they only set events) ------------------------

    def request_stop(self) -> None:
        """First call: graceful stop. Second call: force (the sync abandons in-flight work)."""
        if self.stop.is_set():
            self.force.set()
        self.stop.set()
        self.wake.set()

    def request_reload(self) -> None:
        """Reload the configuration at the scheduler's next step."""
        self.hup.set()
        self.wake.set()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, scheduler: bool = True) -> None:
        """Start the runner and scheduler threads (returns at once).

        ``scheduler=False`` starts only the runner: a test then calls :meth:`step` itself
        and ends the runner with :meth:`close`.
        """
        self._threads = [start_thread(_Runner(self), self._runner_stop, "daemon-runner")]
        if scheduler:
            self._threads.append(start_thread(self, self.stop, "daemon-scheduler"))

    def close(self) -> None:
        """Stop a runner started with ``start(scheduler=False)``."""
        self._runner_stop.set()
        self.finished.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the daemon has finished; True if it has."""
        return self.finished.wait(timeout)

    def healthy(self) -> bool:
        """The scheduler is alive and not shutting down."""
        return (not self.finished.is_set() and not self.stop.is_set()
                and all(t.is_alive() for t in self._threads))

    @property
    def shutdown_timeout(self) -> float:
        t = self._shutdown_timeout
        return float(t() if callable(t) else t)

    # -- the scheduler thread (Runnable) ------------------------------------------------------

    def initialize(self) -> None:
        logger.info("Daemon: schedule %s%s", self.schedule.describe(),
                    " (one cycle)" if self.once else "")

    def loop(self) -> bool:
        timeout = self.step()
        if self._done:
            return False
        self.clock.wait(self.wake, timeout)
        self.wake.clear()
        return not self._done

    def shutdown(self) -> None:
        """Let a running sync stop (it shares ``stop``), then stop the runner thread."""
        try:
            if not self.idle.is_set():
                self._wait_for_run()
        finally:
            self._runner_stop.set()
            logger.info("Daemon: stopped after %d runs (%d ticks skipped)",
                        self.runs_finished, self.ticks_skipped)
            self.finished.set()

    def _wait_for_run(self) -> None:
        """Wait for the running sync to end: ``shutdown_timeout`` (plus 10 % and 1 s for it
        to record its state), cut to :data:`FORCE_GRACE` once a stop is forced."""
        budget = self.shutdown_timeout * 1.1 + 1.0
        logger.info("Daemon: stopping: waiting up to %.1fs for the running sync", budget)
        deadline = self.clock.now() + budget
        forced = False
        while not self.clock.wait(self.idle, 0.05):
            if self.force.is_set() and not forced:
                forced = True
                logger.warning("Daemon: forced stop: abandoning the running sync")
                deadline = min(deadline, self.clock.now() + FORCE_GRACE)
            if self.clock.now() > deadline:
                logger.error("Daemon: the running sync did not stop in time; leaving")
                break

    def step(self, now: datetime | None = None) -> float:
        """One scheduling decision at ``now``; returns the seconds until the next decision.

        Fires when the tick (or a failure retry) is due: starts a run when none is going,
        skips the tick otherwise. Also performs a requested reload.
        """
        if self.hup.is_set():
            self.hup.clear()
            self._reload()
        now = now or self.clock.wall()
        with self._lock:
            if self.stop.is_set() or self._done:
                return 0.0
            if self.next_tick is None:
                self.next_tick = self.schedule.first_fire(now)
                logger.info("Daemon: first run at %s", self._show(self.next_tick))
            if self.once and self._fired_once:
                return self.max_wait
            if now >= self.next_tick:
                tick = self.next_tick
                following = self.schedule.next_fire(tick)
                if following <= now:  # fell behind (suspend, clock jump): resume from now
                    following = self.schedule.next_fire(now)
                self.next_tick = following
                self.retry_at = None  # the tick is the retry
                self._fire(tick, "scheduled")
            elif self.retry_at is not None and now >= self.retry_at:
                self.retry_at = None
                self._fire(now, f"retry after {self.failures} failed runs")
            due = self.next_tick if self.retry_at is None else min(self.next_tick, self.retry_at)
            return max(0.0, min(self.max_wait, (due - now).total_seconds()))

    def _fire(self, tick: datetime, why: str) -> None:
        """Start a run for ``tick`` unless one is going (caller holds the lock)."""
        if not self.idle.is_set():
            self.ticks_skipped += 1
            self.telemetry.skipped_tick()
            logger.warning("Daemon: tick %s skipped: the run started at %s is still going",
                           self._show(tick), self._show(self._run_started_at))
            return
        self.idle.clear()
        self._fired_once = True
        self.runs_started += 1
        self._run_started_at = tick
        logger.info("Daemon: starting run %d (%s, tick %s)", self.runs_started, why,
                    self._show(tick))
        self._jobs.put(why)

    def _reload(self) -> None:
        if self.reload is None:
            logger.info("Daemon: reload requested, but nothing to reload")
            return
        try:
            self.reload()
        except Exception as e:  # noqa: BLE001 - a bad new config must not kill the daemon
            logger.error("Daemon: reload failed, keeping the old configuration: %s", e)
            return
        self.reloads += 1
        logger.info("Daemon: configuration reloaded; it applies from the next run")

    # -- the runner thread ------------------------------------------------------------------

    def _execute(self) -> None:
        """Run one sync on the runner thread and book its outcome."""
        outcome: Any
        if self.stop.is_set():
            self._complete(None)
            return
        self.telemetry.run_started()
        try:
            outcome = self.run_once()
        except Locked as e:
            logger.warning("Daemon: run skipped: %s", e)
            outcome = e
        except BoardsyncError as e:
            logger.error("Daemon: run failed: %s: %s", e.error_class, e)
            outcome = e
        except Exception as e:  # noqa: BLE001 - a bug in one run must not end the daemon
            logger.exception("Daemon: run crashed")
            outcome = e
        if isinstance(outcome, BaseException):
            self.telemetry.record_failure(outcome)
        else:
            self.telemetry.record_run(outcome)
        self._complete(outcome)

    def _complete(self, outcome: Any) -> None:
        with self._lock:
            if outcome is not None:
                self.runs_finished += 1
                self.last_outcome = outcome
                if is_failure(outcome):
                    self.failures += 1
                elif getattr(outcome, "status", None) != "interrupted":
                    self.failures = 0
                if self.failures and self.next_tick is not None and not self.stop.is_set():
                    retry = next_attempt(self.clock.wall(), self.next_tick, self.failures,
                                         self.retry_base, self.retry_cap)
                    self.retry_at = retry if retry < self.next_tick else None
                status = getattr(outcome, "status", None) or type(outcome).__name__
                logger.info("Daemon: run %d ended: %s; next %s", self.runs_finished, status,
                            self._show(self.retry_at or self.next_tick))
                bind(run=None)  # the daemon's own lines until the next run name no run
            if self.once:
                self._done = True
            self.idle.set()
        self.wake.set()

    # -- views ------------------------------------------------------------------------------

    def _show(self, when: datetime | None) -> str | None:
        return None if when is None else iso(when.astimezone(self.tz))

    def status(self) -> dict[str, Any]:
        """The ``/status`` document: the daemon's schedule plus the telemetry's run data."""
        with self._lock:
            daemon = {
                "schedule": self.schedule.describe(),
                "state": ("stopping" if self.stop.is_set()
                          else "running" if not self.idle.is_set() else "idle"),
                "next_run": self._show(self.next_tick),
                "retry_at": self._show(self.retry_at),
                "consecutive_failures": self.failures,
                "runs_started": self.runs_started,
                "runs_finished": self.runs_finished,
                "ticks_skipped": self.ticks_skipped,
                "reloads": self.reloads,
            }
        return {"daemon": daemon} | self.telemetry.status()

