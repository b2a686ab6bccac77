"""The upstream pool's arithmetic on a fake clock: health shares, cool-downs, refusal verdicts,
the fail-fast at start, and the default pool's order; no sockets."""

from __future__ import annotations

import pytest

from boardsync.config import load_settings
from boardsync.errors import (
    Blocked,
    ConfigError,
    ConnectionFailed,
    FetchTimeout,
    ProxyDead,
    Refused,
    RoutesRefused,
    Unreachable,
    UpstreamUnreachable,
)
from boardsync.upstream import DEFAULT_UPSTREAMS, Pool, build_pool, endpoint
from boardsync.upstream.web import WEB_UT, route_params
from helpers import FakeClock

A = "https://29.push2.eastmoney.com/api/qt/clist/get"
W = "https://29.push2.eastmoney.com/webguest/api/qt/clist/get"
D = "https://push2delay.eastmoney.com/api/qt/clist/get"


def pool(*urls: str, transport: str = "requests", browser: bool = True,
         clock: FakeClock | None = None) -> Pool:
    return Pool([endpoint(u) for u in urls], transport=transport, clock=clock or FakeClock(),
                cooldown_s=30.0, browser=browser)


def test_default_pool_order_and_routes() -> None:
    names = [endpoint(u).name for u in DEFAULT_UPSTREAMS]
    assert names[:2] == ["29.push2.eastmoney.com/api", "29.push2.eastmoney.com/webguest"]
    assert [n.split(".")[0] for n in names[:8:2]] == ["29", "79", "91", "17"]
    assert "push2.eastmoney.com/api" not in names  # the worst-measured pair is left out
    assert names[-2:] == ["push2.eastmoney.com/webguest", "push2delay.eastmoney.com/api"]


def test_upstream_url_is_a_one_entry_pool() -> None:
    s = load_settings({"upstream_url": "http://127.0.0.1:9"}, env={})
    p = build_pool(s)
    assert {lane.endpoint.url for lane in p.lanes} == {"http://127.0.0.1:9/api/qt/clist/get"}
    assert len(build_pool(load_settings({"transport": "requests"}, env={})).lanes) == 10


def test_web_route_parameters_only_where_the_route_needs_them() -> None:
    assert route_params("api") == {"fltt": 2, "invt": 2}
    web = route_params("webguest")
    assert web["ut"] == WEB_UT and web["dect"] == "1" and web["wbp2u"] == "|0|0|0|web"
    assert route_params("api", ut="x")["ut"] == "x"


def test_healthiest_lane_first_and_a_failure_cools_it_down() -> None:
    clock = FakeClock()
    p = pool(A, W, clock=clock)
    a, w = p.lanes
    assert p.choose("ip1") is a  # untried lanes tie: the configured order
    p.succeeded(a, "ip1")
    assert p.failed(a, "ip1", ConnectionFailed("reset")).error_class == "connection"
    assert p.choose("ip1") is w  # a rests 30 s after its failure
    clock.advance(29.9)
    assert p.choose("ip1") is w
    clock.advance(0.2)
    assert p.choose("ip1") is a  # 2/3 share beats the untried 1/2
    for _ in range(3):
        p.failed(a, "ip1", FetchTimeout("slow"))
    clock.advance(31)
    assert p.choose("ip1") is w  # (1 + 1) / (1 + 4 + 2) = 0.29 < 0.5
    rows = {r["route"]: r for r in p.snapshot()}
    assert rows["api"]["ok"] == 1 and rows["api"]["failed"] == 4 and rows["api"]["state"] == "ok"


def test_ip_failures_leave_the_lane_alone() -> None:
    p = pool(A, W)
    a = p.lanes[0]
    err = Blocked("403", status=403)
    assert p.failed(a, "ip1", err) is err
    assert p.choose("ip1") is a and p.snapshot() == []


def test_a_fresh_ip_closed_on_blames_the_route_and_tries_the_next() -> None:
    p = pool(A, W)
    a, w = p.lanes
    judged = p.failed(a, "ip1", ConnectionFailed("RemoteDisconnected"))
    assert isinstance(judged, Refused) and judged.error_class == "refused"
    assert p.choose("ip1") is w
    # a fresh IP that failed on every lane is left to the usual policy (it may be the IP)
    assert type(p.failed(w, "ip1", ConnectionFailed("x"))) is ConnectionFailed
    # a proven IP's reset is noise, not a witness
    p.succeeded(a, "ip2")
    assert type(p.failed(a, "ip2", ConnectionFailed("x"))) is ConnectionFailed


def test_three_fresh_ips_refused_make_the_lane_refused() -> None:
    p = pool(A, W)
    a, w = p.lanes
    p.failed(a, "ip1", ConnectionFailed("x"))
    p.failed(a, "ip1", ConnectionFailed("x"))  # the same IP twice is one witness
    p.failed(a, "ip2", ConnectionFailed("x"))
    assert p.health[a].state == "ok"
    p.failed(a, "ip3", ConnectionFailed("x"))
    assert p.health[a].state == "refused" and p.fatal is None
    assert all(p.choose(f"ip{i}") is w for i in range(10))


def test_a_lane_that_answered_is_never_refused_an_outage_is_the_breakers() -> None:
    p = pool(A, W)
    a = p.lanes[0]
    p.succeeded(a, "ip0")
    for ip in ("ip1", "ip2", "ip3", "ip4"):
        p.failed(a, ip, ConnectionFailed("reset"))
    assert p.health[a].state == "ok" and p.fatal is None


def test_auto_tries_the_browser_on_the_same_route_before_the_next() -> None:
    p = pool(A, W, transport="auto")
    a_req, a_browser, w_req, _ = p.lanes
    assert a_browser.transport == "browser" and p.choose("ip1") is a_req
    assert isinstance(p.failed(a_req, "ip1", ConnectionFailed("x")), Refused)
    assert p.choose("ip1") is a_browser  # same route, other fingerprint
    p.succeeded(a_browser, "ip1")
    assert p.choose("ip2") is a_browser  # it answers: the run stays there
    without = pool(A, W, transport="auto", browser=False)
    assert [lane.transport for lane in without.lanes] == ["requests", "requests"]
    assert without.choose("ip1") is without.lanes[0]
    without.failed(without.lanes[0], "ip1", ConnectionFailed("x"))
    assert without.choose("ip1") is without.lanes[1]  # no browser: the next route


def test_browser_without_curl_cffi_is_one_config_error() -> None:
    with pytest.raises(ConfigError, match=r"boardsync\[browser\]") as info:
        pool(A, transport="browser", browser=False)
    assert info.value.key == "transport"


def test_every_lane_refused_is_fatal_with_what_was_tried_and_what_helps() -> None:
    p = pool(A, D)
    for ip in ("ip1", "ip2", "ip3"):
        for lane in p.lanes:
            p.failed(lane, ip, ConnectionFailed("x"))
    assert isinstance(p.fatal, RoutesRefused)
    text = str(p.fatal)
    assert "3 fresh IPs" in text and "29.push2.eastmoney.com/api" in text
    assert "browser transport" in text and "mainland residential" in text
    with pytest.raises(RoutesRefused):
        p.choose("ip4")


def test_unreachable_hosts_at_start_fail_fast_later_it_is_an_outage() -> None:
    p = pool(A, W)
    for lane in p.lanes:
        assert p.failed(lane, "ip1", Unreachable("CONNECT 502")).error_class == "unreachable"
    assert isinstance(p.fatal, UpstreamUnreachable) and isinstance(p.fatal, ConfigError)
    assert "no upstream host resolves" in str(p.fatal)
    later = pool(A, W)
    later.succeeded(later.lanes[0], "ip1")
    judged = later.failed(later.lanes[0], "ip1", Unreachable("refused"))
    assert type(judged) is ConnectionFailed and later.fatal is None


def test_a_captcha_or_an_rc_error_is_the_ips_not_the_lanes() -> None:
    from boardsync.errors import Captcha, RcError
    from boardsync.upstream.pool import counts_against_lane

    assert not counts_against_lane(Captcha("slider captcha page"))
    assert not counts_against_lane(RcError("rc 102"))


def test_an_ips_end_takes_back_the_failures_it_caused_since_its_last_answer() -> None:
    """An IP kept until it dies fails its last request (its connection closed), a banned
    one has its connections closed: once it is seen to end with no answer since, the lanes
    get their health back; another IP's failure and a failure before an answer stay."""
    clock = FakeClock()
    p = pool(A, W, clock=clock)
    a, w = p.lanes
    p.succeeded(a, "ip1")
    p.succeeded(a, "ip2")
    p.failed(a, "ip1", ConnectionFailed("closed"))
    assert p.choose("ip3") is w  # a cools for 30 s
    p.failed(w, "ip1", ConnectionFailed("closed"))
    p.failed(a, "ip1", ProxyDead("refused by the proxy"))  # the IP died
    rows = {r["route"]: r for r in p.snapshot()}
    assert rows["api"]["failed"] == 0 and rows["api"]["cooling_s"] == 0
    assert p.choose("ip3") is a  # 2/3 beats w's untried 1/2 again
    # ip2's failure is the lane's until ip2 ends; a later answer keeps it for good
    p.failed(a, "ip2", FetchTimeout("slow"))
    p.succeeded(w, "ip2")
    p.forgive("ip2")
    assert {r["route"]: r for r in p.snapshot()}["api"]["failed"] == 1
    # a ban ends an IP too, and so does its worker letting it go
    p.succeeded(a, "ip4")
    p.failed(a, "ip4", ConnectionFailed("closed"))
    p.failed(a, "ip4", Blocked("403", status=403))
    p.succeeded(a, "ip5")
    p.failed(w, "ip5", ConnectionFailed("closed"))
    p.forgive("ip5")
    rows = {r["route"]: r for r in p.snapshot()}
    assert rows["api"]["failed"] == 1 and rows["webguest"]["failed"] == 0


def test_a_fresh_ips_failures_stay_witnesses_when_it_is_let_go() -> None:
    p = pool(A, W)
    a, _ = p.lanes
    for ip in ("ip1", "ip2", "ip3"):
        p.failed(a, ip, ConnectionFailed("closed"))
        p.forgive(ip)  # let go after failing everywhere: still a witness against a
    assert p.health[a].state == "refused"
