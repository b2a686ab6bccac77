"""The simulator's hosts, routes, HTTPS and client fingerprints, against real sockets and real
clients: requests (Python's ssl) and, where installed, curl_cffi's Chrome impersonation."""

from __future__ import annotations

import asyncio
import signal
import ssl
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from boardsync.errors import ConfigError
from boardsync.sim import Simulator, load_scenario
from boardsync.sim.exits import Exits, address_of
from boardsync.sim.hosts import CLIST_HOSTS, DIRECTORY_PATH, ROUTES, RouteTable, parse_health
from boardsync.sim.tls import client_class, is_grease, parse_client_hello
from helpers import FakeClock

SCALE = 0.01
PARAMS = {"fs": "b:BK0475 f:!50", "pz": 100, "np": 1, "fltt": 2, "fid": "f12",
          "fields": "f3,f12,f13,f14"}
BROWSER_UA = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36"}


@contextmanager
def sim(routes: tuple[tuple[str, str], ...] = (), tls: bool = True, **overrides: Any
        ) -> Iterator[Simulator]:
    base = {"latency_median_s": 0.0, "extract_min_interval_s": 0.0, "rate_per_s": 1e6,
            "burst": 1e6, "ip_lifetime_s": 86_400.0, "routes": routes}
    scn = load_scenario("clean").with_overrides(**(base | overrides))
    with Simulator(scn, time_scale=SCALE, seed=7, tls=tls) as s:
        yield s


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


def proxy_of(s: Simulator) -> tuple[dict[str, str], str]:
    """One issued IP as ``requests`` proxies, and the exit identity the upstream will see."""
    data = requests.get(s.extract_url, params={"key": s.api_key, "num": 1, "format": "json"},
                        timeout=5).json()["data"][0]
    url = f"http://{data['ip']}:{data['port']}"
    return {"http": url, "https": url}, data["outip"]


def answered(call: Any) -> bool:
    try:
        return bool(call().status_code == 200)
    except requests.exceptions.ConnectionError:
        return False


# -- the ClientHello ------------------------------------------------------------------------

def python_hello() -> bytes:
    """The first bytes Python's own TLS client sends (an in-memory handshake, no socket)."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="29.push2.eastmoney.com")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def test_python_hello_parsed_without_grease() -> None:
    hello = parse_client_hello(python_hello())
    assert hello is not None
    assert hello.sni == "29.push2.eastmoney.com" and not hello.grease
    version, ciphers, extensions, groups, formats = hello.ja3().split(",")
    assert version == "771"  # TLS 1.2 in the legacy field, 1.3 in supported_versions
    assert "4866" in ciphers.split("-")  # TLS_AES_256_GCM_SHA384
    assert {"0", "10", "43"} <= set(extensions.split("-"))  # SNI, groups, versions
    assert "29" in groups.split("-")  # x25519
    assert len(hello.ja3_hash()) == 32
    # A browser's User-Agent does not hide Python's ClientHello.
    assert client_class(hello, {"user-agent": BROWSER_UA["User-Agent"]}) == "library"


def test_grease_marks_a_browser_and_is_left_out_of_ja3() -> None:
    raw = bytearray(python_hello())
    # Put a GREASE cipher first (what Chromium does): find the cipher list and patch it.
    session_len = raw[5 + 4 + 2 + 32]
    at = 5 + 4 + 2 + 32 + 1 + session_len + 2  # first cipher suite
    plain = parse_client_hello(bytes(raw))
    raw[at: at + 2] = b"\x1a\x1a"
    greased = parse_client_hello(bytes(raw))
    assert plain is not None and greased is not None
    assert greased.grease and not plain.grease
    assert is_grease(0x1A1A) and is_grease(0xFAFA) and not is_grease(0x1301)
    assert client_class(greased, {"user-agent": BROWSER_UA["User-Agent"]}) == "browser"
    assert client_class(greased, {"user-agent": "python-requests/2.32"}) == "library"
    assert greased.ja3().split(",")[1] == "-".join(plain.ja3().split(",")[1].split("-")[1:])


def test_not_a_client_hello() -> None:
    assert parse_client_hello(b"GET / HTTP/1.1\r\n\r\n") is None
    assert parse_client_hello(python_hello()[:40]) is None
    assert parse_client_hello(b"") is None


# -- health grammar -------------------------------------------------------------------------

def test_route_table_most_specific_wins() -> None:
    table = RouteTable([("*/*", "intermittent:0.5"), ("*/api", "refuse"),
                        ("29.push2/*", "stale:30"), ("29.push2/api", "ok")])
    assert table.health("29.push2", "api").kind == "ok"
    assert table.health("29.push2", "webguest").lag_s == 30
    assert table.health("17.push2", "api").refuses("browser")
    assert table.health("17.push2", "webguest").share == 0.5
    assert table.describe()["29.push2/webguest"] == "stale:30"


@pytest.mark.parametrize("bad", ["slow", "refuse:robot", "intermittent:2", "stale:-1",
                                 "ok:1", "intermittent:x"])
def test_bad_health_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_health(bad)


def test_bad_route_key_is_a_scenario_error() -> None:
    with pytest.raises(ConfigError, match="route key"):
        load_scenario("clean").with_overrides(routes=(("push3/api", "ok"),))


# -- HTTPS ----------------------------------------------------------------------------------

def test_https_verifies_against_the_test_ca_only() -> None:
    with sim() as s:
        assert s.ca_bundle and s.upstream_url.startswith("https://")
        ok = session().get(s.upstream_url + ROUTES["api"], params=PARAMS,
                           verify=s.ca_bundle, timeout=5)
        with pytest.raises(requests.exceptions.SSLError):
            session().get(s.upstream_url + ROUTES["api"], params=PARAMS, timeout=5)
    assert ok.status_code == 200 and ok.json()["data"]["total"] > 0


def test_every_clist_host_and_route_is_served() -> None:
    with sim() as s:
        urls = s.upstreams()
        codes = {url: session().get(url, params=PARAMS, verify=s.ca_bundle, timeout=5)
                 .status_code for url in urls}
        directory_host = session().get(s.https_urls["quote"] + ROUTES["api"], params=PARAMS,
                                       verify=s.ca_bundle, timeout=5)
        by_route = s.counters()["requests_by_route"]
    assert len(urls) == len(CLIST_HOSTS) * len(ROUTES) and set(codes.values()) == {200}
    assert directory_host.status_code == 404  # quote serves the directory, not clist
    assert by_route == {f"{h}/{r}": 1 for h in CLIST_HOSTS for r in ROUTES}


def test_connect_tunnel_carries_the_exit_identity() -> None:
    with sim() as s:
        proxies, identity = proxy_of(s)
        by_name = session().get("https://29.push2.eastmoney.com" + ROUTES["webguest"],
                                params=PARAMS, proxies=proxies, verify=s.ca_bundle, timeout=5)
        by_port = session().get(s.https_urls["91.push2"] + ROUTES["api"], params=PARAMS,
                                proxies=proxies, verify=s.ca_bundle, timeout=5)
        direct = session().get(s.upstream_url + ROUTES["api"], params=PARAMS,
                               verify=s.ca_bundle, timeout=5)
        c = s.counters()
    assert by_name.status_code == by_port.status_code == direct.status_code == 200
    assert c["gateway_tunnels"] == 2
    assert c["requests_by_identity"] == {identity: 2, "127.0.0.1": 1}
    assert c["requests_by_route"] == {"29.push2/webguest": 1, "91.push2/api": 1,
                                      "push2/api": 1}


def test_plain_http_forward_by_real_name_keeps_the_identity() -> None:
    with sim() as s:
        proxies, identity = proxy_of(s)
        r = session().get("http://79.push2.eastmoney.com" + ROUTES["api"], params=PARAMS,
                          proxies=proxies, timeout=5)
        c = s.counters()
    assert r.status_code == 200 and c["requests_by_identity"] == {identity: 1}
    assert c["requests_by_route"] == {"79.push2/api": 1}


def test_gateway_tunnels_only_to_simulated_hosts() -> None:
    with sim() as s:
        proxies, _ = proxy_of(s)
        with pytest.raises(requests.exceptions.ProxyError):
            session().get("https://example.org/", proxies=proxies, verify=s.ca_bundle,
                          timeout=5)
        assert s.counters()["gateway_tunnels"] == 0


def test_expired_ip_cuts_its_open_tunnel() -> None:
    with sim() as s:
        proxies, _ = proxy_of(s)
        client = session()
        url = s.https_urls["29.push2"] + ROUTES["api"]
        first = client.get(url, params=PARAMS, proxies=proxies, verify=s.ca_bundle, timeout=5)
        assert s.gateway is not None and s.provider is not None and s._loop is not None
        # The IP's own timer runs in real time; expire it now instead of waiting for it.
        asyncio.run_coroutine_threadsafe(s.gateway.expire(s.provider.issued[0]),
                                         s._loop).result(5)
        with pytest.raises(requests.exceptions.ConnectionError):
            client.get(url, params=PARAMS, proxies=proxies, verify=s.ca_bundle, timeout=5)
    assert first.status_code == 200


# -- health per (host, route) ---------------------------------------------------------------

def test_refusing_route_closes_before_any_response() -> None:
    with sim(routes=(("push2/api", "refuse"),)) as s:
        get = session().get
        refused = not answered(lambda: get(s.upstream_url + ROUTES["api"], params=PARAMS,
                                           verify=s.ca_bundle, timeout=5))
        other = answered(lambda: get(s.upstream_url + ROUTES["webguest"], params=PARAMS,
                                     verify=s.ca_bundle, timeout=5))
        c = s.counters()
    assert refused and other
    assert c["refused_by_route"] == {"push2/api": 1} and c["requests"] == 1


def test_fingerprint_refusal_python_refused_browser_ua_alone_not_enough() -> None:
    with sim(routes=(("29.push2/api", "refuse:library"),)) as s:
        url = s.https_urls["29.push2"] + ROUTES["api"]
        python = answered(lambda: session().get(url, params=PARAMS, verify=s.ca_bundle,
                                                headers=BROWSER_UA, timeout=5))
        webguest = answered(lambda: session().get(
            s.https_urls["29.push2"] + ROUTES["webguest"], params=PARAMS,
            verify=s.ca_bundle, timeout=5))
        c = s.counters()
    assert not python and webguest
    assert c["requests_by_fingerprint"]["library"] == 2
    assert c["refused_by_route"] == {"29.push2/api": 1}


def test_fingerprint_refusal_lets_a_browser_through() -> None:
    curl = pytest.importorskip("curl_cffi.requests", reason="the browser extra (curl_cffi) "
                               "is not installed")
    with sim(routes=(("29.push2/api", "refuse:library"),)) as s:
        proxies, identity = proxy_of(s)
        url = "https://29.push2.eastmoney.com" + ROUTES["api"]
        chrome = curl.get(url, params=PARAMS, proxies=proxies, verify=s.ca_bundle,
                          impersonate="chrome", timeout=5)
        python = answered(lambda: session().get(url, params=PARAMS, proxies=proxies,
                                                verify=s.ca_bundle, headers=BROWSER_UA,
                                                timeout=5))
        c = s.counters()
    assert chrome.status_code == 200 and chrome.json()["data"]["total"] > 0
    assert not python
    assert c["requests_by_fingerprint"]["browser"] == 1
    assert c["requests_by_fingerprint"]["library"] == 1
    assert c["requests_by_identity"] == {identity: 1}  # only the browser got through


def test_plain_http_is_judged_by_its_user_agent() -> None:
    with sim(routes=(("push2/api", "refuse:library"),), tls=False) as s:
        url = s.upstream_url + ROUTES["api"]
        library = answered(lambda: session().get(url, params=PARAMS, timeout=5))
        browser = answered(lambda: session().get(url, params=PARAMS, headers=BROWSER_UA,
                                                 timeout=5))
    assert not library and browser


def test_intermittent_route_answers_its_share() -> None:
    with sim(routes=(("17.push2/*", "intermittent:0.5"),), tls=False) as s:
        url = s.http_urls["17.push2"] + ROUTES["api"]
        results = [answered(lambda: session().get(url, params=PARAMS, timeout=5))
                   for _ in range(40)]
        c = s.counters()
    assert 0 < sum(results) < 40
    assert c["refused_by_route"]["17.push2/api"] == results.count(False)
    assert c["requests"] == sum(results)


def test_stale_host_lags_quotes_not_members() -> None:
    clock = FakeClock()
    scn = load_scenario("clean").with_overrides(
        latency_median_s=0.0, routes=(("push2delay/*", "stale:30"),))
    with Simulator(scn, time_scale=1.0, seed=7, clock=clock) as s:
        def rows(host: str) -> dict[str, float]:
            body = session().get(s.http_urls[host] + ROUTES["api"], params=PARAMS,
                                 timeout=5).json()
            return {r["f12"]: r["f3"] for r in body["data"]["diff"]}

        clock.advance(100.0)
        live, stale = rows("push2"), rows("push2delay")
        clock.advance(30.0)
        later_stale = rows("push2delay")
    assert set(live) == set(stale)  # the same members
    assert live != stale  # quotes 30 s behind
    assert later_stale == live  # 30 s later the delayed host shows what the live one showed


def test_admin_serves_rules_and_hosts() -> None:
    with sim(routes=(("push2/api", "refuse"),)) as s:
        rules = session().get(s.admin_url + "/rules", timeout=5).json()
        hosts = session().get(s.admin_url + "/hosts", timeout=5).json()
    assert rules["routes"]["push2/api"] == "refuse" and rules["routes"]["29.push2/api"] == "ok"
    assert rules["tls"] is True and rules["scenario"]["rate_per_s"] == 1e6
    assert hosts["29.push2"]["name"] == "29.push2.eastmoney.com"
    assert hosts["29.push2"]["https"].startswith("https://127.0.0.1:")


def test_exit_addresses_are_distinct_and_map_back() -> None:
    exits = Exits()
    a, b = exits.address_for("58.1.2.3"), exits.address_for("60.4.5.6")
    assert a != b and a.startswith("127.") and exits.address_for("58.1.2.3") == a
    assert exits.name_of(a) == "58.1.2.3" and exits.name_of("127.0.0.1") == "127.0.0.1"
    assert address_of(0) == "127.20.1.1" and address_of(250) == "127.20.2.1"
    assert len({address_of(i) for i in range(70_000)}) == 70_000
    collapsed = Exits(aliases=False)
    assert collapsed.address_for("58.1.2.3") == "127.0.0.1"


def test_quote_host_serves_the_board_directory_over_https() -> None:
    with sim() as s:
        proxies, _ = proxy_of(s)
        via_proxy = session().get("https://quote.eastmoney.com" + DIRECTORY_PATH,
                                  proxies=proxies, verify=s.ca_bundle, timeout=5)
        on_push2 = session().get(s.upstream_url + DIRECTORY_PATH, verify=s.ca_bundle,
                                 timeout=5)
        counted = s.counters()["requests_by_route"]
        boards = s.boards()
    rows = via_proxy.json()["bklist"]
    assert via_proxy.status_code == 200 and on_push2.status_code == 404
    assert len(rows) == len(boards) and counted["quote/directory"] == 1


# -- `boardsync sim serve`, a real process ----------------------------------------------------

def _serve_lines(proc: subprocess.Popen[str]) -> dict[str, str]:
    """The printed ``label  value`` lines up to the admin line (the last one printed)."""
    lines: dict[str, str] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        label, _, rest = line.rstrip("\n").partition("  ")
        lines[label.strip()] = rest.strip().split("  ")[0]
        if label.startswith("admin"):
            return lines
    raise AssertionError(f"sim serve ended early: {proc.communicate()}")


def test_sim_serve_today_over_https_real_process() -> None:
    pytest.importorskip("trustme", reason="the simulator's HTTPS needs the tls extra")
    proc = subprocess.Popen([sys.executable, "-m", "boardsync", "sim", "serve", "--scenario",
                             "today"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        printed = _serve_lines(proc)
        ca, base = printed["ca bundle"], printed["host 29.push2"]
        assert base.startswith("https://")

        def total(fs: str) -> int:
            r = session().get(base + ROUTES["api"], verify=ca, timeout=10,
                              params={"fs": fs, "pn": 1, "pz": 1, "np": 1, "fields": "f12"})
            return int(r.json()["data"]["total"])

        counts = [total(f"m:90 {t} f:!50") for t in ("t:2", "s:2", "s:4", "s:8", "t:3", "t:1")]
        directory = session().get(printed["directory"], verify=ca, timeout=10).json()["bklist"]
        with pytest.raises(requests.exceptions.SSLError):  # verification stays on
            session().get(base + ROUTES["api"], timeout=10)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert counts == [496, 31, 128, 337, 504, 31]
    types = Counter(row["type"] for row in directory)
    assert types == {2: 497, 3: 504, 1: 31}  # one industry board more than the lists
    assert proc.returncode == 0


def test_an_unparseable_hello_over_tls_is_a_library() -> None:
    ua = {"user-agent": BROWSER_UA["User-Agent"]}
    assert client_class(None, ua, tls=True) == "library"
    assert client_class(None, ua) == "browser"  # plain HTTP: the User-Agent alone
