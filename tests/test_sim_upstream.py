"""The simulated East Money upstream, against its real sockets: parameters, envelope, market,
anti-bot, faults, determinism, churn and the admin API."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from boardsync.clock import SYSTEM, Clock
from boardsync.sim import Scenario, Simulator, load_scenario
from boardsync.sim.antibot import AntiBot
from boardsync.sim.provider import PROVIDER_ZONE
from helpers import FakeClock, wait_until

SCALE = 0.01
FIXTURES = Path(__file__).parent / "fixtures" / "eastmoney"
CLIST = "/api/qt/clist/get"
LIST_FS = {"industry": "m:90 t:2 f:!50", "concept": "m:90 t:3 f:!50"}
UNLIMITED = {"latency_median_s": 0.0, "rate_per_s": 1e6, "burst": 1e6}


@contextmanager
def sim(name: str = "clean", seed: int = 7, scale: float = SCALE, clock: Clock = SYSTEM,
        **overrides: Any) -> Iterator[Simulator]:
    """A simulator with no latency and no rate limit unless ``overrides`` set them."""
    scn = load_scenario(name).with_overrides(**(UNLIMITED | overrides))
    with Simulator(scn, time_scale=scale, seed=seed, clock=clock) as s:
        yield s


def get(s: Simulator, session: requests.Session | None = None, path: str = CLIST,
        **params: Any) -> requests.Response:
    return (session or requests).get(s.upstream_url + path, params=params, timeout=5)


def members(s: Simulator, board: str, **params: Any) -> requests.Response:
    base = {"pn": 1, "pz": 100, "po": 1, "np": 1, "fltt": 2, "invt": 2, "fid": "f12",
            "fs": f"b:{board} f:!50", "fields": "f12,f13,f14"}
    return get(s, **(base | params))


# -- market -------------------------------------------------------------------------------

def test_reference_market_totals() -> None:
    with sim("reference") as s:
        truth = s.truth()
        kinds = Counter(b.kind for b in s.boards())
        by_kind: Counter[str] = Counter()
        for b in s.boards():
            by_kind[b.kind] += len(truth[b.code])
    assert kinds == {"industry": 86, "concept": 441}
    assert by_kind == {"industry": 5450, "concept": 55756}
    assert sum(len(m) for m in truth.values()) == 61206
    assert len(truth["BK0596"]) == max(len(m) for m in truth.values()) == 3674


@pytest.mark.parametrize("seed", [1, 2, 99])
def test_totals_hold_for_every_seed(seed: int) -> None:
    from boardsync.sim.market import Market

    m = Market(load_scenario("reference"), seed)
    assert m.totals()["memberships"] == 61206 and m.totals()["boards"] == 527


def test_real_industry_codes_and_stock_markets() -> None:
    text = (FIXTURES / "industry_board_fundflow_list_p1_of_86_jsonp_candlescyther.json").read_text()
    real = {r["f12"]: r["f14"] for r in json.loads(text[text.index("(") + 1:text.rindex(")")])
            ["data"]["diff"]}
    with sim() as s:
        boards = {b.code: b.name for b in s.boards() if b.kind == "industry"}
        rows = members(s, "BK0596", pz=100).json()["data"]["diff"]
        for pn in range(2, 38):
            rows += members(s, "BK0596", pn=pn).json()["data"]["diff"]
    assert all(boards[c] == n for c, n in real.items())
    assert len(rows) == 3674
    for row in rows:
        code = row["f12"]
        assert len(code) == 6 and code.isdigit()
        assert row["f13"] == (1 if code.startswith(("60", "68")) else 0)
        assert code[:2] in ("60", "68", "00", "30", "83", "87", "92")


# -- parameters and envelope ---------------------------------------------------------------

def test_page_cap_np_forms_and_paging() -> None:
    with sim() as s:
        big = members(s, "BK0596", pz=500).json()
        obj = members(s, "BK0596", pz=100, np=2).json()
        absent = get(s, fs="b:BK0596", pz=100, fields="f12").json()
        last = members(s, "BK0596", pn=37).json()
        past = members(s, "BK0596", pn=38).json()
    assert big["data"]["total"] == 3674 and len(big["data"]["diff"]) == 100
    assert list(obj["data"]["diff"]) == [str(i) for i in range(100)]
    assert isinstance(absent["data"]["diff"], dict)
    assert [r["f12"] for r in obj["data"]["diff"].values()] == [
        r["f12"] for r in big["data"]["diff"]]
    assert len(last["data"]["diff"]) == 74
    assert past["data"] == {"total": 3674, "diff": []}


def test_past_last_page_null_when_configured() -> None:
    with sim(past_end="null") as s:
        assert members(s, "BK0596", pn=38).json()["data"] is None
        assert members(s, "BK0596", pn=37).json()["data"]["total"] == 3674


def test_fltt_scaling_fields_filter_and_missing_values() -> None:
    with sim() as s:
        dec = members(s, "BK0475", fltt=2, fields="f18,f12,f128,f999").json()["data"]["diff"][0]
        ints = members(s, "BK0475", fltt=1, fields="f18,f12,f1").json()["data"]["diff"][0]
        other = members(s, "BK0475", fltt=2, fields="f12,f13,f14").json()["data"]["diff"]
    assert list(dec) == ["f12", "f18", "f128", "f140", "f141", "f999"]
    assert dec["f128"] == dec["f140"] == dec["f141"] == dec["f999"] == "-"
    assert isinstance(dec["f18"], float)
    assert list(ints) == ["f1", "f12", "f18"] and ints["f1"] == 2
    assert isinstance(ints["f18"], int) and ints["f18"] == round(dec["f18"] * 100)
    assert all(list(r) == ["f12", "f13", "f14"] for r in other)


def test_jsonp_unknown_board_plus_separators_alias_and_404() -> None:
    with sim() as s:
        jsonp = members(s, "BK0475", cb="jQuery1123_99").text
        unknown = members(s, "BK9999").json()
        plus = requests.get(f"{s.upstream_url}{CLIST}?fs=b%3ABK0475%2Bf%3A!50&pz=5&np=1"
                            "&fields=f12", timeout=5).json()
        alias = get(s, path="/webguest/api/qt/clist/get", fs="m:90+t:3+f:!50", np=1).json()
        missing = get(s, path="/api/qt/clist/other", fs="b:BK0475")
        root = get(s, path="/")
    assert jsonp.startswith("jQuery1123_99({\"rc\":0,") and jsonp.endswith("}});")
    assert unknown["rc"] == 0 and unknown["data"] is None
    assert plus["data"]["total"] > 0 and len(plus["data"]["diff"]) == 5
    assert alias["data"]["total"] == 441
    assert missing.status_code == 404 and root.status_code == 404


def test_f3_sort_moves_while_f12_sort_is_stable() -> None:
    # Price periods of 1-2 simulated seconds = 10-20 ms real: prices move while we page.
    with sim(price_period_min_s=1.0, price_period_max_s=2.0) as s, requests.Session() as h:
        def page(pn: int, fid: str) -> list[str]:
            body = get(s, h, pn=pn, pz=100, po=1, np=1, fltt=2, fid=fid, fs="b:BK0596 f:!50",
                       fields="f3,f12").json()
            return [r["f12"] for r in body["data"]["diff"]]

        by_f3 = [c for pn in range(1, 38) for c in page(pn, "f3")]
        by_f12 = [c for pn in range(1, 38) for c in page(pn, "f12")]
        again = [c for pn in range(1, 38) for c in page(pn, "f12")]
        first = page(1, "f3")
        assert wait_until(lambda: page(1, "f3") != first, limit=3.0)
    assert by_f12 == again == sorted(by_f12, reverse=True) and len(set(by_f12)) == 3674
    assert len(by_f3) == 3674 and len(set(by_f3)) < 3674  # duplicates, hence gaps


def test_board_list_matches_real_capture_structure() -> None:
    """Envelope keys, key order, types and the JSONP form of the real industry-list capture."""
    raw = (FIXTURES / "industry_board_fundflow_list_p1_of_86_jsonp_candlescyther.json").read_text()
    cb = raw[: raw.index("(")]
    real = json.loads(raw[len(cb) + 1: raw.rindex(")")])
    fields = "f12,f14,f2,f3,f62,f184,f66,f69,f72,f75,f78,f81,f84,f87,f204,f205,f124,f1,f13"
    with sim() as s:
        text = get(s, cb=cb, fid="f62", po=1, pz=50, pn=1, np=1, fltt=2, invt=2,
                   fs="m:90 t:2", fields=fields, ut="b2884a393a59ad64002292a3e90d46a5",
                   _="1761565635682").text
        row_fp = json.loads((FIXTURES / "industry_board_list_row_fltt1_fundpulse.json")
                            .read_text())
        fp = get(s, fltt=1, np=1, pz=1, fid="f3", fs="m:90+t:2+f:!50",
                 fields=",".join(sorted(row_fp, key=lambda k: int(k[1:])))).json()
    assert text.startswith(cb + "(") and text.endswith(");")
    assert raw.endswith(");")
    ours = json.loads(text[len(cb) + 1: text.rindex(")")])
    assert list(ours) == list(real)
    assert {k: v for k, v in ours.items() if k != "data"} == {
        k: v for k, v in real.items() if k != "data"}
    assert list(ours["data"]) == list(real["data"]) == ["total", "diff"]
    assert ours["data"]["total"] == real["data"]["total"] == 86
    assert len(ours["data"]["diff"]) == len(real["data"]["diff"]) == 50
    real_row, our_row = real["data"]["diff"][0], ours["data"]["diff"][0]
    assert list(our_row) == list(real_row)  # ascending keys, f206 added after f205
    for key, value in real_row.items():
        assert type(our_row[key]) is type(value), key
    assert our_row["f13"] == 90 and our_row["f12"].startswith("BK")
    fp_row = fp["data"]["diff"][0]
    assert list(fp_row) == list(row_fp)  # f140, f141 right after f128, before f136
    for key, value in row_fp.items():
        assert type(fp_row[key]) is type(value), key


# -- anti-bot and faults --------------------------------------------------------------------

def _outcome(s: Simulator, session: requests.Session, timeout: float = 5.0) -> str:
    try:
        r = session.get(s.upstream_url + CLIST, timeout=timeout,
                        params={"fs": "b:BK0596 f:!50", "pz": 100, "np": 1, "fid": "f12",
                                "fields": "f12,f13,f14"})
    except requests.exceptions.ReadTimeout:
        return "timeout"
    except requests.exceptions.ChunkedEncodingError:
        return "truncated"
    except requests.exceptions.ConnectionError:
        return "closed"
    if r.status_code != 200:
        return str(r.status_code)
    if r.headers["Content-Type"].startswith("text/html"):
        return "html"
    return "null" if r.json()["data"] is None else "ok"


def test_ban_on_burst_then_expiry() -> None:
    # One token per 1,000 simulated s, burst 3, a ban of ``ban`` simulated s (``ban * SCALE``
    # s of the fake clock): the simulator reads time only through its clock, so nothing
    # refills or expires unless the test moves it.
    clock = FakeClock()
    ban = 20.0
    with sim(rate_per_s=0.001, burst=3.0, ban_s=ban, ban_close_fraction=0.0,
             clock=clock) as s, requests.Session() as h:
        outcomes = [_outcome(s, h) for _ in range(5)]
        assert outcomes[:3] == ["ok"] * 3 and outcomes[3:] == ["403", "403"]
        c = s.counters()
        assert (c["bans"], c["banned_requests"]) == (1, 2)
        assert c["banned_identities_now"] == ["127.0.0.1"]
        clock.advance(ban * SCALE * 0.95)  # just before the ban ends
        assert _outcome(s, h) == "403"
        clock.advance(ban * SCALE * 0.1)  # just after
        assert s.counters()["banned_identities_now"] == []
        assert _outcome(s, h) == "ok"
        assert s.counters()["bans"] == 1


def test_every_part_reads_time_through_the_injected_clock() -> None:
    clock = FakeClock()
    with sim(scale=0.5, clock=clock) as s:
        assert s.counters()["sim_time_s"] == 0
        clock.advance(5.0)
        assert s.counters()["sim_time_s"] == 10.0  # simulated = clock seconds / time_scale
        row = get(s, pn=1, pz=1, np=1, fltt=2, fs=LIST_FS["industry"],
                  fields="f12,f124").json()["data"]["diff"][0]
        assert row["f124"] == int(clock.wall().timestamp())
        item = requests.get(s.extract_url, params={"key": s.api_key, "num": 1, "format": "json"},
                            timeout=5).json()["data"][0]
        lifetime = s.scenario.ip_lifetime_s * 0.5
        expires = (clock.wall() + timedelta(seconds=lifetime)).astimezone(PROVIDER_ZONE)
        assert item["expire_time"] == expires.strftime("%Y-%m-%d %H:%M:%S")
        assert item["ttl"] == round(lifetime, 3)


def test_ban_response_mix() -> None:
    with sim(rate_per_s=0.001, burst=1.0, ban_s=100000.0, ban_close_fraction=0.5) as s:
        with requests.Session() as h:
            outcomes = Counter(_outcome(s, h) for _ in range(400))
        c = s.counters()
    assert outcomes["ok"] == 1 and c["bans"] == 1
    assert outcomes["closed"] == c["banned_closed"] and outcomes["403"] == c["banned_403"]
    assert 0.4 < outcomes["closed"] / 399 < 0.6


RATES = {"fault_reset": 0.1, "fault_hang": 0.03, "fault_http_502": 0.1, "fault_html": 0.1,
         "fault_truncated": 0.1, "fault_null_data": 0.1}


def test_each_fault_class_at_its_rate() -> None:
    n = 1000
    with sim(seed=3, hang_s=2.0, **RATES) as s:
        with requests.Session() as h:
            seen = Counter(_outcome(s, h, timeout=0.5) for _ in range(n))
        faults = s.counters()["faults"]
    for cls in ("reset", "hang", "http_502", "html", "truncated", "null_data"):
        rate = RATES[f"fault_{cls}"]
        assert abs(faults[cls] / n - rate) < 4 * math.sqrt(rate * (1 - rate) / n) + 0.005, cls
    # What the client saw is exactly what the simulator counted.
    assert seen["502"] == faults["http_502"] and seen["html"] == faults["html"]
    assert seen["null"] == faults["null_data"] and seen["truncated"] == faults["truncated"]
    assert seen["closed"] + seen["timeout"] == faults["reset"] + faults["hang"]
    assert seen["ok"] == n - sum(faults.values())


def test_hang_outlasts_client_timeout() -> None:
    # 50 simulated s = 0.5 s real, five times the client's read timeout.
    with sim(fault_hang=1.0, hang_s=50.0) as s, requests.Session() as h:
        assert _outcome(s, h, timeout=0.1) == "timeout"
        assert s.counters()["faults"] == {"hang": 1}


def test_latency_follows_scenario() -> None:
    """The drawn latencies are lognormal with the scenario's median and p99 (exact, no clock),
    and the server really waits them out: a sleep never ends early, so a lower bound on the
    wall time is safe on a loaded machine where an upper bound would not be."""
    scn = load_scenario("clean").with_overrides(
        **(UNLIMITED | {"latency_median_s": 3.0, "latency_p99_s": 6.0}))
    judge = AntiBot(scn, seed=7).judge
    drawn = sorted(judge("10.0.0.1", float(i), is_members=True).latency_s for i in range(4000))
    assert abs(drawn[2000] / 3.0 - 1) < 0.05 and abs(drawn[3960] / 6.0 - 1) < 0.1
    # median 3 s simulated = 30 ms real at this scale.
    with sim(latency_median_s=3.0, latency_p99_s=6.0) as s, requests.Session() as h:
        times = []
        for _ in range(15):
            t0 = time.monotonic()
            assert _outcome(s, h) == "ok"
            times.append(time.monotonic() - t0)
    assert sorted(times)[7] > 0.015


def _sequence(seed: int) -> tuple[list[str], list[str]]:
    rates = {k: v for k, v in RATES.items() if k != "fault_hang"}
    with sim("hostile", seed=seed, fault_hang=0.0, **rates) as s, \
            requests.Session() as h:
        outs = []
        for i in range(150):
            try:
                r = h.get(s.upstream_url + CLIST, timeout=5, params={
                    "fs": f"b:{'BK0596' if i % 2 else 'BK0475'}", "pz": 100, "np": 1,
                    "fid": "f12", "fields": "f12,f14"})
                outs.append(f"{r.status_code}:{r.text}")
            except requests.exceptions.RequestException as e:
                outs.append(type(e).__name__)
        truth = s.truth()
        boards = [f"{b.code}:{b.name}:{sorted(truth[b.code])[:3]}" for b in s.boards()]
    return outs, boards


def test_same_seed_same_market_and_same_responses() -> None:
    a, b, c = _sequence(5), _sequence(5), _sequence(6)
    assert a == b
    assert a[1] != c[1] and a[0] != c[0]


# -- churn, outage, shrink, admin -------------------------------------------------------------

def test_advance_day_churn_matches_truth_and_upstream() -> None:
    with sim() as s:
        before = s.truth()
        report = s.advance_day()
        after = s.truth()
        (deleted,), (added,) = report["deleted_boards"], report["added_boards"]
        gone = members(s, deleted).json()
        new = members(s, added).json()
        concept_total = get(s, fs=LIST_FS["concept"], np=1, pz=100, fid="f12",
                            fields="f12").json()["data"]["total"]
        listed = {r["f12"] for pn in range(1, 6) for r in get(
            s, fs=LIST_FS["concept"], np=1, pz=100, pn=pn, fid="f12",
            fields="f12").json()["data"]["diff"]}
    assert sum(map(len, report["joined"].values())) > len(after[added])  # real joins too
    assert sum(map(len, report["left"].values())) > 0
    expected = {code: (before.get(code, frozenset()) | report["joined"].get(code, set()))
                - report["left"].get(code, set()) for code in set(before) | {added}
                if code != deleted}
    assert after == expected
    assert gone["data"] is None and deleted not in listed and added in listed
    assert new["data"]["total"] == len(after[added])
    assert concept_total == 441


def test_outage_and_shrink() -> None:
    with sim() as s, requests.Session() as h:
        s.set_outage("502")
        assert _outcome(s, h) == "502"
        s.set_outage("reset")
        assert _outcome(s, h) == "closed"
        s.set_outage(None)
        assert _outcome(s, h) == "ok"
        s.set_shrink("BK0596", 0.5)
        assert members(s, "BK0596").json()["data"]["total"] == 1837
        s.set_shrink("BK0596", None)
        assert members(s, "BK0596").json()["data"]["total"] == 3674
        assert len(s.truth()["BK0596"]) == 3674
        assert s.counters()["faults"] == {"outage_502": 1, "outage_reset": 1}
        with pytest.raises(ValueError):
            s.set_outage("teapot")


def test_admin_endpoints() -> None:
    with sim() as s:
        members(s, "BK0475")
        truth = requests.get(s.admin_url + "/truth", timeout=5).json()
        counters = requests.get(s.admin_url + "/counters", timeout=5).json()
        churn = requests.post(s.admin_url + "/advance-day", timeout=5).json()
        mode = requests.post(s.admin_url + "/mode", timeout=5,
                             json={"outage": "502", "shrink": {"board": "BK0475",
                                                               "fraction": 0.5}}).json()
        outage = members(s, "BK0475").status_code
        assert requests.get(s.admin_url + "/nope", timeout=5).status_code == 404
    assert len(truth) == 527 and sum(map(len, truth.values())) == 61206
    assert counters["requests"] == 1 and counters["requests_by_board"] == {"BK0475": 1}
    assert set(churn) == {"joined", "left", "added_boards", "deleted_boards"}
    assert mode == {"outage": "502", "shrink": {"BK0475": 0.5}} and outage == 502


def test_scenarios_load_and_validate(tmp_path: Path) -> None:
    ref, clean, hostile = (load_scenario(n) for n in ("reference", "clean", "hostile"))
    assert isinstance(ref, Scenario) and ref.fault_reset == pytest.approx(0.065)
    assert sum(clean.fault_rates().values()) == 0 and clean.ip_doa_fraction == 0
    assert hostile.fault_reset > 2 * ref.fault_reset and hostile.ban_s > ref.ban_s
    assert hostile.rate_per_s < ref.rate_per_s
    path = tmp_path / "mine.toml"
    path.write_text("[faults]\nfault_reset = 0.5\n")
    assert load_scenario(str(path)).fault_reset == 0.5
    path.write_text("bogus = 1\n")
    from boardsync.errors import ConfigError

    with pytest.raises(ConfigError):
        load_scenario(str(path))
    with pytest.raises(ConfigError):
        load_scenario("nonesuch")
    with pytest.raises(ConfigError):
        ref.with_overrides(fault_reset=2.0)


def test_region_boards_optional() -> None:
    with sim(region_boards=31) as s:
        listed = get(s, fs="m:90 t:1 f:!50", np=1, pz=100, fid="f12", fields="f12,f14").json()
        truth = s.truth()
        regions = [b.code for b in s.boards() if b.kind == "region"]
    assert listed["data"]["total"] == len(regions) == 31
    assert all(r["f14"].endswith("板块") for r in listed["data"]["diff"])
    union = [code for board in regions for code in truth[board]]
    assert len(union) == len(set(union)) == 5320  # every stock in exactly one region
