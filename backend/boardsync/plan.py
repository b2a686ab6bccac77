"""Which boards a run fetches and in what order (pure functions over what the store knows).

Kept apart from the manager so the choices can be read and tested without a run: a board is
skipped when this run already wrote it (a resumed run) or when it is fresh enough; the rest go
biggest first, because a board's pages go through one worker one after another.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from .clock import parse_utc
from .models import Board
from .queue import Share, Task


class StoredBoard(Protocol):
    """What selection needs of a stored board row (``store.BoardRow``)."""

    @property
    def code(self) -> str: ...

    @property
    def member_count(self) -> int | None: ...

    @property
    def synced_at(self) -> Any: ...

    @property
    def last_run_id(self) -> str | None: ...


@dataclass
class Selection:
    """The outcome of :func:`select`: what to fetch, what was skipped and why."""

    todo: list[Board] = field(default_factory=list)
    skipped: int = 0
    #: boards this (resumed) run already wrote: the state file must catch up with them
    written: list[tuple[Board, Any]] = field(default_factory=list)
    #: last stored member count per board code (0 when stored without members)
    sizes: dict[str, int] = field(default_factory=dict)


def select(boards: Iterable[Board], stored: Mapping[str, StoredBoard], *, run_id: str,
           force: bool, max_age: float, wanted: Iterable[str], now: datetime) -> Selection:
    """Boards this run must fetch: narrowed by ``wanted`` (empty = all), minus fresh ones.

    A board written by ``run_id`` itself is always skipped (the run resumes); otherwise one
    synced less than ``max_age`` seconds before ``now`` is skipped unless ``force``.
    """
    only = set(wanted)
    out = Selection()
    for board in boards:
        if only and board.code not in only:
            continue
        row = stored.get(board.code)
        if row is not None:
            out.sizes[board.code] = row.member_count or 0
        if row is not None and row.synced_at is not None:
            if row.last_run_id == run_id:
                out.skipped += 1
                out.written.append((board, row))
                continue
            age = (now - parse_utc(row.synced_at)).total_seconds()
            if not force and age < max_age:
                out.skipped += 1
                continue
        out.todo.append(board)
    return out


def expected_size(board: Board, known: Mapping[str, int]) -> int | None:
    """The board's member count as best known: the last stored count, else the list's hint."""
    return known.get(board.code) or board.size_hint


def expected_pages(board: Board, known: Mapping[str, int], page_size: int) -> int:
    """Requests ``board`` is expected to take (1 when its size is unknown)."""
    size = expected_size(board, known) or 1
    return max(1, math.ceil(size / page_size))


def pages_waiting(tasks: Iterable[Task], known: Mapping[str, int], page_size: int) -> int:
    """Requests the queued ``tasks`` are expected to take: each board's
    :func:`expected_pages`, and each fetch in progress that help tasks join once, as the
    pages nobody claimed yet (its help tasks are not a board each)."""
    boards = 0
    shares: dict[int, Share] = {}
    for t in tasks:
        if t.share is None:
            boards += expected_pages(t.board, known, page_size)
        else:
            shares[id(t.share)] = t.share
    return boards + sum(share.unclaimed for share in shares.values())


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


def rank(board: Board, known: Mapping[str, int], order: str) -> float:
    """The board's queue rank: 0 for every board in list order, else :func:`size_rank`."""
    return 0.0 if order == "listed" else size_rank(board, known)
