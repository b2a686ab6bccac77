"""The one duration parser, its inverse for people, and the one ``Retry-After`` parser.

Settings (``max_age = "12h"``), the daemon's ``--every 1h30m`` and an upstream's
``Retry-After: 120`` all say "this many seconds" in text; one parser each keeps their
grammar the same everywhere and tested once.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from email.utils import parsedate_to_datetime

from .errors import ConfigError

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h|d)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str, key: str = "duration", *, allow_zero: bool = False) -> float:
    """Seconds in ``"90"``, ``"1.5s"``, ``"30m"``, ``"1h30m"``, ``"2d"``, ``"250ms"``.

    Raises:
        ConfigError: empty, malformed, or not positive (zero allowed with ``allow_zero``),
            naming ``key``.
    """
    cleaned = text.strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    while pos < len(cleaned):
        m = _DURATION.match(cleaned, pos)
        if not m:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not cleaned or pos != len(cleaned):
        raise ConfigError(f"{key}: {text!r} is not a duration like 30s, 30m, 1h30m or 2d", key)
    if total == 0 and not allow_zero:
        raise ConfigError(f"{key}: must be > 0, got {text!r}", key)
    return total


def human_duration(seconds: float) -> str:
    """``seconds`` in the unit a person reads best, to check against a clock: 90 -> "90 s",
    600 -> "10 min", 86400 -> "24.0 h", 259200 -> "3.0 days"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


#: The longest wait one ``Retry-After`` may ask for; a longer one is read as this. A header is
#: the other side's word, and a date years ahead must not stall a run (or the daemon) for good.
#: Not a guess at the real ban length (reports range from minutes to 20+ hours): after this
#: long the caller simply asks again and reads the next answer, so a longer ban costs one more
#: request per hour, never a wrong result.
MAX_RETRY_AFTER_S = 3600.0


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """A ``Retry-After`` value in seconds from ``now`` (delta-seconds or an HTTP date), at most
    :data:`MAX_RETRY_AFTER_S`.

    None when absent or malformed; a date in the past is 0. ``now`` is the aware wall time
    (from the injected clock), so the date form is testable.
    """
    seconds = _retry_after_seconds(value, now)
    return None if seconds is None else min(seconds, MAX_RETRY_AFTER_S)


def _retry_after_seconds(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
