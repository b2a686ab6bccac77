"""Audit and query commands: ``boards``, ``members``, ``changes``, ``stock``, ``runs``, ``state``.

Only wiring lives here (options, settings, printing, exit codes); the answers come from
:mod:`boardsync.audit` and the rendering from :mod:`boardsync.report`.

Exit codes: 0 answered (``state verify``: everything agrees); 1 ``state verify`` found at
least one disagreement (each is printed); 2 bad input: a malformed board/stock code or date,
an unknown board or run, an unreachable database, a missing or corrupt state file.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import click

from .. import audit, report
from ..errors import ConfigError, StateError, StorageError
from ..mirror import check_state, export_file
from ..models import KINDS
from ..settings import Settings
from .common import library_errors, load_cli_settings
from .exitcodes import EXIT_DISAGREE

_FORMAT_HELP = ("Output format: table (default on a terminal), csv (default when piped) or "
                "json. Column names are stable.")


def _db_opt(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--db", "db_url",
                        help="Database URL (default from settings / BOARDSYNC_DB_URL).")(func)


def _state_opt(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--state", "state_path",
                        help="State file (default from settings / BOARDSYNC_STATE_PATH).")(func)


def _format_opt(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--format", "fmt", type=click.Choice(report.FORMATS), default=None,
                        help=_FORMAT_HELP)(func)


def _want_json(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """``--format json`` and the old ``--json`` both set ``as_json`` (either one suffices)."""
    ctx.params["as_json"] = ctx.params.get("as_json", False) or value in (True, "json")
    return value


def _text_or_json(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--format text|json``, the one spelling of JSON output every command takes; the
    older ``--json`` stays as a hidden alias so scripts keep working."""
    func = click.option("--json", is_flag=True, hidden=True, expose_value=False,
                        callback=_want_json, help="Same as --format json.")(func)
    return click.option("--format", type=click.Choice(["text", "json"]), default="text",
                        show_default=True, expose_value=False, callback=_want_json,
                        help="Output format: text for people, json for programs.")(func)


def _fmt(fmt: str | None) -> str:
    return fmt or report.default_format(sys.stdout.isatty())


def _errors() -> AbstractContextManager[None]:
    """Expected failures (bad input, state file, database) become one line and exit code 2."""
    return library_errors(ConfigError, StateError, StorageError)


def _store(obj: dict[str, Any], db_url: str | None) -> AbstractContextManager[Any]:
    return _open(load_cli_settings(obj, {"db_url": db_url}))


@contextmanager
def _open(settings: Settings) -> Iterator[Any]:
    """The settings' database, disposed of at the end; failures are one line, exit 2."""
    with _errors():
        store = audit.open_store(settings.db_url)
        try:
            yield store
        finally:
            store.dispose()


def _echo_rows(rows: list[dict[str, Any]], columns: tuple[str, ...], fmt: str | None) -> None:
    click.echo(report.render(rows, columns, _fmt(fmt)))


@click.command("boards")
@click.option("--kind", type=click.Choice(KINDS),
              help="Only boards of this kind.")
@click.option("--level", type=int, help="Only industry boards of this level (1, 2 or 3).")
@_format_opt
@_db_opt
@click.pass_obj
def boards_cmd(obj: dict[str, Any], kind: str | None, level: int | None, fmt: str | None,
               db_url: str | None) -> None:
    """List the boards in the database: name, kind, level, members, checksum, last sync.

    Deleted boards are listed too, with their deleted_at time. Examples:
    `boardsync boards --kind industry --level 3`, `boardsync boards --format csv`.
    """
    with _store(obj, db_url) as store, _errors():
        _echo_rows(audit.board_rows(store, kind, level), audit.BOARD_COLUMNS, fmt)


@click.command("members", short_help="List a board's members, now or --as-of a past date.")
@click.argument("code")
@click.option("--as-of", "as_of",
              help="Members at this time, from history: YYYY-MM-DD (end of that day, UTC) "
                   "or an ISO date-time.")
@_format_opt
@_db_opt
@click.pass_obj
def members_cmd(obj: dict[str, Any], code: str, as_of: str | None, fmt: str | None,
                db_url: str | None) -> None:
    """List the members of board CODE (e.g. BK0475), now or --as-of a past date."""
    with _errors():
        code = audit.check_board_code(code)
        when = audit.as_of_instant(as_of) if as_of is not None else None
    with _store(obj, db_url) as store, _errors():
        _echo_rows(audit.member_rows(store, code, when), audit.MEMBER_COLUMNS, fmt)
        note = audit.member_note(store, code, when)
    if note:
        click.echo(f"boardsync: note: {note}", err=True)


@click.command("changes")
@click.option("--board", help="Only this board (e.g. BK0475).")
@click.option("--since", help="From this time (inclusive): YYYY-MM-DD (start of day, UTC) "
                              "or an ISO date-time.")
@click.option("--until", help="Up to this time (exclusive); a bare date includes that "
                              "whole day.")
@click.option("--run", "run_id", help="Only the changes recorded by this run id.")
@_format_opt
@_db_opt
@click.pass_obj
def changes_cmd(obj: dict[str, Any], board: str | None, since: str | None,
                until: str | None, run_id: str | None, fmt: str | None,
                db_url: str | None) -> None:
    """List membership joins and leaves: when, which run, which board, which stock.

    A board's first sync lists all its members as joins.
    """
    with _errors():
        if board is not None:
            board = audit.check_board_code(board)
        lo = audit.parse_time(since, option="--since") if since else None
        hi = audit.parse_time(until, option="--until", end_of_day=True) if until else None
        if lo is not None and hi is not None and hi <= lo:
            raise ConfigError("--until must be after --since", "until")
    with _store(obj, db_url) as store, _errors():
        _echo_rows(audit.change_rows(store, board, lo, hi, run_id), audit.CHANGE_COLUMNS,
                   fmt)


@click.command("stock", short_help="List the boards a stock belongs and belonged to.")
@click.argument("code")
@_format_opt
@_db_opt
@click.pass_obj
def stock_cmd(obj: dict[str, Any], code: str, fmt: str | None, db_url: str | None) -> None:
    """List the boards stock CODE (e.g. 600000) belongs to now, and belonged to, with dates."""
    with _errors():
        code = audit.check_stock_code(code)
    with _store(obj, db_url) as store, _errors():
        _echo_rows(audit.stock_rows(store, code), audit.STOCK_COLUMNS, fmt)


@click.group("runs", invoke_without_command=True)
@click.option("--limit", type=int, default=20, show_default=True,
              help="How many of the most recent runs to list.")
@_format_opt
@_db_opt
@click.pass_context
def runs_cmd(ctx: click.Context, limit: int, fmt: str | None, db_url: str | None) -> None:
    """List recent sync runs (newest first): mode, status, timings, totals, IPs, errors.

    `boardsync runs show ID` shows one run in full, parameters included (secrets removed).
    """
    if ctx.invoked_subcommand is not None:
        return
    with _store(ctx.obj, db_url) as store, _errors():
        _echo_rows(audit.run_rows(store, limit), audit.RUN_COLUMNS, fmt)


@runs_cmd.command("show")
@click.argument("run_id")
@_format_opt
@_db_opt
@click.pass_obj
def runs_show_cmd(obj: dict[str, Any], run_id: str, fmt: str | None,
                  db_url: str | None) -> None:
    """Show one run record in full: parameters (redacted), totals, errors by class."""
    with _store(obj, db_url) as store, _errors():
        click.echo(report.render_record(audit.run_detail(store, run_id), _fmt(fmt)))


@click.group("state")
def state_grp() -> None:
    """Inspect the state file and verify it against the database (audits)."""


@state_grp.command("show")
@_text_or_json
@_state_opt
@_db_opt
@click.pass_obj
def state_show_cmd(obj: dict[str, Any], as_json: bool, state_path: str | None,
                   db_url: str | None) -> None:
    """Overview of the state file: boards by kind and status, stale boards, failures, runs.

    Reads only the state file (it stays readable while the database is down); --db is
    accepted so every audit command takes the same pair of flags.
    """
    settings = load_cli_settings(obj, {"state_path": state_path, "db_url": db_url})
    with _errors():
        data = audit.load_state(settings.state_path)
        _check_if_reachable(settings, data)
        ov = audit.state_overview(data, max_age_s=settings.max_age)
    click.echo(report.render_json(ov) if as_json else
               audit.format_overview(ov, settings.state_path))


@state_grp.command("board", short_help="One board's audit trail from both sides.")
@click.argument("code")
@_text_or_json
@_state_opt
@_db_opt
@click.pass_obj
def state_board_cmd(obj: dict[str, Any], code: str, as_json: bool,
                    state_path: str | None, db_url: str | None) -> None:
    """The audit trail of one board (e.g. BK0475): attempts, errors, runs, rows, checksum."""
    settings = load_cli_settings(obj, {"state_path": state_path, "db_url": db_url})
    with _errors():
        code = audit.check_board_code(code)
        data = audit.load_state(settings.state_path)
    with _open(settings) as store, _errors():
        check_state(store, settings.db_url, data, settings.state_path)
        trail = audit.board_trail(store, data, code)
    click.echo(report.render_json(trail) if as_json else audit.format_trail(trail))


@state_grp.command("verify")
@_state_opt
@_db_opt
@click.pass_obj
def state_verify_cmd(obj: dict[str, Any], state_path: str | None,
                     db_url: str | None) -> None:
    """Recompute every board's checksum from the database and compare with the state file.

    Prints every disagreement (one line each: board, problem, both values) and exits 1
    when there is any; exits 0 when the state file and the database agree.
    """
    settings = load_cli_settings(obj, {"state_path": state_path, "db_url": db_url})
    with _errors():
        data = audit.load_state(settings.state_path)
    with _open(settings) as store, _errors():
        check_state(store, settings.db_url, data, settings.state_path)
        result = audit.verify_store(store, data)
    for p in result.problems:
        click.echo(p.line())
    click.echo(result.summary())
    if not result.ok:
        sys.exit(EXIT_DISAGREE)


@state_grp.command("export")
@_state_opt
@_db_opt
@click.pass_obj
def state_export_cmd(obj: dict[str, Any], state_path: str | None, db_url: str | None) -> None:
    """Rebuild the state file from the database (the authority): runs, boards, current run.

    For a host that never saw the file, or a file lost or damaged. A file there that belongs
    to another database is refused (exit 2).
    """
    settings = load_cli_settings(obj, {"state_path": state_path, "db_url": db_url})
    with _open(settings) as store, _errors():
        data = export_file(store, settings.db_url, settings.state_path)
    click.echo(f"state file {settings.state_path}: rebuilt from {settings.redacted()['db_url']}"
               f" ({len(data['runs'])} runs, {len(data['boards'])} boards)")


def _check_if_reachable(settings: Settings, data: dict[str, Any]) -> None:
    """``state show`` checks the file is this database's only when the database answers:
    it must keep working while the database is down."""
    try:
        store = audit.open_store(settings.db_url)
    except (ConfigError, StorageError):
        return
    try:
        check_state(store, settings.db_url, data, settings.state_path)
    finally:
        store.dispose()


#: The commands this module adds to the ``boardsync`` group.
COMMANDS: tuple[click.Command, ...] = (boards_cmd, members_cmd, changes_cmd, stock_cmd, runs_cmd,
                                       state_grp)
