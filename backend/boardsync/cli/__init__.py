"""The ``boardsync`` command line: parse flags, build the settings, call the library.

The only package that imports click, configures logging handlers or exits. Library errors
become one clear line and a documented exit code here.

Exit codes:
  0  success: every board synced (or skipped as fresh)
  1  partial: some boards failed, were held back as suspicious or remain (see the summary)
  2  bad configuration or usage (also: database unreachable at start, unwritable state path)
  3  nothing to do: every board is fresher than --max-age
  4  locked: another sync holds this database's run lock
  5  interrupted: stopped by SIGINT/SIGTERM; the next run resumes
 70  unexpected internal error (a bug: please report it with the log)
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import click

from .. import __version__
from ..config import FIELDS, PRESETS, load_settings
from ..errors import BoardsyncError, ConfigError, Locked, StateError, StorageError

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_NOTHING, EXIT_LOCKED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 5
EXIT_INTERNAL = 70
STATUS_EXIT = {"ok": EXIT_OK, "partial": EXIT_PARTIAL, "nothing_to_do": EXIT_NOTHING,
               "interrupted": EXIT_INTERRUPTED}

LOG_FORMAT = ("%(asctime)s %(levelname)-7s run=%(run)s worker=%(worker)s board=%(board)s "
              "%(name)s: %(message)s")


def setup_logging(level: str, fmt: str = "text") -> None:
    """Log to stderr with the run, worker and board ids on every line (``fmt`` text or json)."""
    from ..logctx import ContextFilter
    from ..logjson import JsonFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(LOG_FORMAT))
    handler.addFilter(ContextFilter())
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler],
                        force=True)


def fail(message: str, code: int) -> None:
    """Print one line to stderr and exit with ``code``: no traceback for expected failures."""
    click.echo(f"boardsync: error: {message}", err=True)
    sys.exit(code)


class SignalFlags:
    """SIGINT/SIGTERM handlers that only set events: first graceful, second forced."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.force = threading.Event()
        self.signals = 0

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:  # noqa: ARG002 - signal API
        self.signals += 1
        if self.signals == 1:
            self.stop.set()
        else:
            self.force.set()


def _flag_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The settings flags shared by ``sync`` (and later ``daemon``), one per FIELDS key."""
    opts = [
        click.option("--db", "db_url", help="Database URL (SQLAlchemy). [env BOARDSYNC_DB_URL]"),
        click.option("--state", "state_path", help="State file path."),
        click.option("--upstream-url", help="East Money base URL (https://push2.eastmoney.com)."),
        click.option("--force/--no-force", default=None,
                     help="Resync every board, whatever the state says."),
        click.option("--kinds", help="Comma list of board kinds: industry,concept,region."),
        click.option("--boards", help="Only these board codes, comma separated (e.g. BK0475)."),
        click.option("--workers", help="Worker threads, or 'auto' (Little's law)."),
        click.option("--req-delay-min", type=float, help="Min random delay before a request (s)."),
        click.option("--req-delay-max", type=float, help="Max random delay before a request (s)."),
        click.option("--max-retry", type=int, help="Attempts before a board fails for good."),
        click.option("--max-age", help="Skip boards synced more recently (e.g. 3600, 20h)."),
        click.option("--proxy", type=click.Choice(["direct", "static", "api", "tunnel"]),
                     help="Proxy source (default direct)."),
        click.option("--proxy-file", help="Static proxy list file."),
        click.option("--proxy-api-url", help="Provider extraction API URL. [secret]"),
        click.option("--proxy-api-format", type=click.Choice(["txt", "json"]),
                     help="Extraction body format."),
        click.option("--proxy-tunnel-url", help="Tunnel gateway http://user:pass@host:port."),
        click.option("--extract-interval", type=float,
                     help="Min seconds between extraction API calls (leaky bucket)."),
        click.option("--max-ips", type=int, help="Never extract more IPs than this per run."),
        click.option("--ip-ttl", type=float, help="Seconds to use one IP before rotating."),
        click.option("--accept-shrink/--no-accept-shrink", default=None,
                     help="Write boards that shrank suspiciously anyway."),
        click.option("--shrink-threshold", type=float,
                     help="Fraction of shrinkage that makes a board suspicious (0.5)."),
        click.option("--shutdown-timeout", type=float, help="Seconds a graceful stop may take."),
        click.option("--progress", type=click.Choice(["auto", "bar", "log", "none"]),
                     help="Progress display."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def _settings(ctx_obj: dict[str, Any], flags: dict[str, Any]) -> Any:
    try:
        return load_settings(
            {k: v for k, v in flags.items() if k in FIELDS},
            config_path=ctx_obj.get("config"),
            preset=ctx_obj.get("preset"),
        )
    except ConfigError as e:
        fail(str(e), EXIT_USAGE)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="boardsync")
@click.option("--config", "config", type=click.Path(dir_okay=False), envvar="BOARDSYNC_CONFIG",
              help="TOML config file (default config/boardsync.toml if present).")
@click.option("--preset", envvar="BOARDSYNC_PRESET",
              help=f"Named pacing preset ({', '.join(PRESETS)}): reference = the reference "
                   "run's own settings; fast = paced by what the upstream allows (README).")
@click.option("--log-level", envvar="BOARDSYNC_LOG_LEVEL", default="INFO", show_default=True,
              help="DEBUG, INFO, WARNING or ERROR.")
@click.option("--log-format", type=click.Choice(["text", "json"]), envvar="BOARDSYNC_LOG_FORMAT",
              default="text", show_default=True, help="json: one object per line, for shippers.")
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


@cli.command()
@_flag_options
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
    from ..sync import resolve_workers

    settings = _settings(obj, flags)
    if explain_workers:
        n, why = resolve_workers(settings)
        click.echo(f"workers: {n}\n{why}")
        return
    if sim_scenario:
        from ..demo import simulated

        try:
            with simulated(settings, sim_scenario, time_scale=sim_time_scale,
                           seed=sim_seed) as (sim_settings, _sim):
                code = _run_sync(sim_settings)
        except (ConfigError, FileNotFoundError) as e:
            fail(str(e), EXIT_USAGE)
        sys.exit(code)
    sys.exit(_run_sync(settings))


def _run_sync(settings: Any) -> int:
    from ..progress import Progress, format_summary
    from ..sync import Sync

    flags = SignalFlags()
    flags.install()
    progress = Progress(settings.progress, interval=settings.log_interval)
    try:
        runner = Sync(settings, stop=flags.stop, force_stop=flags.force, progress=progress)
        summary = runner.run()
    except Locked as e:
        fail(f"{e}", EXIT_LOCKED)
    except (ConfigError, StateError) as e:
        fail(str(e), EXIT_USAGE)
    except StorageError as e:
        fail(f"database: {e}", EXIT_USAGE)
    except BoardsyncError as e:
        fail(f"{e.error_class}: {e}", EXIT_PARTIAL)
    click.echo(format_summary(summary))
    return STATUS_EXIT.get(summary.status, EXIT_PARTIAL)


@cli.group()
def db() -> None:
    """Database administration."""


@db.command("init")
@click.option("--db", "db_url", help="Database URL (SQLAlchemy).")
@click.pass_obj
def db_init(obj: dict[str, Any], db_url: str | None) -> None:
    """Create the schema (idempotent); `sync` also does this when it is missing."""
    from ..store import Store

    settings = _settings(obj, {"db_url": db_url})
    try:
        Store(settings.db_url).init_schema()
    except StorageError as e:
        fail(f"database: {e}", EXIT_USAGE)
    click.echo(f"schema ready in {settings.redacted()['db_url']}")


@cli.group()
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
    from ..sim.cli_support import serve

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


def _register_subcommands() -> None:
    """Attach the command groups that live in their own modules (audit, daemon).

    Imported here, after ``cli`` exists, because those modules add their commands to it.
    """
    from . import audit, daemon

    audit.register(cli)
    daemon.register(cli)


_register_subcommands()


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
