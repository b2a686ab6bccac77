"""What ``boardsync sim serve`` needs from the simulator package (the CLI owns the printing)."""

from __future__ import annotations

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
          port: int = 0, world_seed: int | None = None) -> Simulator:
    """Start a simulator for ``scenario`` (name or .toml path) and return it, running.

    The caller blocks (e.g. until a signal) and then calls ``stop()``.
    ``port`` is the upstream's port (0 = any free port); the other listeners take free ports.
    ``world_seed`` (None = the scenario's own rules) draws a world: see :func:`scenario_for`.
    """
    return Simulator(scenario_for(scenario, world_seed), time_scale=time_scale, seed=seed,
                     host=host, port=port).start()


def banner(simulator: Simulator, world: bool = False) -> list[str]:
    """The lines ``sim serve`` prints: a drawn world's rules first (when ``world``), then the URLs.

    The rules come first so a terminal shows what the world is before anyone connects to it.
    """
    lines = describe_world(simulator.scenario) + [""] if world else []
    return lines + [
        f"upstream    {simulator.upstream_url}/api/qt/clist/get",
        f"extract     {simulator.extract_url}?key={simulator.api_key}&num=1&format=txt",
        f"tunnel      {simulator.tunnel_url}",
        f"admin       {simulator.admin_url}/counters  {simulator.admin_url}/truth"
        + (f"  {simulator.admin_url}/scenario" if world else ""),
    ]
