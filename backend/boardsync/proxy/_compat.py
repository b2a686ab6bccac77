"""TRANSITION (issue 11): the old ``now=``/``sleep=`` arguments, until ``sync.py`` moves over.

``sync.build_proxy_manager`` still builds ``LeakyBucket(..., now=, sleep=)`` and
``ProxyManager(..., now=)``; it is being replaced by :func:`boardsync.proxy.factory.
build_proxy_manager`, which passes one :class:`~boardsync.clock.Clock`. Until then this adapter
keeps those calls working. Delete this module, and the ``now``/``sleep`` parameters that use
it, once nothing passes them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from ..clock import Clock

#: The old chunk length of an interruptible sleep: a set event is noticed within it.
_CHUNK_S = 0.25


class CallableClock:
    """A :class:`Clock` made of the old ``now`` and ``sleep`` callables (wall from ``base``)."""

    def __init__(self, base: Clock, now: Callable[[], float],
                 sleep: Callable[[float], None]) -> None:
        self._base = base
        self._now = now
        self._sleep = sleep

    def now(self) -> float:
        return self._now()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._sleep(seconds)

    def wait(self, event: threading.Event, seconds: float | None) -> bool:
        """Sleep in chunks of at most 0.25 s until ``event`` is set or ``seconds`` pass."""
        deadline = None if seconds is None else self._now() + seconds
        while not event.is_set():
            left = _CHUNK_S if deadline is None else deadline - self._now()
            if left <= 0:
                return False
            self._sleep(min(left, _CHUNK_S))
        return True

    def wall(self) -> datetime:
        return self._base.wall()


def legacy_clock(clock: Clock, now: Callable[[], float] | None,
                 sleep: Callable[[float], None] | None) -> Clock:
    """``clock``, or an adapter over the old callables when a caller still passes them."""
    if now is None and sleep is None:
        return clock
    return CallableClock(clock, now or clock.now, sleep or clock.sleep)
