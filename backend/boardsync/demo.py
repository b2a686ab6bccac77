"""Run boardsync against the bundled simulator: settings pointed at it, durations scaled.

``boardsync sync --sim reference`` starts the simulator in-process on loopback ports and
syncs from it through its proxy provider, so the whole product can be tried (and demoed)
with no internet. Every duration the client uses is multiplied by the same time scale the
simulator applies, so the run keeps the reference run's proportions in a fraction of the time.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from .config import Settings
from .sim import Scenario, Simulator, load_scenario
from .sim.hosts import short_name
from .upstream import DEFAULT_UPSTREAMS

logger = logging.getLogger(__name__)

#: Settings that are durations and therefore scale with the simulator's time scale.
SCALED_KEYS = ("req_delay_min", "req_delay_max", "ip_ttl", "ip_life", "extract_interval",
               "connect_timeout", "read_timeout", "stagger", "max_age", "shutdown_timeout",
               "pacing_floor", "breaker_cooldown", "ip_thrift", "upstream_cooldown")


#: Real seconds below which no timeout is scaled when the simulator serves HTTPS.
TLS_TIMEOUT_FLOOR_S = 0.25


def scaled(settings: Settings, scale: float, **endpoints: Any) -> Settings:
    """``settings`` with every duration multiplied by ``scale`` and ``endpoints`` applied."""
    changes: dict[str, Any] = {k: getattr(settings, k) * scale for k in SCALED_KEYS}
    changes["max_age"] = settings.max_age  # freshness is wall-clock, not simulated
    changes.update(endpoints)
    # Timeouts must stay above the simulator's scaled latency tail (50 ms) and, over HTTPS,
    # above a TLS handshake through a tunnel on a loaded machine: real CPU time, not scaled.
    floor = TLS_TIMEOUT_FLOOR_S if changes.get("ca_bundle", settings.ca_bundle) else 0.05
    changes["connect_timeout"] = max(floor, changes["connect_timeout"])
    changes["read_timeout"] = max(floor, changes["read_timeout"])
    return settings.replace(**changes)


def tls_available() -> bool:
    """True when the simulator can serve HTTPS (the ``tls`` extra, trustme, is installed)."""
    return importlib.util.find_spec("trustme") is not None


def sim_upstreams(sim: Simulator, proxy: str = "api",
                  urls: tuple[str, ...] = DEFAULT_UPSTREAMS) -> tuple[str, ...]:
    """The real pool ``urls`` as boardsync reaches them in the simulator.

    Through proxies the real names stay (the gateway resolves them, as a provider's does),
    over ``http://`` when the simulator serves no TLS; direct, each host is mapped to its
    loopback port (nothing resolves the real names here). Hosts the simulator does not
    serve are kept as they are.
    """
    out: list[str] = []
    for url in urls:
        parts = urlsplit(url)
        short = short_name(parts.hostname or "")
        if proxy != "direct":
            out.append(url if sim.ca_bundle else url.replace("https://", "http://", 1))
        elif short is not None:
            out.append((sim.https_urls or sim.http_urls)[short] + parts.path)
        else:
            out.append(url)
    return tuple(out)


def endpoints_of(sim: Simulator, proxy: str = "api") -> dict[str, Any]:
    """The settings that point boardsync at a running simulator: the real default pool of
    upstreams (``upstream_url`` cleared), the CA, the proxy."""
    endpoints: dict[str, Any] = {"upstreams": sim_upstreams(sim, proxy), "upstream_url": "",
                                 "ca_bundle": sim.ca_bundle or "", "proxy": proxy,
                                 "directory_url": sim.directory_url}
    if proxy == "api":
        endpoints.update(proxy_api_url=sim.extract_url, proxy_api_key=sim.api_key)
    elif proxy == "tunnel":
        endpoints.update(proxy_tunnel_url=sim.tunnel_url)
    return endpoints


@contextmanager
def simulated(settings: Settings, scenario: str | Scenario, *, time_scale: float, seed: int,
              proxy: str = "api", tls: bool | None = None) -> Iterator[tuple[Settings, Any]]:
    """Start the simulator and yield ``(settings pointed at it, simulator)``.

    ``tls``: serve HTTPS (None = when trustme is installed), the client verifying against the
    simulator's own test CA through ``ca_bundle``, as it would against the real host.
    """
    use_tls = tls_available() if tls is None else tls
    loaded = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    with Simulator(loaded, time_scale=time_scale, seed=seed,
                   tls=use_tls) as sim:
        endpoints = endpoints_of(sim, proxy)
        logger.info("Simulator %s: upstream %s, time scale %s, seed %s", loaded.name,
                    sim.upstream_url, time_scale, seed)
        yield scaled(settings, time_scale, **endpoints), sim
