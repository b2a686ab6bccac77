"""The one clock: monotonic time, sleeping, waiting on an event, and wall time.

Why one object: rate limiters, TTLs, the breaker's cool-down, the manager's batching and the
daemon's schedule all measure time. When each reads ``time.monotonic()`` on its own, a test
can only compress time by scaling settings; with one :class:`Clock` handed down from the top
(the CLI builds :data:`SYSTEM`, tests build a fake), a test steps the whole run exactly and
never sleeps. Library code calls nothing in :mod:`time` or ``datetime.now`` outside this
module.

The interface is four methods, so a fake needs no more (``tests/helpers.py`` has one):

* :meth:`Clock.now` - monotonic seconds, for durations and deadlines;
* :meth:`Clock.sleep` - block for that long;
* :meth:`Clock.wait` - block until an event is set or the time is up (``Event.wait``), the
  way every interruptible pause in boardsync is written;
* :meth:`Clock.wall` - the aware UTC ``datetime``, for records people read.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """What a component needs of time; :class:`SystemClock` is the real one."""

    def now(self) -> float:
        """Monotonic seconds (only differences mean anything)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds`` (0 or less returns at once)."""
        ...

    def wait(self, event: threading.Event, seconds: float | None) -> bool:
        """Block until ``event`` is set or ``seconds`` pass; True when it was set."""
        ...

    def wall(self) -> datetime:
        """The current time of day as an aware UTC ``datetime``."""
        ...


class SystemClock:
    """The process's real clock."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait(self, event: threading.Event, seconds: float | None) -> bool:
        return event.wait(None if seconds is None else max(0.0, seconds))

    def wall(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


#: The clock every component defaults to; the CLI passes it down explicitly.
SYSTEM: Clock = SystemClock()


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime; a naive one is taken to be UTC already (SQLite
    and the state file keep UTC without an offset)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_utc(value: datetime | str) -> datetime:
    """:func:`as_utc` of a datetime or of its ISO 8601 text (``ValueError`` if it is not)."""
    return as_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)


def iso(moment: datetime) -> str:
    """``moment`` as ISO 8601 to the second (``2026-12-02T04:39:42+00:00``)."""
    return moment.isoformat(timespec="seconds")
