"""``draw_world``: reproducible worlds from documented ranges, plausible, market untouched; and
what ``boardsync sim serve --world-seed`` prints and the admin endpoint serves."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest
import requests

from boardsync.sim import load_scenario
from boardsync.sim.cli_support import banner, scenario_for
from boardsync.sim.hosts import CLIST_HOSTS, ROUTES, RouteTable
from boardsync.sim.scenario import CHOICES, Scenario
from boardsync.sim.simulator import Simulator
from boardsync.sim.world import (
    BAN_SIGNALS,
    DRAWN_KEYS,
    LATENCY_P99_MAX_S,
    RANGES,
    WINDOW_MAX_S,
    describe_world,
    draw_routes,
    draw_world,
)

REFERENCE = load_scenario("reference")
SEEDS = range(300)
SIMPLE = ("rate_per_s", "burst", "concurrency_cap", "ban_s", "extract_max_num", "ip_lifetime_s",
          "extract_quota_per_day", "extract_min_interval_s", "ip_doa_fraction",
          "tunnel_rotate_s", "latency_median_s")


def within(key: str, value: float) -> bool:
    span = RANGES[key]
    return span.low <= value <= span.high and (not span.integer or value == int(value))


def test_the_same_seed_gives_the_same_world() -> None:
    assert draw_world(42, REFERENCE) == draw_world(42, REFERENCE)
    assert draw_world(42, REFERENCE).name == "world-42"


def test_twenty_seeds_give_twenty_worlds() -> None:
    worlds = [draw_world(seed, REFERENCE) for seed in range(20)]
    drawn = {tuple(getattr(w, k) for k in DRAWN_KEYS) for w in worlds}
    assert len(drawn) == 20


def test_the_world_does_not_depend_on_the_base() -> None:
    a, b = draw_world(5, REFERENCE), draw_world(5, load_scenario("hostile"))
    assert all(getattr(a, k) == getattr(b, k) for k in DRAWN_KEYS)


@pytest.mark.parametrize("base_name", ["reference", "hostile", "clean"])
def test_the_market_and_every_undrawn_knob_are_the_base_s(base_name: str) -> None:
    base = load_scenario(base_name)
    for seed in range(10):
        world = draw_world(seed, base)
        for f in dataclasses.fields(Scenario):
            if f.name not in DRAWN_KEYS + ("name",):
                assert getattr(world, f.name) == getattr(base, f.name), f.name


def test_every_drawn_value_lies_in_its_documented_range() -> None:
    for seed in SEEDS:
        check_ranges(draw_world(seed, REFERENCE))


def check_ranges(w: Scenario) -> None:
    for key in SIMPLE:
        assert within(key, getattr(w, key)), (w.name, key, getattr(w, key))
    assert isinstance(w.concurrency_cap, int) and isinstance(w.extract_quota_per_day, int)
    assert w.ban_signal in BAN_SIGNALS and w.ttl_format in CHOICES["ttl_format"]
    assert w.latency_median_s * 2 <= w.latency_p99_s * 1.001
    assert w.latency_p99_s <= LATENCY_P99_MAX_S
    assert within("windows", len(w.windows))
    for health in dict(w.routes).values():
        kind, _, arg = health.partition(":")
        if kind == "intermittent":
            assert within("intermittent_share", float(arg))
        elif kind == "stale":
            assert within("stale_lag_s", float(arg))


def test_windows_can_each_be_the_one_that_refuses() -> None:
    for seed in SEEDS:
        w = draw_world(seed, REFERENCE)
        for n, width in w.windows:
            assert isinstance(n, int) and n >= 1, w.name
            assert RANGES["window_s"].low <= width <= WINDOW_MAX_S, w.name
            assert n < w.burst + w.rate_per_s * width, w.name  # the bucket alone allows more
        if len(w.windows) == 2:
            (n1, w1), (n2, w2) = w.windows
            assert w2 >= 2 * w1 * 0.999 and n1 < n2 < n1 * w2 / w1, w.name


def test_some_clist_route_is_healthy_for_a_library_client() -> None:
    pairs = [(h, r) for h in CLIST_HOSTS for r in ROUTES]
    for seed in SEEDS:
        w = draw_world(seed, REFERENCE)
        table = RouteTable(w.routes)
        assert {key for key, _ in w.routes} == {f"{h}/{r}" for h, r in pairs}, w.name
        assert any(table.health(h, r).kind == "ok" for h, r in pairs), w.name
        assert table.health("quote", "api").kind == "ok"  # the board directory stays reachable


def test_worlds_vary_every_knob_across_seeds() -> None:
    worlds = [draw_world(seed, REFERENCE) for seed in SEEDS]
    for key in DRAWN_KEYS:
        assert len({repr(getattr(w, key)) for w in worlds}) > 1, key
    assert {len(w.windows) for w in worlds} == {0, 1, 2}
    assert {w.ttl_format for w in worlds} == set(CHOICES["ttl_format"])
    assert {w.ban_signal for w in worlds} == set(BAN_SIGNALS)


def test_describe_world_prints_the_drawn_rules() -> None:
    w = draw_world(3, REFERENCE)
    text = "\n".join(describe_world(w))
    assert "world-3" in text and f"{w.rate_per_s:g} req/s" in text
    assert f"burst {w.burst:g}" in text and f"{w.ban_s:g} s, signalled by {w.ban_signal}" in text
    assert f"TTL given as {w.ttl_format}" in text and f"{w.extract_quota_per_day} IPs a day" in text
    for n, width in w.windows:
        assert f"{n} per {width:g} s" in text
    for key, health in w.routes:
        host, _, route = key.partition("/")
        assert f"{route} {health}" in text and f"{host}:" in text


def test_scenario_for_draws_only_with_a_world_seed() -> None:
    assert scenario_for("reference") == REFERENCE
    assert scenario_for("reference", 9) == draw_world(9, REFERENCE)


def test_serve_banner_puts_the_rules_before_the_urls_and_admin_serves_them() -> None:
    world = scenario_for("clean", 11)
    with Simulator(world, time_scale=0.01, seed=7) as s:
        lines = banner(s, world=True)
        served = requests.get(s.admin_url + "/scenario", timeout=5).json()
        plain = banner(s)
    assert lines[: len(describe_world(world))] == describe_world(world)
    assert lines.index(next(x for x in lines if x.startswith("upstream"))) > len(
        describe_world(world))
    assert plain[0].startswith("host push2") and plain[-4].startswith("upstream")
    assert served["name"] == "world-11"
    for key in DRAWN_KEYS:
        expected = getattr(world, key)
        got = served[key]
        if key in ("windows", "routes"):
            got = tuple(tuple(x) for x in got)
        assert got == expected, key


class _AllRefuse(random.Random):
    """A draw in which every route health comes out ``refuse`` (rare: 0.6 ** 18 per world)."""

    def choices(self, population: Any, *args: Any, **kwargs: Any) -> list[Any]:
        return ["refuse"]


def test_a_world_where_every_route_refuses_gets_one_ok_route() -> None:
    routes = dict(draw_routes(_AllRefuse("x")))
    assert list(routes.values()).count("ok") == 1 and len(routes) == 18
