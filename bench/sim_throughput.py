"""How many requests per second the simulator serves: direct to the upstream vs through the
proxy gateway (one issued IP per client thread) vs through the tunnel.

The simulator runs in a child process (as ``boardsync sim serve`` would), the clients are
threads with one keep-alive ``requests.Session`` each, so the two sides do not share a GIL.
Latency, faults and the anti-bot allowance are switched off: this measures capacity.

    .venv/bin/python bench/sim_throughput.py [--seconds 5] [--threads 8] [--in-process]
        [--https]

``--https`` serves the upstream over TLS from the simulator's test CA (the ``tls`` extra) and
measures plain HTTP direct as the baseline against HTTPS direct, HTTPS through the per-IP
gateway (``CONNECT`` tunnels, one per client keep-alive session) and through the tunnel.

``--reference-run`` instead replays the reference run's own client settings against the
``reference`` scenario (6 workers, one IP each, 1-2 s delay before each request, 45 s IP TTL,
2 s between extraction calls, rotate on any error, retry the board at the tail) and prints
duration, IPs, requests, connection errors and timeouts, to check the scenario's calibration
against the published figures (6.7 min, 97 IPs, ~1,000 requests, ~75 / 1).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import threading
import time
from typing import Any

import requests

PARAMS = {"pn": 1, "pz": 100, "po": 1, "np": 1, "fltt": 2, "invt": 2, "fid": "f12",
          "fs": "b:BK0596 f:!50", "fields": "f12,f13,f14"}
OVERRIDES = {"latency_median_s": 0.0, "rate_per_s": 1e9, "burst": 1e9,
             "extract_min_interval_s": 0.0, "ip_lifetime_s": 3600.0}


def _serve(conn: Any, tls: bool = False) -> None:
    from boardsync.sim import Simulator, load_scenario

    scn = load_scenario("clean").with_overrides(**OVERRIDES)
    with Simulator(scn, time_scale=1.0, seed=7, tls=tls) as sim:
        conn.send({"upstream": sim.upstream_url, "http": sim.http_urls["push2"],
                   "extract": sim.extract_url, "key": sim.api_key, "tunnel": sim.tunnel_url,
                   "ca": sim.ca_bundle})
        conn.recv()  # block until the parent is done


def _run(urls: dict[str, str], proxies: list[str | None], seconds: float,
         base: str = "upstream") -> tuple[int, int]:
    done = [0] * len(proxies)
    errors = [0] * len(proxies)
    stop = time.monotonic() + seconds

    def worker(i: int, proxy: str | None) -> None:
        with requests.Session() as h:
            kw: dict[str, Any] = {"proxies": {"http": proxy, "https": proxy}} if proxy else {}
            if urls.get("ca"):
                kw["verify"] = urls["ca"]
            while time.monotonic() < stop:
                try:
                    r = h.get(urls[base] + "/api/qt/clist/get", params=PARAMS,
                              timeout=10, **kw)
                    r.raise_for_status()
                    done[i] += 1
                except requests.RequestException:
                    errors[i] += 1

    threads = [threading.Thread(target=worker, args=(i, p)) for i, p in enumerate(proxies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done), sum(errors)


def reference_run(scale: float, seed: int) -> dict[str, float]:
    """Replay the reference client against the reference scenario; simulated units out."""
    import collections
    import math
    import queue
    import random

    from boardsync.models import KIND_FILTERS, member_filter
    from boardsync.sim import Simulator, load_scenario

    workers, ttl, interval = 6, 45.0, 2.0
    stats: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    with Simulator(load_scenario("reference"), time_scale=scale, seed=seed) as sim:
        tasks: queue.Queue[str] = queue.Queue()
        for kind in ("industry", "concept"):
            tasks.put("list:" + kind)
        bucket = {"next": 0.0}
        t0 = time.monotonic()

        def new_ip() -> tuple[str, float]:
            while True:
                with lock:
                    now = time.monotonic()
                    wait = bucket["next"] - now
                    if wait <= 0:
                        bucket["next"] = now + interval * scale
                if wait > 0:
                    time.sleep(wait)
                    continue
                body = requests.get(sim.extract_url, params={"key": sim.api_key, "num": 1},
                                    timeout=10).text
                with lock:
                    stats["extract_calls"] += 1
                if body.startswith("127.0.0.1:"):
                    with lock:
                        stats["ips"] += 1
                    return "http://" + body.split(",")[0], time.monotonic()
                if '"code":121' in body.replace(" ", ""):
                    raise SystemExit("quota exhausted")

        def fetch_all(h: requests.Session, ip: list[Any], fs: str) -> list[str]:
            # The published figures (1,000 requests ~= 905 pages + 75 errors + a few) imply
            # that the reference client retried the failed *page* on a fresh IP, not the
            # whole board, so that is what this replay does.
            codes: list[str] = []
            pn, pages = 1, 1
            while pn <= pages:
                if time.monotonic() - ip[1] > ttl * scale:
                    ip[:] = new_ip()
                time.sleep(random.uniform(1.0, 2.0) * scale)
                with lock:
                    stats["requests"] += 1
                try:
                    r = h.get(sim.upstream_url + "/api/qt/clist/get",
                              proxies={"http": ip[0]}, timeout=(5 * scale, 15 * scale),
                              params=PARAMS | {"pn": pn, "fs": fs})
                    r.raise_for_status()
                    data = r.json()["data"]
                    if data is None:
                        raise ValueError("data null")
                except (requests.RequestException, ValueError) as e:
                    cls = ("timeout" if isinstance(e, requests.Timeout) else "connection"
                           if isinstance(e, requests.ConnectionError) else "other")
                    with lock:
                        stats[cls] += 1
                    ip[:] = new_ip()
                    h.close()
                    continue
                rows = data["diff"]
                if pn == 1:
                    pages = math.ceil(data["total"] / max(1, len(rows)))
                codes += [row["f12"] for row in rows]
                pn += 1
            return codes

        def worker() -> None:
            ip = list(new_ip())
            with requests.Session() as h:
                while True:
                    try:
                        task = tasks.get(timeout=30 * scale)
                    except queue.Empty:
                        return
                    kind, _, arg = task.partition(":")
                    fs = KIND_FILTERS[arg] if kind == "list" else member_filter(arg)
                    codes = fetch_all(h, ip, fs)
                    if kind == "list":
                        for code in codes:
                            tasks.put("board:" + code)
                    with lock:
                        stats["boards_ok"] += kind == "board"

        threads = [threading.Thread(target=worker) for _ in range(workers)]
        for t in threads:
            t.start()
            time.sleep(0.5 * scale)
        for t in threads:
            t.join()
        elapsed = (time.monotonic() - t0) / scale - 30  # minus the final idle wait
        counters = sim.counters()
    return {"minutes": elapsed / 60, "boards_ok": stats["boards_ok"], "ips": stats["ips"],
            "requests": counters["requests"], "connection_errors": stats["connection"],
            "timeouts": stats["timeout"], "other_errors": stats["other"],
            "bans": counters["bans"], "extract_refused_too_fast":
                counters["extract_refused_too_fast"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--in-process", action="store_true",
                    help="run the simulator in this process (shares the GIL with clients)")
    ap.add_argument("--reference-run", action="store_true",
                    help="replay the reference run's client settings (calibration check)")
    ap.add_argument("--scale", type=float, default=0.02, help="time scale for --reference-run")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--https", action="store_true",
                    help="serve TLS from the test CA; compare plain HTTP direct with HTTPS")
    args = ap.parse_args()
    if args.reference_run:
        for key, value in reference_run(args.scale, args.seed).items():
            print(f"{key:26s} {value:8.1f}")
        return
    proc = None
    if args.in_process:
        parent, child = mp.Pipe()
        threading.Thread(target=_serve, args=(child, args.https), daemon=True).start()
    else:
        parent, child = mp.Pipe()
        proc = mp.get_context("spawn").Process(target=_serve, args=(child, args.https),
                                               daemon=True)
        proc.start()
    urls = parent.recv()
    ips = requests.get(urls["extract"], params={"key": urls["key"], "num": args.threads},
                       timeout=10).text.split("\r\n")
    gateway = [f"http://{line.split(',')[0]}" for line in ips]
    results: dict[str, float] = {}
    paths: list[tuple[str, list[str | None], str]] = [
        ("direct", [None] * args.threads, "upstream"), ("gateway", list(gateway), "upstream"),
        ("tunnel", [urls["tunnel"]] * args.threads, "upstream")]
    if args.https:
        paths.insert(0, ("http-direct", [None] * args.threads, "http"))
    for name, proxies, base in paths:
        n, errs = _run(urls, proxies, args.seconds, base)
        results[name] = n / args.seconds
        scheme = "https" if args.https and base == "upstream" else "http"
        print(f"{name:11s} {results[name]:8.0f} req/s  ({n} ok, {errs} errors, {scheme}, "
              f"{args.threads} threads, {args.seconds:.0f} s, 100-row member pages)")
    print(f"gateway / direct = {results['gateway'] / results['direct']:.2f}")
    if args.https:
        print(f"https gateway / http direct = "
              f"{results['gateway'] / results['http-direct']:.2f}")
    parent.send("stop")
    if proc is not None:
        proc.join(timeout=10)


if __name__ == "__main__":
    main()
