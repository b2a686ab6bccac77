"""A faithful loopback simulator of East Money's push2 ``clist`` API and a proxy provider.

Shipped with the product so that boardsync can be tried, tested and benchmarked with no
internet, in a family of worlds (``docs/SIMULATOR.md``): ``Simulator`` serves, on ephemeral
127.0.0.1 ports,

- seven named hosts (``hosts.py``: ``push2``, ``17.push2`` ... ``push2delay``, ``quote``), each
  on its own port, HTTP and (``tls=True``, ``tls.py``) HTTPS from a test CA, with each
  (host, route)'s health and client fingerprints judged in front (``front.py``), then the
  ``clist`` routes (``upstream.py``) and the board directory (``levels.py``) over a seeded
  market: the reference size (``market.py``: 86 industry boards / 5,450 memberships, 441
  concept boards / 55,756, 61,206 in all, BK0596 with 3,674 members) or ``today``'s (496
  industry boards on three levels, 504 concept, 31 region), with per-identity limits of every
  shape, ban signals and random faults (``antibot.py``);
- a proxy provider's extraction API (``provider.py``) and a real forward-proxy gateway, one
  port per issued IP plus a rotating tunnel, tunnelling ``CONNECT`` from one loopback source
  address per exit so the upstream reads identities from the peer (``gateway.py``,
  ``exits.py``);
- an admin JSON API (``GET /truth``, ``/counters``, ``/rules``, ``/hosts``, ``POST
  /advance-day``, ``/mode``); ``world.py`` draws whole worlds from a seed.

One ``time_scale`` multiplies every duration (latency, bans, lifetimes, intervals, hangs),
one ``seed`` makes the market and every fault draw reproducible, and one ``clock`` (a
:class:`boardsync.clock.Clock`, default ``SYSTEM``) is where every part reads the time, so a
test can hold or step bans, buckets and IP lifetimes with a fake one::

    from boardsync.sim import Simulator, load_scenario
    with Simulator(load_scenario("reference"), time_scale=0.05, seed=7) as sim:
        sim.upstream_url, sim.extract_url, sim.api_key, sim.tunnel_url, sim.admin_url
        sim.truth(), sim.counters(), sim.advance_day()

Calibration of the ``reference`` scenario (details in ``scenarios/reference.toml``): the
reference run (6 workers, one IP each, 1-2 s delay before each request, 45 s IP TTL, >= 2 s
between extraction calls) made ~1,000 requests in ~6.7 min with ~97 IPs, ~75 connection
errors and 1 timeout. The market needs 905 pages (899 member pages + 6 list pages). With
~7.3 % of requests failing (6.5 % resets + small 502/HTML/truncated/null shares + dead IPs)
a sync makes ~905 / 0.93 ~= 975 requests, ~70 of them failed, ~1 hang at 0.1 %. A worker
spends ~1.5 s delay + ~0.4 s latency = ~1.9 s per request, so an IP serves
min(45 s / 1.9 s ~= 24, Geometric(0.073)) ~= 11.7 requests on average: 975 / 11.7 ~= 83 IPs,
plus ~3 % dead on arrival and rotations at extraction waits, ~90-100 IPs. Six workers at one
request per ~1.9 s each, plus ~0.5 s extraction waits per rotation, finish in
975 * 1.9 / 6 + waits ~= 310 s + ~90 s ~= 6.7 min. The per-identity allowance (1 req/s,
burst 5) is never exceeded at that pace (one request per >= 1 s per IP) but a client without
a delay, or six workers sharing one tunnel identity, gets banned for 60 s.
Measured with ``bench/sim_throughput.py --reference-run`` (the reference client, retrying a
failed page on a fresh IP): 7.0 min, 97 IPs, 973 requests, 62 connection errors, 2 timeouts
(seed 7); 7.1 min, 103 IPs, 994 requests, 69 / 1 (seed 11).
"""

from __future__ import annotations

from .scenario import FAULT_CLASSES, Scenario, load_scenario
from .simulator import Simulator

__all__ = ["FAULT_CLASSES", "Scenario", "Simulator", "load_scenario"]
