"""What ``boardsync sim serve`` needs from the simulator package (the CLI owns the printing)."""

from __future__ import annotations

from .scenario import load_scenario
from .simulator import Simulator


def serve(scenario: str, time_scale: float, seed: int, host: str = "127.0.0.1",
          port: int = 0) -> Simulator:
    """Start a simulator for ``scenario`` (name or .toml path) and return it, running.

    The caller blocks (e.g. until a signal) and then calls ``stop()``.
    ``port`` is the upstream's port (0 = any free port); the other listeners take free ports.
    """
    return Simulator(load_scenario(scenario), time_scale=time_scale, seed=seed, host=host,
                     port=port).start()
