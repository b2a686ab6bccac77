"""Signal handlers that only set flags (a handler may run between any two bytecodes).

SIGINT/SIGTERM ask for a graceful stop, a second one forces it; for the daemon SIGHUP asks
for a reload. Logging, joining and reloading happen in the main loop or the scheduler
thread, never in a handler.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol


class SignalFlags:
    """SIGINT/SIGTERM handlers that only set events: first graceful, second forced."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.force = threading.Event()
        self.signals = 0

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:  # noqa: ARG002 - signal API
        self.signals += 1
        if self.signals == 1:
            self.stop.set()
        else:
            self.force.set()


class Stoppable(Protocol):
    """What :func:`daemon_signals` drives (:class:`boardsync.daemon.Daemon`)."""

    def request_stop(self) -> None: ...

    def request_reload(self) -> None: ...


@contextmanager
def daemon_signals(daemon: Stoppable) -> Iterator[None]:
    """SIGINT/SIGTERM request a stop (twice: force), SIGHUP a reload; handlers set flags only.

    The previous handlers come back on exit. Called from a thread other than the main one
    (a test), it installs nothing: Python only allows handlers in the main thread.
    """

    def on_stop(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal API
        daemon.request_stop()

    def on_hup(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal API
        daemon.request_reload()

    wanted = {signal.SIGINT: on_stop, signal.SIGTERM: on_stop}
    if hasattr(signal, "SIGHUP"):
        wanted[signal.SIGHUP] = on_hup
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig, handler in wanted.items()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
