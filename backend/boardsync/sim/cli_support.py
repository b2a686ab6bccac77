"""What ``boardsync sim serve`` needs from the simulator package (the CLI owns the printing)."""

from __future__ import annotations

from .hosts import CLIST_HOSTS, DIRECTORY_PATH, real_name
from .scenario import Scenario, load_scenario
from .simulator import Simulator
from .world import describe_world, draw_world


def scenario_for(scenario: str, world_seed: int | None = None) -> Scenario:
    """The scenario ``serve`` runs: ``scenario`` (name or .toml path) as is, or with every rule
    but the market drawn by ``world_seed`` (:func:`boardsync.sim.world.draw_world`).

    Raises:
        ConfigError, FileNotFoundError: as :func:`load_scenario`.
    """
    base = load_scenario(scenario)
    return base if world_seed is None else draw_world(world_seed, base)


def serve(scenario: str, time_scale: float, seed: int, host: str = "127.0.0.1",
          port: int = 0, world_seed: int | None = None, tls: bool = True) -> Simulator:
    """Start a simulator for ``scenario`` (name or .toml path) and return it, running.

    The caller blocks (e.g. until a signal) and then calls ``stop()``.
    ``port`` is the upstream's port (0 = any free port); the other listeners take free ports.
    ``world_seed`` (None = the scenario's own rules) draws a world: see :func:`scenario_for`.
    ``tls``: serve HTTPS (and HTTP) from a test CA made now; plain HTTP only when False.

    Raises:
        ConfigError: a bad scenario, or ``tls`` without trustme installed.
    """
    return Simulator(scenario_for(scenario, world_seed), time_scale=time_scale, seed=seed,
                     host=host, port=port, tls=tls).start()


def banner(simulator: Simulator, world: bool = False) -> list[str]:
    """The lines ``sim serve`` prints: a drawn world's rules first (when ``world``), then the URLs.

    The rules come first so a terminal shows what the world is before anyone connects to it.
    """
    lines = describe_world(simulator.scenario) + [""] if world else []
    urls = simulator.https_urls or simulator.http_urls
    lines += [f"{'host ' + name:16s}{urls[name]}  ({real_name(name)}; "
              f"{simulator.routes.health(name, 'api').describe()} on /api/, "
              f"{simulator.routes.health(name, 'webguest').describe()} on /webguest/)"
              for name in CLIST_HOSTS]
    lines.append(f"{'directory':16s}{urls['quote']}{DIRECTORY_PATH}")
    if simulator.ca_bundle:
        lines.append(f"{'ca bundle':16s}{simulator.ca_bundle}  (boardsync: --ca-bundle or "
                     "BOARDSYNC_CA_BUNDLE)")
    return lines + [
        f"{'upstream':16s}{simulator.upstream_url}/api/qt/clist/get",
        f"{'extract':16s}{simulator.extract_url}?key={simulator.api_key}&num=1&format=txt",
        f"{'tunnel':16s}{simulator.tunnel_url}",
        f"{'admin':16s}{simulator.admin_url}/counters  {simulator.admin_url}/truth  "
        f"{simulator.admin_url}/rules",
    ]
