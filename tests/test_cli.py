"""The command line: help everywhere, one-line errors with exit code 2, no tracebacks."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from boardsync.cli import EXIT_USAGE, cli


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in group.commands.items():
        out.append((*prefix, name))
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, (*prefix, name)))
    return out


@pytest.mark.parametrize("path", _commands(cli))
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    cmd: click.Command = cli
    for part in path:
        assert isinstance(cmd, click.Group)
        cmd = cmd.commands[part]
    assert cmd.help and len(cmd.help.strip()) > 20


def test_sync_help_documents_exit_codes() -> None:
    result = CliRunner().invoke(cli, ["sync", "--help"], catch_exceptions=False)
    for needle in ("0 ok", "1 partial", "2 bad config", "3 nothing to do", "4 locked",
                   "5 interrupted"):
        assert needle in result.output


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["sync", "--workers", "-3"], "workers"),
        (["sync", "--req-delay-min", "5", "--req-delay-max", "1"], "req_delay_min"),
        (["sync", "--upstream-url", "push2.eastmoney.com"], "upstream_url"),
        (["sync", "--db", "oracle://x/y"], "db_url"),
        (["sync", "--kinds", "stocks"], "kinds"),
    ],
)
def test_bad_values_exit_2_with_one_line(args: list[str], key: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == EXIT_USAGE
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert key in lines[0] and "Traceback" not in result.output


def test_unknown_key_in_config_file_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("max_ipz = 3\n")
    result = CliRunner().invoke(cli, ["--config", str(cfg), "sync"], catch_exceptions=False)
    assert result.exit_code == EXIT_USAGE
    assert "max_ipz" in result.output


def test_explain_workers_auto_prints_reasoning() -> None:
    result = CliRunner().invoke(
        cli,
        ["sync", "--workers", "auto", "--proxy", "api", "--proxy-api-url",
         "http://127.0.0.1:9/get", "--explain-workers"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0
    assert result.output.startswith("workers: ")
    assert int(result.output.split()[1]) >= 1


def test_an_unknown_log_level_is_refused_and_any_case_is_accepted(tmp_path: Path) -> None:
    bad = CliRunner().invoke(cli, ["--log-level", "LOUD", "runs"], catch_exceptions=False)
    assert bad.exit_code == EXIT_USAGE and "LOUD" in bad.output
    ok = CliRunner().invoke(cli, ["--log-level", "warning", "db", "init", "--db",
                                  f"sqlite:///{tmp_path / 'b.db'}"], catch_exceptions=False)
    assert ok.exit_code == 0, ok.output
