"""The default settings in every world: the named scenarios and N drawn ones, against bounds.

For each world, one full sync at the default settings (the learner, a fresh database) through
the world's extraction API, printing wall / the world's time bound at the IPs used, IPs / the
IP bound, bans, IPs lost to bans and exactness; then the worst of each. ``clean`` is also run
in direct mode (one identity), against the one-identity bound. Figures are simulated seconds
(measured / time scale). Drawn worlds point the client at a (host, route) the world leaves
healthy for library clients. ``--runs 2`` syncs each world twice on one database: the second
run starts from what the first learned (a scheduled job's steady state).

    .venv/bin/python bench/worlds.py [--worlds 20] [--world-seed 1] [--scale 0.2]
        [--named reference,clean,hostile] [--seed 7] [--runs 2] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lower_bound import (  # noqa: E402 - bench/ is not a package
    Rules,
    ip_lower_bound,
    list_pages_needed,
    requests_needed,
    time_lower_bound,
)

from boardsync.config import load_settings  # noqa: E402
from boardsync.demo import simulated  # noqa: E402
from boardsync.run import Run  # noqa: E402
from boardsync.sim import Scenario, load_scenario  # noqa: E402
from boardsync.sim.hosts import CLIST_HOSTS, RouteTable  # noqa: E402
from boardsync.sim.world import draw_world  # noqa: E402
from boardsync.store import Store  # noqa: E402


def healthy_host(s: Scenario) -> str:
    """The first clist host whose ``api`` route the world leaves ``ok`` for every client."""
    table = RouteTable(s.routes)
    for host in CLIST_HOSTS:
        if table.health(host, "api").describe() == "ok":
            return host
    return "push2"


def needed_requests(sim: Any) -> int:
    truth = sim.truth()
    kinds: dict[str, int] = {}
    for b in sim.boards():
        if b.kind in ("industry", "concept"):
            kinds[b.kind] = kinds.get(b.kind, 0) + 1
    return requests_needed((len(m) for m in truth.values()), list_pages_needed(kinds.values()))


def one_world(s: Scenario, proxy: str, scale: float, seed: int, sets: dict[str, Any],
              runs: int = 1) -> list[dict[str, Any]]:
    """``runs`` syncs of world ``s`` at the default settings, one database: the first starts
    from nothing, each later one from what the runs before it learned (the scheduled job's
    steady state). Figures in simulated seconds."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite:///{tmp}/bench.db"
        empty = Path(tmp) / "empty.toml"
        empty.write_text("")
        flags = {"db_url": db_url, "state_path": f"{tmp}/state.json", "progress": "none",
                 "force": True} | sets  # the shipped defaults: the learner
        base = load_settings(flags, env={}, config_path=empty)
        with simulated(base, s, time_scale=scale, seed=seed, proxy=proxy, tls=False) as (
                settings, sim):
            host = healthy_host(s)
            settings = settings.replace(upstream_url=sim.http_urls[host])
            needed = needed_requests(sim)
            for i in range(runs):
                rows.append(one_run(s, proxy, scale, settings, sim, needed)
                            | {"run": i + 1, "host": host})
    return rows


def one_run(s: Scenario, proxy: str, scale: float, settings: Any, sim: Any, needed: int
            ) -> dict[str, Any]:
    """One sync against a running world; bans and lost IPs counted for this run alone."""
    before = sim.counters()["bans"]
    ab = sim.state.antibot
    banned_before = {name for name, ident in ab.identities.items()
                     if ident.banned_until > -math.inf}
    started = time.monotonic()
    run = Run(settings)
    summary = run.run()
    wall = (time.monotonic() - started) / scale
    truth, counters = sim.truth(), sim.counters()
    lost = sum(1 for name, ident in ab.identities.items()
               if ident.banned_until > -math.inf and name != "127.0.0.1"
               and name not in banned_before)
    learned = run.rate.learner.allowance if run.rate.learner else None
    store = Store(settings.db_url)
    exact = all(store.member_codes(code) == set(codes) for code, codes in truth.items())
    rules = Rules.from_scenario(s)
    ips = max(1, summary.ips_extracted)
    if proxy == "direct":
        rules = replace(rules, lifetime=1e9, quota=1, max_num=1)
        ips = 1
    t_lb = time_lower_bound(needed, ips, rules)
    ip_lb = ip_lower_bound(needed, rules)
    return {"world": s.name, "proxy": proxy, "wall": wall, "t_lb": t_lb, "ips": ips,
            "ip_lb": ip_lb, "bans": counters["bans"] - before, "lost": lost,
            "ok": summary.ok, "total": len(truth), "exact": exact, "status": summary.status,
            "quota": s.extract_quota_per_day, "learned": learned}


def show(r: dict[str, Any]) -> None:
    a = r["learned"]
    young = f" (young {a.young_rate:.3g}/s to {a.young_span:.0f} s)" if a and a.young_rate else ""
    learned = (f"learned {a.rate:.3g}/s{young} b{a.burst} c{a.concurrency} "
               f"w{list(a.windows)}" if a else "")
    print(f"{r['world']:>12} {r['proxy']:>6} #{r['run']}  wall {r['wall']:8.1f} s / bound "
          f"{r['t_lb']:7.1f} s = {r['wall'] / r['t_lb']:5.2f}   IPs {r['ips']:4d} / "
          f"{r['ip_lb']:3d} = {r['ips'] / r['ip_lb']:5.2f}   bans {r['bans']:3d}  lost "
          f"{r['lost']:3d} ({r['lost'] / r['ips']:4.0%})  {r['ok']}/{r['total']} "
          f"{'exact' if r['exact'] else 'NOT exact'} ({r['status']}, {r['host']})  {learned}",
          flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worlds", type=int, default=20, help="drawn worlds (0 = none)")
    ap.add_argument("--world-seed", type=int, default=1, help="first drawn world's seed")
    ap.add_argument("--named", default="reference,clean,hostile")
    ap.add_argument("--scale", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=7, help="the market's seed")
    ap.add_argument("--runs", type=int, default=1,
                    help="syncs per world on one database (2: also the warm start)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    sets = dict(item.partition("=")[::2] for item in args.set)
    base = load_scenario("reference")
    worlds: list[tuple[Scenario, str]] = [(load_scenario(n), "api")
                                          for n in args.named.split(",") if n]
    if "clean" in args.named.split(","):
        worlds.append((load_scenario("clean"), "direct"))
    worlds += [(draw_world(args.world_seed + i, base), "api") for i in range(args.worlds)]
    rows = []
    for s, proxy in worlds:
        for r in one_world(s, proxy, args.scale, args.seed, sets, args.runs):
            show(r)
            rows.append(r)
    api = [r for r in rows if r["proxy"] == "api"]
    print(f"worst: wall/bound {max(r['wall'] / r['t_lb'] for r in api):.2f}, IPs/bound "
          f"{max(r['ips'] / r['ip_lb'] for r in api):.2f}, lost "
          f"{max(r['lost'] / r['ips'] for r in api):.0%}, bans {max(r['bans'] for r in api)}, "
          f"complete+exact {sum(r['ok'] == r['total'] and r['exact'] for r in rows)}"
          f"/{len(rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
