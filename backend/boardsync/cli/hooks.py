"""Stray tracebacks go through the log: Python's own hooks print them straight to stderr.

A thread that dies (``threading.excepthook``) or an error in a finaliser
(``sys.unraisablehook``: say a psycopg2 cursor closed on a connection the server terminated
during a COPY) would print a bare traceback outside the logger: across the progress bar, in
no log format, with no run id. Installed with the log handlers (the CLI only); the one-line
message is logged at its level, the traceback at DEBUG.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

logger = logging.getLogger("boardsync")


def install() -> None:
    """Route uncaught thread exceptions and unraisable exceptions to the log."""
    threading.excepthook = _thread_died
    sys.unraisablehook = _unraisable


def _thread_died(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    logger.error("Thread %s died: %s: %s", name, args.exc_type.__name__, args.exc_value)
    if args.exc_value is not None:
        logger.debug("Thread %s: traceback", name, exc_info=args.exc_value)


def _unraisable(args: Any) -> None:
    exc = args.exc_value
    what = args.err_msg or "Exception ignored"
    logger.warning("%s (%r): %s: %s", what, args.object, type(exc).__name__, exc)
    if exc is not None:
        logger.debug("%s: traceback", what, exc_info=exc)
