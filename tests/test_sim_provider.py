"""The simulated proxy provider and gateway, against real sockets: extraction formats and
refusals, IP lifetimes, dead-on-arrival and bad IPs, forwarding with identity, the tunnel."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from boardsync.sim import Simulator, load_scenario
from helpers import wait_until

SCALE = 0.01
CLIST = "/api/qt/clist/get"
PARAMS = {"fs": "b:BK0475 f:!50", "pz": 100, "np": 1, "fltt": 2, "fid": "f12",
          "fields": "f12,f13,f14"}
LINE = re.compile(r"^127\.0\.0\.1:(\d+),([0-9.]+)$")


@contextmanager
def sim(name: str = "clean", seed: int = 7, **overrides: Any) -> Iterator[Simulator]:
    # IPs live for a simulated day unless a test asks otherwise: at this time scale the
    # scenario's 60 s lifetime is 0.6 s of real time, shorter than a loaded machine needs.
    base = {"latency_median_s": 0.0, "extract_min_interval_s": 0.0, "rate_per_s": 1e6,
            "burst": 1e6, "ip_lifetime_s": 86_400.0}
    scn = load_scenario(name).with_overrides(**(base | overrides))
    with Simulator(scn, time_scale=SCALE, seed=seed) as s:
        yield s


def extract(s: Simulator, num: int = 1, fmt: str = "txt", key: str | None = None
            ) -> requests.Response:
    return requests.get(s.extract_url, timeout=5,
                        params={"key": s.api_key if key is None else key, "num": num,
                                "format": fmt})


def ports(s: Simulator, num: int = 1) -> list[int]:
    lines = extract(s, num).text.split("\r\n")
    return [int(LINE.match(line).group(1)) for line in lines]  # type: ignore[union-attr]


def via(s: Simulator, proxy: str, session: requests.Session | None = None,
        **params: Any) -> requests.Response:
    return (session or requests).get(s.upstream_url + CLIST, params=PARAMS | params,
                                     proxies={"http": proxy}, timeout=5)


def refused(s: Simulator, port: int) -> bool:
    try:
        via(s, f"http://127.0.0.1:{port}")
    except requests.exceptions.ConnectionError:
        return True
    return False


# -- extraction API -------------------------------------------------------------------------

def test_txt_and_json_formats() -> None:
    with sim(ip_lifetime_s=60.0) as s:
        txt = extract(s, 3)
        js = extract(s, 2, "json").json()
        c = s.counters()
    lines = txt.text.split("\r\n")
    assert len(lines) == 3 and all(LINE.match(line) for line in lines)
    assert {float(LINE.match(line).group(2)) for line in lines} == {0.6}  # type: ignore[union-attr]
    assert js["code"] == 0 and js["success"] is True and len(js["data"]) == 2
    item = js["data"][0]
    assert set(item) == {"ip", "port", "expire_time", "ttl", "outip"}
    assert item["ip"] == "127.0.0.1" and item["ttl"] == pytest.approx(0.6)
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", item["expire_time"])
    assert not item["outip"].startswith(("127.", "10.", "192.168."))
    assert c["ips_issued"] == 5 and c["extract_calls"] == 2


def test_too_fast_refusal_then_ok() -> None:
    # 10 simulated s between calls = 0.1 s real.
    with sim(extract_min_interval_s=10.0, extract_interval_tolerance=0.0) as s:
        assert LINE.match(extract(s).text)
        refusal = extract(s)
        assert refusal.status_code == 200
        # it names its interval in whole simulated seconds, stated in real ones
        assert refusal.json() == {"code": 111, "data": [], "msg": "请0.1秒后再试",
                                  "success": False}
        assert wait_until(lambda: LINE.match(extract(s).text), limit=3.0)
        c = s.counters()
    assert c["extract_refused_too_fast"] >= 1 and c["ips_issued"] == 2


def test_daily_quota_and_new_day() -> None:
    with sim(extract_quota_per_day=3) as s:
        assert len(ports(s, 2)) == 2
        assert len(ports(s, 2)) == 1  # what is left of the quota
        body = extract(s, 1, "txt").json()  # a JSON error even in txt mode
        assert body["code"] == 121 and body["success"] is False and body["data"] == []
        s.advance_day()
        assert len(ports(s, 1)) == 1
        c = s.counters()
    assert c["extract_refused_quota"] == 1 and c["ips_issued"] == 4


def test_bad_key_and_bad_parameters() -> None:
    with sim() as s:
        bad = extract(s, 1, "txt", key="wrong").json()
        bad_num = extract(s, 0).json()
        missing = requests.get(s.extract_url.replace("/get", "/other"), timeout=5)
        c = s.counters()
    assert bad["code"] == 113 and bad["success"] is False
    assert bad_num["code"] == 116
    assert missing.status_code == 404
    assert c["extract_refused_key"] == 1 and c["ips_issued"] == 0


# -- gateway --------------------------------------------------------------------------------

def test_gateway_forwards_as_the_exit_identity() -> None:
    with sim() as s:
        js = extract(s, 2, "json").json()["data"]
        with requests.Session() as h:
            for _ in range(3):
                r = via(s, f"http://127.0.0.1:{js[0]['port']}", h)
                assert r.status_code == 200 and r.json()["data"]["total"] > 0
        via(s, f"http://127.0.0.1:{js[1]['port']}")
        direct = requests.get(s.upstream_url + CLIST, params=PARAMS, timeout=5)
        c = s.counters()
    assert direct.json() == r.json() | {"data": direct.json()["data"]}
    assert c["requests_by_identity"] == {js[0]["outip"]: 3, js[1]["outip"]: 1, "127.0.0.1": 1}
    assert c["gateway_requests"] == 4


def test_identity_header_is_not_trusted_from_clients() -> None:
    with sim() as s:
        requests.get(s.upstream_url + CLIST, params=PARAMS, timeout=5,
                     headers={"X-Sim-Exit": "1.2.3.4", "X-Sim-Gateway": "guess"})
        assert s.counters()["requests_by_identity"] == {"127.0.0.1": 1}


def test_bans_are_per_exit_identity() -> None:
    # One token per 1,000 simulated s (10 s real): no refill between requests however slow.
    with sim(rate_per_s=0.001, burst=2.0, ban_s=1000.0, ban_close_fraction=0.0) as s:
        a, b = ports(s, 2)
        codes = [via(s, f"http://127.0.0.1:{a}").status_code for _ in range(4)]
        other = via(s, f"http://127.0.0.1:{b}").status_code
        c = s.counters()
    assert codes == [200, 200, 403, 403] and other == 200
    assert c["bans"] == 1 and len(c["banned_identities_now"]) == 1


def test_upstream_reset_and_truncation_relayed_through_gateway() -> None:
    with sim(fault_reset=1.0) as s:
        (port,) = ports(s)
        with pytest.raises(requests.exceptions.ConnectionError):
            via(s, f"http://127.0.0.1:{port}")
        assert s.counters()["faults"] == {"reset": 1}
    with sim(fault_truncated=1.0) as s:
        (port,) = ports(s)
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            via(s, f"http://127.0.0.1:{port}")
    with sim(fault_http_502=1.0) as s:
        (port,) = ports(s)
        assert via(s, f"http://127.0.0.1:{port}").status_code == 502


def test_ip_expires_then_refuses_connections() -> None:
    # 100 simulated s of life = 1 s real.
    with sim(ip_lifetime_s=100.0) as s, requests.Session() as h:
        (port,) = ports(s)
        t0 = time.monotonic()
        assert via(s, f"http://127.0.0.1:{port}", h).status_code == 200
        assert wait_until(lambda: refused(s, port), limit=3.0)
        assert time.monotonic() - t0 >= 0.5
        with pytest.raises(requests.exceptions.ConnectionError):
            via(s, f"http://127.0.0.1:{port}", h)  # the kept-alive connection is gone too
        c = s.counters()
    assert c["ips_expired"] == 1


def test_dead_on_arrival_and_unknown_ports_refuse() -> None:
    with sim(ip_doa_fraction=1.0) as s:
        (port,) = ports(s)
        assert refused(s, port)
        assert s.counters()["ips_doa"] == 1 and s.issued_ips()[0]["doa"] is True
        assert s.counters()["requests"] == 0
        # A port the provider never issued: nothing listens there.
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        unknown = probe.getsockname()[1]
        try:
            assert refused(s, unknown)
        finally:
            probe.close()


def test_bad_ips_add_their_own_failures() -> None:
    with sim(ip_bad_fraction=1.0, ip_bad_fault_rate=0.5, seed=4) as s:
        (port,) = ports(s)
        failures = 0
        with requests.Session() as h:
            for _ in range(200):
                try:
                    via(s, f"http://127.0.0.1:{port}", h)
                except requests.exceptions.ConnectionError:
                    failures += 1
        c = s.counters()
    assert 70 < failures < 130 and c["faults"]["proxy_reset"] == failures
    assert c["requests"] == 200 - failures


def test_gateway_only_forwards_to_the_upstream() -> None:
    with sim() as s:
        (port,) = ports(s)
        r = requests.get(s.admin_url + "/truth", proxies={"http": f"http://127.0.0.1:{port}"},
                         timeout=5)
        assert r.status_code == 503


# -- tunnel -----------------------------------------------------------------------------------

def test_tunnel_requires_auth_and_rotates_identity() -> None:
    # Rotation every 10 simulated s = 0.1 s real.
    with sim(tunnel_rotate_s=10.0) as s, requests.Session() as h:
        user_pass, hostport = s.tunnel_url[len("http://"):].split("@")
        wrong = via(s, f"http://{user_pass.split(':')[0]}:nope@{hostport}", h)
        assert wrong.status_code == 407
        first = s.tunnel_identity()
        assert via(s, s.tunnel_url, h).status_code == 200
        assert wait_until(lambda: s.tunnel_identity() != first, limit=3.0)
        assert via(s, s.tunnel_url, h).status_code == 200
        c = s.counters()
    identities = c["requests_by_identity"]
    assert len(identities) == 2 and first in identities and "127.0.0.1" not in identities
    assert c["tunnel_requests"] == 2 and c["gateway_auth_failed"] == 1


def test_admin_counters_are_json() -> None:
    with sim() as s:
        ports(s, 2)
        body = json.loads(requests.get(s.admin_url + "/counters", timeout=5).text)
    for key in ("requests", "requests_by_board", "bans", "banned_requests", "ips_issued",
                "extract_calls", "extract_refused_too_fast", "extract_refused_quota",
                "extract_refused_key", "gateway_requests", "gateway_refused", "faults",
                "requests_by_identity"):
        assert key in body
    assert body["ips_issued"] == 2


def test_cli_support_serve() -> None:
    from boardsync.sim.cli_support import serve

    s = serve("clean", SCALE, 3)
    try:
        assert s.upstream_url.startswith("https://") and s.ca_bundle
        r = requests.get(s.upstream_url + CLIST, params=PARAMS, timeout=5, verify=s.ca_bundle)
        assert r.status_code == 200 and s.seed == 3 and s.time_scale == SCALE
    finally:
        s.stop()
