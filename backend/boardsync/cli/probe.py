"""``boardsync probe``: one request per (host, route, transport), a table of what answers."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..clock import SYSTEM
from ..config import Settings
from ..demo import simulated
from ..errors import ConfigError
from ..upstream.probe import ProbeRow, probe_settings
from .common import fail, library_errors, load_cli_settings, settings_options
from .exitcodes import EXIT_OK, EXIT_REFUSED, EXIT_USAGE


@click.command(short_help="Send one request per host, route and transport; show what answers.")
@settings_options
@click.option("--sim", "sim_scenario", metavar="SCENARIO",
              help="Probe the bundled simulator (reference, clean, hostile, today or a .toml).")
@click.pass_obj
def probe(obj: dict[str, Any], sim_scenario: str | None, **flags: Any) -> None:
    """Send one request per (host, route, transport) of the upstream pool through one IP and
    print what answers. Exit 0 when at least one answers, 6 when none does.
    """
    settings = load_cli_settings(obj, flags)
    if sim_scenario:
        try:
            with simulated(settings, sim_scenario, time_scale=0.05, seed=7) as (sim_s, _):
                sys.exit(show(sim_s))
        except (ConfigError, FileNotFoundError) as e:
            fail(str(e), EXIT_USAGE)
    sys.exit(show(settings))


def show(settings: Settings) -> int:
    with library_errors():
        rows = probe_settings(settings, clock=SYSTEM)
    click.echo(table(rows))
    return EXIT_OK if any(r.outcome == "ok" for r in rows) else EXIT_REFUSED


def table(rows: list[ProbeRow]) -> str:
    head = ("host", "route", "transport", "outcome", "status", "total", "ms", "detail")
    body = [(r.host, r.route, r.transport, r.outcome, "" if r.status is None else str(r.status),
             "" if r.total is None else str(r.total), f"{r.seconds * 1000:.0f}", r.detail)
            for r in rows]
    widths = [max(len(x[i]) for x in (head, *body)) for i in range(len(head) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line[:-1], widths, strict=True))
                     + "  " + line[-1] for line in (head, *body)).rstrip()
