"""End to end: the whole reference market from the simulator into SQLite and PostgreSQL.

Real sockets, real proxy extraction and gateway, real databases. Time is scaled down by the
simulator's factor (both sides), so the ~7-minute reference run takes seconds.
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from boardsync.config import load_settings
from boardsync.demo import scaled, simulated
from boardsync.run import Run
from boardsync.sim import Simulator, load_scenario
from boardsync.store import Store

SCALE = 0.02


def _settings(db_url: str, tmp_path: Path, **flags: Any) -> Any:
    base = {"db_url": db_url, "state_path": str(tmp_path / "state.json"), "progress": "none"}
    return load_settings(base | flags, env={}, config_path=tmp_path / "none.toml"
                         if (tmp_path / "none.toml").exists() else None)


def _requests_by_port(sim: Any) -> dict[int, int]:
    """Requests the simulator's gateway served through each issued IP, by its port."""
    return {ip["port"]: ip["requests"] for ip in sim.issued_ips()}


def _record_evictions(sync: Run, sim: Any) -> dict[int, int]:
    """Spy on ``sync.proxies.mark_failed`` (the real method still runs): for each evicted IP,
    the requests the gateway had served through it at that moment, by port."""
    seen: dict[int, int] = {}
    evict = sync.proxies.mark_failed

    def recording(proxy: Any, reason: str) -> None:
        evict(proxy, reason)
        port = int(proxy.key.rsplit(":", 1)[1])
        seen[port] = _requests_by_port(sim)[port]

    sync.proxies.mark_failed = recording  # type: ignore[method-assign]
    return seen


def _assert_equals_truth(db_url: str, truth: dict[str, frozenset[str]]) -> None:
    store = Store(db_url)
    mismatched = [code for code, members in truth.items()
                  if store.member_codes(code) != set(members)]
    assert mismatched == []


@pytest.mark.slow
def test_reference_scenario_complete_and_exact(db_url: str, tmp_path: Path) -> None:
    base = _settings(db_url, tmp_path, force=True)
    with simulated(base, "reference", time_scale=SCALE, seed=11) as (settings, sim):
        summary = Run(settings).run()
        truth = sim.truth()
        counters = sim.counters()
    assert summary.status == "ok", summary
    assert (summary.ok, summary.boards_total, summary.failed) == (527, 527, 0)
    assert summary.rows_written == sum(len(m) for m in truth.values()) == 61206
    _assert_equals_truth(db_url, truth)
    assert counters["extract_refused_too_fast"] == 0
    assert 0 < summary.ips_extracted <= settings.max_ips
    assert counters["ips_issued"] == summary.ips_extracted
    # the largest board's 37 pages were shared between IPs, not asked one after another
    assert len(counters["identities_by_board"]["BK0596"]) > 1
    state = json.loads(Path(settings.state_path).read_text())
    assert sum(1 for b in state["boards"].values() if b["status"] == "ok") == 527


@pytest.mark.slow
def test_too_few_ips_ends_partial_with_remaining_listed(sqlite_url: str, tmp_path: Path) -> None:
    base = _settings(sqlite_url, tmp_path, force=True, max_ips=3, ip_ttl=20.0)
    with simulated(base, "clean", time_scale=SCALE, seed=3) as (settings, sim):
        summary = Run(settings).run()
        truth = sim.truth()
    assert summary.status == "partial"
    assert summary.ips_extracted <= 3
    assert summary.stop_reason and "quota" in summary.stop_reason
    assert summary.remaining, "boards left over must be listed"
    state = json.loads(Path(settings.state_path).read_text())
    pending = {c for c, b in state["boards"].items() if b["status"] in ("pending", "retrying")}
    assert set(summary.remaining) <= pending
    assert set(summary.remaining) | {c for c, b in state["boards"].items()
                                     if b["status"] == "ok"} == set(truth)
    # Every board that was written is exact.
    store = Store(sqlite_url)
    for code, board in state["boards"].items():
        if board["status"] == "ok":
            assert store.member_codes(code) == set(truth[code])


def test_largest_boards_are_fetched_first(sqlite_url: str, tmp_path: Path) -> None:
    """One worker, so the order of first requests at the simulator is the queue order: it
    must follow the board list's size hints (f104 + f105) from the largest down."""
    base = _settings(sqlite_url, tmp_path, force=True, workers=1, kinds=("industry",),
                     stagger=0.0)
    with simulated(base, "clean", time_scale=SCALE, seed=5) as (settings, sim):
        summary = Run(settings).run()
        hints = {b.code: b.size_hint for b in sim.boards()}
        first_seen = list(sim.counters()["requests_by_board"])
    assert summary.status == "ok" and len(first_seen) == summary.ok == 86
    sizes = [hints[code] for code in first_seen]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]


@pytest.mark.slow
def test_no_request_through_an_ip_after_it_was_evicted(sqlite_url: str, tmp_path: Path) -> None:
    """The hostile scenario bans and breaks live IPs, so the run evicts some that had served
    requests; the simulator's gateway must serve none of them another request afterwards.
    Half its IPs are bad (resetting 60 % of requests) so that live IPs are evicted for sure:
    with a null page asked again and an IP ended during its pacing replaced, the plain
    scenario's run sometimes evicted none that had served."""
    base = _settings(sqlite_url, tmp_path, force=True, kinds=("industry",))
    scn = load_scenario("hostile").with_overrides(ip_bad_fraction=0.5, ip_bad_fault_rate=0.6)
    with simulated(base, scn, time_scale=SCALE, seed=3) as (settings, sim):
        sync = Run(settings)
        at_eviction = _record_evictions(sync, sim)
        summary = sync.run()
        served = _requests_by_port(sim)
        industry = {b.code for b in sim.boards() if b.kind == "industry"}
        truth = {code: members for code, members in sim.truth().items() if code in industry}
    assert summary.status == "ok"
    _assert_equals_truth(sqlite_url, truth)
    assert any(n > 0 for n in at_eviction.values()), "no live IP was evicted: vacuous"
    assert {port: served[port] for port in at_eviction} == at_eviction


class _ListArrivals:
    """A progress display that notes, when each kind's list arrives, how many member
    requests the simulator had already served (the progress protocol is public)."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self.arrivals: list[tuple[int, int]] = []  # (boards added, member requests so far)

    def add(self, more: int) -> None:
        served = sum(self.sim.counters()["requests_by_board"].values())
        self.arrivals.append((more, served))

    def start(self, total: int) -> None:
        self.add(total)

    def tick(self, snap: dict[str, int]) -> None:
        pass

    def close(self, snap: dict[str, int]) -> None:
        pass


def test_a_longer_board_list_is_paged_by_several_workers_at_once(
        sqlite_url: str, tmp_path: Path) -> None:
    """Each kind's boards are queued as soon as its list is in, and a list of several pages
    is shared: once page 1 of the five-page concept list planned its pages, the idle third
    worker claims pages on its own IP (help tasks go before boards), so three identities
    page the lists, not two. Fixed 1-1.2 s delays before every request keep the industry
    list (one page, after the directory) ahead of the concept list's last pages."""
    base = _settings(sqlite_url, tmp_path, force=True, workers=3, pacing="fixed",
                     req_delay_min=1.0, req_delay_max=1.2, stagger=0.0,
                     kinds=("industry", "concept"))
    with simulated(base, "clean", time_scale=0.5, seed=5) as (settings, sim):
        board = next(b for b in sim.boards() if b.kind == "industry")
        spy = _ListArrivals(sim)
        summary = Run(settings.replace(boards=(board.code,)), progress=spy).run()
        truth = sim.truth()[board.code]
        listers = sim.counters()["identities_by_board"]["list"]
    assert summary.status == "ok" and summary.ok == 1 and summary.boards_total == 1
    assert [more for more, _ in spy.arrivals] == [1, 0]  # industry list, then concept list
    assert len(listers) == 3
    assert Store(sqlite_url).member_codes(board.code) == set(truth)


class _NoConceptList:
    """A loopback relay to the simulator's upstream that answers every concept-list request
    with ``data: null`` (what the real upstream sends a soft-banned client) and passes
    everything else through unchanged."""

    def __init__(self, upstream_url: str) -> None:
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                if "t:3" in urllib.parse.unquote_plus(self.path):
                    body = b'{"rc":0,"rt":6,"svr":1,"lt":1,"full":1,"dlmkts":"","data":null}'
                    relay.refused += 1
                else:
                    with urllib.request.urlopen(upstream_url + self.path, timeout=30) as r:
                        body = r.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.refused = 0
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_board_list_that_keeps_failing_ends_partial_after_the_other_kinds(
        sqlite_url: str, tmp_path: Path) -> None:
    """The concept list never comes: the industry boards are still all synced, exactly, and
    the run ends partial naming the concept list (it used to stop before any board)."""
    scn = load_scenario("clean").with_overrides(latency_median_s=0.0, rate_per_s=1e6,
                                                burst=1e6)
    with Simulator(scn, time_scale=SCALE, seed=5) as sim:
        relay = _NoConceptList(sim.upstream_url)
        try:
            settings = scaled(_settings(sqlite_url, tmp_path, force=True, workers=4,
                                        max_retry=2, page_retries=1, stagger=0.0),
                              SCALE, upstream_url=relay.url, proxy="direct")
            summary = Run(settings).run()
        finally:
            relay.close()
        industry = {b.code for b in sim.boards() if b.kind == "industry"}
        truth = {code: set(m) for code, m in sim.truth().items() if code in industry}
    assert relay.refused >= 2  # page 1 of the concept list, tried and tried again
    assert summary.status == "partial"
    assert summary.stop_reason and "board list concept" in summary.stop_reason
    assert summary.ok == summary.boards_total == len(truth) == 86
    store = Store(sqlite_url)
    assert {code: store.member_codes(code) for code in truth} == truth


def test_https_through_connect_tunnels_verified_against_the_simulator_ca(
        sqlite_url: str, tmp_path: Path) -> None:
    pytest.importorskip("trustme", reason="the simulator's HTTPS needs the tls extra")
    codes = ("BK0475", "BK0596", "BK0473")
    base = _settings(sqlite_url, tmp_path, force=True, boards=codes)
    with simulated(base, "clean", time_scale=SCALE, seed=7, tls=True) as (settings, sim):
        assert settings.upstreams[0] == "https://29.push2.eastmoney.com/api/qt/clist/get"
        assert settings.ca_bundle and not settings.upstream_url  # the real pool, by name
        summary = Run(settings).run()
        truth = {code: sim.truth()[code] for code in codes}
        counters = sim.counters()
    assert summary.status == "ok" and summary.ok == 3
    _assert_equals_truth(sqlite_url, truth)
    assert counters["gateway_tunnels"] >= 1  # CONNECT, as through a real provider
    assert "127.0.0.1" not in counters["requests_by_identity"]  # every request via an exit
    assert counters["requests_by_fingerprint"]["library"] == counters["requests"]
    # every answer from the healthiest lane, and the board directory once; another lane may
    # carry the odd request while the first cools after an IP's end (its death or a refused
    # probe closes the connection), a failure taken back once the IP is let go
    answered = {(h["host"], h["route"]) for h in summary.hosts if h["ok"]}
    assert answered == {("29.push2.eastmoney.com", "api")}, summary.hosts
    routes = counters["requests_by_route"]
    assert routes["quote/directory"] == 1
    assert routes["29.push2/api"] >= sum(routes.values()) - 1 - 3, routes


def test_a_ca_bundle_that_is_not_a_file_is_a_config_error(tmp_path: Path) -> None:
    from boardsync.errors import ConfigError

    with pytest.raises(ConfigError, match="ca_bundle"):
        _settings("sqlite://", tmp_path, ca_bundle=str(tmp_path / "missing.pem"))
