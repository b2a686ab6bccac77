"""The one Retry-After parser: both forms, and a bound on what a header may ask for."""

from __future__ import annotations

from datetime import timedelta

from boardsync.durations import MAX_RETRY_AFTER_S, parse_retry_after
from helpers import T0


def test_delta_seconds_and_http_dates_are_read_from_now() -> None:
    assert parse_retry_after("120", T0) == 120.0
    later = T0 + timedelta(seconds=90)
    assert parse_retry_after(later.strftime("%a, %d %b %Y %H:%M:%S GMT"), T0) == 90.0
    assert parse_retry_after("Mon, 01 Jan 2001 00:00:00 GMT", T0) == 0.0  # in the past
    assert parse_retry_after("soon", T0) is None and parse_retry_after(None, T0) is None


def test_a_header_cannot_ask_for_more_than_the_bound() -> None:
    assert parse_retry_after("99999999", T0) == MAX_RETRY_AFTER_S
    assert parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT", T0) == MAX_RETRY_AFTER_S
