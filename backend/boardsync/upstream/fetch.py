"""A whole fetch, driven without retries, and what a fetch yields.

Why here and not in the worker: tests, probes and simple callers want "all members of this
board" in one call, with the first failure raised. The worker drives its own
:class:`~boardsync.upstream.paging.Pager` with pacing, page retries and the breaker, and
hands the run a plain list of items.

Why result objects and not bare lists: both carry the items (``.members`` / ``.boards``),
the ``total`` the server announced, and the ``requests``/``pages`` made, so the caller can
count requests per board. Both iterate and ``len()`` like a list, so ``list(result)`` works.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import IncompleteData, UpstreamError
from ..models import Board, Member
from .client import ProxyLike, UpstreamClient
from .paging import (
    DEFAULT_EXTRA_PAGES,
    DEFAULT_MAX_PAGES,
    Pager,
    Step,
    board_list_query,
    members_query,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MembersResult:
    """All members of one board plus what it cost: ``requests`` sent, ``pages`` with rows."""

    board_code: str
    members: tuple[Member, ...]
    total: int
    requests: int
    pages: int

    def __iter__(self) -> Iterator[Member]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)


@dataclass(frozen=True, slots=True)
class BoardListResult:
    """All boards of one kind plus what it cost: ``requests`` sent, ``pages`` with rows."""

    kind: str
    boards: tuple[Board, ...]
    total: int
    requests: int
    pages: int

    def __iter__(self) -> Iterator[Board]:
        return iter(self.boards)

    def __len__(self) -> int:
        return len(self.boards)


def drive(client: UpstreamClient, pager: Pager[Any], proxy: ProxyLike | None) -> int:
    """Ask ``pager``'s pages through ``proxy`` until it is done; returns the requests sent.

    Raises:
        IncompleteData: the pager said :attr:`Step.INCOMPLETE` (``pager.reason``).
        UpstreamError: the first failed request or bad page, with ``proxy``/``url`` set.
    """
    sent = 0
    while True:
        sent += 1
        page = client.get_page(pager.query, pager.page, proxy)
        try:
            step = pager.take(page)
        except UpstreamError as e:
            raise client.blame(e, proxy)
        if step is Step.DONE:
            return sent
        if step is Step.INCOMPLETE:
            raise client.blame(IncompleteData(pager.reason), proxy)


def fetch_members(client: UpstreamClient, board_code: str, proxy: ProxyLike | None, *,
                  max_pages: int | None = DEFAULT_MAX_PAGES,
                  extra_pages: int = DEFAULT_EXTRA_PAGES) -> MembersResult:
    """All members of one board, every page, de-duplicated by stock code; no retries.

    Args:
        client: sends each page request.
        board_code: ``BK`` + 4 digits.
        proxy: read at every request; None = direct.
        max_pages, extra_pages: as :class:`~boardsync.upstream.paging.Pager`.

    Raises:
        BadRequest: ``board_code`` is not ``BK`` + 4 digits (checked before any request).
        EmptyData: ``data`` null on page 1: deleted board *or* soft ban; the caller tells
            them apart by checking the board list.
        IncompleteData: the distinct codes do not add up to ``data.total``.
        UpstreamError: any per-request failure of :meth:`UpstreamClient.get_page`.
    """
    pager = Pager(members_query(board_code), max_pages=max_pages, extra_pages=extra_pages)
    sent = drive(client, pager, proxy)
    logger.debug("Upstream: board %s: %d members in %d requests", board_code,
                 len(pager.items), sent)
    return MembersResult(board_code, tuple(pager.items), pager.total or 0, sent, pager.pages)


def fetch_board_list(client: UpstreamClient, kind: str, proxy: ProxyLike | None, *,
                     max_pages: int | None = DEFAULT_MAX_PAGES,
                     extra_pages: int = DEFAULT_EXTRA_PAGES) -> BoardListResult:
    """All boards of ``kind`` (industry/concept/region), every page, de-duplicated; no retries.

    Args: as :func:`fetch_members`, with ``kind`` instead of a board code.

    Raises:
        BadRequest: unknown ``kind``.
        EmptyData: ``data`` null (or no rows with a positive total) on page 1.
        IncompleteData: the distinct codes do not add up to ``data.total``.
        UpstreamError: any per-request failure of :meth:`UpstreamClient.get_page`.
    """
    pager = Pager(board_list_query(kind), max_pages=max_pages, extra_pages=extra_pages)
    sent = drive(client, pager, proxy)
    logger.debug("Upstream: board list %s: %d boards in %d requests", kind,
                 len(pager.items), sent)
    return BoardListResult(kind, tuple(pager.items), pager.total or 0, sent, pager.pages)
