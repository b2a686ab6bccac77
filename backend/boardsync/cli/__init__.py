"""The ``boardsync`` command line: parse flags, build the settings, call the library.

The only package that imports click, configures logging handlers or exits. Library errors
become one clear line and a documented exit code here (the table: :mod:`.exitcodes`).

Layout: this module holds the root group and ``main``; each command lives in its own module
(:mod:`.sync`, :mod:`.db`, :mod:`.sim`, :mod:`.daemon`, :mod:`.audit`) as a top-level
click command, added to the group below; :mod:`.common` has what they share.
"""

from __future__ import annotations

import logging
import sys

import click

from .. import __version__
from ..config import PRESETS
from . import audit, daemon, db, probe, sim, sync
from .common import setup_logging
from .exitcodes import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_NOTHING,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    STATUS_EXIT,
)

__all__ = ["EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_LOCKED", "EXIT_NOTHING", "EXIT_OK",
           "EXIT_PARTIAL", "EXIT_USAGE", "STATUS_EXIT", "cli", "main"]


#: The root group's options that may also come after the subcommand (``boardsync sync
#: --log-level DEBUG`` is what people type).
ANYWHERE = ("--log-level", "--log-format")


def hoist(args: list[str]) -> list[str]:
    """``args`` with every :data:`ANYWHERE` option (and its value) moved to the front, so
    click's root group sees it wherever it was typed; nothing after ``--`` moves."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg.split("=", 1)[0] in ANYWHERE:
            width = 1 if "=" in arg else 2
            front.extend(args[i:i + width])
            i += width
            continue
        rest.append(arg)
        i += 1
    return front + rest


class RootGroup(click.Group):
    """The ``boardsync`` group: its logging options work on either side of the subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist(args))


@click.group(cls=RootGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="boardsync")
@click.option("--config", "config", type=click.Path(dir_okay=False), envvar="BOARDSYNC_CONFIG",
              help="TOML config file (default config/boardsync.toml if present).")
@click.option("--preset", envvar="BOARDSYNC_PRESET",
              help=f"Named pacing preset ({', '.join(PRESETS)}): reference = the reference "
                   "run's own settings, for comparison; fast = the defaults (the learner, "
                   "README), kept for scripts that name it.")
@click.option("--log-level", envvar="BOARDSYNC_LOG_LEVEL", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="How much to log (any case); before or after the subcommand.")
@click.option("--log-format", type=click.Choice(["text", "json"]), envvar="BOARDSYNC_LOG_FORMAT",
              default="text", show_default=True,
              help="json: one object per line, for shippers; a sync's last line carries its "
                   "summary record.")
@click.pass_context
def cli(ctx: click.Context, config: str | None, preset: str | None, log_level: str,
        log_format: str) -> None:
    """Keep a complete, correct, auditable database copy of East Money's sector boards.

    Settings come from defaults < config file < BOARDSYNC_* environment < flags.

    \b
    Quick start (no internet needed, bundled simulator + SQLite):
      boardsync sync --sim reference
    Real upstream through a proxy provider, into PostgreSQL:
      BOARDSYNC_PROXY_API_KEY=... boardsync sync --proxy api \\
        --proxy-api-url 'https://provider.example/get' --db postgresql://user@host/db
    """
    setup_logging(log_level, log_format)
    ctx.ensure_object(dict)
    ctx.obj.update(config=config, preset=preset)


for _command in (sync.sync, db.db, sim.sim, daemon.daemon, probe.probe, *audit.COMMANDS):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point; unexpected errors exit 70 with one line (traceback in DEBUG)."""
    try:
        cli(prog_name="boardsync")
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - last-resort boundary of the program
        logging.getLogger("boardsync").debug("internal error", exc_info=True)
        click.echo(f"boardsync: internal error: {type(e).__name__}: {e}", err=True)
        sys.exit(EXIT_INTERNAL)
