"""The sync: one manager feeding one retry-count task queue to N worker threads.

Shape (SPEC §2): the manager starts the workers one ``stagger`` apart; the first of them fetch
the board lists (one kind each, in parallel) before they take boards, and as soon as one kind's
list arrives the manager queues ``Task(0, board, rank)`` for each of its boards that needs
syncing (ranked biggest first unless ``board_order = "listed"``), so the other workers are
already fetching members while the longer lists are still paging. Each worker holds one proxy IP
at a time (drawn from the :class:`~boardsync.proxy.ProxyManager`), sleeps a random delay before
every request, fetches all pages of a board's members and hands the result to the manager.
Failures are classified in one place (:mod:`boardsync.classify`): the decision says whether to
evict the IP and whether to retry; a retried board goes back to the queue with
``retry_count + 1``, behind every board with fewer failed attempts. The manager validates each
fetched board (suspicious shrinkage is held back), writes boards in batches (one transaction per
batch), and only then records them in the state file, so the database is the truth and a kill
at any moment loses nothing: the next run resumes the unfinished run and skips boards that run
already wrote.
"""

from __future__ import annotations

import logging
import math
import os
import queue as stdqueue
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import make_url

from .breaker import OUTAGE_CLASSES, CircuitBreaker
from .classify import Decision, classify
from .config import Settings
from .eastmoney import EastMoneyClient
from .errors import (
    BoardsyncError,
    DatabaseUnavailable,
    Interrupted,
    QuotaExhausted,
    StorageError,
)
from .logctx import bind
from .metrics import RunMetrics
from .models import Board, Member, checksum
from .pacing import Pacer, PacingConfig, RateController
from .proxy import (
    DirectSource,
    ExtractionApiSource,
    LeakyBucket,
    Proxy,
    ProxyManager,
    StaticListSource,
    TunnelSource,
    workers_auto,
)
from .queue import LocalTaskQueue, Task, TaskQueue
from .state import StateFile
from .store import Store
from .threads import start_thread

logger = logging.getLogger(__name__)

#: Run statuses; the CLI maps each to an exit code.
OK, PARTIAL, NOTHING_TO_DO, INTERRUPTED = "ok", "partial", "nothing_to_do", "interrupted"


@dataclass
class Summary:
    """What a run did; printed at the end, stored in the run record and the state file."""

    run_id: str
    mode: str
    status: str = "running"
    boards_total: int = 0
    ok: int = 0
    failed: int = 0
    suspicious: int = 0
    not_written: int = 0
    skipped: int = 0
    deleted: int = 0
    rows_written: int = 0
    joined: int = 0
    left: int = 0
    requests: int = 0
    retries: int = 0
    ips_extracted: int = 0
    ips_failed: int = 0
    ips_expired: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latency: dict[str, float | None] = field(default_factory=dict)
    duration_s: float = 0.0
    stop_reason: str | None = None
    remaining: list[str] = field(default_factory=list)
    failed_boards: list[str] = field(default_factory=list)
    suspicious_boards: list[str] = field(default_factory=list)

    def totals(self) -> dict[str, Any]:
        """The numeric part, for run records."""
        return {
            k: getattr(self, k)
            for k in ("boards_total", "ok", "failed", "suspicious", "not_written", "skipped",
                      "deleted", "rows_written", "joined", "left", "requests", "retries",
                      "ips_extracted", "ips_failed", "ips_expired", "duration_s")
        } | {"latency": self.latency, "stop_reason": self.stop_reason,
             "remaining": len(self.remaining)}


@dataclass
class Fetched:
    """A worker's successful fetch of one board."""

    board: Board
    members: list[Member]
    attempts: int


@dataclass
class Failed:
    """A board that will not be retried (permanent failure)."""

    board: Board
    error_class: str
    message: str
    attempts: int


@dataclass
class Retrying:
    """A board that failed and went back to the queue (behind every first attempt)."""

    board: Board
    error_class: str
    attempts: int


@dataclass
class Listed:
    """A lister fetched the board list of ``kind``."""

    kind: str
    boards: list[Board]


@dataclass
class ListFailed:
    """A lister gave up on the board list of ``kind``: the run ends with ``status``."""

    kind: str
    status: str
    reason: str
    quota: bool = False


@dataclass
class QuotaOut:
    """A worker could not get an IP: the quota is spent, the run must stop cleanly."""

    message: str


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id such as ``20261122T204500Z-3fa2``."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:4]}"


def db_backoff(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds before database write attempt ``attempt`` (1-based): 0.5, 1, 2, 4 ... capped."""
    return min(cap, base * 2 ** max(0, attempt - 1))


def is_suspicious(previous: int | None, new: int, threshold: float) -> bool:
    """True when a board that had ``previous`` members comes back empty or shrinks too much.

    ``threshold`` 0.5 holds back a board of 200 that comes back with fewer than 100. A board
    never stored before (``previous`` None or 0) is never suspicious: there is nothing to lose.
    """
    if not previous:
        return False
    return new == 0 or new < previous * (1 - threshold)


def build_proxy_manager(settings: Settings, *, now: Callable[[], float] = time.monotonic,
                        sleep: Callable[[float], None] = time.sleep,
                        rng: random.Random | None = None) -> ProxyManager:
    """The ProxyManager for the configured source (direct, static list, extraction API, tunnel)."""
    source: Any
    if settings.proxy == "static":
        source = StaticListSource(settings.proxy_file)
    elif settings.proxy == "api":
        source = ExtractionApiSource(
            settings.proxy_api_url,
            key=settings.proxy_api_key,
            key_param=settings.proxy_api_key_param,
            num_param=settings.proxy_api_num_param,
            fmt=settings.proxy_api_format,
        )
    elif settings.proxy == "tunnel":
        source = TunnelSource(settings.proxy_tunnel_url)
    else:
        source = DirectSource()
    return ProxyManager(
        source,
        max_ips=settings.max_ips,
        ttl_s=settings.ip_ttl,
        ttl_jitter=settings.ip_ttl_jitter,
        bucket=LeakyBucket(settings.extract_interval, now=now, sleep=sleep),
        now=now,
        rng=rng or random.Random(),
        # One call for the board list and every worker, then replacements as needed.
        batch=settings.extract_batch,
        demand_sized=settings.extract_batch > 1,
        prefetch=min(settings.extract_batch, resolve_workers(settings)[0] + 1),
    )


def expected_size(board: Board, known: Mapping[str, int]) -> int | None:
    """The board's member count as best known: the last stored count, else the list's hint."""
    return known.get(board.code) or board.size_hint


def size_rank(board: Board, known: Mapping[str, int]) -> float:
    """The queue rank of ``board`` for biggest-first: minus its :func:`expected_size`; 1 (after
    every known size) when it is unknown.

    A board's pages go through one worker one after another, so a big board that starts
    late finishes long after the others and leaves the rest of the IPs idle; starting the
    big ones first (longest-processing-time-first scheduling) lets the small ones fill in
    around them. Boards of equal rank keep their list order (the queue is FIFO among equals).
    """
    size = expected_size(board, known)
    return -size if size is not None else 1


def worth_a_new_ip(waiting_pages: int, holders: int, spacing_s: float, thrift_s: float) -> bool:
    """Whether a worker that lost its IP should take a new one (pure; see ``ip_thrift``).

    The boards waiting are ``waiting_pages`` requests; the ``holders`` other workers with a
    live IP serve one each per ``spacing_s``. A new IP is worth one of the day's ration while
    that is at least ``thrift_s`` seconds of work per holder. Example: 120 pages, 19 holders,
    1.05 s apart -> 6.6 s of work each < 15 s: no new IP (the others finish ~0.35 s later).
    Always True with ``thrift_s`` 0 or nobody else to do the work.
    """
    if thrift_s <= 0 or holders < 1:
        return True
    return waiting_pages * spacing_s / holders >= thrift_s


def resolve_workers(settings: Settings) -> tuple[int, str]:
    """The worker count and, for ``workers = 0`` (auto), the Little's-law reasoning."""
    if settings.workers > 0:
        return settings.workers, f"{settings.workers} workers (configured)"
    if settings.proxy in ("direct", "tunnel", "static"):
        return 2 if settings.proxy == "direct" else 4, (
            f"proxy = {settings.proxy}: no extraction rate to size by; using a small fixed pool"
        )
    qps = 1.0 / settings.extract_interval if settings.extract_interval > 0 else 10.0
    return workers_auto(qps, settings.ip_ttl)


class ProxySlot:
    """A worker's current IP, swapped when it expires or is evicted.

    The client reads ``key``/``url`` at each request, so a long board keeps paging on a fresh
    IP when the old one's TTL runs out mid-board instead of failing and starting over.
    """

    def __init__(self, proxies: ProxyManager) -> None:
        self._proxies = proxies
        self.current: Proxy | None = None

    @property
    def key(self) -> str:
        return self.current.key if self.current else "none"

    @property
    def url(self) -> str | None:
        return self.current.url if self.current else None

    @property
    def live(self) -> bool:
        """True while the IP held has not expired (read by other threads too: one attribute
        read, at worst a step stale)."""
        current = self.current
        return current is not None and self._proxies.is_alive(current)

    def ensure(self, stop: threading.Event | None = None) -> Proxy:
        """Make sure a live proxy is held; may block on the extraction bucket or raise quota."""
        if self.current is not None and not self.live:
            self._proxies.release(self.current)
            self.current = None
        if self.current is None:
            self.current = self._proxies.acquire(stop_event=stop)
        return self.current

    def fail(self, reason: str) -> None:
        """Evict the current IP (it will never be handed out again)."""
        if self.current is not None:
            self._proxies.mark_failed(self.current, reason)
            self.current = None

    def drop(self) -> None:
        """Give the IP back at the end (counts as expired/released, never reused)."""
        if self.current is not None:
            self._proxies.release(self.current)
            self.current = None


class Worker:
    """Takes tasks from the queue and fetches one board at a time on its own IP.

    Two retry levels: a failed *page* is retried in place (up to ``page_retries`` times,
    on a fresh IP when the classifier says rotate), because with ~7 % random resets a
    37-page board would almost never come through whole; a board whose page keeps failing
    goes back to the queue with ``retry_count + 1``, behind every board with fewer failures.
    """

    def __init__(self, index: int, sync: Sync, kinds: Sequence[str] = ()) -> None:
        self.index = index
        self.sync = sync
        self.kinds = list(kinds)  # board lists to fetch before taking any board
        self.retired = False  # lost its IP when no new one was worth taking: the thread ends
        self._pages_ok = 0  # pages of the current board fetched so far
        self._board: Board | None = None  # the board being fetched
        self.slot = ProxySlot(sync.proxies)
        self.rng = random.Random(sync.rng.random())
        self.pacer = Pacer(sync.pacing, sync.rate, self.rng)
        self.client = sync.make_client(on_request=self._on_request)
        self.streak = 0  # consecutive failures on the current IP
        self._ip: Proxy | None = None
        self._page_exc: BaseException | None = None  # last failure _page_failed handled

    def initialize(self) -> None:
        bind(run=self.sync.run_id, worker=f"worker-{self.index}")
        self.sync.fetch_stop.wait(self.sync.settings.stagger * self.index)

    def shutdown(self) -> None:
        if not self.retired:  # a retired worker was counted out when it retired
            self.sync.worker_ended()
        self.slot.drop()
        self.client.close()

    def _wait(self, seconds: float, stop: threading.Event) -> None:
        """Sleep ``seconds`` unless ``stop`` comes first (then abandon the fetch)."""
        if seconds > 0 and stop.wait(seconds):
            raise Interrupted("stop requested")

    def pace(self, stop: threading.Event | None = None) -> None:
        """Before every request: stop if asked, respect the breaker, hold an IP, pace.

        ``stop`` abandons the fetch: the fetch stop by default (set by a user's stop, a
        spent quota or a lost database); board lists pass :attr:`Sync.list_stop`, which a
        spent quota does not set, so it never leaves a list half known (its boards could not
        be reported as remaining).
        """
        stop = stop or self.sync.fetch_stop
        breaker = self.sync.breaker
        while True:
            if stop.is_set():
                raise Interrupted("stop requested")
            if breaker.before_request():
                break
            self._wait(min(1.0, max(0.01, breaker.wait_time())), stop)
        if self._ip is not None and self._pages_ok == 0 and self._should_retire():
            self.retired = True
            raise Interrupted("retiring: no new IP is worth taking for the work left")
        current = self.slot.ensure(stop)
        if current is not self._ip:
            self._ip = current
            self.streak = 0
            self.pacer.new_ip()
        self._wait(self.pacer.delay(time.monotonic()), stop)
        self.pacer.started(time.monotonic())

    def _should_retire(self) -> bool:
        """True when this worker's IP is gone and the work waiting is not worth a new one."""
        if self.slot.live or self._board is None:
            return False
        return self.sync.retire(self.index, self._board)

    def _on_request(self, latency_s: float, error_class: str | None) -> None:
        self.sync.metrics.on_request(latency_s, error_class)
        if error_class is None:
            self._pages_ok += 1
            self.streak = 0
            self.sync.breaker.record_success()
            self.sync.rate.on_success()

    def _page_failed(self, exc: BaseException, attempt: int) -> bool:
        """Called by the client when a page request fails; True = fetch that page again."""
        error_class, decision = classify(exc)
        self._page_exc = exc
        if self._after_failure(error_class, decision, exc):
            # An upstream outage: fetch the page again once the breaker lets us through
            # (``pace`` waits for it). Counting these against the board would fail every
            # board of a long outage although none of them is at fault.
            return True
        return decision.retry and attempt < self.sync.page_retries

    def _after_failure(self, error_class: str, decision: Decision, exc: BaseException) -> bool:
        """Apply the classifier's decision to the IP: evict it, or forgive a one-off.

        Returns True when the failure belongs to an upstream outage (the breaker opened, or
        is open): the IP is kept and the board is not to blame.
        """
        key = self.slot.key
        self.streak += 1
        if self.sync.breaker.record_failure(error_class, key):
            return True  # an upstream outage, not this IP: keep it, pause instead
        if self.sync.breaker.state != "closed" and error_class in OUTAGE_CLASSES:
            return True
        if decision.rotate and self.streak >= decision.rotate_after:
            logger.log(decision.log_level, "Worker %d: evicting %s after %s (%s)", self.index,
                       key, error_class, exc)
            if decision.ban_signal:
                self.sync.rate.on_ban()
            self.slot.fail(error_class)
        return False

    def loop(self) -> bool:
        if self.kinds:  # lists first, even after a quota stop (see Sync.list_stop)
            kind = self.kinds.pop(0)
            bind(board=f"list:{kind}")
            try:
                outcome = self.list_boards(kind)
            except Exception as e:  # a bug, not the upstream: the manager must still hear
                logger.error("Worker %d: board list %s: unexpected %r", self.index, kind, e,
                             exc_info=e)
                self.sync.metrics.on_error(classify(e)[0])
                outcome = ListFailed(kind, PARTIAL, f"board list {kind}: unexpected {e!r}")
            finally:
                bind(board=None)
            self.sync.outcomes.put(outcome)
            return True
        if self.retired or self.sync.fetch_stop.is_set():
            return False
        task = self.sync.tasks.get(timeout=0.05)
        if task is None:
            return not self.sync.fetch_stop.is_set() and not self.sync.all_done.is_set()
        bind(board=task.board.code)
        try:
            self.process(task)
        finally:
            self.sync.tasks.done(task)
            bind(board=None)
        return True

    def list_boards(self, kind: str) -> Listed | ListFailed:
        """Fetch the board list of ``kind`` on this worker's IP, client and pacer (retried).

        Failures go through the same two levels as a board's: a failed page is fetched again
        in place (:meth:`_page_failed`: the classifier's rotate/forgive decision, the breaker),
        and a list that still fails is fetched again whole, up to ``max_retry`` times. The IP
        is then kept for members: no IP is taken just to list. Anything that is not a
        :class:`BoardsyncError` is a bug and propagates (:meth:`loop` reports it).
        """
        sync, s = self.sync, self.sync.settings
        attempts = 0
        while True:
            attempts += 1
            try:
                result = self.client.fetch_board_list(
                    kind, self.slot, before_request=lambda: self.pace(sync.list_stop),
                    page_failed=self._page_failed)
                return Listed(kind, list(result.boards))
            except Interrupted:
                return ListFailed(kind, INTERRUPTED, "stop requested while listing boards")
            except QuotaExhausted as e:
                return ListFailed(kind, PARTIAL, f"quota exhausted while listing boards: {e}",
                                  quota=True)
            except BoardsyncError as e:
                error_class, decision = self._judge(f"board list {kind}", e)
                if not decision.retry or attempts >= max(1, s.max_retry):
                    # A clean partial end, not an exception: the run record and the state
                    # file must not say "ok" for a run that could not list its boards.
                    logger.error("Worker %d: board list %s failed after %d attempts: %s (%s)",
                                 self.index, kind, attempts, error_class, e)
                    return ListFailed(kind, PARTIAL, f"board list {kind} failed after "
                                                     f"{attempts} attempts: {error_class}")
                sync.list_stop.wait(self.rng.uniform(s.req_delay_min, s.req_delay_max))

    def process(self, task: Task) -> None:
        board = task.board
        attempts = task.retry_count + 1
        self._pages_ok = 0
        self._board = board
        try:
            result = self.client.fetch_members(board.code, self.slot, before_request=self.pace,
                                               page_failed=self._page_failed)
        except Interrupted:
            self.sync.tasks.put(task)  # returned to the queue, not counted as an attempt
            return
        except QuotaExhausted as e:
            self.sync.tasks.put(task)
            self.sync.outcomes.put(QuotaOut(str(e)))
            return
        except Exception as e:  # noqa: BLE001 - every failure is classified below
            self._failed(task, e)
            return
        self.sync.outcomes.put(Fetched(board, list(result.members), attempts))

    def _judge(self, what: str, exc: BaseException) -> tuple[str, Decision]:
        """Log a failed board or list fetch and apply what the classifier says to the IP.

        A failure :meth:`_page_failed` already handled is not counted or applied twice.
        """
        error_class, decision = classify(exc)
        if not isinstance(exc, BoardsyncError):
            logger.error("Worker %d: %s: unexpected %r", self.index, what, exc, exc_info=exc)
        else:
            logger.log(decision.log_level, "Worker %d: %s via %s: %s (%s)", self.index, what,
                       self.slot.key, error_class, exc)
        if exc is not self._page_exc:  # not yet seen by _page_failed (e.g. incomplete)
            self.sync.metrics.on_error(error_class)
            self._after_failure(error_class, decision, exc)
        return error_class, decision

    def _failed(self, task: Task, exc: BaseException) -> None:
        board = task.board
        attempts = task.retry_count + 1
        error_class, decision = self._judge(f"board {board.code}", exc)
        if decision.retry and attempts < max(1, self.sync.settings.max_retry):
            self.sync.metrics.on_retry()
            self.sync.tasks.put(Task(task.retry_count + 1, board, task.rank))
            self.sync.outcomes.put(Retrying(board, error_class, attempts))
        else:
            self.sync.outcomes.put(Failed(board, error_class, str(exc)[:300], attempts))


class Sync:
    """One sync run against one database: construct, then :meth:`run`.

    Args:
        settings: validated settings.
        stop: set by the caller (signal handler) to request a graceful stop.
        force_stop: set to abandon in-flight work at once (second signal).
        now/sleep/rng: injected time and randomness (tests step them).
        on_progress: called with the summary so far after every board event.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        stop: threading.Event | None = None,
        force_stop: threading.Event | None = None,
        rng: random.Random | None = None,
        progress: Any = None,
        task_queue: TaskQueue | None = None,
    ) -> None:
        self.settings = settings
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
        self.outcomes: stdqueue.Queue[Any] = stdqueue.Queue()
        self.metrics = RunMetrics()
        self.proxies = build_proxy_manager(settings, rng=random.Random(self.rng.random()))
        self.pacing = PacingConfig(mode=settings.pacing, delay_min=settings.req_delay_min,
                                   delay_max=settings.req_delay_max, floor=settings.pacing_floor,
                                   burst=settings.pacing_burst)
        self.rate = RateController(self.pacing)
        self.breaker = CircuitBreaker(settings.breaker_ips, settings.breaker_cooldown)
        self.page_retries = settings.page_retries
        self.run_id: str | None = None
        self.state = StateFile(settings.state_path)
        # A bad --state fails here, before anything (even a SQLite directory) is created.
        self.state.check_writable()
        try:
            self.store = Store(settings.db_url)
        except OSError as e:  # a SQLite path whose directory cannot be created
            shown = make_url(settings.db_url).render_as_string(hide_password=True)
            raise StorageError(f"database {shown}: cannot create its directory: "
                               f"{e.strerror or e}") from e
        self._previous: dict[str, int] = {}
        self._pending_write: list[Fetched] = []
        self._pending_since = 0.0
        self._attempts: dict[str, int] = {}
        self._retrying: set[str] = set()
        self._open: set[str] = set()
        self._unlisted: set[str] = set(settings.kinds)  # kinds whose list has not come in
        self._listed_codes: set[str] = set()
        self._lists_missing = False
        self._mode = "incremental"
        self._workers_running = 0  # worker threads not retired (see retire)
        self._workers: list[Worker] = []
        self._workers_lock = threading.Lock()
        self._db_gone: BaseException | None = None  # set once writes gave up: stop writing
        self.summary: Summary

    # -- plumbing ---------------------------------------------------------------------

    def make_client(self, on_request: Callable[[float, str | None], None] | None = None
                    ) -> EastMoneyClient:
        s = self.settings
        return EastMoneyClient(
            s.upstream_url,
            timeout=(s.connect_timeout, s.read_timeout),
            page_size=s.page_size,
            on_request=on_request or self.metrics.on_request,
        )

    # -- the run ----------------------------------------------------------------------

    def run(self) -> Summary:
        """Do the whole run and return its summary; raises Locked/ConfigError/StorageError."""
        started = time.monotonic()
        # An unreadable state file fails here, before the database is touched.
        self.state.load()
        self.store.init_schema()
        holder = f"{socket.gethostname()} pid {os.getpid()}"
        with self.store.lock(holder):
            self.state.load()
            run_id, mode, resumed = self._begin()
            self.run_id = run_id
            bind(run=run_id, worker="manager")
            self.summary = Summary(run_id=run_id, mode=mode)
            try:
                self._run(run_id, mode, resumed)
            finally:
                self.summary.duration_s = round(time.monotonic() - started, 3)
                self._finish()
        return self.summary

    def _begin(self) -> tuple[str, str, bool]:
        s = self.settings
        mode = "force" if s.force else "incremental"
        current = self.state.current_run()
        if current is not None:
            prev_mode = current.get("mode", "incremental")
            if not s.force or prev_mode == "force":
                logger.info("Run %s: resuming unfinished %s run", current["id"], prev_mode)
                return current["id"], prev_mode, True
            self.state.finish_run(current["id"], "abandoned", {}, {}, {})
            self.store.finish_run(current["id"], "abandoned", {}, {}, 0)
        run_id = new_run_id()
        params = s.redacted()
        self.state.begin_run(run_id, mode, params)
        self.state.save(force=True)
        self.store.start_run(run_id, mode, params, socket.gethostname(), os.getpid())
        logger.info("Run %s: started (%s)", run_id, mode)
        return run_id, mode, False

    def _run(self, run_id: str, mode: str, resumed: bool) -> None:
        s = self.settings
        self._mode = mode
        n, why = resolve_workers(s)
        # The first workers list the boards (one kind each, round robin when there are more
        # kinds than workers), paced like any fetch, then keep their IP for members.
        listers = min(n, len(s.kinds))
        logger.info("Run %s: listing %s with %d workers (%s)", run_id, ",".join(s.kinds), n,
                    why)
        workers = [Worker(i, self, s.kinds[i::listers] if i < listers else ())
                   for i in range(n)]  # all built before any starts: nothing to clean up
        self._workers = workers
        self._workers_running = n
        # The threads' own stop is list_stop: after a quota stop a lister still finishes its
        # lists; every other worker ends at its next step (Worker.loop checks fetch_stop).
        threads = [start_thread(w, self.list_stop, f"worker-{w.index}") for w in workers]
        self._manage(run_id, threads)

    def _listed(self, run_id: str, listed: Listed) -> None:
        """One kind's board list arrived: record deletions, queue the boards to fetch.

        The kind counts as listed only once its boards are queued (a worker deciding whether
        to retire must not see the lists done and the queue empty in between). A database
        that fails here ends the run partial (the lists are fetched again next time), like a
        failed write.
        """
        try:
            self._queue_list(run_id, listed)
        finally:
            self._unlisted.discard(listed.kind)
        if not self._unlisted:
            for code in sorted(set(self.settings.boards) - self._listed_codes):
                logger.warning("Run %s: board %s is not in the %s lists", run_id, code,
                               ",".join(self.settings.kinds))

    def _queue_list(self, run_id: str, listed: Listed) -> None:
        codes = {b.code for b in listed.boards}
        self._listed_codes |= codes
        if self._db_gone is not None:
            self._lists_missing = True
            return
        try:
            self._record_deletions(run_id, listed.kind, codes)
            self.store.upsert_boards(listed.boards)
            todo = self._select(run_id, self._mode, listed.boards)
        except StorageError as e:
            self.metrics.on_error(e.error_class)
            logger.error("Run %s: could not record the %s list (%s): stopping the run", run_id,
                         listed.kind, e)
            self._lists_missing = True
            self._db_gone = e
            if self.summary.status == "running":
                self.summary.status = PARTIAL
            self.summary.stop_reason = self.summary.stop_reason or f"database unavailable: {e}"
            self._halt()
            return
        for board in todo:
            self._open.add(board.code)
            self.tasks.put(Task(0, board, self._rank(board)))
            self.state.update_board(board.code, status="pending", kind=board.kind,
                                    name=board.name)
        self.state.save(force=True)
        self.summary.boards_total += len(todo)
        if self.progress is not None:
            self.progress.add(len(todo))
        logger.info("Run %s: %s list: %d boards, %d to sync", run_id, listed.kind,
                    len(listed.boards), len(todo))

    def _list_failed(self, run_id: str, failed: ListFailed) -> None:
        """A board list could not be fetched: the boards of the other kinds still finish."""
        self._unlisted.discard(failed.kind)
        self._lists_missing = True
        if failed.status == INTERRUPTED and not self.stop.is_set():
            return  # the lists stopped for a lost database: that reason stands
        if self.summary.status == "running":
            self.summary.status = failed.status
        self.summary.stop_reason = self.summary.stop_reason or failed.reason
        if failed.quota and not self.fetch_stop.is_set():
            logger.warning("Run %s: %s: stopping cleanly", run_id, failed.reason)
            self._halt(lists=False)

    def _record_deletions(self, run_id: str, kind: str, listed: set[str]) -> None:
        for row in self.store.board_list(kind):
            if row.deleted_at is None and row.code not in listed:
                logger.info("Run %s: board %s is gone from the %s list: marked deleted", run_id,
                            row.code, kind)
                self.store.mark_deleted(row.code, run_id, datetime.now(UTC))
                self.state.update_board(row.code, status="deleted", run_id=run_id,
                                        synced_at=_iso_now())
                self.summary.deleted += 1

    def _select(self, run_id: str, mode: str, boards: list[Board]) -> list[Board]:
        """Boards this run must fetch: narrowed by --boards, minus fresh or already-done ones."""
        s = self.settings
        wanted = set(s.boards)
        stored = {row.code: row for row in self.store.board_list()}  # every kind: few rows
        now = datetime.now(UTC)
        todo = []
        for board in boards:
            if wanted and board.code not in wanted:
                continue
            row = stored.get(board.code)
            if row is not None:
                self._previous[board.code] = row.member_count or 0
            if row is not None and row.synced_at is not None:
                if row.last_run_id == run_id:
                    self.summary.skipped += 1  # already written by this (resumed) run
                    self._reconcile(run_id, board, row)
                    continue
                age = (now - _aware(row.synced_at)).total_seconds()
                if mode != "force" and age < s.max_age:
                    self.summary.skipped += 1
                    continue
            todo.append(board)
        return todo

    def _live_holders(self) -> int:
        """Workers still running that hold a live IP (an expired one held by an idle worker
        does not count: it would be replaced before that worker's next request)."""
        return sum(1 for w in self._workers if not w.retired and w.slot.live)

    def worker_ended(self) -> None:
        """A worker thread ended (done, stopped or crashed): one fewer to count on."""
        with self._workers_lock:
            self._workers_running -= 1

    def retire(self, index: int, board: Board) -> bool:
        """Whether worker ``index``, which lost its IP while fetching ``board``, retires instead
        of taking a new one (``ip_thrift``, extraction API only); True counts it out.

        Never while a board list is still to come (its boards are not counted yet), never for
        a board that is itself ``ip_thrift`` seconds of work or more (it cannot be shared, so
        handing it back would only make it finish later), and never for the last worker still
        running: the decision and the count are taken under one lock, so two workers whose
        IPs expire together cannot both leave.
        """
        s = self.settings
        if s.ip_thrift <= 0 or s.proxy != "api" or self._unlisted:
            return False
        spacing = (self.rate.spacing if s.pacing == "adaptive"
                   else (s.req_delay_min + s.req_delay_max) / 2)
        if self._pages(board) * spacing >= s.ip_thrift:
            return False
        waiting = sum(self._pages(t.board) for t in self.tasks.pending()) + self._pages(board)
        holders = self._live_holders()
        with self._workers_lock:
            if self._workers_running <= 1 or worth_a_new_ip(waiting, holders, spacing,
                                                             s.ip_thrift):
                return False
            self._workers_running -= 1
        logger.info("Worker %d: retiring instead of taking a new IP: the boards waiting are "
                    "less than %.0f s of work for the %d workers still holding one", index,
                    s.ip_thrift, holders)
        return True

    def _pages(self, board: Board) -> int:
        """Requests ``board`` is expected to take (1 when its size is unknown)."""
        size = expected_size(board, self._previous) or 1
        return max(1, math.ceil(size / self.settings.page_size))

    def _rank(self, board: Board) -> float:
        """The board's queue rank: list order, or biggest first (see :func:`size_rank`)."""
        if self.settings.board_order == "listed":
            return 0.0
        return size_rank(board, self._previous)

    def _reconcile(self, run_id: str, board: Board, row: Any) -> None:
        """Record in the state file a board this run wrote before a kill could record it.

        The database commit comes first and the state save second, so a SIGKILL between the
        two leaves the board written but not yet "ok" in the state file; the database is the
        truth, so the state catches up from it.
        """
        rec = self.state.board(board.code) or {}
        if rec.get("status") == "ok" and rec.get("run_id") == run_id:
            return
        synced = _aware(row.synced_at).isoformat(timespec="seconds")
        self.state.update_board(board.code, status="ok", rows=row.member_count,
                                checksum=row.checksum, run_id=run_id, synced_at=synced,
                                kind=board.kind, name=board.name, last_error_class=None)

    # -- the manager loop -------------------------------------------------------------

    def _halt(self, *, lists: bool = True) -> None:
        """Stop fetching members (and, unless ``lists`` is False, board lists too)."""
        self.fetch_stop.set()
        if lists:
            self.list_stop.set()

    def _manage(self, run_id: str, threads: list[threading.Thread]) -> None:
        try:
            self._manage_loop(run_id, threads)
        except BaseException:
            self._halt()  # e.g. the state file failed while queuing a list: no new work
            raise

    def _manage_loop(self, run_id: str, threads: list[threading.Thread]) -> None:
        s = self.settings
        stop_deadline: float | None = None
        while True:
            if self.stop.is_set() and not self.fetch_stop.is_set():
                logger.info("Run %s: stop requested: finishing in-flight work", run_id)
                self.summary.status = INTERRUPTED
                self._halt()
                stop_deadline = time.monotonic() + s.shutdown_timeout
            if self.force_stop.is_set():
                logger.warning("Run %s: second signal: stopping at once; unwritten boards stay "
                               "pending for the next run", run_id)
                self.summary.status = INTERRUPTED
                self._halt()
                break
            try:
                outcome = self.outcomes.get(timeout=0.05)
            except stdqueue.Empty:
                outcome = None
            if outcome is not None:
                self._handle(run_id, outcome)
            if self._pending_write and (
                len(self._pending_write) >= s.write_batch
                or time.monotonic() - self._pending_since > 0.5
                or not self._open - {f.board.code for f in self._pending_write}
                or self.fetch_stop.is_set()
            ):
                self._flush(run_id)
            if not self._open and not self._unlisted:
                if (self.summary.status == "running" and not self.summary.boards_total
                        and not self.summary.deleted and not self._lists_missing):
                    self.summary.status = NOTHING_TO_DO
                self.all_done.set()
                break
            alive = any(t.is_alive() for t in threads)
            if not alive and self.outcomes.empty():
                if not self.fetch_stop.is_set():
                    # every worker is gone with work left (a crash logged by its thread):
                    # end the run partial, the rest stays pending for the next run
                    logger.error("Run %s: no worker is left with %d boards and %d lists to "
                                 "go", run_id, len(self._open), len(self._unlisted))
                    self.summary.stop_reason = (self.summary.stop_reason
                                                or "every worker stopped with work left")
                    if self._unlisted and self.summary.status == "running":
                        self._lists_missing = True
                        self.summary.status = PARTIAL
                break
            if stop_deadline is not None and time.monotonic() > stop_deadline:
                logger.warning("Run %s: shutdown timeout: abandoning in-flight boards", run_id)
                break
            if self.progress is not None:
                self.progress.tick(self._snapshot())
        self._halt()
        # One shared deadline (not one per thread): a stop never takes longer than
        # --shutdown-timeout, whatever the worker count; hung workers are daemon threads.
        join_until = time.monotonic() + (0.0 if self.force_stop.is_set() else 1.0)
        if stop_deadline is not None:
            join_until = min(join_until, max(time.monotonic(), stop_deadline))
        for t in threads:
            t.join(timeout=max(0.0, join_until - time.monotonic()))
        while not self.force_stop.is_set():
            try:
                self._handle(run_id, self.outcomes.get_nowait())
            except stdqueue.Empty:
                break
        if self._pending_write and not self.force_stop.is_set():
            self._flush(run_id)

    def _handle(self, run_id: str, outcome: Any) -> None:
        if isinstance(outcome, Listed):
            self._listed(run_id, outcome)
        elif isinstance(outcome, ListFailed):
            self._list_failed(run_id, outcome)
        elif isinstance(outcome, Fetched):
            code = outcome.board.code
            self._attempts[code] = outcome.attempts
            self._retrying.discard(code)
            if self._held_back(run_id, outcome):
                return
            if not self._pending_write:
                self._pending_since = time.monotonic()
            self._pending_write.append(outcome)
        elif isinstance(outcome, Retrying):
            self._retrying.add(outcome.board.code)
            self._attempts[outcome.board.code] = outcome.attempts
            self.state.update_board(outcome.board.code, status="retrying",
                                    attempts=outcome.attempts,
                                    last_error_class=outcome.error_class)
            self.state.save()
        elif isinstance(outcome, Failed):
            code = outcome.board.code
            self._retrying.discard(code)
            self._open.discard(code)
            self.summary.failed += 1
            self.summary.failed_boards.append(code)
            logger.error("Run %s: board %s failed permanently after %d attempts: %s (%s)",
                         run_id, code, outcome.attempts, outcome.error_class, outcome.message)
            self.state.update_board(code, status="failed", attempts=outcome.attempts,
                                    last_error_class=outcome.error_class, run_id=run_id)
            self.state.save()
        elif isinstance(outcome, QuotaOut):
            if not self.fetch_stop.is_set():
                logger.warning("Run %s: no more proxy IPs (%s): stopping cleanly", run_id,
                               outcome.message)
                self.summary.stop_reason = f"quota exhausted: {outcome.message}"
                self._halt(lists=False)

    def _held_back(self, run_id: str, fetched: Fetched) -> bool:
        s = self.settings
        code = fetched.board.code
        previous = self._previous.get(code)
        if s.force or s.accept_shrink or not is_suspicious(previous, len(fetched.members),
                                                           s.shrink_threshold):
            return False
        logger.warning("Run %s: board %s came back with %d members (had %s): held back as "
                       "suspicious", run_id, code, len(fetched.members), previous)
        self._open.discard(code)
        self.summary.suspicious += 1
        self.summary.suspicious_boards.append(code)
        self.state.update_board(code, status="suspicious", attempts=fetched.attempts,
                                last_error_class="suspicious", run_id=run_id,
                                fetched_rows=len(fetched.members), rows=previous)
        self.state.save()
        return True

    def _flush(self, run_id: str) -> None:
        """Write the pending boards in one transaction, retrying a lost database with backoff."""
        batch, self._pending_write = self._pending_write, []
        if self._db_gone is not None:  # the retry budget is spent: record, do not wait again
            self._not_written(run_id, batch, self._db_gone)
            return
        items = [(f.board, f.members) for f in batch]
        s = self.settings
        for attempt in range(1, s.db_retries + 1):
            try:
                results = self.store.write_boards(run_id, items)
                break
            except DatabaseUnavailable as e:
                wait = db_backoff(attempt)
                logger.warning("Run %s: database unavailable (attempt %d/%d): %s; retry in "
                               "%.1fs", run_id, attempt, s.db_retries, e, wait)
                self.metrics.on_error(e.error_class)
                if attempt == s.db_retries or self.force_stop.wait(wait):
                    self._not_written(run_id, batch, e)
                    return
            except StorageError as e:
                self.metrics.on_error(e.error_class)
                self._not_written(run_id, batch, e)
                return
        synced_at = _iso_now()
        for f, res in zip(batch, results, strict=True):
            code = f.board.code
            self._open.discard(code)
            self.summary.ok += 1
            self.summary.rows_written += res.rows
            self.summary.joined += res.joined
            self.summary.left += res.left
            self.state.update_board(code, status="ok", attempts=f.attempts, rows=res.rows,
                                    checksum=res.checksum, run_id=run_id, synced_at=synced_at,
                                    kind=f.board.kind, name=f.board.name, last_error_class=None)
        self.state.save()

    def _not_written(self, run_id: str, batch: list[Fetched], exc: BaseException) -> None:
        logger.error("Run %s: could not write %d fetched boards (%s): stopping the run", run_id,
                     len(batch), exc)
        for f in batch:
            self._open.discard(f.board.code)
            self.summary.not_written += 1
            self.summary.remaining.append(f.board.code)
            self.state.update_board(f.board.code, status="fetched_unwritten",
                                    attempts=f.attempts, last_error_class="db_unavailable",
                                    checksum_fetched=checksum(m.code for m in f.members))
        self.state.save()
        self._db_gone = exc
        self.summary.stop_reason = f"database unavailable: {exc}"
        self._halt()

    def _snapshot(self) -> dict[str, int]:
        stats = self.proxies.stats()
        return {"ok": self.summary.ok, "failed": self.summary.failed + self.summary.suspicious,
                "retrying": len(self._retrying), "ips": stats.extracted,
                "done": self.summary.ok + self.summary.failed + self.summary.suspicious
                + self.summary.not_written}

    def _finish(self) -> None:
        sm = self.summary
        sm.remaining = sorted(set(sm.remaining) | self._open)
        for code in self._open:
            self.state.update_board(code, status="pending")
        if sm.status == "running":
            if sm.failed or sm.suspicious or sm.not_written or sm.remaining:
                sm.status = PARTIAL
            else:
                sm.status = OK
        stats = self.proxies.stats()
        sm.requests = self.metrics.requests
        sm.retries = self.metrics.retries
        sm.ips_extracted = stats.extracted
        sm.ips_failed = stats.failed
        sm.ips_expired = stats.expired
        sm.errors = self.metrics.errors_by_class()
        sm.latency = self.metrics.latency_percentiles()
        ips = {"extracted": stats.extracted, "failed": stats.failed, "expired": stats.expired}
        # An interrupted or partial run stays "current" so the next start resumes it.
        finished = sm.status in (OK, NOTHING_TO_DO) or (
            sm.status == PARTIAL and not sm.remaining
        )
        self.state.finish_run(sm.run_id, sm.status, sm.totals(), ips, sm.errors,
                              resumable=not finished)
        self.state.save(force=True)
        try:
            self.store.finish_run(sm.run_id, sm.status, sm.totals(), sm.errors,
                                  stats.extracted)
        except StorageError as e:
            logger.error("Run %s: could not record the run in the database: %s", sm.run_id, e)
        if self.progress is not None:
            self.progress.close(self._snapshot())


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def run_sync(settings: Settings, **kwargs: Any) -> Summary:
    """Run one sync with ``settings``; see :class:`Sync` for the keyword arguments."""
    return Sync(settings, **kwargs).run()
