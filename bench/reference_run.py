"""The reference run reproduced and beaten in the simulator, against the scenario's lower bound.

Runs the ``reference`` scenario twice in this process, time-scaled: the baseline with the
reference run's own settings (preset ``reference``: 6 workers, 1-2 s fixed delay, IP TTL 45 s,
2 s between extraction calls, at most 200 IPs) and the best with boardsync's ``fast`` preset
(same constraints). Every figure is converted back to real (simulated) seconds by dividing by
the time scale. Each run syncs into its own SQLite file and is checked for exact equality with
the simulator's ground truth.

    .venv/bin/python bench/reference_run.py [--scale 0.2] [--seed 7] [--only best]
        [--set key=value ...]   # override settings of the best run (experiments)
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lower_bound import (  # noqa: E402 - bench/ is not a package
    Rules,
    expected_requests,
    ip_lower_bound,
    list_pages_needed,
    requests_needed,
    time_lower_bound,
)

from boardsync.config import load_settings  # noqa: E402
from boardsync.demo import simulated  # noqa: E402
from boardsync.run import Run  # noqa: E402
from boardsync.sim import load_scenario  # noqa: E402
from boardsync.store import Store  # noqa: E402

#: The reference run's published figures (SPEC §1 and the scenario's calibration comment).
PUBLISHED = {"wall_s": 6.7 * 60, "ips": 97, "connection_errors": 75, "timeouts": 1,
             "requests": 1000}


def rules_of(scenario: Any) -> Rules:
    return Rules(rate=scenario.rate_per_s, burst=scenario.burst,
                 lifetime=scenario.ip_lifetime_s, interval=scenario.extract_min_interval_s,
                 max_num=scenario.extract_max_num, quota=scenario.extract_quota_per_day)


def one_run(name: str, preset: str, overrides: dict[str, Any], scale: float, seed: int
            ) -> dict[str, Any]:
    """One full sync of the reference scenario; returns real-time figures and checks."""
    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite:///{tmp}/bench.db"
        flags = {"db_url": db_url, "state_path": f"{tmp}/state.json", "progress": "none",
                 "force": True} | overrides
        empty = Path(tmp) / "empty.toml"
        empty.write_text("")  # no config/boardsync.toml from the working directory
        base = load_settings(flags, env={}, config_path=empty, preset=preset)
        with simulated(base, "reference", time_scale=scale, seed=seed) as (settings, sim):
            started = time.monotonic()
            summary = Run(settings).run()
            wall = time.monotonic() - started
            truth = sim.truth()
            counters = sim.counters()
        store = Store(db_url)
        exact = all(store.member_codes(code) == set(codes) for code, codes in truth.items())
    errors = summary.errors
    return {
        "name": name, "preset": preset, "workers": settings.workers,
        "wall_s": wall / scale, "ips": summary.ips_extracted,
        "ips_issued": counters["ips_issued"], "requests": counters["requests"],
        "client_requests": summary.requests, "retries": summary.retries,
        "bans": counters["bans"], "banned_requests": counters["banned_requests"],
        "ok": summary.ok, "total": len(truth), "exact": exact, "status": summary.status,
        "connection_errors": errors.get("connection", 0) + errors.get("proxy_dead", 0),
        "timeouts": errors.get("timeout", 0), "errors": errors,
        "too_fast": counters["extract_refused_too_fast"],
        "extract_calls": counters["extract_calls"],
    }


def parse_sets(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key.strip()] = value.strip()
    return out


def show(r: dict[str, Any]) -> None:
    print(f"{r['name']:>9}: wall {r['wall_s']:7.1f} s ({r['wall_s'] / 60:.2f} min)  "
          f"IPs {r['ips']:3d}  requests {r['requests']:5d}  retries {r['retries']:3d}  "
          f"bans {r['bans']:2d}  boards ok {r['ok']}/{r['total']}  "
          f"exact={'yes' if r['exact'] else 'NO'}  too-fast {r['too_fast']}  "
          f"workers {r['workers']}  ({r['status']})")
    print(f"{'':>11}errors by class: {dict(sorted(r['errors'].items()))}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--best-preset", default="fast")
    ap.add_argument("--only", choices=("baseline", "best"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)

    scn = load_scenario("reference")
    rules = rules_of(scn)
    # Requests needed, from the scenario's ground truth (same seed, same market).
    from boardsync.sim import Simulator

    with Simulator(scn, time_scale=args.scale, seed=args.seed) as sim:
        truth = sim.truth()
        kinds: dict[str, int] = {}
        for b in sim.boards():
            kinds[b.kind] = kinds.get(b.kind, 0) + 1
    list_pages = list_pages_needed(kinds.values())
    needed = requests_needed((len(m) for m in truth.values()), list_pages)
    fault_rate = sum(scn.fault_rates().values())
    print(f"reference scenario, seed {args.seed}, time scale {args.scale} (figures below are "
          f"real seconds = measured / scale)")
    print(f"requests needed: {needed} ({needed - list_pages} member pages over {len(truth)} "
          f"boards + {list_pages} board-list pages); expected with {fault_rate:.1%} faults: "
          f"{expected_requests(needed, fault_rate):.0f}")
    print(f"rules: {rules.rate:g} req/s per IP, burst {rules.burst:g}, IP lifetime "
          f"{rules.lifetime:g} s, one extraction call per {rules.interval:g} s of up to "
          f"{rules.max_num} IPs, quota {rules.quota}")
    ip_lb = ip_lower_bound(needed, rules)
    t_quota = time_lower_bound(needed, rules.quota, rules)
    print(f"lower bounds: IPs >= {ip_lb} (at time >= "
          f"{time_lower_bound(needed, ip_lb, rules):.1f} s); time >= {t_quota:.2f} s with the "
          f"whole quota (only the {(math.floor(t_quota / rules.interval) + 1) * rules.max_num}"
          f" IPs extracted by then can help)")

    runs: dict[str, dict[str, Any]] = {}
    if args.only in (None, "baseline"):
        runs["baseline"] = one_run("baseline", "reference", {}, args.scale, args.seed)
        show(runs["baseline"])
    if args.only in (None, "best"):
        runs["best"] = one_run("best", args.best_preset, parse_sets(args.set), args.scale,
                               args.seed)
        show(runs["best"])
    ok = True
    for r in runs.values():
        t_n = time_lower_bound(needed, r["ips"], rules)
        t_f = time_lower_bound(expected_requests(needed, fault_rate), r["ips"], rules)
        print(f"{r['name']:>9}: wall / time-bound-at-its-IPs ({r['ips']} IPs -> "
              f">= {t_n:.1f} s) = {r['wall_s'] / t_n:.2f}; with the expected fault retries "
              f"(>= {t_f:.1f} s) = {r['wall_s'] / t_f:.2f}; wall / time-bound-with-quota = "
              f"{r['wall_s'] / t_quota:.2f}; IPs / IP-bound = {r['ips'] / ip_lb:.2f}")
        ok = ok and r["ok"] == r["total"] and r["exact"] and r["too_fast"] == 0
    if "baseline" in runs:
        b = runs["baseline"]
        print(f"calibration (baseline vs the published reference run): wall "
              f"{b['wall_s'] / 60:.2f} vs {PUBLISHED['wall_s'] / 60:.1f} min, IPs {b['ips']} vs "
              f"{PUBLISHED['ips']}, requests {b['requests']} vs ~{PUBLISHED['requests']}, "
              f"connection errors {b['connection_errors']} vs {PUBLISHED['connection_errors']},"
              f" timeouts {b['timeouts']} vs {PUBLISHED['timeouts']}")
    if len(runs) == 2:
        b, x = runs["baseline"], runs["best"]
        print(f"best / baseline: wall {x['wall_s'] / b['wall_s']:.3f}, IPs "
              f"{x['ips'] / b['ips']:.3f}, requests {x['requests'] / b['requests']:.3f}, "
              f"retries {x['retries']} vs {b['retries']}, bans {x['bans']} vs {b['bans']}")
        t_n = time_lower_bound(needed, x["ips"], rules)
        goals = {
            "100 % complete, exact": x["ok"] == x["total"] and x["exact"],
            "wall <= 0.5 x baseline": x["wall_s"] <= 0.5 * b["wall_s"],
            "IPs <= 0.5 x baseline": x["ips"] <= 0.5 * b["ips"],
            "wall <= 1.3 x time bound at its IPs": x["wall_s"] <= 1.3 * t_n,
            "never too fast for the provider": x["too_fast"] == 0,
        }
        for goal, met in goals.items():
            print(f"  goal {goal}: {'met' if met else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
