"""What every command shares: logging set-up, one-line failures, the settings flags.

The commands are thin: parse flags, build settings with :func:`load_cli_settings`, call the
library, and turn an expected library error into one ``boardsync: error:`` line and its exit
code (:func:`library_errors`). Nothing here knows about a particular command.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click
from tqdm import tqdm

from ..config import FIELDS, Settings, load_settings
from ..errors import BoardsyncError, ConfigError
from ..logctx import ContextFilter
from ..logjson import JsonFormatter
from ..settings import CHOICES
from . import hooks
from .exitcodes import EXIT_USAGE, error_line, for_error

LOG_FORMAT = ("%(asctime)s %(levelname)-7s run=%(run)s worker=%(worker)s board=%(board)s "
              "%(name)s: %(message)s")


class BarSafeHandler(logging.StreamHandler):
    """A stream handler that writes through ``tqdm.write``: while a progress bar is shown
    on the same terminal, each log line goes above it instead of being glued onto it (what
    ``tqdm.contrib.logging.logging_redirect_tqdm`` does, keeping our filter and formatter);
    with no bar it is a plain write."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


def setup_logging(level: str, fmt: str = "text") -> None:
    """Log to stderr with the run, worker and board ids on every line (``fmt`` text or json)."""
    handler = BarSafeHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(LOG_FORMAT))
    handler.addFilter(ContextFilter())
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler],
                        force=True)
    hooks.install()  # dying threads and finalisers log instead of printing tracebacks


def fail(message: str, code: int) -> NoReturn:
    """Print one line to stderr and exit with ``code``: no traceback for expected failures."""
    click.echo(f"boardsync: error: {message}", err=True)
    sys.exit(code)


@contextmanager
def library_errors(*types: type[BaseException]) -> Iterator[None]:
    """Turn the expected library errors (``types``, default every boardsync error) into one
    line and the exit code :mod:`~boardsync.cli.exitcodes` gives them; others propagate to
    ``main`` (a bug: exit 70)."""
    expected = types or (BoardsyncError,)
    try:
        yield
    except expected as e:
        fail(error_line(e), for_error(e))


def settings_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The settings flags shared by ``sync`` and ``daemon``, one per FIELDS key."""
    opts = [
        click.option("--db", "db_url", help="Database URL (SQLAlchemy). [env BOARDSYNC_DB_URL]"),
        click.option("--state", "state_path", help="State file path."),
        click.option("--upstreams", help="Comma list of clist endpoint URLs (host and route "
                     "path), best first; the default is the 2026 pool (README)."),
        click.option("--upstream-url", help="One endpoint instead of the pool (a one-entry "
                     "pool; a base URL gets /api/qt/clist/get)."),
        click.option("--transport", type=click.Choice(CHOICES["transport"]),
                     help="requests, browser (curl_cffi, the boardsync[browser] extra) or auto "
                     "(requests until a route refuses it, then the browser there)."),
        click.option("--ca-bundle", help="PEM file of CA certificates to verify the upstream's "
                     "HTTPS against ('' = certifi's roots)."),
        click.option("--force/--no-force", default=None,
                     help="Resync every board, whatever the state says."),
        click.option("--kinds", help="Comma list of board kinds: industry,concept,region."),
        click.option("--boards", help="Only these board codes, comma separated (e.g. BK0475)."),
        click.option("--workers", help="Worker threads, or 'auto' (learn pacing: sized "
                     "live from the learned allowance, the work waiting and the IPs' life)."),
        click.option("--req-delay-min", type=float, help="Min random delay before a request (s)."),
        click.option("--req-delay-max", type=float, help="Max random delay before a request (s)."),
        click.option("--max-retry", type=int, help="Attempts before a board fails for good."),
        click.option("--max-age", help="Skip boards synced more recently (e.g. 3600, 20h)."),
        click.option("--proxy", type=click.Choice(CHOICES["proxy"]),
                     help="Proxy source."),
        click.option("--proxy-file", help="Static proxy list file."),
        click.option("--proxy-api-url", help="Provider extraction API URL. [secret]"),
        click.option("--proxy-api-format", type=click.Choice(CHOICES["proxy_api_format"]),
                     help="Extraction body format."),
        click.option("--proxy-tunnel-url", help="Tunnel gateway http://user:pass@host:port."),
        click.option("--extract-interval", type=float,
                     help="Min seconds between extraction API calls (leaky bucket)."),
        click.option("--max-ips", type=int, help="Never extract more IPs than this per run."),
        click.option("--ip-ttl", type=float, help="Seconds to use one IP before rotating."),
        click.option("--accept-shrink/--no-accept-shrink", default=None,
                     help="Write boards that shrank suspiciously anyway."),
        click.option("--shrink-threshold", type=float,
                     help="Fraction of shrinkage that makes a board suspicious."),
        click.option("--shutdown-timeout", type=float, help="Seconds a graceful stop may take."),
        click.option("--progress", type=click.Choice(CHOICES["progress"]),
                     help="Progress display."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    for param in getattr(func, "__click_params__", ()):
        if param.name in FIELDS and isinstance(param, click.Option) and param.help:
            shown = _default_text(FIELDS[param.name].default)
            if shown:
                param.help += f"  [default: {shown}]"
    return func


def _default_text(value: Any) -> str:
    """A FIELDS default as ``--help`` shows it (before a preset or config file changes it);
    empty for a default that means "unset" (it is explained in the option's help)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value in ("", None) else str(value)


def settings_loader(ctx_obj: dict[str, Any], flags: dict[str, Any]) -> Callable[[], Settings]:
    """A function that builds the settings from the group's ``--config``/``--preset`` and
    ``flags`` (the daemon calls it again on SIGHUP); raises ``ConfigError``."""
    given = {k: v for k, v in flags.items() if k in FIELDS}

    def load() -> Settings:
        return load_settings(given, config_path=ctx_obj.get("config"),
                             preset=ctx_obj.get("preset"))

    return load


def load_cli_settings(ctx_obj: dict[str, Any], flags: dict[str, Any]) -> Settings:
    """The settings for one command; a bad value exits 2 with one line naming the key."""
    try:
        return settings_loader(ctx_obj, flags)()
    except ConfigError as e:
        fail(str(e), EXIT_USAGE)
