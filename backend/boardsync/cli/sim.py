"""``boardsync sim``: serve the bundled simulator on loopback for trying boardsync safely."""

from __future__ import annotations

import click

from ..errors import ConfigError
from ..sim.cli_support import banner, serve
from .common import fail
from .exitcodes import EXIT_USAGE
from .signals import SignalFlags


@click.group()
def sim() -> None:
    """The bundled simulator of East Money and a proxy provider (for trying boardsync safely)."""


@sim.command("serve")
@click.option("--scenario", default="reference", show_default=True,
              help="reference, clean, hostile, today or a path to a scenario .toml.")
@click.option("--time-scale", type=float, default=1.0, show_default=True,
              help="Multiplies every simulated duration (0.05 = 20x faster).")
@click.option("--seed", type=int, default=7, show_default=True, help="Market and fault seed.")
@click.option("--port", type=int, default=0, show_default=True,
              help="Upstream port (0 = pick a free one).")
@click.option("--https/--http", "tls", default=True, show_default=True,
              help="Serve HTTPS (and HTTP) from a test CA made at start, as the real hosts "
                   "do; the CA bundle's path is printed. --http: plain HTTP only.")
@click.option("--world-seed", type=int, default=None,
              help="Draw every rule but the market (rates, windows, bans, provider, routes) "
                   "from documented ranges with this seed, and print them.")
def sim_serve(scenario: str, time_scale: float, seed: int, port: int, tls: bool,
              world_seed: int | None) -> None:
    """Serve the simulator on loopback and print its URLs until Ctrl+C.

    Every named host (push2, 17.push2 ... push2delay, quote) listens on a port of its own;
    through a proxy IP a client may also use the real names (https://29.push2.eastmoney.com),
    which the gateway maps to those ports.
    """
    try:
        simulator = serve(scenario, time_scale, seed, port=port, world_seed=world_seed,
                          tls=tls)
    except (ConfigError, FileNotFoundError, OSError) as e:
        fail(str(e), EXIT_USAGE)
    for line in banner(simulator, world=world_seed is not None):
        click.echo(line)
    flags = SignalFlags()
    flags.install()
    try:
        while not flags.stop.wait(0.5):
            pass
    finally:
        simulator.stop()
