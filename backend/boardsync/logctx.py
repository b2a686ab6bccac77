"""Run, board and worker ids on every log record, without threading them through calls.

Each thread sets its context (``bind(run="...", worker="worker-3")``, ``bind(board=...)``);
the :class:`ContextFilter` installed by the CLI copies it onto every record as
``record.run``, ``record.board`` and ``record.worker`` ("-" when unset), so both the text
format and the JSON format can show them.
"""

from __future__ import annotations

import logging
import threading

FIELDS = ("run", "board", "worker")

_local = threading.local()
_run_default: str | None = None


def bind(**values: str | None) -> None:
    """Set context values for the current thread (``run`` also becomes the process default)."""
    global _run_default
    for key, value in values.items():
        if key not in FIELDS:
            raise ValueError(f"unknown log context field {key!r}")
        setattr(_local, key, value)
        if key == "run":
            _run_default = value


def current() -> dict[str, str]:
    """The current thread's context, with the process-wide run id as fallback."""
    out = {}
    for key in FIELDS:
        value = getattr(_local, key, None)
        if value is None and key == "run":
            value = _run_default
        out[key] = value or "-"
    return out


class ContextFilter(logging.Filter):
    """Adds ``run``, ``board`` and ``worker`` attributes to every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in current().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True
