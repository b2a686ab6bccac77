"""``boardsync sync``: one incremental (or forced) sync, optionally from the simulator."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from ..clock import SYSTEM
from ..config import Settings
from ..demo import simulated
from ..errors import ConfigError
from ..pacing import explain_pacing, learner_for, starting_allowance
from ..progress import Progress, format_summary, summary_record
from ..run import Run
from ..sizing import implausible_workers, resolve_workers
from .common import fail, library_errors, load_cli_settings, settings_options
from .exitcodes import EXIT_OK, EXIT_USAGE, for_status
from .signals import SignalFlags

logger = logging.getLogger(__name__)


@click.command(short_help="Sync board lists and every board's members into the database.")
@settings_options
@click.option("--sim", "sim_scenario", metavar="SCENARIO",
              help="Sync from the bundled simulator (reference, clean, hostile, today or a "
                   ".toml).")
@click.option("--sim-time-scale", type=float, default=0.05, show_default=True,
              help="Simulator time scale; client durations are scaled the same way.")
@click.option("--sim-seed", type=int, default=7, show_default=True, help="Simulator seed.")
@click.option("--explain", is_flag=True,
              help="Print, without syncing, the worker count and why, how requests are paced "
                   "and, for pacing = learn, the allowance stored for this upstream and the "
                   "arithmetic the run starts from (under --sim: for the simulator).")
@click.option("--explain-workers", "explain_flag", is_flag=True, hidden=True,
              help="Old name of --explain (same output).")
@click.option("--summary-json", "summary_json", metavar="PATH", type=click.Path(dir_okay=False),
              help="Also write the run's summary record (JSON, fields in the README) here.")
@click.pass_obj
def sync(obj: dict[str, Any], sim_scenario: str | None, sim_time_scale: float, sim_seed: int,
         explain: bool, explain_flag: bool, summary_json: str | None, **flags: Any) -> None:
    """Sync board lists and every board's members into the database.

    Incremental by default: an unfinished run is resumed and boards synced within --max-age
    are skipped. --force fetches every board again.

    \b
    Examples:
      boardsync sync --sim reference --force --db sqlite:///data/demo.db
      boardsync sync --proxy api --proxy-api-url 'https://provider.example/get' \\
        --db postgresql://boardsync@db.internal/boardsync --summary-json last-run.json

    \b
    Exit codes: 0 ok, 1 partial, 2 bad config/usage, 3 nothing to do,
                4 locked by another run, 5 interrupted (resumable), 6 every upstream
                route refused (a new IP would not help), 70 internal error.
    """
    settings = load_cli_settings(obj, flags)
    explain_only = explain or explain_flag
    if (warning := implausible_workers(settings)) is not None:
        logger.warning("Sync: %s", warning)
    if sim_scenario:
        try:
            # the explanation sizes the settings the run would use: the simulator's own
            with simulated(settings, sim_scenario, time_scale=sim_time_scale,
                           seed=sim_seed) as (sim_settings, _sim):
                code = (print_explanation(sim_settings) if explain_only
                        else run_sync(sim_settings, summary_json))
        except (ConfigError, FileNotFoundError) as e:
            fail(str(e), EXIT_USAGE)
        sys.exit(code)
    sys.exit(print_explanation(settings) if explain_only else run_sync(settings, summary_json))


def print_explanation(settings: Settings) -> int:
    """Print what a run with ``settings`` would do, by the run's own rules, and sync nothing.

    The workers come first (``workers: N``, the line ``--explain-workers`` always began
    with, which scripts read); then the pacing. With pacing = learn the worker count is
    sized by the learner the run would build from the stored allowance, read once and never
    written (the learner here saves nothing).
    """
    learner = None
    found = None
    if settings.pacing == "learn":
        found = starting_allowance(settings, SYSTEM)
        learner = learner_for(settings, SYSTEM, found, save=False)
    n, why = resolve_workers(settings, learner)
    click.echo(f"workers: {n}\n{why}\n\n{explain_pacing(settings, SYSTEM, found)}")
    return EXIT_OK


def write_summary(path: str, record: dict[str, Any]) -> None:
    """Write the summary record atomically (a reader never sees half); a failure is one
    warning, not a failed sync: the run itself is recorded already."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n",
                       encoding="utf-8")
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        logger.warning("Sync: could not write --summary-json %s: %s", path, e)


def run_sync(settings: Settings, summary_json: str | None = None) -> int:
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
    record = summary_record(summary)
    logger.info("Run %s: ended %s", summary.run_id, summary.status, extra={"summary": record})
    if summary_json:
        write_summary(summary_json, record)
    click.echo(format_summary(summary))
    return for_status(summary.status)
