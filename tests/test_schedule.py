"""Schedules and the retry backoff: pure functions, exact times, no clock read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boardsync.durations import parse_duration
from boardsync.errors import ConfigError
from boardsync.schedule import (
    IntervalSchedule,
    describe_every,
    next_attempt,
    parse_cron,
    retry_delay,
)

SH = ZoneInfo("Asia/Shanghai")


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("1.5s", 1.5), ("30m", 1800), ("1h30m", 5400), ("2d", 172800),
     ("250ms", 0.25), (" 12H ", 43200)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    """``--every`` goes through the one duration parser; zero is refused there."""
    assert parse_duration(text, "every") == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "-5m", "5x", "m", "1h-2m", "abc"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="every"):
        parse_duration(text, "every")


def test_interval_runs_at_once_then_every_period_from_the_tick() -> None:
    s = IntervalSchedule(1800)
    start = sh(2026, 11, 23, 10, 7, 13)
    assert s.first_fire(start) == start
    assert s.next_fire(start) == sh(2026, 11, 23, 10, 37, 13)
    assert s.describe() == "every 30m"
    assert describe_every(1.5) == "1.5s" and describe_every(86400) == "1d"


def test_weekdays_after_close() -> None:
    s = parse_cron("30 15 * * 1-5")  # default zone Asia/Shanghai
    # Friday 2026-11-20 15:30 passed -> Monday 23rd 15:30
    assert s.next_fire(sh(2026, 11, 20, 15, 30)) == sh(2026, 11, 23, 15, 30)
    assert s.next_fire(sh(2026, 11, 20, 15, 29, 59)) == sh(2026, 11, 20, 15, 30)
    assert s.next_fire(sh(2026, 11, 21, 9, 0)) == sh(2026, 11, 23, 15, 30)  # Saturday
    assert s.first_fire(sh(2026, 11, 23, 8, 0)) == sh(2026, 11, 23, 15, 30)


def test_cron_is_evaluated_in_its_time_zone() -> None:
    s = parse_cron("30 15 * * 1-5", "Asia/Shanghai")
    # 07:00 UTC Monday is 15:00 in Shanghai: the run is 30 minutes later, 07:30 UTC.
    got = s.next_fire(datetime(2026, 11, 23, 7, 0, tzinfo=UTC))
    assert got.astimezone(UTC) == datetime(2026, 11, 23, 7, 30, tzinfo=UTC)
    utc = parse_cron("30 15 * * 1-5", "UTC")
    assert utc.next_fire(datetime(2026, 11, 23, 7, 0, tzinfo=UTC)) == datetime(
        2026, 11, 23, 15, 30, tzinfo=UTC)


def test_lists_ranges_steps() -> None:
    s = parse_cron("*/15 9-11,13-14 * * *", "UTC")
    t = datetime(2026, 1, 5, 11, 46, tzinfo=UTC)
    fires = []
    for _ in range(5):
        t = s.next_fire(t)
        fires.append(t.strftime("%H:%M"))
    assert fires == ["13:00", "13:15", "13:30", "13:45", "14:00"]
    assert parse_cron("0-10/5 0 * * *", "UTC").minutes == {0, 5, 10}
    assert parse_cron("5/20 0 * * *", "UTC").minutes == {5, 25, 45}
    assert parse_cron("1,2,3,30-31 0 * * *", "UTC").minutes == {1, 2, 3, 30, 31}


def test_names_and_sunday_as_7() -> None:
    s = parse_cron("0 12 * jan,JUL mon-fri", "UTC")
    assert s.months == {1, 7} and s.weekdays == {1, 2, 3, 4, 5}
    assert parse_cron("0 0 * * 7", "UTC").weekdays == {0}
    assert parse_cron("0 0 * * sun", "UTC").weekdays == {0}
    # 2026-02-01 is a Sunday; the next January/July weekday noon is 2026-07-01 (Wednesday).
    assert s.next_fire(datetime(2026, 2, 1, tzinfo=UTC)) == datetime(2026, 7, 1, 12, 0,
                                                                       tzinfo=UTC)


def test_day_of_month_or_day_of_week_when_both_restricted() -> None:
    s = parse_cron("0 0 13 * fri", "UTC")  # the 13th *or* any Friday, as in cron
    t = datetime(2026, 11, 1, tzinfo=UTC)  # a Sunday
    days = []
    for _ in range(4):
        t = s.next_fire(t)
        days.append(t.day)
    assert days == [6, 13, 20, 27]  # Fridays 6, 13 (also the 13th), 20, 27
    only_dom = parse_cron("0 0 13 * *", "UTC")
    assert only_dom.next_fire(datetime(2026, 11, 14, tzinfo=UTC)).day == 13


def test_macros_and_leap_day() -> None:
    assert parse_cron("@daily", "UTC").next_fire(datetime(2026, 3, 4, 5, tzinfo=UTC)) == \
        datetime(2026, 3, 5, tzinfo=UTC)
    assert parse_cron("@hourly", "UTC").next_fire(datetime(2026, 3, 4, 5, 1, tzinfo=UTC)) == \
        datetime(2026, 3, 4, 6, tzinfo=UTC)
    leap = parse_cron("0 0 29 2 *", "UTC")
    assert leap.next_fire(datetime(2026, 3, 1, tzinfo=UTC)) == datetime(2028, 2, 29, tzinfo=UTC)


def test_dst_gap_is_skipped_and_overlap_fires_once() -> None:
    ny = ZoneInfo("America/New_York")
    s = parse_cron("30 2 * * *", ny)
    # 2026-03-08 02:30 does not exist in New York (clocks jump 02:00 -> 03:00).
    got = s.next_fire(datetime(2026, 3, 8, 0, 0, tzinfo=ny))
    assert (got.month, got.day, got.hour, got.minute) == (3, 9, 2, 30)
    s2 = parse_cron("30 1 * * *", ny)
    # 2026-11-01 01:30 happens twice; it fires at the first, then next day.
    first = s2.next_fire(datetime(2026, 11, 1, 0, 0, tzinfo=ny))
    second = s2.next_fire(first)
    assert (second - first) > timedelta(hours=23)


@pytest.mark.parametrize(
    "expr",
    ["", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *",
     "* * * * 8", "*/0 * * * *", "5-1 * * * *", "x * * * *", "* * * foo *", "0 0 30 2 *",
     "1-2-3 * * * *"],
)
def test_bad_cron_is_a_config_error(expr: str) -> None:
    with pytest.raises(ConfigError, match="cron"):
        parse_cron(expr, "UTC")


def test_unknown_timezone() -> None:
    with pytest.raises(ConfigError, match="timezone"):
        parse_cron("* * * * *", "Mars/Olympus")


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1)),
       st.sampled_from(["30 15 * * 1-5", "*/7 */5 * * *", "0 0 1,15 * *", "@weekly",
                        "15 9 * jan-mar,oct sat"]))
def test_next_fire_matches_and_is_the_first(naive: datetime, expr: str) -> None:
    s = parse_cron(expr)
    after = naive.replace(tzinfo=SH)
    got = s.next_fire(after)
    assert got > after and got.second == 0
    local = got.astimezone(SH)
    assert local.minute in s.minutes and local.hour in s.hours and local.month in s.months
    assert s.next_fire(after) == got  # pure
    # nothing matches in between: the previous minute's next fire is still ``got``
    assert s.next_fire(max(after, got - timedelta(minutes=1))) == got


def test_retry_delay_doubles_to_the_cap() -> None:
    assert [retry_delay(n, 60, 3600) for n in range(0, 9)] == [
        0.0, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert retry_delay(10_000, 1, 5) == 5


def test_next_attempt_is_never_after_the_next_tick() -> None:
    now = sh(2026, 11, 23, 10, 7)
    tick = sh(2026, 11, 23, 10, 30)
    assert next_attempt(now, tick, 0, 60, 3600) == tick  # success: the schedule
    assert next_attempt(now, tick, 3, 60, 3600) == sh(2026, 11, 23, 10, 11)  # 4 min
    assert next_attempt(now, tick, 5, 60, 3600) == sh(2026, 11, 23, 10, 23)  # 16 min
    assert next_attempt(now, tick, 6, 60, 3600) == tick  # 32 min would pass the tick
