"""The process exit codes: one table for ``sync``, ``daemon --once`` and the audit commands.

Why one module: the code a run ends with is documented (README, ``sync --help``) and
scripted against; the sync command and the daemon used to map outcomes each on their own.

Exit codes:
  0  success: every board synced (or skipped as fresh)
  1  partial: some boards failed, were held back as suspicious or remain (see the summary);
     also ``state verify`` finding a disagreement
  2  bad configuration or usage (also: database unreachable at start, unwritable state path)
  3  nothing to do: every board is fresher than --max-age
  4  locked: another sync holds this database's run lock
  5  interrupted: stopped by SIGINT/SIGTERM; the next run resumes
  6  refused: fresh IPs kept being closed on before any answer on every upstream route; a new
     IP would not help (try another route, the browser transport, mainland residential IPs)
 70  unexpected internal error (a bug: please report it with the log)
"""

from __future__ import annotations

from typing import Any

from ..errors import (
    BoardsyncError,
    ConfigError,
    Locked,
    RoutesRefused,
    StateError,
    StorageError,
)
from ..outcomes import RunStatus

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_NOTHING, EXIT_LOCKED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 5
EXIT_REFUSED = 6
EXIT_INTERNAL = 70
#: ``state verify`` found at least one disagreement (the "partial" code: not all agrees).
EXIT_DISAGREE = EXIT_PARTIAL

#: A finished run's summary status -> exit code; any other status counts as partial.
STATUS_EXIT: dict[str, int] = {RunStatus.OK: EXIT_OK, RunStatus.PARTIAL: EXIT_PARTIAL,
                               RunStatus.NOTHING_TO_DO: EXIT_NOTHING,
                               RunStatus.INTERRUPTED: EXIT_INTERRUPTED}


def for_status(status: str) -> int:
    """The exit code of a run that ended with summary ``status``."""
    return STATUS_EXIT.get(status, EXIT_PARTIAL)


def for_error(exc: BaseException) -> int:
    """The exit code of a run that raised ``exc`` instead of returning a summary.

    Locked first (it is a :class:`StorageError` too); bad configuration, an unusable state
    file and a database that cannot be reached are usage errors (2); any other boardsync
    error is a partial result (1); anything else is a bug (70).
    """
    if isinstance(exc, Locked):
        return EXIT_LOCKED
    if isinstance(exc, RoutesRefused):
        return EXIT_REFUSED
    if isinstance(exc, ConfigError | StateError | StorageError):
        return EXIT_USAGE
    if isinstance(exc, BoardsyncError):
        return EXIT_PARTIAL
    return EXIT_INTERNAL


def error_line(exc: BaseException) -> str:
    """The one line a library error is reported with (after ``boardsync: error:``)."""
    if isinstance(exc, StorageError) and not isinstance(exc, Locked):
        return f"database: {exc}"
    if isinstance(exc, BoardsyncError) and not isinstance(exc, ConfigError | StateError
                                                          | StorageError):
        return f"{exc.error_class}: {exc}"
    return str(exc)


def exit_code(outcome: Any) -> int:
    """The exit code for one run's outcome: a summary, an exception, or None (never started)."""
    if outcome is None:
        return EXIT_INTERRUPTED  # stopped before the run started
    if isinstance(outcome, BaseException):
        return for_error(outcome)
    return for_status(outcome.status)
