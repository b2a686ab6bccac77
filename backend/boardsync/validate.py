"""Whether a fetched board may be written: the checks between the upstream and the database.

A board that comes back empty or much smaller than last time is more often a soft ban or a
glitch than a real change; writing it would close hundreds of memberships in the history.
Such a board is held back (recorded as ``suspicious``) unless the user accepts shrinks.
"""

from __future__ import annotations


def is_suspicious(previous: int | None, new: int, threshold: float) -> bool:
    """True when a board that had ``previous`` members comes back empty or shrinks too much.

    ``threshold`` 0.5 holds back a board of 200 that comes back with fewer than 100. A board
    never stored before (``previous`` None or 0) is never suspicious: there is nothing to lose.
    """
    if not previous:
        return False
    return new == 0 or new < previous * (1 - threshold)


def held_back(previous: int | None, new: int, threshold: float, *, force: bool,
              accept_shrink: bool) -> bool:
    """True when a fetched board must not be written (see :func:`is_suspicious`).

    A forced resync and ``accept_shrink`` write whatever came back: the user asked for it.
    """
    if force or accept_shrink:
        return False
    return is_suspicious(previous, new, threshold)
