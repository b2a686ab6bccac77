"""``boardsync sim``: serve the bundled simulator on loopback for trying boardsync safely."""

from __future__ import annotations

import click

from ..errors import ConfigError
from ..sim.cli_support import serve
from .common import fail
from .exitcodes import EXIT_USAGE
from .signals import SignalFlags


@click.group()
def sim() -> None:
    """The bundled simulator of East Money and a proxy provider (for trying boardsync safely)."""


@sim.command("serve")
@click.option("--scenario", default="reference", show_default=True,
              help="reference, clean, hostile or a path to a scenario .toml.")
@click.option("--time-scale", type=float, default=1.0, show_default=True,
              help="Multiplies every simulated duration (0.05 = 20x faster).")
@click.option("--seed", type=int, default=7, show_default=True, help="Market and fault seed.")
@click.option("--port", type=int, default=0, show_default=True,
              help="Upstream port (0 = pick a free one).")
def sim_serve(scenario: str, time_scale: float, seed: int, port: int) -> None:
    """Serve the simulator on loopback and print its URLs until Ctrl+C."""
    try:
        simulator = serve(scenario, time_scale, seed, port=port)
    except (ConfigError, FileNotFoundError, OSError) as e:
        fail(str(e), EXIT_USAGE)
    click.echo(f"upstream    {simulator.upstream_url}/api/qt/clist/get")
    click.echo(f"extract     {simulator.extract_url}?key={simulator.api_key}&num=1&format=txt")
    click.echo(f"tunnel      {simulator.tunnel_url}")
    click.echo(f"admin       {simulator.admin_url}/counters  {simulator.admin_url}/truth")
    flags = SignalFlags()
    flags.install()
    try:
        while not flags.stop.wait(0.5):
            pass
    finally:
        simulator.stop()
