"""One skeleton for every long-lived thread: ``initialize()``, ``loop()``, ``shutdown()``.

The generic body runs ``loop()`` until the shared stop event is set, logs a crash with the
thread's name instead of dying silently, and always calls ``shutdown()``. A loop must never
die from one bad item: it handles (logs, requeues) per-item failures itself.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

logger = logging.getLogger(__name__)


class Runnable(Protocol):
    """What a thread body needs: set-up, one step of work, tear-down."""

    def initialize(self) -> None: ...

    def loop(self) -> bool:
        """Do one step; return False when there is nothing more to do (the thread ends)."""
        ...

    def shutdown(self) -> None: ...


def run_forever(runnable: Runnable, stop: threading.Event) -> None:
    """Run ``runnable`` until ``stop`` is set or its ``loop()`` returns False."""
    name = threading.current_thread().name
    try:
        runnable.initialize()
        while not stop.is_set():
            if not runnable.loop():
                break
    except Exception:
        logger.exception("Thread %s: crashed", name)
    finally:
        try:
            runnable.shutdown()
        except Exception:
            logger.exception("Thread %s: shutdown failed", name)


def start_thread(runnable: Runnable, stop: threading.Event, name: str) -> threading.Thread:
    """Start ``runnable`` on a daemon thread named ``name`` (daemon: a forced stop never hangs)."""
    thread = threading.Thread(target=run_forever, args=(runnable, stop), name=name, daemon=True)
    thread.start()
    return thread
