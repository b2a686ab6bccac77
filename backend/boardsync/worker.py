"""A worker: one thread that holds one proxy IP at a time and fetches one board at a time.

The worker drives the pager (:class:`~boardsync.upstream.Pager`): before every request it
paces itself (breaker, IP, pacer), sends one request through the client, hands the page to
the pager and applies :mod:`boardsync.policy` to every failure. It touches nothing of the run
but what its :class:`WorkerContext` names; what it did goes back as one
:data:`~boardsync.outcomes.Outcome` per board or list.

Two retry levels: a failed *page* is retried in place (up to ``page_retries`` times, on a
fresh IP when the policy says rotate), because with ~7 % random resets a 37-page board would
almost never come through whole; a board whose page keeps failing goes back to the queue with
``retry_count + 1``, behind every board with fewer failures.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .breaker import CLOSED, CircuitBreaker
from .clock import Clock
from .config import Settings
from .crew import IDLE_POLL_S, Crew
from .errors import (
    BoardsyncError,
    IncompleteData,
    Interrupted,
    QuotaExhausted,
    TooManyPages,
    UpstreamError,
)
from .logctx import bind
from .metrics import RunMetrics
from .models import Board
from .outcomes import Failed, Fetched, Outcome, QuotaOut, Retrying
from .pacing import Pacer, PacingConfig, RateController
from .policy import Decision, RetryBudget, Streak, Verdict, after_failure, classify
from .proxy import Proxy, ProxyManager
from .proxy.slot import ProxySlot
from .queue import Task, TaskQueue
from .reader import DIRECTORY, read_directory, read_list
from .sharing import help_fetch, own, worth_sharing
from .upstream import (
    HasCode,
    Page,
    Pager,
    Query,
    Step,
    UpstreamClient,
    members_query,
)

logger = logging.getLogger(__name__)

T = TypeVar("T", bound=HasCode)
R = TypeVar("R")


@dataclass(frozen=True)
class WorkerContext:
    """Exactly what a worker may touch of its run; nothing else reaches it.

    ``fetch_stop`` ends member fetches (a user's stop, a spent quota, a lost database);
    ``list_stop`` ends board lists too but is not set by a spent quota, so a list in progress
    finishes and its boards can be reported as remaining; ``all_done`` says the run needs
    nothing more.
    """

    run_id: str
    settings: Settings
    clock: Clock
    tasks: TaskQueue
    report: Callable[[Outcome], None]
    proxies: ProxyManager
    breaker: CircuitBreaker
    pacing: PacingConfig
    rate: RateController
    metrics: RunMetrics
    crew: Crew
    make_client: Callable[[], UpstreamClient]
    fetch_stop: threading.Event
    list_stop: threading.Event
    all_done: threading.Event

    @property
    def budget(self) -> RetryBudget:
        return RetryBudget(self.settings.page_retries, self.settings.max_retry)


class Worker:
    """Takes tasks from the queue and fetches one board at a time on its own IP (a
    :class:`~boardsync.threads.Runnable`); the first workers list the boards first."""

    def __init__(self, index: int, ctx: WorkerContext, kinds: Sequence[str] = (),
                 rng: random.Random | None = None) -> None:
        self.index = index
        self.ctx = ctx
        self.kinds = list(kinds)  # board lists to fetch before taking any board
        self.retired = False  # lost its IP when no new one was worth taking: the thread ends
        self.slot = ProxySlot(ctx.proxies)
        self.rng = rng or random.Random()
        self.pacer = Pacer(ctx.pacing, ctx.rate, self.rng)
        self.client = ctx.make_client()
        self.budget = ctx.budget
        self.streak = Streak()  # consecutive failures on the current IP
        self._pages_ok = 0  # requests of the current board answered so far
        self._board: Board | None = None  # the board being fetched
        self._ip: Proxy | None = None
        self._ip_served = 0  # requests the current IP answered (an IP that served can die)
        self._page_exc: BaseException | None = None  # last failure _page_failed handled
        ctx.crew.join(index, self.slot)

    # -- the thread skeleton -------------------------------------------------------------

    def initialize(self) -> None:
        bind(run=self.ctx.run_id, worker=f"worker-{self.index}")
        self.ctx.clock.wait(self.ctx.fetch_stop, self.ctx.settings.stagger * self.index)

    def loop(self) -> bool:
        ctx = self.ctx
        if self.kinds:  # lists first, even after a quota stop (see WorkerContext)
            kind = self.kinds.pop(0)
            bind(board=f"list:{kind}")
            try:
                ctx.report(read_directory(self) if kind == DIRECTORY else read_list(self, kind))
            finally:
                bind(board=None)
            return True
        if self.retired or ctx.fetch_stop.is_set():
            return False
        if not self.slot.live and not ctx.crew.admit(self.index, ctx.clock.now()):
            # the IPs held can serve the work waiting: take no IP (and no board) for now
            ctx.clock.wait(ctx.fetch_stop, IDLE_POLL_S)
            return not ctx.all_done.is_set()
        task = ctx.tasks.get(timeout=0.05)
        if task is None:
            return not ctx.fetch_stop.is_set() and not ctx.all_done.is_set()
        bind(board=task.board.code)
        try:
            self.process(task)
        finally:
            ctx.tasks.done(task)
            bind(board=None)
        return True

    def shutdown(self) -> None:
        self.ctx.crew.leave(self.index)
        self.slot.drop()
        self.client.close()

    # -- before every request ------------------------------------------------------------

    def wait(self, seconds: float, stop: threading.Event) -> None:
        """Sleep ``seconds`` unless ``stop`` comes first (then abandon the fetch)."""
        if seconds > 0 and self.ctx.clock.wait(stop, seconds):
            raise Interrupted("stop requested")

    def pace(self, stop: threading.Event, learned: bool = True) -> None:
        """Before every request: stop if asked, respect the breaker, hold an IP, pace.

        ``learned`` False: the request goes to a host whose allowance is not the learner's
        (the board directory's static file): held on an IP, not paced or counted by it."""
        breaker = self.ctx.breaker
        while True:
            if stop.is_set():
                raise Interrupted("stop requested")
            if breaker.before_request():
                break
            self.wait(min(1.0, max(0.01, breaker.wait_time())), stop)
        try:
            self._hold_and_pace(stop, learned)
        except BaseException:
            breaker.abandon()  # a half-open probe this worker held was never sent
            raise

    def _hold_and_pace(self, stop: threading.Event, learned: bool = True) -> None:
        """After the breaker let us through: retire, or hold a live IP and wait its pace."""
        clock = self.ctx.clock
        if self._ip is not None and self._pages_ok == 0 and self._should_retire():
            self.retired = True
            raise Interrupted("retiring: no new IP is worth taking for the work left")
        current = self.slot.ensure(stop)
        learner = self.ctx.rate.learner
        if current is not self._ip:
            if self._ip is not None:
                # failures since its last answer were most likely its end, not the route's
                self.client.pool.forgive(self._ip.key)
                if learner is not None:
                    learner.released(self._ip.key)  # a probe it carried passes to a fresh one
            self._ip = current
            self._ip_served = 0
            self.streak.reset()
            self.pacer.new_ip()
            self.ctx.crew.holding(self.index, current)
        if not learned:
            return
        if learner is None:
            self.wait(self.pacer.delay(clock.now()), stop)
            self.pacer.started(clock.now())
            return
        while (wait := learner.reserve(current.key, clock.now())) > 0:
            self.wait(wait, stop)  # the identity's allowance, shared with its other workers
            if not self.slot.live:  # it ended while this worker waited: pace a fresh one
                return self._hold_and_pace(stop, learned)

    def _should_retire(self) -> bool:
        """True when this worker's IP is gone and the work waiting is not worth a new one."""
        if self.slot.live or self._board is None:
            return False
        return self.ctx.crew.retire(self.index, self._board)

    # -- paging ----------------------------------------------------------------------------

    def send(self, request: Callable[[], R], learned: bool = True,
             proof: Callable[[], bool] = lambda: True) -> R:
        """One request and what is made of it, timed; a success (the upstream answered and the
        answer was accepted) resets the IP's streak and closes the breaker, and tells the
        learner the request was admitted when ``proof()`` says the answer shows it (a
        ``data: null`` page may be a soft ban's, even where the pager tolerates one)."""
        ctx = self.ctx
        started, key = ctx.clock.now(), self.slot.key
        learner = ctx.rate.learner if learned else None
        try:
            page = request()
        except BaseException as e:
            ctx.metrics.on_request(ctx.clock.now() - started,
                                   getattr(e, "error_class", None) or "unexpected")
            if learner is not None:
                learner.failed(key, ctx.clock.now())
            raise
        ctx.metrics.on_request(ctx.clock.now() - started, None)
        now = ctx.clock.now()
        if learner is not None:
            learner.answered(key, now, shown=proof())
        if self._ip is not None and self._ip.born:
            ctx.crew.life.alive_at(now - self._ip.born)
        self._ip_served += 1
        ctx.crew.answered(now)
        self._pages_ok += 1
        self.streak.reset()
        ctx.breaker.record_success()
        ctx.rate.on_success()
        return page

    def ask_page(self, query: Query[Any], pn: int, take: Callable[[Page], R],
                 stop: threading.Event) -> R:
        """What ``take`` makes of page ``pn`` of ``query``, the page asked again (on a fresh IP
        when the policy says rotate) while ``take`` or the request fails and the policy
        retries.

        Raises what the last failure was (an :class:`UpstreamError`), and what pacing raises
        (``Interrupted``, ``QuotaExhausted``).
        """
        failures = 0  # failures of this page
        shown: list[Page] = []  # the latest answer to this page

        # judged inside send: a page ``take`` refuses (data:null for a listed board, a soft
        # ban's sign) or a null one it tolerates proves no allowance
        def asked() -> R:
            shown[:] = [self.client.get_page(query, pn, self.slot)]
            return take(shown[0])

        while True:
            self.pace(stop)
            try:
                return self.send(asked, proof=lambda: shown[0].total is not None)
            except TooManyPages as e:  # the plan, not this page: the attempt fails at once
                raise self.client.blame(e, self.slot) from None
            except UpstreamError as e:
                if e.proxy is None:  # raised by the pager: name where it came from
                    self.client.blame(e, self.slot)
                failures += 1
                if self._page_failed(e, failures):
                    logger.debug("Worker %d: %s page %d: %s; asking again (attempt %d)",
                                 self.index, query.what, pn, e.error_class, failures + 1)
                    continue
                raise

    def fetch(self, query: Query[T], stop: threading.Event, board: Board) -> list[T]:
        """Every page of ``query``; once page 1 plans :data:`~boardsync.sharing.SHARE_PAGES`
        pages or more, the rest shared with idle workers (``board`` names their help tasks).

        Raises what :meth:`ask_page` raises, and ``IncompleteData`` when the pages do not add
        up.
        """
        pager: Pager[T] = Pager(query)
        while True:
            step = self.ask_page(query, pager.page, pager.take, stop)
            if step is Step.DONE:
                return pager.items
            if step is Step.INCOMPLETE:
                raise self.client.blame(IncompleteData(pager.reason), self.slot)
            if pager.pages == 1 and worth_sharing(pager):
                return own(self, pager, stop, board)

    def handled(self, exc: BaseException) -> None:
        """``exc`` was already judged against the IP it happened on (a helper's page that
        kept failing): the board's failure must not judge it again against this one."""
        self._page_exc = exc

    # -- failures --------------------------------------------------------------------------

    def _page_failed(self, exc: UpstreamError, failures: int) -> bool:
        """A page request failed for the ``failures``-th time; True = ask it again."""
        error_class, decision = classify(exc)
        self._page_exc = exc
        if self._after_failure(error_class, decision, exc):
            # An upstream outage: ask again once the breaker lets us through (``pace`` waits
            # for it). Counting these against the board would fail every board of a long
            # outage although none of them is at fault.
            return True
        return self.budget.retry_page(decision, failures)

    def _after_failure(self, error_class: str, decision: Decision, exc: BaseException) -> bool:
        """Apply the policy's verdict to the IP; True when the failure is an upstream outage
        (the IP is kept and the board is not to blame)."""
        key = self.slot.key
        streak = self.streak.failed()
        breaker = self.ctx.breaker
        opened = breaker.record_failure(error_class, key)
        verdict = after_failure(error_class, decision, streak, opened=opened,
                                outage=breaker.state != CLOSED)
        if verdict is Verdict.ROTATE:
            logger.log(decision.log_level, "Worker %d: evicting %s after %s (%s)", self.index,
                       key, error_class, exc)
            now = self.ctx.clock.now()
            if decision.ban_signal:
                self.ctx.rate.on_ban(key, now)
            elif error_class == "proxy_dead" and self._ip is not None and self._ip_served:
                self.ctx.crew.life.died(now - self._ip.born)  # it served, then it ended
            self.slot.fail(error_class)
        # the route's failure (the upstream pool moves to another lane) is not the board's
        return verdict in (Verdict.OUTAGE, Verdict.ROUTE)

    def judge(self, what: str, exc: BaseException) -> tuple[str, Decision]:
        """Log a failed board or list fetch and apply the policy to the IP, once: a failure
        :meth:`_page_failed` already handled is not counted or applied twice."""
        error_class, decision = classify(exc)
        if not isinstance(exc, BoardsyncError):
            logger.error("Worker %d: %s: unexpected %r", self.index, what, exc, exc_info=exc)
        else:
            logger.log(decision.log_level, "Worker %d: %s via %s: %s (%s)", self.index, what,
                       self.slot.key, error_class, exc)
        if exc is not self._page_exc:  # not yet seen by _page_failed (e.g. incomplete)
            self.ctx.metrics.on_error(error_class)
            self._after_failure(error_class, decision, exc)
        return error_class, decision

    # -- boards ----------------------------------------------------------------------------

    def process(self, task: Task) -> None:
        """Fetch one board's members and report the outcome (the task itself, put back,
        when the fetch was stopped)."""
        ctx, board = self.ctx, task.board
        self._pages_ok = 0
        self._board = board
        if task.share is not None:
            help_fetch(self, task.share)
            return
        try:
            members = self.fetch(members_query(board.code, witnessed=board.witnessed),
                                 ctx.fetch_stop, board)
        except Interrupted:
            ctx.tasks.put(task)  # returned to the queue, not counted as an attempt
            return
        except QuotaExhausted as e:
            ctx.tasks.put(task)
            ctx.report(QuotaOut(str(e)))
            return
        except Exception as e:  # noqa: BLE001 - every failure is classified below
            self._failed(task, e)
            return
        ctx.report(Fetched(board, members, task.retry_count + 1))

    def _failed(self, task: Task, exc: BaseException) -> None:
        board = task.board
        attempts = task.retry_count + 1
        error_class, decision = self.judge(f"board {board.code}", exc)
        if self.budget.retry_board(decision, attempts):
            self.ctx.metrics.on_retry()
            self.ctx.tasks.put(Task(task.retry_count + 1, board, task.rank))
            self.ctx.report(Retrying(board, error_class, attempts))
        else:
            self.ctx.report(Failed(board, error_class, str(exc)[:300], attempts))
