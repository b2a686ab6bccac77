"""One JSON object per log line, for log shippers (``boardsync --log-format json``).

Fields: ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, ``message``,
``run``, ``board``, ``worker`` (from :mod:`boardsync.logctx`; null when unset), ``thread``,
``exception`` (the formatted traceback) when there is one, and ``summary`` (the run's
summary record, :func:`boardsync.progress.summary_record`) on the line that ends a sync.
Keys are stable so a shipper can index them without parsing the message; non-ASCII (board
names) stays readable.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from .logctx import FIELDS as CONTEXT_FIELDS

logger = logging.getLogger(__name__)


class JsonFormatter(logging.Formatter):
    """Formats a record as a single-line JSON object (newlines in messages are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        doc: dict[str, object] = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            doc[key] = None if value in (None, "-") else str(value)
        doc["thread"] = record.threadName
        summary = getattr(record, "summary", None)
        if summary is not None:  # a run's last line carries its summary record
            doc["summary"] = summary
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, ensure_ascii=False, default=str)
