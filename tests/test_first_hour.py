"""A new user's first hour (issue 15 item 9): the README's quick start flows into its audit
section, help that helps, one spelling for JSON, options where people type them, honest
worker counts.

The walk runs real processes in a fresh directory: the Makefile's ``demo`` command (with a
one-board selection at time scale 0.01 so it stays fast), then the README's own code blocks,
line by line, exactly as written.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from boardsync.cli import EXIT_USAGE, cli

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SMALL = "--kinds industry --boards BK1220 --sim-time-scale 0.01 --progress none"


def _block_after(text: str, marker: str) -> list[str]:
    """The lines of the first ```sh block after ``marker`` in ``text``."""
    rest = text[text.index(marker):]
    body = rest[rest.index("```sh\n") + 6:]
    return body[:body.index("```")].splitlines()


def _bash(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOARDSYNC_")}
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_quick_start_flows_into_every_audit_command(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    demo = re.search(r"^demo:.*\n\t(.+)$", makefile, re.M)
    assert demo is not None
    (tmp_path / ".venv").symlink_to(VENV_BIN.parent)  # what `make venv` leaves behind
    sync = demo.group(1).replace("$(BIN)/", ".venv/bin/") + " " + SMALL
    done = _bash(sync, tmp_path)
    assert done.returncode == 0, done.stderr
    setup = "\n".join(_block_after(readme, "Then put `boardsync` on your PATH"))
    assert "source .venv/bin/activate" in setup and "BOARDSYNC_DB_URL" in setup
    audits = [re.sub(r"\s+# .*$", "", line).replace("[--format json]", "--format json")
              for line in _block_after(readme, "## Audits") if line.strip()]
    assert len(audits) >= 10
    # one shell for all of them (each command's output and exit code kept apart)
    script = [setup, "set +e"] + [f"{line} >out{i} 2>err{i}; echo $? >rc{i}"
                                  for i, line in enumerate(audits)]
    assert _bash("set -e\n" + "\n".join(script), tmp_path).returncode == 0
    for i, line in enumerate(audits):
        out, err = ((tmp_path / f"{name}{i}").read_text() for name in ("out", "err"))
        assert (tmp_path / f"rc{i}").read_text().strip() == "0", (line, out, err)
        assert out.strip() and "error" not in err, (line, out, err)
        if "stock 000226" in line:
            assert "BK1220" in out


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[click.Command]:
    out: list[click.Command] = []
    for cmd in group.commands.values():
        out.append(cmd)
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd))
    return out


def test_help_shows_defaults_examples_and_whole_summaries() -> None:
    text = CliRunner().invoke(cli, ["sync", "--help"], catch_exceptions=False).output
    flat = " ".join(text.split())  # click wraps the option help
    assert "[default: sqlite:///data/boardsync.db]" in flat and "[default: 200]" in flat
    examples = text[text.index("Examples:"):text.index("Exit codes")]
    assert examples.count("boardsync sync") == 2
    for cmd in _commands(cli):
        short = cmd.get_short_help_str(limit=300)
        assert short.count("(") == short.count(")") and not short.endswith("(e.g."), short


def test_log_level_goes_on_either_side_of_the_subcommand(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'b.db'}"
    for args in (["--log-level", "debug", "db", "init", "--db", db],
                 ["db", "init", "--db", db, "--log-level", "DEBUG"],
                 ["db", "init", "--log-level=warning", "--db", db]):
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, (args, result.output)
    bad = CliRunner().invoke(cli, ["db", "init", "--db", db, "--log-level", "LOUD"])
    assert bad.exit_code == EXIT_USAGE and "LOUD" in bad.output


def test_state_show_takes_format_json_and_the_old_json_flag(tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    state.write_text('{"version": 1, "runs": [], "boards": {}}')
    outputs = []
    for flag in (["--format", "json"], ["--json"]):
        result = CliRunner().invoke(cli, ["state", "show", "--state", str(state), *flag],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        outputs.append(json.loads(result.stdout))
    assert outputs[0] == outputs[1]
    text = CliRunner().invoke(cli, ["state", "show", "--state", str(state)])
    assert not text.stdout.startswith("{")
    assert "--json" not in CliRunner().invoke(cli, ["state", "show", "--help"]).output


def test_explain_workers_under_sim_is_what_the_run_uses(tmp_path: Path) -> None:
    base = ["sync", "--sim", "today", "--workers", "auto", "--db",
            f"sqlite:///{tmp_path / 'b.db'}", "--state", str(tmp_path / "s.json"),
            *SMALL.split()]
    told = CliRunner().invoke(cli, [*base, "--explain-workers"], catch_exceptions=False)
    assert told.exit_code == 0 and told.stdout.startswith("workers: ")
    said = int(told.stdout.split()[1])
    ran = CliRunner().invoke(cli, ["--log-format", "json", *base], catch_exceptions=False)
    assert ran.exit_code == 0, ran.output
    listing = [json.loads(line)["message"] for line in ran.stderr.splitlines()
               if "workers (" in line and "listing" in line]
    assert listing and f" with {said} workers " in listing[0], (said, listing)
    assert said > 2  # sized by the simulator's provider, not as the direct default


def test_an_implausible_worker_count_is_warned_about() -> None:
    result = CliRunner().invoke(cli, ["sync", "--workers", "1000", "--explain-workers"],
                                catch_exceptions=False)
    assert result.exit_code == 0 and result.stdout.startswith("workers: 1000")
    assert "--workers 1000 is implausible" in result.stderr
    fine = CliRunner().invoke(cli, ["sync", "--workers", "20", "--explain-workers"])
    assert "implausible" not in fine.stderr
