"""The simulator's 2026 market (``today``) and its board directory, against real sockets where
the HTTP layer is involved; and a pin that keeps the calibrated scenarios' markets unchanged."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from boardsync.errors import ConfigError
from boardsync.sim import Scenario, Simulator, load_scenario
from boardsync.sim.levels import INDUSTRY_MOVES, PERIOD_DAYS, directory_json, directory_rows
from boardsync.sim.market import Market

SCALE = 0.01
CLIST = "/api/qt/clist/get"
#: A host every client may use in `today` (bare push2 on /api/ refuses library clients there).
HOST = "29.push2"
#: No latency, no rate limit, no faults: these tests read the market, not the anti-bot.
QUIET: dict[str, Any] = {"latency_median_s": 0.0, "rate_per_s": 1e6, "burst": 1e6,
                         **{f"fault_{c}": 0.0 for c in ("reset", "hang", "http_502", "html",
                                                        "truncated", "null_data")}}
LEVELS = {1: 31, 2: 128, 3: 337}

#: sha256 of ``_market_digest("reference", 7)``, computed at commit 5c38a08 (before the
#: ``today`` market existed). A change here means the calibrated markets drifted: every
#: figure in ``reference.toml`` would have to be measured again.
REFERENCE_DIGEST = "4fd30a01b4960de2661e57e48dc2556bbabfd344a54dcc33aeb8b061df5bee23"


def _market_digest(name: str, seed: int, days: int = 2) -> str:
    """Everything a scenario's market draws: stocks, quotes, boards, members and ``days`` of
    churn (the reports and the markets after them)."""
    m = Market(load_scenario(name), seed)
    h = hashlib.sha256()

    def feed() -> None:
        for code in sorted(m.stocks):
            s = m.stocks[code]
            q = s.quote
            h.update(repr((code, s.name, s.market, s.shares, q.prev_close, q.base_pct,
                           q.amp_pct, q.period_s, q.phase, q.limit_pct)).encode())
        for code in sorted(m.boards):
            b = m.boards[code]
            q = b.quote
            h.update(repr((code, b.name, b.kind, b.up, b.down, b.leader, b.laggard,
                           q.prev_close, q.base_pct, q.amp_pct, q.period_s, q.phase,
                           sorted(m.members[code]))).encode())

    feed()
    for _ in range(days):
        r = m.advance_day()
        h.update(repr(sorted(
            (k, sorted((b, sorted(v)) for b, v in r[k].items()) if isinstance(r[k], dict)
             else r[k]) for k in r)).encode())
        feed()
    return h.hexdigest()


@pytest.mark.parametrize("name", ["reference", "clean", "hostile"])
def test_calibrated_markets_unchanged(name: str) -> None:
    # clean and hostile share reference's market knobs, so their markets are the same one.
    assert _market_digest(name, 7) == REFERENCE_DIGEST


# -- helpers ---------------------------------------------------------------------------------

def _today(**overrides: Any) -> Scenario:
    return load_scenario("today").with_overrides(**(QUIET | overrides))


@pytest.fixture(scope="module")
def today() -> Iterator[Simulator]:
    """One read-only ``today`` simulator for the tests that do not advance the day."""
    with Simulator(_today(), time_scale=SCALE, seed=7) as sim:
        yield sim


def _get(sim: Simulator, **params: Any) -> dict[str, Any]:
    r = requests.get(sim.http_urls[HOST] + CLIST, params=params, timeout=5)
    r.raise_for_status()
    body: dict[str, Any] = r.json()
    return body


def _list(sim: Simulator, fs: str) -> list[str]:
    """Every code a list ``fs`` returns, paged at the server's cap."""
    codes: list[str] = []
    pn = 1
    while True:
        data = _get(sim, fs=fs, pn=pn, pz=100, np=1, fltt=2, po=1, fid="f12",
                    fields="f12,f13,f14")["data"]
        codes += [row["f12"] for row in data["diff"]]
        if not data["diff"] or len(codes) >= data["total"]:
            assert len(codes) == data["total"]
            return codes
        pn += 1


def _members(sim: Simulator, board: str) -> requests.Response:
    return requests.get(sim.http_urls[HOST] + CLIST, timeout=5, params={
        "fs": f"b:{board} f:!50", "pn": 1, "pz": 100, "np": 1, "fltt": 2, "fid": "f12",
        "fields": "f12,f14"})


def _check_levels(m: Market) -> None:
    """Each stock in exactly one listed board per level, and every board inside its parent."""
    for level, n in LEVELS.items():
        codes = m.boards_of_level(level)
        assert len(codes) == n
        counted = Counter(stock for code in codes for stock in m.members[code])
        assert set(counted) == set(m.stocks) and set(counted.values()) == {1}
    for level in (2, 3):
        for code in m.boards_of_level(level):
            parent = m.parent[code]
            assert m.level_of(parent) == level - 1
            assert m.members[code] <= m.members[parent]
    for code in m.boards_of_level(1) + m.boards_of_level(2):
        children = [c for c in m.boards_of_level(m.levels[code] + 1) if m.parent[c] == code]
        assert children and set().union(*(m.members[c] for c in children)) == m.members[code]


# -- the market over HTTP --------------------------------------------------------------------

def test_today_lists_and_level_filters(today: Simulator) -> None:
    industry = _list(today, "m:90 t:2 f:!50")
    concept = _list(today, "m:90 t:3 f:!50")
    region = _list(today, "m:90 t:1 f:!50")
    by_level = {level: _list(today, f"m:90 s:{2 ** level} f:!50") for level in LEVELS}
    assert (len(industry), len(concept), len(region)) == (496, 504, 31)
    assert {k: len(v) for k, v in by_level.items()} == LEVELS
    assert sorted(industry) == sorted(c for v in by_level.values() for c in v)
    assert not set(industry) & set(concept) and not set(region) & (set(industry) | set(concept))
    m = today.state.market
    assert all(m.level_of(c) == level for level, v in by_level.items() for c in v)
    assert m.level_of(concept[0]) is None and m.level_of("BK9999") is None
    assert all("Ⅲ" in m.boards[c].name for c in by_level[3])
    assert not any("Ⅲ" in m.boards[c].name for c in by_level[1] + by_level[2])


def test_today_fs_forms(today: Simulator) -> None:
    plus = _get(today, fs="m:90+t:2+f:!50", pz=1, np=1, fields="f12")["data"]["total"]
    both = _get(today, fs="m:90+t:2+f:!50,m:90+t:3+f:!50", pz=1, fields="f12")
    spaced = _get(today, fs="m:90 t:2 f:!50,m:90 t:3 f:!50", pz=1, fields="f12")
    levels = _get(today, fs="m:90 s:2 f:!50,m:90 s:4 f:!50", pz=1, fields="f12")
    narrowed = _get(today, fs="m:90 t:2 s:8 f:!50", pz=1, fields="f12")
    mismatched = _get(today, fs="m:90 t:3 s:8 f:!50", pz=1, fields="f12")
    unknown = _get(today, fs="m:90 e:4 f:!50", pz=1, fields="f12")
    assert plus == 496
    assert both["data"]["total"] == spaced["data"]["total"] == 1000
    assert isinstance(both["data"]["diff"], dict)  # np absent: an object, as before
    assert levels["data"]["total"] == 31 + 128 and narrowed["data"]["total"] == 337
    assert mismatched["data"]["total"] == 0 and unknown["data"] is None


def test_today_market_shape() -> None:
    m = Market(_today(), 11)
    totals = m.totals()
    assert totals["industry_boards"] == 496 and totals["industry_memberships"] == 3 * 5420
    assert totals["concept_boards"] == 504 and totals["region_boards"] == 31
    assert totals["concept_memberships"] == 64000
    _check_levels(m)
    sizes = sorted((len(m.members[c]) for c in m.boards_of_kind("concept")), reverse=True)
    assert sizes[0] == len(m.members["BK0596"]) == 3702 and sizes[1] <= 2500
    assert len(m.period) == 4
    assert sorted(m.boards[c].name for c in m.period) == sorted(
        f"2026中报{w}" for w in ("预增", "扭亏", "首亏", "预减"))
    regions = Counter(s for c in m.boards_of_kind("region") for s in m.members[c])
    assert set(regions.values()) == {1} and len(regions) == 5420


def test_today_big_board_pages(today: Simulator) -> None:
    first = _members(today, "BK0596").json()["data"]
    assert first["total"] == 3702 and len(first["diff"]) == 100


# -- the directory ---------------------------------------------------------------------------

def test_directory_is_lists_plus_one_unquoted(today: Simulator) -> None:
    m = today.state.market
    body = json.loads(directory_json(m))
    rows = body["bklist"]
    assert list(body) == ["bklist"]
    assert all(list(r) == ["market", "code", "name", "pinyin", "type", "flag"] for r in rows)
    types = Counter(r["type"] for r in rows)
    assert types == {1: 31, 2: 497, 3: 504}
    flags = Counter(r["flag"] for r in rows if r["type"] == 2)
    assert flags == {1: 31, 2: 128, 3: 338}
    assert {r["flag"] for r in rows if r["type"] != 2} == {0}
    assert all(r["market"] == 90 and r["pinyin"].isascii() for r in rows)
    listed = set(_list(today, "m:90 t:2 f:!50"))
    (extra,) = [r for r in rows if r["type"] == 2 and r["code"] not in listed]
    assert extra["code"] == "BK1362" and extra["flag"] == 3
    assert m.level_of("BK1362") == 3 and m.level_of(m.parent["BK1362"]) == 2
    assert "BK1362" not in today.truth()
    unquoted = _members(today, "BK1362")
    unknown = _members(today, "BK9999")
    assert unquoted.text.startswith('{"rc":100,"rt":6,') and unquoted.json()["data"] is None
    assert unknown.json()["rc"] == 0 and unknown.json()["data"] is None


def test_single_level_market_directory_and_filters() -> None:
    m = Market(load_scenario("reference"), 7)
    rows = directory_rows(m)
    assert Counter(r["type"] for r in rows) == {2: 86, 3: 441}
    assert {r["flag"] for r in rows} == {0} and m.level_of("BK0475") is None
    with Simulator(load_scenario("clean").with_overrides(**QUIET), time_scale=SCALE) as sim:
        assert _get(sim, fs="m:90 s:2 f:!50", pz=1)["data"] is None
        assert _members(sim, "BK1362").json()["rc"] == 0


# -- days: period concepts and the revamp ------------------------------------------------------

def _expected(before: dict[str, frozenset[str]], report: dict[str, Any]) -> dict[str, Any]:
    joined, left = report["joined"], report["left"]
    return {code: (before.get(code, frozenset()) | joined.get(code, set()))
            - left.get(code, set()) for code in set(before) | set(report["added_boards"])
            if code not in report["deleted_boards"]}


def test_days_period_concepts_and_revamp() -> None:
    assert PERIOD_DAYS == 2 and load_scenario("today").revamp_day == 3
    with Simulator(_today(), time_scale=SCALE, seed=7) as sim:
        m = sim.state.market
        first = sorted(m.period)
        old_level3 = set(_list(sim, "m:90 s:8 f:!50"))
        old = {c: (m.boards[c].name, frozenset(m.members[c])) for c in old_level3}
        reports = []
        for _ in range(4):
            before = sim.truth()
            reports.append(sim.advance_day())
            assert sim.truth() == _expected(before, reports[-1])
            _check_levels(m)
            assert m.totals()["concept_boards"] == 504
        concept = set(_list(sim, "m:90 t:3 f:!50"))
        level3 = set(_list(sim, "m:90 s:8 f:!50"))
        ended = _members(sim, first[0]).json()
    one, two, three, four = reports
    assert one["period_started"] == one["period_ended"] == [] and one["revamped"] == {}
    assert two["period_ended"] == first and len(two["period_started"]) == 4
    assert four["period_ended"] == two["period_started"]
    assert {m.boards[c].name for c in four["period_started"]} == {
        f"2026年报{w}" for w in ("预增", "扭亏", "首亏", "预减")}
    assert set(four["period_started"]) <= concept and not set(first) & concept
    assert ended["rc"] == 0 and ended["data"] is None
    revamp = three["revamped"]
    assert set(revamp) == old_level3 and not set(revamp.values()) & old_level3
    assert set(revamp) <= set(three["deleted_boards"])
    assert set(revamp.values()) <= set(three["added_boards"]) and level3 == set(revamp.values())
    assert all(m.boards[n].name == old[o][0] for o, n in revamp.items())
    # The same member sets, but for the stocks reclassified on days 1-4 (two leaves each).
    moved = sum(len(old[o][1] ^ m.members[n]) for o, n in revamp.items())
    assert 0 < moved <= 2 * INDUSTRY_MOVES * 4
    assert all(int(n[2:]) > max(int(c[2:]) for c in old_level3) for n in revamp.values())
    assert m.unquoted.keys() == {"BK1362"} and m.level_of("BK1362") == 3


def test_today_is_seeded() -> None:
    a, b, c = Market(_today(), 3), Market(_today(), 3), Market(_today(), 4)
    assert a.truth() == b.truth() and a.truth() != c.truth()
    assert directory_rows(a) == directory_rows(b)
    assert a.advance_day() == b.advance_day()


# -- scenario knobs --------------------------------------------------------------------------

@pytest.mark.parametrize("overrides", [
    {"industry_boards": 495},
    {"industry_memberships": 16259},
    {"industry_levels": (128, 31, 337), "industry_boards": 496},
    {"industry_levels": (10, 20, 30, 40), "industry_boards": 100},
    {"industry_levels": (31, 0, 337), "industry_boards": 368},
    {"revamp_level": 4},
    {"period_concepts": 504},
])
def test_today_knobs_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        load_scenario("today").with_overrides(**overrides)


@pytest.mark.parametrize("key", ["revamp_day", "period_concepts", "directory_unquoted"])
def test_today_knobs_need_levels(key: str) -> None:
    with pytest.raises(ConfigError, match=f"{key} needs industry_levels"):
        load_scenario("reference").with_overrides(**{key: 2})
    assert load_scenario("reference").with_overrides(revamp_level=3).industry_levels == ()
