"""Rate limits and ban signals against the simulator's real sockets, direct and via the gateway.

The simulator reads time only through a :class:`FakeClock` here (time scale 1: simulated
seconds are clock seconds), so a window or a ban ends exactly when the test moves the clock,
never because the machine was slow. Latency still sleeps in real time on the event loop; the
concurrency test uses it only to keep requests in flight, and waits on the simulator's own
in-flight count rather than on a duration.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from boardsync.sim import Simulator, load_scenario
from boardsync.sim.captcha import CAPTCHA_PAGE
from boardsync.sim.upstream import HTML_BLOCK
from helpers import FakeClock, wait_until

CLIST = "/api/qt/clist/get"
PARAMS: dict[str, Any] = {"fs": "b:BK0475 f:!50", "pz": 100, "np": 1, "fltt": 2,
                          "fid": "f12", "fields": "f12,f13,f14"}
#: No latency, no token bucket to speak of, IPs that outlive the test, one clock second = 1 s.
BASE = {"latency_median_s": 0.0, "rate_per_s": 1e6, "burst": 1e6, "extract_min_interval_s": 0.0,
        "ip_lifetime_s": 86_400.0, "ban_signal": "403"}


@contextmanager
def sim(clock: FakeClock, **overrides: Any) -> Iterator[Simulator]:
    scn = load_scenario("clean").with_overrides(**(BASE | overrides))
    with Simulator(scn, time_scale=1.0, seed=5, clock=clock) as s:
        yield s


def exit_proxy(s: Simulator) -> str:
    """One issued IP of the simulated provider, as a proxy URL."""
    params: dict[str, Any] = {"key": s.api_key, "num": 1, "format": "txt"}
    text = requests.get(s.extract_url, params=params, timeout=5).text
    return "http://" + text.split(",")[0]


def send(s: Simulator, session: requests.Session, proxy: str | None = None,
         **params: Any) -> requests.Response:
    return session.get(s.upstream_url + CLIST, params=PARAMS | params, timeout=10,
                       proxies={"http": proxy} if proxy else None)


def outcome(s: Simulator, session: requests.Session, proxy: str | None = None) -> str:
    """``ok`` (200 with data), ``closed`` (no response) or the status code."""
    try:
        r = send(s, session, proxy)
    except requests.exceptions.ConnectionError:
        return "closed"
    if r.status_code == 200 and r.json()["data"] is not None:
        return "ok"
    return str(r.status_code)


# -- a window bans the N+1-th request, exactly --------------------------------------------

@pytest.mark.parametrize("path", ["direct", "gateway"])
def test_window_bans_the_request_after_n(path: str) -> None:
    clock = FakeClock()
    with sim(clock, windows=((5, 60.0),), ban_s=10.0) as s, requests.Session() as h:
        proxy = exit_proxy(s) if path == "gateway" else None
        assert [outcome(s, h, proxy) for _ in range(5)] == ["ok"] * 5
        assert outcome(s, h, proxy) == "403"  # the 6th within 60 s
        clock.advance(10.0)  # the ban is over, but the five are still within (10 - 60, 10]
        assert outcome(s, h, proxy) == "403"
        clock.advance(60.0 - 10.0)  # t = 60: the five sent at t = 0 have left the window
        assert [outcome(s, h, proxy) for _ in range(5)] == ["ok"] * 5
        assert outcome(s, h, proxy) == "403"
        c = s.counters()
    assert (c["bans"], c["banned_requests"]) == (3, 3)
    assert c["bans_by_signal"] == {"403": 3} and c["banned_by_signal"] == {"403": 3}
    assert len(c["requests_by_identity"]) == 1  # one identity: the peer, or the exit IP


def test_two_windows_at_once_through_one_identity() -> None:
    clock = FakeClock()
    with sim(clock, windows=((3, 1.0), (4, 60.0)), ban_s=0.5) as s, requests.Session() as h:
        assert [outcome(s, h) for _ in range(4)] == ["ok"] * 3 + ["403"]  # 3 per second
        clock.advance(1.0)
        assert [outcome(s, h) for _ in range(2)] == ["ok", "403"]  # 4 per minute
        clock.advance(59.0)
        assert outcome(s, h) == "ok"


# -- a concurrency cap of c bans the (c+1)-th request in flight -----------------------------

def _in_flight(s: Simulator) -> int:
    with s.state.lock:
        return sum(i.in_flight for i in s.state.antibot.identities.values())


def test_concurrency_cap_bans_the_request_after_c_in_flight() -> None:
    cap = 3
    clock = FakeClock()
    # A fixed 1 s latency (median = p99) keeps the first ``cap`` requests in flight.
    with sim(clock, concurrency_cap=cap, ban_s=5.0, latency_median_s=1.0,
             latency_p99_s=1.0) as s:
        results: list[str] = []

        def one() -> None:
            with requests.Session() as h:
                results.append(outcome(s, h))

        threads = [threading.Thread(target=one) for _ in range(cap)]
        for t in threads:
            t.start()
        try:
            assert wait_until(lambda: _in_flight(s) == cap)
            with requests.Session() as h:
                assert outcome(s, h) == "403"  # the (cap + 1)-th, while cap are in flight
        finally:
            for t in threads:
                t.join()
        assert results == ["ok"] * cap and _in_flight(s) == 0
        with requests.Session() as h:
            assert outcome(s, h) == "403"  # nothing in flight, but banned for 5 s
            clock.advance(5.0)
            assert outcome(s, h) == "ok"
        c = s.counters()
    assert c["bans"] == 1 and c["banned_requests"] == 2


# -- each ban signal, as a client sees it ---------------------------------------------------

def _banned_pair(signal: str, params: dict[str, Any] | None = None
                 ) -> tuple[requests.Response, Any, dict[str, Any]]:
    """A served answer to ``params`` and then the same request banned with ``signal``."""
    clock = FakeClock()
    with sim(clock, windows=((1, 60.0),), ban_signal=signal) as s, requests.Session() as h:
        first = send(s, h, **(params or {}))
        try:
            second: Any = send(s, h, **(params or {}))
        except requests.exceptions.ConnectionError as e:
            second = e
        return first, second, s.counters()


def test_ban_signal_close() -> None:
    first, second, c = _banned_pair("close")
    assert first.status_code == 200
    assert isinstance(second, requests.exceptions.ConnectionError)
    assert c["banned_closed"] == 1 and c["banned_by_signal"] == {"close": 1}


def test_ban_signal_403() -> None:
    _, second, c = _banned_pair("403")
    assert second.status_code == 403 and "text/html" in second.headers["Content-Type"]
    assert c["banned_403"] == 1 and c["bans_by_signal"] == {"403": 1}


@pytest.mark.parametrize("jsonp", [False, True])
def test_ban_signal_null_data_is_a_real_soft_ban_answer(jsonp: bool) -> None:
    """The banned answer is byte for byte what an unknown board gets: 200, envelope, null."""
    params = {"fs": "b:BK9999 f:!50"} | ({"cb": "jQuery1_2"} if jsonp else {})
    genuine, banned, c = _banned_pair("null_data", params)
    assert banned.status_code == genuine.status_code == 200
    assert banned.content == genuine.content
    assert banned.headers == genuine.headers
    if not jsonp:
        assert banned.json()["data"] is None and banned.json()["rc"] == 0
    assert c["banned_by_signal"] == {"null_data": 1}
    assert c["banned_closed"] == c["banned_403"] == 0


def test_ban_signal_captcha_page() -> None:
    first, second, c = _banned_pair("captcha")
    assert first.json()["data"]["diff"]
    assert second.status_code == 200
    assert second.headers["Content-Type"].startswith("text/html")
    assert second.content == CAPTCHA_PAGE != HTML_BLOCK
    assert "滑块" in second.text and "<script" in second.text
    assert c["banned_by_signal"] == {"captcha": 1}
