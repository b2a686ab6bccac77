"""Issue 13's route worlds end to end: the real default pool, proxy IPs from the simulated
provider through the gateway over HTTPS (CONNECT), default settings, the real ``Run``.

* the first host and route refuse Python's fingerprint: the run completes exactly on another
  route (``transport = requests``) or by the browser transport on that very route (``auto``,
  curl_cffi installed), without evicting an IP;
* every route refuses: the run stops with its own exit code after at most 5 IPs;
* no host resolves: the run fails at start with one line and exit 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from boardsync.cli.exitcodes import EXIT_REFUSED, EXIT_USAGE, error_line, for_error
from boardsync.config import Settings, load_settings
from boardsync.demo import endpoints_of, scaled
from boardsync.errors import RoutesRefused, UpstreamUnreachable
from boardsync.run import Run
from boardsync.sim import Simulator, load_scenario
from boardsync.store import Store
from boardsync.upstream.pool import REFUSAL_WITNESSES

pytest.importorskip("trustme", reason="the simulator's HTTPS needs the tls extra")

SCALE = 0.02
CODES = ("BK0475", "BK0596", "BK0473")


@contextmanager
def world(tmp_path: Path, routes: tuple[tuple[str, str], ...], scale: float = SCALE,
          **flags: Any) -> Iterator[tuple[Settings, Simulator]]:
    base = load_settings({"db_url": f"sqlite:///{tmp_path}/b.db", "progress": "none",
                          "state_path": str(tmp_path / "state.json"), "force": True,
                          "boards": CODES} | flags, env={})
    scn = load_scenario("clean").with_overrides(routes=routes)
    with Simulator(scn, time_scale=scale, seed=7, tls=True) as sim:
        yield scaled(base, scale, **endpoints_of(sim, "api")), sim


def exact(settings: Settings, sim: Simulator) -> bool:
    store = Store(settings.db_url)
    return all(store.member_codes(c) == set(sim.truth()[c]) for c in CODES)


def ip_ends(summary: Any, counters: dict[str, Any]) -> int:
    """The most requests IPs' own ends may fail: an IP kept until it dies (learn pacing)
    fails its last request, and a probe refused by a ban has its connections closed, up to
    the four in a row that let an IP go."""
    return counters["ips_expired"] + 4 * summary.errors.get("blocked", 0)


def test_first_route_refusing_python_completes_exactly_on_another_route(
        tmp_path: Path) -> None:
    with world(tmp_path, (("29.push2/api", "refuse:library"),), transport="requests") as (
            settings, sim):
        summary = Run(settings).run()
        c = sim.counters()
        ok = exact(settings, sim)
    assert summary.status == "ok" and summary.ok == 3 and ok
    # the refusal was the route's: no IP was evicted for it; connections closed otherwise
    # were IPs' ends (as in the clean world without refusals)
    assert summary.errors.get("refused", 0) <= REFUSAL_WITNESSES
    assert summary.errors.get("connection", 0) <= ip_ends(summary, c), summary.errors
    # the first requests of the fresh IPs that start together (the three listers): at most
    # the witnesses that refuse the lane for the run
    assert c["refused_by_route"]["29.push2/api"] <= REFUSAL_WITNESSES
    answered = {k: v - c["refused_by_route"].get(k, 0) for k, v in c["requests_by_route"].items()
                if k != "quote/directory"}
    assert answered["29.push2/api"] == 0
    # every answer came from the next route (another lane carries only requests failed by
    # an IP's end, while the next route cooled for it)
    assert answered["29.push2/webguest"] > 0
    assert sum(answered.values()) - answered["29.push2/webguest"] <= ip_ends(summary, c)
    hosts = {(h["host"], h["route"]): h for h in summary.hosts}
    assert hosts[("29.push2.eastmoney.com", "api")]["ok"] == 0
    assert hosts[("29.push2.eastmoney.com", "webguest")]["ok"] > 0


def test_first_route_refusing_python_completes_by_the_browser_on_that_route(
        tmp_path: Path) -> None:
    pytest.importorskip("curl_cffi", reason="the browser extra is not installed")
    with world(tmp_path, (("29.push2/api", "refuse:library"),)) as (settings, sim):
        assert settings.transport == "auto"  # the default
        summary = Run(settings).run()
        c = sim.counters()
        ok = exact(settings, sim)
    assert summary.status == "ok" and summary.ok == 3 and ok
    assert summary.errors.get("refused", 0) <= REFUSAL_WITNESSES
    assert summary.errors.get("connection", 0) <= ip_ends(summary, c), summary.errors
    routes = c["requests_by_route"]
    elsewhere = sum(routes.values()) - routes["quote/directory"] - routes["29.push2/api"]
    assert elsewhere <= ip_ends(summary, c), routes  # it stayed
    refused = c["refused_by_route"]["29.push2/api"]
    assert refused <= REFUSAL_WITNESSES
    # Python's requests: the refused ones, and those IPs' ends elsewhere
    assert refused <= c["requests_by_fingerprint"]["library"] <= refused + elsewhere
    assert c["requests_by_fingerprint"]["browser"] >= summary.ok  # every board by browser


def test_every_route_refusing_ends_with_its_own_exit_code_after_at_most_6_ips(
        tmp_path: Path) -> None:
    # A fresh IP tries the 20 lanes before it is let go; each TLS handshake through a tunnel
    # is real CPU time, not scaled, so the world runs slow enough that an IP's scaled life
    # covers its walk on a loaded machine too (as real seconds do in production).
    with world(tmp_path, (("*/*", "refuse"),), scale=0.1) as (settings, sim):
        run = Run(settings)
        with pytest.raises(RoutesRefused) as info:
            run.run()
        c = sim.counters()
    assert for_error(info.value) == EXIT_REFUSED == 6
    # three fresh IPs walk every lane (the witnesses), one reads the directory, and a lister
    # whose walk ends before the others' may take one more each before the verdict: 3 + 1 + 2
    assert c["ips_issued"] <= 6
    assert run.summary.status == "partial" and run.summary.stop_reason
    line = error_line(info.value)
    assert "\n" not in line and "fresh IPs" in line
    assert "browser" in line and "mainland residential IPs" in line


def test_unresolvable_host_fails_fast_at_start_with_one_line_and_exit_2(
        tmp_path: Path) -> None:
    with world(tmp_path, ()) as (settings, sim):
        bad = settings.replace(upstreams=("https://nosuch.push2.eastmoney.com/api/qt/clist/get",
                                          "https://nosuch2.eastmoney.com/api/qt/clist/get"))
        run = Run(bad)
        with pytest.raises(UpstreamUnreachable) as info:
            run.run()
        c = sim.counters()
    assert for_error(info.value) == EXIT_USAGE == 2
    line = error_line(info.value)
    assert "\n" not in line and line.startswith("no upstream host resolves")
    assert c["requests"] == 0 and c["ips_issued"] <= len(bad.kinds)  # one per lister
    assert run.summary.ips_failed == 0 and run.breaker.state == "closed"


def test_the_browser_transport_sends_each_request_once_even_when_closed_on() -> None:
    """libcurl resends a request on a fresh connection when a reused one was closed; an IP's
    pacing must see every request the upstream sees, so the browser transport never reuses."""
    pytest.importorskip("curl_cffi", reason="the browser extra (curl_cffi) is not installed")
    import requests

    from boardsync.errors import UpstreamError
    from boardsync.upstream.transport import make_transport

    scenario = load_scenario("clean").with_overrides(
        latency_median_s=0.0, rate_per_s=1e6, burst=1e6, fault_reset=0.5,
        ip_lifetime_s=86_400.0, extract_min_interval_s=0.0)
    with Simulator(scenario, time_scale=SCALE, seed=7, tls=True) as sim:
        ip = requests.get(sim.extract_url, params={"key": sim.api_key, "num": 1},
                          timeout=5).text.split(",")[0]
        browser = make_transport("browser")
        calls = 30
        for _ in range(calls):
            try:
                browser.send(sim.https_urls["29.push2"] + "/api/qt/clist/get",
                             params={"fs": "b:BK0475 f:!50", "pz": 5, "pn": 1, "np": 1},
                             headers={}, key=ip, proxy_url="http://" + ip,
                             timeout=(5.0, 5.0), verify=sim.ca_bundle or True, via=ip)
            except UpstreamError:
                pass
        browser.close()
        counters = sim.counters()
    assert counters["faults"]["reset"] > 5  # connections were closed on, often
    assert counters["requests"] == calls


def test_an_untrusted_certificate_fails_fast_saying_check_ca_bundle(tmp_path: Path) -> None:
    """A wrong CA bundle (or a proxy re-signing HTTPS) is no route's and no IP's fault: one
    line naming ca_bundle, exit 2, no IP evicted, no walk of refusals ending in exit 6."""
    import trustme

    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with world(tmp_path, ()) as (settings, sim):
        run = Run(settings.replace(ca_bundle=str(other)))
        with pytest.raises(UpstreamUnreachable) as info:
            run.run()
        c = sim.counters()
    assert for_error(info.value) == EXIT_USAGE == 2
    line = error_line(info.value)
    assert "\n" not in line and "not trusted" in line and "ca_bundle" in line
    assert c["requests"] == 0  # no TLS handshake completed, so nothing reached the upstream
    assert run.summary.ips_failed == 0 and c["ips_issued"] <= 5
