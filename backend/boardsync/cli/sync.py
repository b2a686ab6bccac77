"""``boardsync sync``: one incremental (or forced) sync, optionally from the simulator."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..clock import SYSTEM
from ..config import Settings
from ..demo import simulated
from ..errors import ConfigError
from ..progress import Progress, format_summary
from ..run import Run
from ..sizing import resolve_workers
from .common import fail, library_errors, load_cli_settings, settings_options
from .exitcodes import EXIT_USAGE, for_status
from .signals import SignalFlags


@click.command()
@settings_options
@click.option("--sim", "sim_scenario", metavar="SCENARIO",
              help="Sync from the bundled simulator (reference, clean, hostile or a .toml).")
@click.option("--sim-time-scale", type=float, default=0.05, show_default=True,
              help="Simulator time scale; client durations are scaled the same way.")
@click.option("--sim-seed", type=int, default=7, show_default=True, help="Simulator seed.")
@click.option("--explain-workers", is_flag=True, help="Print how the worker count is chosen.")
@click.pass_obj
def sync(obj: dict[str, Any], sim_scenario: str | None, sim_time_scale: float, sim_seed: int,
         explain_workers: bool, **flags: Any) -> None:
    """Sync board lists and every board's members into the database.

    Incremental by default: an unfinished run is resumed and boards synced within --max-age
    are skipped. --force fetches every board again.

    \b
    Exit codes: 0 ok, 1 partial, 2 bad config/usage, 3 nothing to do,
                4 locked by another run, 5 interrupted (resumable), 70 internal error.
    """
    settings = load_cli_settings(obj, flags)
    if explain_workers:
        n, why = resolve_workers(settings)
        click.echo(f"workers: {n}\n{why}")
        return
    if sim_scenario:
        try:
            with simulated(settings, sim_scenario, time_scale=sim_time_scale,
                           seed=sim_seed) as (sim_settings, _sim):
                code = run_sync(sim_settings)
        except (ConfigError, FileNotFoundError) as e:
            fail(str(e), EXIT_USAGE)
        sys.exit(code)
    sys.exit(run_sync(settings))


def run_sync(settings: Settings) -> int:
    """Run one sync with SIGINT/SIGTERM wired to its stop events; print the summary.

    Returns:
        The exit code of the summary's status. A run that raises exits here with its one
        line and code (locked 4, configuration/state/database 2, other boardsync errors 1).
    """
    flags = SignalFlags()
    flags.install()
    progress = Progress(settings.progress, interval=settings.log_interval, clock=SYSTEM)
    with library_errors():
        summary = Run(settings, clock=SYSTEM, stop=flags.stop, force_stop=flags.force,
                      progress=progress).run()
    click.echo(format_summary(summary))
    return for_status(summary.status)
