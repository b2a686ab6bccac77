"""``boardsync probe``: one request per (host, route, transport) against the simulator's
``today`` world through one proxy IP over HTTPS, printed as a table."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from boardsync.cli import cli
from boardsync.cli.probe import table
from boardsync.upstream.probe import ProbeRow


def test_probe_prints_what_answers_in_the_today_world(tmp_path: Path) -> None:
    pytest.importorskip("trustme", reason="the simulator's HTTPS needs the tls extra")
    r = CliRunner().invoke(cli, ["--log-level", "WARNING", "probe", "--sim", "today",
                                 "--transport", "requests", "--db",
                                 f"sqlite:///{tmp_path}/b.db"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("host "))
    rows = [line.split() for line in lines[header + 1:]]
    assert len(rows) == 10  # the default pool, one transport
    by_lane = {(row[0], row[1]): row[3] for row in rows}
    assert by_lane[("29.push2.eastmoney.com", "api")] == "ok"
    assert by_lane[("push2delay.eastmoney.com", "api")] == "ok"
    assert all(row[2] == "requests" for row in rows)


def test_table_aligns_columns() -> None:
    rows = [ProbeRow("29.push2.eastmoney.com", "api", "requests", "ok", 200, 496, 0.05, ""),
            ProbeRow("17.push2.eastmoney.com", "webguest", "browser", "connection", None,
                     None, 0.01, "Empty reply")]
    out = table(rows).splitlines()
    assert out[0].split()[:4] == ["host", "route", "transport", "outcome"]
    assert out[1].index("api") == out[2].index("webguest") == out[0].index("route")
    assert out[2].endswith("Empty reply")
