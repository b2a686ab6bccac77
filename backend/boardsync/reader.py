"""A worker's reads of the board lists and its one read of the board directory, paced and
retried like a board's pages.

Why through a worker: the directory is read through the same proxies, pacing, breaker and
failure policy as the lists (a request from an unpaced extra client would be the one that
gets an IP banned), by the first lister before its list. Why it never fails the run: the
directory is a second witness, not the source; without it the run goes on as before and its
summary says why (:class:`~boardsync.outcomes.DirectoryRead` with ``entries`` None).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .errors import BoardsyncError, Interrupted, QuotaExhausted, UpstreamError
from .models import Board
from .outcomes import DirectoryRead, Listed, ListFailed, RunStatus
from .policy import classify
from .upstream import board_list_query, get_body, parse_directory

if TYPE_CHECKING:
    from .worker import Worker

logger = logging.getLogger(__name__)

#: The pseudo-kind a lister is given to read the directory (before its lists).
DIRECTORY = "directory"
#: Requests spent on the directory at most. Its failures are not held against the IP nor
#: counted by the breaker: the file is served by another host (a CDN) than the lists, so a
#: refusal there says nothing about the IP's standing on push2, and burning IPs or opening
#: the breaker over a second witness would cost the run what the witness is meant to save.
#: A dead proxy is the exception: it refused the connection itself, whatever the host, so it
#: is let go and the read asked again on a fresh IP, not counted against the directory (at
#: most :data:`DEAD_PROXIES` times: IPs kept until they die end under a request now and then).
ATTEMPTS = 2
DEAD_PROXIES = 2


def read_directory(worker: Worker) -> DirectoryRead:
    """Read and parse ``directory_url`` on ``worker``'s IP, up to :data:`ATTEMPTS` times when
    the failure is one the policy retries (a 404 is not), then give up."""
    ctx = worker.ctx
    url = ctx.settings.directory_url
    failures = dead = 0
    while True:
        try:
            # another host (a static file): not the clist allowance the learner learns
            worker.pace(ctx.list_stop, learned=False)
            body = worker.send(lambda: get_body(worker.client, url, worker.slot), learned=False)
            entries = parse_directory(body)
        except Interrupted:
            return DirectoryRead(DIRECTORY, [], None, "stopped before the directory was read")
        except QuotaExhausted as e:
            return DirectoryRead(DIRECTORY, [], None, f"no IP to read it: {e}")
        except UpstreamError as e:
            if e.error_class == "proxy_dead" and dead < DEAD_PROXIES:
                dead += 1
                worker.slot.fail(e.error_class)  # its end, not the directory's
                continue
            failures += 1
            if failures < ATTEMPTS and classify(e)[1].retry:
                continue
            logger.warning("Worker %d: board directory unreadable after %d attempts: %s (%s)",
                           worker.index, failures, e.error_class, e)
            return DirectoryRead(DIRECTORY, [], None, f"{e.error_class}: {str(e)[:200]}")
        except BoardsyncError as e:
            return DirectoryRead(DIRECTORY, [], None, f"{e.error_class}: {str(e)[:200]}")
        except Exception as e:  # a bug, not the upstream: the manager must still hear
            logger.error("Worker %d: board directory: unexpected %r", worker.index, e,
                         exc_info=e)
            return DirectoryRead(DIRECTORY, [], None, f"unexpected {e!r}"[:200])
        logger.info("Worker %d: board directory: %d boards", worker.index, len(entries))
        return DirectoryRead(DIRECTORY, [], dict(entries))


def read_list(worker: Worker, kind: str) -> Listed | ListFailed:
    """:func:`list_boards`, with a bug turned into a failed list the manager hears of."""
    try:
        return list_boards(worker, kind)
    except Exception as e:  # a bug, not the upstream: the manager must still hear
        logger.error("Worker %d: board list %s: unexpected %r", worker.index, kind, e,
                     exc_info=e)
        worker.ctx.metrics.on_error(classify(e)[0])
        return ListFailed(kind, RunStatus.PARTIAL, f"board list {kind}: unexpected {e!r}")


def list_boards(worker: Worker, kind: str) -> Listed | ListFailed:
    """Fetch the board list of ``kind`` on ``worker``'s IP and pacer (retried).

    Failures go through the same two levels as a board's: a failed page is asked again in
    place, and a list that still fails is fetched again whole, up to ``max_retry`` times.
    The IP is then kept for members: no IP is taken just to list. A list of several pages
    is shared like a big board's (its help tasks are named ``list:<kind>``).
    """
    ctx, s = worker.ctx, worker.ctx.settings
    label = Board(f"list:{kind}", f"board list {kind}", kind)
    attempts = 0
    while True:
        attempts += 1
        try:
            return Listed(kind, worker.fetch(board_list_query(kind), ctx.list_stop, label))
        except Interrupted:
            return ListFailed(kind, RunStatus.INTERRUPTED, "stop requested while listing boards")
        except QuotaExhausted as e:
            return ListFailed(kind, RunStatus.PARTIAL,
                              f"quota exhausted while listing boards: {e}", quota=True)
        except BoardsyncError as e:
            error_class, decision = worker.judge(f"board list {kind}", e)
            if not worker.budget.retry_board(decision, attempts):
                # A clean partial end, not an exception: the run record and the state file
                # must not say "ok" for a run that could not list its boards.
                logger.error("Worker %d: board list %s failed after %d attempts: %s (%s)",
                             worker.index, kind, attempts, error_class, e)
                return ListFailed(kind, RunStatus.PARTIAL, f"board list {kind} failed after "
                                  f"{attempts} attempts: {error_class}")
            ctx.clock.wait(ctx.list_stop, worker.rng.uniform(s.req_delay_min, s.req_delay_max))
