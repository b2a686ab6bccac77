"""A fetch's pages shared between workers: the owner posts help tasks, anyone claims pages.

Why: the upstream's limit is per IP, so requests are fungible between the crew's IPs, but a
board's pages used to go through one worker one after another: the largest board (37 pages)
took 37 requests at one IP's allowance and finished long after the rest (the wall of a run
was that one board), and a 5-page concept list held back 441 boards the while. Now the
worker that asked page 1 of a fetch of :data:`SHARE_PAGES` pages or more (the *owner*) puts
one help task per page it cannot ask itself at the head of the queue, and asks pages like
any helper; a worker that takes a help task claims pages until none is left, each page
asked on its own IP and pacing, retried by the same policy as ever. The owner waits for the
last answer and reports the fetch whole, as before: a board is still written all or nothing.

Failures: a page whose retries run out fails the fetch for everyone (the owner retries the
board, as for a page of its own); a helper that is stopped, retires or finds no IP gives its
page back for someone else to claim; the owner, stopped, ends the fetch so helpers leave.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from typing import TYPE_CHECKING, Any

from .crew import IDLE_POLL_S
from .errors import IncompleteData, Interrupted, QuotaExhausted, UpstreamError
from .models import Board
from .outcomes import QuotaOut
from .queue import Share, Task
from .upstream import Pager, SharedPager, Step
from .upstream.paging import T

if TYPE_CHECKING:
    from .worker import Worker

logger = logging.getLogger(__name__)

#: A fetch whose page 1 plans this many pages or more is shared: with two the owner asks
#: page 2 itself as soon as a helper could, so a help task would be one more queue entry.
SHARE_PAGES = 3


def worth_sharing(pager: Pager[Any]) -> bool:
    """True when ``pager`` took page 1 and plans :data:`SHARE_PAGES` pages or more."""
    plan = pager.plan
    return plan is not None and pager.page == 2 and plan.planned >= SHARE_PAGES


def own(worker: Worker, pager: Pager[T], stop: threading.Event, board: Board) -> list[T]:
    """The rest of ``pager``'s fetch, shared: help tasks for every page but one, then pages
    claimed like any helper, then the wait for the last answer.

    Raises:
        IncompleteData: the pages do not add up.
        UpstreamError: a page (of this worker or a helper) kept failing: its last failure.
        Interrupted, QuotaExhausted: as pacing raises them (the fetch ends for helpers too).
    """
    shared = SharedPager(pager, listing=stop is worker.ctx.list_stop)
    helpers = shared.unclaimed - 1
    for _ in range(helpers):
        worker.ctx.tasks.put(Task(0, board, -math.inf, share=shared))
    logger.debug("Worker %d: %s: %d pages; %d help tasks queued", worker.index,
                 shared.query.what, shared.plan.planned, helpers)
    try:
        while True:
            ask(worker, shared, stop)
            if shared.finished:
                break
            worker.wait(IDLE_POLL_S, stop)  # the last pages are with helpers
    except BaseException as e:
        shared.fail(e)
        raise
    if shared.outcome is Step.DONE:
        return shared.items
    if shared.outcome is Step.INCOMPLETE:
        raise worker.client.blame(IncompleteData(shared.reason), worker.slot)
    error = shared.error
    assert error is not None  # finished, neither done nor incomplete: failed
    worker.handled(error)  # judged where it happened, on its claimant's IP
    raise error


def ask(worker: Worker, shared: SharedPager[Any], stop: threading.Event) -> None:
    """Claim pages of ``shared`` and ask each until none is left to claim.

    Raises what :meth:`Worker.ask_page` raises: a page's last failure has failed the fetch;
    on anything else (stopped, no IP) the page is given back.
    """
    while (pn := shared.claim()) is not None:
        try:
            while worker.ask_page(shared.query, pn, functools.partial(shared.take, pn), stop):
                pass  # empty once: asked again
        except UpstreamError as e:
            shared.fail(e)
            raise
        except BaseException:
            shared.give_back(pn)
            raise


def help_fetch(worker: Worker, share: Share) -> None:
    """A help task: ask pages of a fetch another worker owns, until none is left."""
    assert isinstance(share, SharedPager)
    ctx = worker.ctx
    try:
        ask(worker, share, ctx.list_stop if share.listing else ctx.fetch_stop)
    except Interrupted:
        return  # stopped or retiring: the page was given back
    except QuotaExhausted as e:
        ctx.report(QuotaOut(str(e)))  # the page was given back; the owner carries on
    except UpstreamError:
        return  # the fetch failed on this page: its owner judges the board
    except Exception as e:  # a bug, not the upstream: the owner must still hear
        logger.error("Worker %d: helping with %s: unexpected %r", worker.index,
                     share.query.what, e, exc_info=e)
        share.fail(e)
