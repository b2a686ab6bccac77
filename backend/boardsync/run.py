"""One sync run: a manager feeding one retry-count task queue to N worker threads.

Shape (SPEC §2): the manager starts every worker thread at once; the first of them fetch the
board lists (one kind each, in parallel, their pages shared with idle workers) before they
take boards, and as soon as one kind's list arrives the manager queues ``Task(0, board,
rank)`` for each of its boards that needs syncing (biggest first unless ``board_order =
"listed"``). Workers (:mod:`boardsync.worker`) hand back one
:data:`~boardsync.outcomes.Outcome` per event; the manager validates each fetched board
(suspicious shrinkage is held back), writes boards in batches (:mod:`boardsync.writer`), and
only then records them in the state file (:mod:`boardsync.ledger`), so the database is the
truth and a kill at any moment loses nothing: the next run resumes the unfinished run and
skips boards that run already wrote.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue as stdqueue
import random
import socket
import threading
from typing import Any, assert_never

from .breaker import CircuitBreaker
from .clock import SYSTEM, Clock
from .config import Settings
from .crew import Crew
from .errors import StateError, StorageError
from .ledger import Ledger, new_run_id
from .lists import ListIntake
from .logctx import bind
from .metrics import RunMetrics
from .mirror import attach
from .outcomes import Failed, Fetched, Listed, ListFailed, Outcome, QuotaOut, Retrying, Summary
from .outcomes import RunStatus as S
from .pacing import PacingConfig, RateController, learner_for
from .proxy.factory import build_proxy_manager
from .queue import LocalTaskQueue, TaskQueue
from .redact import mask_url
from .sizing import resolve_workers
from .state import StateFile
from .store import Store
from .threads import start_thread
from .upstream import UpstreamClient, build_pool, client_for
from .worker import Worker, WorkerContext
from .writer import BatchWriter

logger = logging.getLogger(__name__)


class Run:
    """One sync run against one database: construct, then :meth:`run`.

    Args:
        settings: validated settings.
        clock: the one clock (tests pass a fake).
        stop: set by the caller (signal handler) to request a graceful stop.
        force_stop: set to abandon in-flight work at once (second signal).
        rng: randomness (pacing jitter, TTL jitter).
        progress: a progress reporter (``add``, ``tick``, ``close``) or None.
        task_queue: the queue between the manager and the workers.
    """

    def __init__(self, settings: Settings, *, clock: Clock = SYSTEM,
                 stop: threading.Event | None = None,
                 force_stop: threading.Event | None = None, rng: random.Random | None = None,
                 progress: Any = None, task_queue: TaskQueue | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.stop = stop or threading.Event()
        self.force_stop = force_stop or threading.Event()
        self.fetch_stop = threading.Event()  # workers take no new work, abandon at next page
        # board lists stop too: a user's stop, a lost database, the end of the run; not a
        # spent quota (a list half known could not report its boards as remaining)
        self.list_stop = threading.Event()
        self.all_done = threading.Event()
        self.rng = rng or random.Random()
        self.progress = progress
        self.tasks: TaskQueue = task_queue or LocalTaskQueue()
        self.outcomes: stdqueue.Queue[Outcome] = stdqueue.Queue()
        self.metrics = RunMetrics()
        self.pacing = PacingConfig.of(settings)
        self.rate = RateController(self.pacing, learner_for(settings, clock)
                                   if self.pacing.mode == "learn" else None)
        self.workers, self.workers_why = resolve_workers(settings, self.rate.learner)
        # a crew sized live asks for the IPs awaited from the first call on
        live = self.rate.learner is not None and settings.proxy == "api"
        self.proxies = build_proxy_manager(settings, clock=clock,
                                           workers=0 if live else self.workers,
                                           rng=random.Random(self.rng.random()))
        self.breaker = CircuitBreaker(settings.breaker_ips, settings.breaker_cooldown,
                                      clock=clock)
        self.pool = build_pool(settings, clock=clock)  # the lanes every worker's client shares
        self.state = StateFile(settings.state_path, clock=clock)
        # A bad --state fails here, before anything (even a SQLite directory) is created.
        self.state.check_writable()
        try:
            self.store = Store(settings.db_url, clock=clock)
        except OSError as e:  # a SQLite path whose directory cannot be created
            raise StorageError(f"database {mask_url(settings.db_url)}: cannot create its "
                               f"directory: {e.strerror or e}") from e
        self.writer = BatchWriter(self.store, batch_size=settings.write_batch,
                                  retries=settings.db_retries, clock=clock,
                                  abort=self.force_stop, metrics=self.metrics)
        self.run_id: str | None = None
        self.db_id = ""
        self.summary: Summary
        self.ledger: Ledger
        self.lists: ListIntake

    def make_client(self) -> UpstreamClient:
        return client_for(self.settings, self.pool, clock=self.clock)

    # -- the run ----------------------------------------------------------------------

    def run(self) -> Summary:
        """Do the whole run and return its summary; raises Locked/ConfigError/StorageError."""
        started = self.clock.now()
        # An unreadable state file fails here, before the database is touched.
        self.state.load()
        self.store.init_schema()
        holder = f"{socket.gethostname()} pid {os.getpid()}"
        with self.store.lock(holder):
            try:
                run_id = self.begin()
                self._manage(run_id, self._start(run_id))
            except StateError as e:
                if self.run_id is not None:  # the file failed mid-run: the run ends partial
                    self.summary.stop(f"state file: {e}")
                    self.summary.end(S.PARTIAL)
                raise
            finally:
                if self.run_id is not None:  # the run record is closed, whatever happened
                    self.summary.duration_s = round(self.clock.now() - started, 3)
                    self.finish()
        if self.pool.fatal is not None:  # no route left: its own line and exit code
            raise self.pool.fatal
        return self.summary

    def begin(self) -> str:
        """Start (or resume) the run record and its bookkeeping; returns the run id.

        :meth:`run` calls it under the database lock; a test may call it, then feed
        :meth:`handle` outcomes and :meth:`step` the manager without any thread. The state
        file is bound to the database and started from it (another database's file raises
        :class:`StateError`, nothing written), and saved once the run is in the database.
        """
        self.db_id = attach(self.state, self.store, self.settings.db_url)
        run_id, mode = self._open_run()
        self.run_id = run_id
        bind(run=run_id, worker="manager")
        self.summary = Summary(run_id=run_id, mode=mode)
        self.ledger = Ledger(self.summary, self.state, self.clock, self.metrics)
        self.lists = ListIntake(self.settings, self.store, self.ledger, self.tasks,
                                self.clock, self.metrics, force=mode == "force")
        self.lists.expect()
        self.state.save(force=True)
        return run_id

    def _open_run(self) -> tuple[str, str]:
        """The run id and mode: the database's unfinished run resumed (from any host), or a
        new one recorded, database first; ``--force`` never resumes: it records the
        unfinished run ``abandoned`` and starts a new one that syncs every board."""
        s = self.settings
        mode = "force" if s.force else "incremental"
        current = self.state.current_run()
        host, pid = socket.gethostname(), os.getpid()
        if current is not None and not s.force:
            prev_mode = current.get("mode") or "incremental"
            bind(run=current["id"])  # this line, not the last run's id, names this run
            logger.info("Run %s: resuming unfinished %s run", current["id"], prev_mode)
            self.store.start_run(current["id"], prev_mode, current.get("params") or {}, host,
                                 pid)
            self.state.begin_run(current["id"], prev_mode, {})
            return current["id"], prev_mode
        if current is not None:
            totals, errors = current.get("totals") or {}, current.get("errors") or {}
            self.store.finish_run(current["id"], S.ABANDONED, totals, errors,
                                  (current.get("ips") or {}).get("extracted"))
            self.state.finish_run(current["id"], S.ABANDONED, totals, current.get("ips"),
                                  errors)
        run_id = new_run_id(self.clock, self.db_id)
        params = s.redacted()
        self.store.start_run(run_id, mode, params, host, pid)
        self.state.begin_run(run_id, mode, params)
        bind(run=run_id)
        logger.info("Run %s: started (%s)", run_id, mode)
        return run_id, mode

    def _start(self, run_id: str) -> list[threading.Thread]:
        """Build every worker (before any starts: nothing to clean up) and start them.

        The first workers list the boards (one kind each, round robin when there are more
        kinds than workers), paced like any fetch, then keep their IP for members. The
        threads' own stop is ``list_stop``: after a quota stop a lister still finishes its
        lists; every other worker ends at its next step (it checks ``fetch_stop``).
        """
        s, n = self.settings, self.workers
        listers = min(n, len(s.kinds))
        logger.info("Run %s: listing %s with %d workers (%s)", run_id, ",".join(s.kinds), n,
                    self.workers_why)
        lists = self.lists
        crew = Crew(s, self.tasks, self.rate, lists.sizes, lists.pending,
                    unlisted_pages=lambda: lists.unlisted_pages)
        if self.rate.learner is not None:
            self.rate.learner.life = crew.life.estimate  # for the rate's life proof
        ctx = WorkerContext(run_id=run_id, settings=s, clock=self.clock, tasks=self.tasks,
                            report=self.outcomes.put, proxies=self.proxies,
                            breaker=self.breaker, pacing=self.pacing, rate=self.rate,
                            metrics=self.metrics, crew=crew, make_client=self.make_client,
                            fetch_stop=self.fetch_stop, list_stop=self.list_stop,
                            all_done=self.all_done)
        workers = [Worker(i, ctx, self.lists.jobs(i, listers) if i < listers else (),
                          random.Random(self.rng.random())) for i in range(n)]
        return [start_thread(w, self.list_stop, f"worker-{w.index}") for w in workers]

    # -- the manager loop -------------------------------------------------------------

    def halt(self, *, lists: bool = True) -> None:
        """Stop fetching members (and, unless ``lists`` is False, board lists too)."""
        self.fetch_stop.set()
        if lists:
            self.list_stop.set()

    def _manage(self, run_id: str, threads: list[threading.Thread]) -> None:
        try:
            deadline = self._manage_loop(threads)
        except BaseException:
            self.halt()  # e.g. the state file failed while queuing a list: no new work
            raise
        self.halt()
        # One shared deadline (not one per thread): a stop never takes longer than
        # --shutdown-timeout, whatever the worker count; hung workers are daemon threads.
        now = self.clock.now()
        join_until = now + (0.0 if self.force_stop.is_set() else 1.0)
        if deadline is not None:
            join_until = min(join_until, max(now, deadline))
        for t in threads:
            t.join(timeout=max(0.0, join_until - self.clock.now()))
        while not self.force_stop.is_set():
            try:
                self.handle(self.outcomes.get_nowait())
            except stdqueue.Empty:
                break
        if self.writer.pending and not self.force_stop.is_set():
            self.flush()

    def _manage_loop(self, threads: list[threading.Thread]) -> float | None:
        """Handle outcomes and write batches until the run is done or stopped; returns the
        shutdown deadline when a graceful stop was asked."""
        deadline: float | None = None
        while True:
            if self.stop.is_set() and not self.fetch_stop.is_set():
                logger.info("Run %s: stop requested: finishing in-flight work", self.run_id)
                self.summary.status = S.INTERRUPTED
                self.halt()
                deadline = self.clock.now() + self.settings.shutdown_timeout
            if self.force_stop.is_set():
                logger.warning("Run %s: second signal: stopping at once; unwritten boards stay "
                               "pending for the next run", self.run_id)
                self.summary.status = S.INTERRUPTED
                self.halt()
                return deadline
            if self.pool.fatal is not None and not self.fetch_stop.is_set():
                self.summary.stop(str(self.pool.fatal))  # a new IP cannot fix it: stop
                self.summary.end(S.PARTIAL)
                self.halt()
            self.step(timeout=0.05)
            if self.finished() or self._workers_gone(threads):
                return deadline
            if deadline is not None and self.clock.now() > deadline:
                logger.warning("Run %s: shutdown timeout: abandoning in-flight boards",
                               self.run_id)
                return deadline
            if self.progress is not None:
                self.progress.tick(self.ledger.snapshot(self.proxies.stats().extracted))

    def step(self, timeout: float = 0.0) -> None:
        """Handle the next outcome (waiting up to ``timeout`` s for one), then write the
        pending batch if it is due."""
        try:
            self.handle(self.outcomes.get(timeout=timeout) if timeout > 0
                        else self.outcomes.get_nowait())
        except stdqueue.Empty:
            pass
        if self.writer.due(self.ledger.open, self.fetch_stop.is_set()):
            self.flush()

    def finished(self) -> bool:
        """True (and ``all_done`` set) once no board and no list is left to wait for."""
        if self.ledger.open or self.lists.pending():
            return False
        sm = self.summary
        if (sm.status == S.RUNNING and not sm.boards_total and not sm.deleted
                and not self.lists.missing and not self.lists.resumed_written):
            # (a resumed run whose every board was written before its kill ends ok: done)
            sm.status = S.NOTHING_TO_DO
        self.all_done.set()
        return True

    def _workers_gone(self, threads: list[threading.Thread]) -> bool:
        """True when every worker thread has ended and nothing is left to handle."""
        if any(t.is_alive() for t in threads) or not self.outcomes.empty():
            return False
        if not self.fetch_stop.is_set():
            # every worker is gone with work left (a crash logged by its thread): end the
            # run partial, the rest stays pending for the next run
            logger.error("Run %s: no worker is left with %d boards and %d lists to go",
                         self.run_id, len(self.ledger.open), len(self.lists.unlisted))
            self.summary.stop("every worker stopped with work left")
            if self.lists.pending():
                self.lists.missing = True
                self.summary.end(S.PARTIAL)
        return True

    # -- outcomes ---------------------------------------------------------------------

    def handle(self, outcome: Outcome) -> None:
        """Apply one worker outcome to the run."""
        match outcome:
            case Listed():  # a DirectoryRead too
                self.lists.listed(outcome, self.progress, self.writer.gone is not None)
                if self.lists.error is not None and self.writer.gone is None:
                    self.writer.stop(self.lists.error)  # no write will be tried again
                    self.halt()
            case ListFailed():
                quota = self.lists.failed(outcome, user_stop=self.stop.is_set(),
                                          progress=self.progress,
                                          db_gone=self.writer.gone is not None)
                if quota and not self.fetch_stop.is_set():
                    logger.warning("Run %s: %s: stopping cleanly", self.run_id, outcome.reason)
                    self.halt(lists=False)
            case Fetched():
                self._fetched(outcome)
            case Retrying():
                self.ledger.retried(outcome)
            case Failed():
                self.lists.board_failed(outcome)
            case QuotaOut():
                if not self.fetch_stop.is_set():
                    logger.warning("Run %s: no more proxy IPs (%s): stopping cleanly",
                                   self.run_id, outcome.message)
                    self.summary.stop(f"quota exhausted: {outcome.message}")
                    self.halt(lists=False)
            case _:
                assert_never(outcome)

    def _fetched(self, fetched: Fetched) -> None:
        if not self.lists.hold_back(fetched):
            self.writer.add(fetched)

    def flush(self) -> None:
        """Write the pending batch; a database that stays away stops the run."""
        done = self.writer.write(self.summary.run_id)
        if done.results is not None:
            self.ledger.written(done.batch, done.results)
            return
        assert done.error is not None
        self.ledger.not_written(done.batch, done.error)
        self.halt()

    # -- the end ----------------------------------------------------------------------

    def finish(self) -> None:
        """Close the run: open boards pending, final status, run record and state file."""
        sm = self.summary
        self.ledger.close_open()
        if sm.failed or sm.suspicious or sm.not_written or sm.remaining:
            sm.end(S.PARTIAL)
        sm.end(S.OK)
        stats = self.proxies.stats()
        sm.count(self.metrics, stats, self.pool.snapshot())
        ips = {"extracted": stats.extracted, "failed": stats.failed, "expired": stats.expired}
        # An interrupted or partial run stays "current" so the next start resumes it.
        finished = sm.status in (S.OK, S.NOTHING_TO_DO) or (
            sm.status == S.PARTIAL and not sm.remaining)
        try:  # the database first: the run record is closed even if the file fails next
            self.store.finish_run(sm.run_id, sm.status, sm.totals(), sm.errors,
                                  stats.extracted, resumable=not finished)
        except StorageError as e:
            logger.error("Run %s: could not record the run in the database: %s", sm.run_id, e)
        try:
            self.state.finish_run(sm.run_id, sm.status, sm.totals(), ips, sm.errors,
                                  resumable=not finished)
            self.state.save(force=True)
        except StateError as e:
            if sm.status == S.OK:  # the data is whole but not its audit file: say so, as
                sm.status = S.PARTIAL  # when the file fails mid-run (nothing to resume)
                sm.stop(f"state file: {e}")
                with contextlib.suppress(StorageError):  # best effort: the file's error is raised
                    self.store.finish_run(sm.run_id, sm.status, sm.totals(), sm.errors,
                                          stats.extracted)
            raise
        finally:
            if self.progress is not None:
                self.progress.close(self.ledger.snapshot(stats.extracted))
