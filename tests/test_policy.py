"""The classifier table: every error class has a decision; the hierarchy is sound."""

from __future__ import annotations

import inspect
import logging

import pytest

from boardsync import errors
from boardsync.errors import BoardsyncError
from boardsync.policy import (
    DECISIONS,
    OUTAGE_CLASSES,
    RetryBudget,
    Streak,
    Verdict,
    after_failure,
    classify,
    http_status_class,
)

ERROR_CLASSES = sorted(
    (obj for obj in vars(errors).values()
     if inspect.isclass(obj) and issubclass(obj, BaseException)
     and obj.__module__ == errors.__name__),
    key=lambda cls: cls.__name__,
)

# (error_class, rotate, retry) for an instance of every class in errors.py (built by _make:
# HTTPStatusError with 502, Blocked with 403). A new class in errors.py fails
# test_expected_table_covers_errors_module until it is added here with its intended decision.
EXPECTED: dict[str, tuple[str, bool, bool]] = {
    "BoardsyncError": ("unexpected", False, True),
    "ConfigError": ("bad_config", False, False),
    "UpstreamError": ("upstream", True, True),
    "FetchTimeout": ("timeout", True, True),
    "ConnectionFailed": ("connection", True, True),
    "HTTPStatusError": ("http_5xx", True, True),
    "Blocked": ("blocked", True, True),
    "InvalidResponse": ("invalid_json", True, True),
    "TooManyPages": ("invalid_json", True, True),
    "EmptyData": ("empty_data", True, True),
    "RcError": ("rc_error", True, True),
    "Captcha": ("captcha", True, True),
    "SoftBan": ("soft_ban", True, True),
    "NoQuote": ("no_quote", False, False),
    "IncompleteData": ("incomplete", False, True),
    "BadRequest": ("bad_request", False, False),
    "ProxyError": ("proxy", True, True),
    "ProxyDead": ("proxy_dead", True, True),
    "ExtractionThrottled": ("extract_throttled", False, True),
    "QuotaExhausted": ("quota_exhausted", False, False),
    "ProviderAuthError": ("provider_auth", False, False),
    "ProviderError": ("provider_error", False, True),
    "StorageError": ("storage", False, False),
    "DatabaseUnavailable": ("db_unavailable", False, True),
    "Locked": ("locked", False, False),
    "StateError": ("state", False, False),
    "Interrupted": ("interrupted", False, True),
    "Refused": ("refused", False, True),
    "Unreachable": ("unreachable", False, True),
    "Untrusted": ("untrusted", False, True),
    "NoRoute": ("no_route", False, False),
    "RoutesRefused": ("routes_refused", False, False),
    "UpstreamUnreachable": ("upstream_unreachable", False, False),
}


def test_a_route_failure_keeps_the_ip_and_is_not_counted() -> None:
    from boardsync.policy import DECISIONS, Verdict, after_failure

    for name in ("refused", "unreachable"):
        assert after_failure(name, DECISIONS[name], 9, opened=True, outage=True) is Verdict.ROUTE


def _make(cls: type[BaseException]) -> BaseException:
    if issubclass(cls, errors.HTTPStatusError):
        return cls("x", status=403 if cls is errors.Blocked else 502)
    return cls("x")


def test_expected_table_covers_errors_module() -> None:
    assert {cls.__name__ for cls in ERROR_CLASSES} == set(EXPECTED)


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_subclasses_the_root_and_has_a_docstring(cls: type) -> None:
    assert issubclass(cls, BoardsyncError)
    assert cls.__doc__ and cls.__doc__.strip()


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_class_has_its_decision(cls: type[BaseException]) -> None:
    assert cls.error_class in DECISIONS  # type: ignore[attr-defined]
    name, decision = classify(_make(cls))
    assert name in DECISIONS
    assert decision is DECISIONS[name]
    assert (name, decision.rotate, decision.retry) == EXPECTED[cls.__name__]
    assert decision.rotate_after >= 1


def test_every_table_entry_is_reachable() -> None:
    reachable = {cls.error_class for cls in ERROR_CLASSES}  # type: ignore[attr-defined]
    reachable |= {http_status_class(s) for s in range(100, 600)}
    assert set(DECISIONS) <= reachable


@pytest.mark.parametrize(
    ("exc", "name", "rotate", "retry"),
    [
        (errors.FetchTimeout("t"), "timeout", True, True),
        (errors.ConnectionFailed("c"), "connection", True, True),
        (errors.Blocked("b", status=403), "blocked", True, True),
        (errors.Blocked("b", status=429), "blocked", True, True),
        (errors.ProxyDead("p"), "proxy_dead", True, True),
        (errors.HTTPStatusError("s", status=502), "http_5xx", True, True),
        (errors.HTTPStatusError("s", status=500), "http_5xx", True, True),
        (errors.HTTPStatusError("s", status=408), "http_retryable", True, True),
        (errors.HTTPStatusError("s", status=302), "http_retryable", True, True),
        (errors.HTTPStatusError("s", status=429), "blocked", True, True),
        (errors.HTTPStatusError("s", status=403), "blocked", True, True),
        (errors.HTTPStatusError("s", status=404), "http_status", False, False),
        (errors.HTTPStatusError("s", status=400), "http_status", False, False),
        (errors.HTTPStatusError("s", status=401), "http_status", False, False),
        (errors.InvalidResponse("j"), "invalid_json", True, True),
        (errors.EmptyData("e"), "empty_data", True, True),
        (errors.IncompleteData("i"), "incomplete", False, True),
        (errors.BadRequest("r"), "bad_request", False, False),
        (errors.QuotaExhausted("q"), "quota_exhausted", False, False),
        (errors.ExtractionThrottled("t"), "extract_throttled", False, True),
        (errors.ProviderAuthError("a"), "provider_auth", False, False),
        (errors.DatabaseUnavailable("d"), "db_unavailable", False, True),
        (KeyError("bug"), "unexpected", False, True),
        (KeyboardInterrupt(), "interrupted", False, True),
    ],
)
def test_decisions(exc: BaseException, name: str, rotate: bool, retry: bool) -> None:
    got_name, decision = classify(exc)
    assert (got_name, decision.rotate, decision.retry) == (name, rotate, retry)


def test_unexpected_errors_log_at_error_and_occasional_resets_are_forgiven() -> None:
    assert classify(ValueError("x"))[1].log_level == logging.ERROR
    assert classify(errors.ConnectionFailed("c"))[1].rotate_after == 4
    assert classify(errors.Blocked("b", status=403))[1].rotate_after == 1
    assert classify(errors.Blocked("b", status=403))[1].ban_signal


def test_subclass_with_an_unknown_error_class_gets_the_unexpected_decision() -> None:
    class Odd(BoardsyncError):
        """Test-only."""

        error_class = "odd"

    assert classify(Odd("x")) == ("odd", DECISIONS["unexpected"])


def test_retry_budget_asks_a_page_again_up_to_page_retries_failures() -> None:
    budget = RetryBudget(page_retries=3, max_retry=2)
    timeout, not_found = DECISIONS["timeout"], DECISIONS["http_status"]
    assert [budget.retry_page(timeout, n) for n in (1, 2, 3)] == [True, True, False]
    assert budget.retry_page(not_found, 1) is False  # never retried, budget or not


def test_retry_budget_gives_every_board_at_least_one_attempt_and_refuses_negative() -> None:
    incomplete = DECISIONS["incomplete"]
    assert [RetryBudget(max_retry=3).retry_board(incomplete, n) for n in (1, 2, 3)] == [
        True, True, False]
    assert RetryBudget(max_retry=0).retry_board(incomplete, 1) is False
    for bad in ({"max_retry": -1}, {"page_retries": -1}):
        with pytest.raises(errors.ConfigError):
            RetryBudget(**bad)


def test_a_streak_counts_failures_until_reset() -> None:
    streak = Streak()
    assert [streak.failed() for _ in range(3)] == [1, 2, 3]
    streak.reset()
    assert streak.failed() == 1


@pytest.mark.parametrize(
    ("error_class", "streak", "opened", "outage", "verdict"),
    [
        ("connection", 3, False, False, Verdict.KEEP),  # a third reset: still noise
        ("connection", 4, False, False, Verdict.ROTATE),  # the fourth in a row: a ban
        ("blocked", 1, False, False, Verdict.ROTATE),  # a 403 at once
        ("incomplete", 9, False, False, Verdict.KEEP),  # never the IP's fault
        ("timeout", 1, True, True, Verdict.OUTAGE),  # this failure opened the breaker
        ("timeout", 5, False, True, Verdict.OUTAGE),  # during an outage: nobody's fault
        ("blocked", 1, False, True, Verdict.ROTATE),  # a ban is a ban, outage or not
    ],
)
def test_after_failure_verdicts(error_class: str, streak: int, opened: bool, outage: bool,
                                verdict: Verdict) -> None:
    assert after_failure(error_class, DECISIONS[error_class], streak, opened=opened,
                         outage=outage) is verdict


def test_outage_classes_are_table_keys() -> None:
    assert OUTAGE_CLASSES <= set(DECISIONS)
