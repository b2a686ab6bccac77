"""When the daemon runs: fixed intervals (``--every 30m``) or 5-field cron (``--cron``).

Everything here is a pure function of its arguments (no clock is read), so tests give the
"now" they want and assert the exact next fire time.

Cron follows the classic Vixie-cron rules: fields ``minute hour day-of-month month
day-of-week``; ``*``, ``a``, ``a-b``, lists ``a,b``, steps ``*/n``, ``a-b/n`` and ``a/n``
(``a`` to the field's maximum); month names ``jan``-``dec`` and day names ``sun``-``sat``
(0 and 7 are both Sunday); the macros ``@hourly``, ``@daily``/``@midnight``, ``@weekly``,
``@monthly``, ``@yearly``/``@annually``. When both day fields are restricted a day matches
if *either* does (``0 0 1 * mon`` = the 1st and every Monday), as in cron. Times are
wall-clock times in the schedule's time zone (default Asia/Shanghai, where the market is);
a local time that does not exist (a DST gap) is skipped, and an ambiguous one fires once,
at its first occurrence.

Why hand-written (~100 lines) and not ``croniter``: croniter 7.0 fails four cases of this module's
tests - it fires at the shifted time in a DST gap, fires twice in a repeated hour, accepts a
sixth (seconds) field and wraps a backwards range ``5-1`` around (README, "Dependencies").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_TIMEZONE = "Asia/Shanghai"

#: Retry backoff after a failed run: the first retry waits this long (seconds) ...
DEFAULT_RETRY_BASE = 60.0
#: ... and each further consecutive failure doubles the wait up to this cap (seconds).
DEFAULT_RETRY_CAP = 3600.0

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
#: How far ahead :meth:`CronSchedule.next_fire` looks before deciding nothing ever matches
#: (``0 0 30 2 *``). Eight years covers every leap-year and weekday combination.
_HORIZON_DAYS = 8 * 366


class Schedule(Protocol):
    """What the daemon needs from a schedule."""

    def first_fire(self, now: datetime) -> datetime:
        """The first tick for a daemon started at ``now``."""
        ...

    def next_fire(self, after: datetime) -> datetime:
        """The first tick strictly after ``after``."""
        ...

    def describe(self) -> str: ...


def get_timezone(name: str) -> tzinfo:
    """``ZoneInfo(name)``, with a :class:`ConfigError` naming the bad value."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"timezone: unknown time zone {name!r} (e.g. Asia/Shanghai, UTC)",
                          "timezone") from None


@dataclass(frozen=True)
class IntervalSchedule:
    """Every ``seconds``, starting at once: ticks at start, start + every, start + 2 every ...

    The daemon computes each tick from the previous *tick*, not from when a run ended, so
    the schedule does not drift by the run's duration.
    """

    seconds: float

    def first_fire(self, now: datetime) -> datetime:
        return now

    def next_fire(self, after: datetime) -> datetime:
        return after + timedelta(seconds=self.seconds)

    def describe(self) -> str:
        return f"every {describe_every(self.seconds)}"


def _field_values(text: str, lo: int, hi: int, names: tuple[str, ...], key: str,
                  name_base: int = 0) -> frozenset[int]:
    """The set of values one cron field selects, e.g. ``"1-5"`` -> {1, 2, 3, 4, 5}."""

    def number(token: str) -> int:
        low = token.lower()
        if low in names:
            return names.index(low) + name_base
        if not token.isdigit():
            raise ConfigError(f"cron: {key} field: {token!r} is not a number or name", "cron")
        value = int(token)
        if not lo <= value <= hi:
            raise ConfigError(f"cron: {key} field: {value} is outside {lo}-{hi}", "cron")
        return value

    values: set[int] = set()
    for part in text.split(","):
        rng, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ConfigError(f"cron: {key} field: bad step in {part!r}", "cron")
            step = int(step_text)
        if rng == "*":
            start, end = lo, hi
        elif "-" in rng:
            a, _, b = rng.partition("-")
            start, end = number(a), number(b)
            if start > end:
                raise ConfigError(f"cron: {key} field: range {rng!r} runs backwards", "cron")
        else:
            start = number(rng)
            end = hi if step_text else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed 5-field cron expression in one time zone; build it with :func:`parse_cron`."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday ... 6 = Saturday
    day_restricted: bool
    weekday_restricted: bool
    tz: tzinfo

    def first_fire(self, now: datetime) -> datetime:
        return self.next_fire(now)

    def describe(self) -> str:
        return f"cron {self.expression!r} ({self.tz})"

    def _day_matches(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.day_restricted and self.weekday_restricted:
            return dom or dow
        return dom and dow

    def next_fire(self, after: datetime) -> datetime:
        """The first matching minute strictly after ``after`` (an aware datetime).

        Walks local wall time coarsely: a wrong month skips to the next month, a wrong day
        to the next day, a wrong hour to the next hour, so a search is at most a few
        thousand steps even for a yearly schedule.

        Raises:
            ConfigError: nothing matches within eight years (e.g. ``0 0 30 2 *``).
        """
        if after.tzinfo is None:
            raise ValueError("next_fire needs an aware datetime")
        local = after.astimezone(self.tz).replace(tzinfo=None)
        t = local.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = t + timedelta(days=_HORIZON_DAYS)
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += timedelta(minutes=1)
            else:
                candidate = t.replace(tzinfo=self.tz)
                # A DST gap: the wall time does not exist, zoneinfo would shift it. Skip it.
                round_trip = candidate.astimezone(UTC).astimezone(self.tz).replace(tzinfo=None)
                if round_trip == t and candidate > after:
                    return candidate
                t += timedelta(minutes=1)
        raise ConfigError(f"cron: {self.expression!r} never fires", "cron")


def parse_cron(expression: str, tz: tzinfo | str = DEFAULT_TIMEZONE) -> CronSchedule:
    """Parse ``"30 15 * * 1-5"`` (15:30 on weekdays) into a :class:`CronSchedule`.

    Raises:
        ConfigError: wrong number of fields, bad names, values out of range, bad steps, or an
            expression that can never fire.
    """
    zone = get_timezone(tz) if isinstance(tz, str) else tz
    text = _MACROS.get(expression.strip().lower(), expression.strip())
    fields = text.split()
    if len(fields) != 5:
        raise ConfigError(
            f"cron: {expression!r} needs 5 fields (minute hour day month weekday), "
            f"got {len(fields)}", "cron")
    minute, hour, dom, month, dow = fields
    weekdays = _field_values(dow, 0, 7, _DAYS, "weekday")
    schedule = CronSchedule(
        expression=expression.strip(),
        minutes=_field_values(minute, 0, 59, (), "minute"),
        hours=_field_values(hour, 0, 23, (), "hour"),
        days=_field_values(dom, 1, 31, (), "day-of-month"),
        months=_field_values(month, 1, 12, _MONTHS, "month", name_base=1),
        weekdays=frozenset(d % 7 for d in weekdays),
        day_restricted=not dom.startswith("*"),
        weekday_restricted=not dow.startswith("*"),
        tz=zone,
    )
    schedule.next_fire(datetime(2000, 1, 1, tzinfo=UTC))  # raises if it can never fire
    return schedule


def retry_delay(failures: int, base: float = DEFAULT_RETRY_BASE,
                cap: float = DEFAULT_RETRY_CAP) -> float:
    """Seconds to wait before retrying after ``failures`` consecutive failed runs.

    Doubles from ``base``: with base 60 and cap 3600, failures 1, 2, 3, 7 wait 60, 120, 240
    and 3600 (capped) seconds. ``failures`` 0 means the last run succeeded: no retry (0.0).
    """
    if failures <= 0:
        return 0.0
    return min(cap, base * 2.0 ** min(failures - 1, 60))


def next_attempt(now: datetime, next_tick: datetime, failures: int,
                 base: float = DEFAULT_RETRY_BASE, cap: float = DEFAULT_RETRY_CAP) -> datetime:
    """When the daemon runs next: the next tick, or an earlier retry after failures.

    The rule: a failed run (an error, or a partial result) is retried ``retry_delay`` after it
    ended — 1 min, 2 min, 4 min ... up to the cap — but never later than the next scheduled
    tick, which runs anyway. A success resets the count, so a daily cron job that failed at
    15:30 is retried within minutes instead of tomorrow, and a flapping upstream is not
    hammered. Example with base 60 s: ``--every 30m``, the third failure in a row ends at
    10:07 -> retry at 10:11 (4 min, before the 10:30 tick); the fifth ends at 10:14 -> the
    16-min retry would be 10:30, so the 10:30 tick itself is the retry.
    """
    if failures <= 0:
        return next_tick
    return min(next_tick, now + timedelta(seconds=retry_delay(failures, base, cap)))


def describe_every(seconds: float) -> str:
    """``1800`` -> ``"30m"``: the short form used in logs and /status."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
