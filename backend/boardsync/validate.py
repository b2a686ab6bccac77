"""Whether a fetched board may be written: the checks between the upstream and the database.

A board that comes back empty or much smaller than last time is more often a soft ban or a
glitch than a real change; writing it would close hundreds of memberships in the history.
Such a board is held back (recorded as ``suspicious``) unless the user accepts shrinks.
"""

from __future__ import annotations


def is_suspicious(previous: int | None, new: int, threshold: float,
                  grow_factor: float | None = None) -> bool:
    """True when a board that had ``previous`` members comes back empty, shrinks too much or
    (with ``grow_factor``) grows too much.

    ``threshold`` 0.5 holds back a board of 200 that comes back with fewer than 100;
    ``grow_factor`` 5 one that comes back with more than 1,000 (members of other boards
    answered for it are as wrong as members missing). A board never stored before
    (``previous`` None or 0) is never suspicious: there is nothing to lose.
    """
    if not previous:
        return False
    if grow_factor is not None and new > previous * grow_factor:
        return True
    return new == 0 or new < previous * (1 - threshold)


def held_back(previous: int | None, new: int, threshold: float, *, force: bool,
              accept_shrink: bool, grow_factor: float | None = None) -> bool:
    """True when a fetched board must not be written (see :func:`is_suspicious`).

    A forced resync and ``accept_shrink`` write whatever came back: the user asked for it.
    """
    if force or accept_shrink:
        return False
    return is_suspicious(previous, new, threshold, grow_factor)


def list_shrunk(last_good: int, listed: int, threshold: float) -> bool:
    """True when a board list of ``listed`` boards is shorter than the ``last_good`` one by
    more than ``threshold`` (0.1: a list of 496 that comes back with fewer than 446.4).

    Such a list is not applied as deletions: a soft ban or a glitch that drops a share of a
    list looks exactly like that many boards deleted, while real churn is a few boards a day
    and a revamp replaces codes without shortening the list. An empty last list (a first run,
    a kind that was empty) has nothing to lose.
    """
    return last_good > 0 and listed < last_good * (1 - threshold)
