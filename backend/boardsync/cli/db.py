"""``boardsync db``: database administration."""

from __future__ import annotations

from typing import Any

import click

from ..errors import StorageError
from ..store import Store
from .common import library_errors, load_cli_settings


@click.group()
def db() -> None:
    """Database administration."""


@db.command("init")
@click.option("--db", "db_url", help="Database URL (SQLAlchemy).")
@click.pass_obj
def db_init(obj: dict[str, Any], db_url: str | None) -> None:
    """Create the schema (idempotent); `sync` also does this when it is missing."""
    settings = load_cli_settings(obj, {"db_url": db_url})
    with library_errors(StorageError):
        Store(settings.db_url).init_schema()
    click.echo(f"schema ready in {settings.redacted()['db_url']}")
