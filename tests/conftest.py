"""Shared fixtures: a fresh SQLite file and a fresh PostgreSQL database per test.

PostgreSQL tests use ``BOARDSYNC_TEST_PG_URL`` (default ``postgresql://root@127.0.0.1:5432/test``).
Each test gets its own throw-away database created from that server. Without a reachable
server they skip with the reason; with ``CI=true`` they fail instead, so CI cannot go green
by skipping them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_URL = os.environ.get("BOARDSYNC_TEST_PG_URL", "postgresql://root@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _pg_admin_connect():  # type: ignore[no-untyped-def]
    import psycopg2

    dsn = PG_URL.replace("postgresql+psycopg2://", "postgresql://")
    return psycopg2.connect(dsn, connect_timeout=3)


def _pg_unreachable_reason() -> str | None:
    try:
        conn = _pg_admin_connect()
    except Exception as e:  # noqa: BLE001 - any failure means "not reachable"
        return f"PostgreSQL not reachable at BOARDSYNC_TEST_PG_URL={PG_URL!r}: {e}".strip()
    conn.close()
    return None


_PG_REASON: str | None | bool = False  # False = not checked yet


def require_pg() -> None:
    """Skip (or, under CI=true, fail) when the PostgreSQL test server is unreachable."""
    global _PG_REASON
    if _PG_REASON is False:
        _PG_REASON = _pg_unreachable_reason()
    if _PG_REASON:
        if IN_CI:
            pytest.fail(f"CI=true requires PostgreSQL: {_PG_REASON}")
        pytest.skip(str(_PG_REASON))


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a brand-new, empty PostgreSQL database, dropped after the test."""
    require_pg()
    name = f"bs_test_{uuid.uuid4().hex[:12]}"
    conn = _pg_admin_connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    base = PG_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        conn = _pg_admin_connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a fresh SQLite file in the test's temporary directory."""
    return f"sqlite:///{tmp_path / 'boardsync.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test once against SQLite and once against PostgreSQL (one contract suite)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'boardsync.db'}"
    return request.getfixturevalue("pg_url")
