"""The one failure policy: error classes, their decisions as data, outages, streaks, budgets.

Everything that decides what a failure means lives here, so the worker only applies it:

* :data:`DECISIONS` and :func:`classify` - every failure becomes an error class and a
  :class:`Decision` (rotate the IP? retry?);
* :data:`OUTAGE_CLASSES` - the classes that may mean "the upstream is down" (the circuit
  breaker counts only these, and while it is open they never count against an IP or board);
* :class:`Streak` and :func:`after_failure` - the per-IP streak that turns forgiven one-offs
  into an eviction, and the verdict for one failure (outage, rotate, keep);
* :class:`RetryBudget` - how many times a page is asked again in place and how many attempts
  a board gets before it fails for good.

The table:

``rotate`` — evict the IP (``mark_failed``) before trying again; ``retry`` — put the board back
in the queue, behind every board with fewer failed attempts. ``rotate_after`` lets a class be
forgiven: a connection reset on an otherwise healthy IP is usually noise (the reference run saw
~7 % of requests reset), and rotating on each one burns an IP of the day's ration. At a 7 %
noise rate two resets in a row happen on ~1 request in 200 (five needless evictions in a
1,000-request sync, a quarter of a 20-IP run's IPs), three in a row on ~1 in 3,000 and four on
~1 in 40,000. Some IPs are merely worse than others (the reference scenario models 5 % of IPs
with ~17 % resets: three in a row within an IP's ~50 requests one time in five); such an IP
still serves >80 % of its requests, while replacing it costs an IP of the ration. So the fourth
reset in a row on the same IP is treated as a ban: a real ban costs three wasted requests before
the IP is let go, fewer when one of them is a 403 (recognised at once). A lone 502 is the
upstream's gateway, not the IP (the breaker handles outages): the third in a row rotates. A lone
timeout is forgiven too (the reference run saw one in 1,000 requests); a second in a row means
the IP is gone. The streak counts failures of any class on the current IP and is compared with
the latest failure's ``rotate_after``. ``ban_signal`` tells adaptive pacing to slow down. The
worker applies this module's verdicts; nothing else decides.

Why a table: the worker, the board-list fetch and the daemon must agree on every failure, and
a parametrized test over :mod:`boardsync.errors` proves each class has a decision (STYLE §4).
The keys are the ``error_class`` strings the exceptions carry (what metrics and the state
file record), plus two refinements of ``http_status`` by status code: ``http_5xx`` and
``http_retryable`` (408/425 and 3xx redirects, typically to a verification page).

Rules of thumb behind the table:

* anything that may mean "this IP is burnt" (timeouts, resets, bans, HTML or ``data: null``
  where rows belong, 5xx) rotates the IP and retries;
* a board that does not add up (``incomplete``) is retried on the *same* IP: the IP
  answered fine, the data moved while we paged;
* bad input, bad configuration, refused credentials and other 4xx are never retried:
  retrying cannot fix them;
* running out of quota stops the run (the caller checks for ``QuotaExhausted``).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from .errors import BoardsyncError, ConfigError, HTTPStatusError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """What to do after a failure of one class.

    Args:
        rotate: evict the IP the failure happened on.
        retry: try the board again (queued behind first attempts), budget permitting.
        log_level: how loudly to log it.
        rotate_after: consecutive failures on the same IP before ``rotate`` applies (1 = at once).
        ban_signal: the failure says "this IP is going too fast" (slows adaptive pacing down).
        route: the failure is the route's, not the IP's nor the board's (the upstream pool
            judged it): keep the IP and ask the page again, on the lane the pool picks next,
            without counting it against the page.
    """

    rotate: bool
    retry: bool
    log_level: int = logging.WARNING
    rotate_after: int = 1
    ban_signal: bool = False
    route: bool = False


W, E, L = logging.WARNING, logging.ERROR, logging.INFO  # L: low (info)

#: The decision table, keyed by ``error_class`` (see :mod:`boardsync.errors`).
DECISIONS: dict[str, Decision] = {
    "timeout": Decision(rotate=True, retry=True, log_level=W, rotate_after=2),
    "connection": Decision(rotate=True, retry=True, log_level=L, rotate_after=4, ban_signal=True),
    "blocked": Decision(rotate=True, retry=True, log_level=W, ban_signal=True),
    "proxy_dead": Decision(rotate=True, retry=True, log_level=L),
    "http_status": Decision(rotate=False, retry=False, log_level=E),
    "http_5xx": Decision(rotate=True, retry=True, log_level=L, rotate_after=3),
    "http_retryable": Decision(rotate=True, retry=True, log_level=W, ban_signal=True),
    "invalid_json": Decision(rotate=True, retry=True, log_level=L, rotate_after=2),
    "empty_data": Decision(rotate=True, retry=True, log_level=L, rotate_after=2),
    # soft failures (EASTMONEY_API.md section 13): a non-zero rc with data is garbled like a
    # bad body; a captcha page and data null for a board the directory lists are ban
    # signals (the IP and the pacing are to blame, not the board); rc 100 is a directory
    # board without a quote: nothing to retry, the run records it as listed without one
    "rc_error": Decision(rotate=True, retry=True, log_level=L, rotate_after=2),
    "captcha": Decision(rotate=True, retry=True, log_level=W, ban_signal=True),
    "soft_ban": Decision(rotate=True, retry=True, log_level=W, ban_signal=True),
    "no_quote": Decision(rotate=False, retry=False, log_level=L),
    "incomplete": Decision(rotate=False, retry=True, log_level=L),
    # the upstream pool's judgements (upstream/pool.py): a fresh IP closed on by one route
    # while others remain, or a host that does not resolve, blames the route, never the IP;
    # every route refused or unreachable ends the run (a new IP cannot fix it)
    "refused": Decision(rotate=False, retry=True, log_level=L, route=True),
    "unreachable": Decision(rotate=False, retry=True, log_level=W, route=True),
    "untrusted": Decision(rotate=False, retry=True, log_level=W, route=True),
    "no_route": Decision(rotate=False, retry=False, log_level=E),
    "routes_refused": Decision(rotate=False, retry=False, log_level=E),
    "upstream_unreachable": Decision(rotate=False, retry=False, log_level=E),
    "upstream": Decision(rotate=True, retry=True, log_level=W),
    "bad_request": Decision(rotate=False, retry=False, log_level=E),
    "proxy": Decision(rotate=True, retry=True, log_level=W),
    "extract_throttled": Decision(rotate=False, retry=True, log_level=L),
    "quota_exhausted": Decision(rotate=False, retry=False, log_level=W),
    "provider_auth": Decision(rotate=False, retry=False, log_level=E),
    "provider_error": Decision(rotate=False, retry=True, log_level=W),
    "storage": Decision(rotate=False, retry=False, log_level=E),
    "db_unavailable": Decision(rotate=False, retry=True, log_level=W),
    "locked": Decision(rotate=False, retry=False, log_level=E),
    "state": Decision(rotate=False, retry=False, log_level=E),
    "bad_config": Decision(rotate=False, retry=False, log_level=E),
    "interrupted": Decision(rotate=False, retry=True, log_level=L),
    "unexpected": Decision(rotate=False, retry=True, log_level=E),
}


def http_status_class(status: int) -> str:
    """The table key for a plain :class:`~boardsync.errors.HTTPStatusError` with ``status``.

    5xx may pass on another IP (``http_5xx``); 403/429 are bans (``blocked``, in case one is
    raised as a plain status error); 408/425 and 3xx (a redirect, usually to a verification
    page: the client never follows redirects) are ``http_retryable``; any other status (404,
    400, 401) will not get better by asking again (``http_status``).
    """
    if status >= 500:
        return "http_5xx"
    if status in (403, 429):
        return "blocked"
    if status in (408, 425) or 300 <= status < 400:
        return "http_retryable"
    return "http_status"


def error_class_of(exc: BaseException) -> str:
    """The table key for ``exc``: its ``error_class``, refined by HTTP status.

    Unknown exceptions (not a :class:`~boardsync.errors.BoardsyncError`) are ``unexpected``;
    ``KeyboardInterrupt``/``SystemExit`` are ``interrupted``.
    """
    if isinstance(exc, HTTPStatusError) and exc.error_class == "http_status":
        return http_status_class(exc.status)
    if isinstance(exc, BoardsyncError):
        return exc.error_class
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return "interrupted"
    return "unexpected"


def classify(exc: BaseException) -> tuple[str, Decision]:
    """``(error_class, decision)`` for any exception.

    Unknown exceptions retry without rotating and log at ERROR: a bug should not burn IPs but
    should not silently drop a board either. A :class:`~boardsync.errors.BoardsyncError`
    subclass whose ``error_class`` is missing from the table gets the ``unexpected`` decision
    (and a warning, since the table test should have caught it).
    """
    name = error_class_of(exc)
    decision = DECISIONS.get(name)
    if decision is None:
        logger.warning("Classify: no decision for error class %r; treated as unexpected", name)
        decision = DECISIONS["unexpected"]
    return name, decision


#: Error classes that can mean "the upstream is down" (not "this IP is banned").
OUTAGE_CLASSES = frozenset({"connection", "http_status", "http_5xx", "timeout", "invalid_json",
                            "empty_data"})


class Verdict(enum.Enum):
    """What one failure means for the IP it happened on."""

    OUTAGE = "outage"  # the upstream is down: keep the IP, wait for the breaker, blame nobody
    ROTATE = "rotate"  # evict the IP (never handed out again)
    KEEP = "keep"  # forgive it: keep the IP, count the streak
    ROUTE = "route"  # the route is to blame: keep the IP, ask again elsewhere, uncounted


class Streak:
    """Consecutive failures on the current IP; reset by a success or a new IP.

    A lone reset is noise, four in a row are a ban: the streak is what tells them apart (see
    the table's ``rotate_after``). Failures of any class count, compared with the latest
    failure's ``rotate_after``.
    """

    def __init__(self) -> None:
        self.count = 0

    def failed(self) -> int:
        """One more failure; returns the streak including it."""
        self.count += 1
        return self.count

    def reset(self) -> None:
        self.count = 0


def after_failure(error_class: str, decision: Decision, streak: int, *, opened: bool,
                  outage: bool) -> Verdict:
    """The verdict for one failure (pure).

    Args:
        streak: failures in a row on this IP, this one included.
        opened: this failure opened the circuit breaker (spread over several IPs).
        outage: the breaker is open or probing (an outage is in progress).

    Example: a third ``connection`` reset in a row on a healthy upstream is ``KEEP``
    (rotate_after 4); the fourth is ``ROTATE``; any ``timeout`` while the breaker is open is
    ``OUTAGE``, whatever the streak.
    """
    if decision.route:
        return Verdict.ROUTE
    if opened or (outage and error_class in OUTAGE_CLASSES):
        return Verdict.OUTAGE
    if decision.rotate and streak >= decision.rotate_after:
        return Verdict.ROTATE
    return Verdict.KEEP


@dataclass(frozen=True)
class RetryBudget:
    """How often a failure is tried again: a page in place, a board through the queue.

    Two levels because a long board would otherwise almost never come through whole: with
    ~7 % random resets a 37-page board has every page right only one time in fifteen, so a
    failed page is asked again in place (up to ``page_retries`` failures of that page), and a
    board whose page keeps failing goes back to the queue, behind every first attempt, until
    it has had ``max(1, max_retry)`` attempts.

    Example: ``RetryBudget(page_retries=6, max_retry=3)``: a page that failed 5 times is asked
    a 6th time, not a 7th; a board that failed its 3rd attempt is a permanent failure.
    """

    page_retries: int = 6
    max_retry: int = 10

    def __post_init__(self) -> None:
        for key in ("page_retries", "max_retry"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be >= 0, got {getattr(self, key)}", key=key)

    def retry_page(self, decision: Decision, failures: int) -> bool:
        """Ask the page again after its ``failures``-th failure?"""
        return decision.retry and failures < self.page_retries

    def retry_board(self, decision: Decision, attempts: int) -> bool:
        """Queue the board again after its ``attempts``-th failed attempt?"""
        return decision.retry and attempts < max(1, self.max_retry)
