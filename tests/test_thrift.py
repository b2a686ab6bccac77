"""IP thrift: a worker that loses its IP near the end of a run stops instead of taking a new one."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from boardsync.config import load_settings
from boardsync.crew import worth_a_new_ip
from boardsync.demo import simulated
from boardsync.run import Run
from boardsync.store import Store


@pytest.mark.parametrize(
    ("pages", "holders", "spacing", "thrift", "expected"),
    [
        (120, 19, 1.05, 15.0, False),  # 6.6 s of work each: the others finish it
        (300, 19, 1.05, 15.0, True),  # 16.6 s each: a new IP shortens the run
        (285, 19, 1.0, 15.0, True),  # exactly 15 s each: worth it
        (284, 19, 1.0, 15.0, False),
        (0, 5, 1.5, 15.0, False),  # nothing waiting
        (10_000, 0, 1.0, 15.0, True),  # nobody else holds an IP: always
        (1, 19, 1.0, 0.0, True),  # thrift off: always
    ],
)
def test_worth_a_new_ip(pages: int, holders: int, spacing: float, thrift: float,
                        expected: bool) -> None:
    assert worth_a_new_ip(pages, holders, spacing, thrift) is expected


def test_reference_preset_always_takes_a_new_ip(tmp_path: Path) -> None:
    settings = load_settings({"db_url": f"sqlite:///{tmp_path}/b.db"}, env={},
                             config_path=None, preset="reference")
    assert settings.ip_thrift == 0.0
    assert load_settings({}, env={}, config_path=None).ip_thrift == 15.0


@pytest.mark.slow
def test_retired_workers_lose_no_board(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """With thrift so high that no new IP is ever worth it once the lists are in, every worker
    that loses its IP (the hostile scenario bans and breaks many) retires while another still
    holds one; the boards they drop go back to the queue and the run is still complete."""
    db_url = f"sqlite:///{tmp_path}/b.db"
    base = load_settings({"db_url": db_url, "state_path": str(tmp_path / "state.json"),
                          "progress": "none", "force": True, "kinds": "industry",
                          "ip_thrift": 1e9}, env={}, config_path=None)
    with caplog.at_level(logging.INFO, logger="boardsync.crew"), \
            simulated(base, "hostile", time_scale=0.02, seed=3) as (settings, sim):
        summary = Run(settings).run()
        industry = {b.code for b in sim.boards() if b.kind == "industry"}
        truth = {code: set(m) for code, m in sim.truth().items() if code in industry}
    retired = [r for r in caplog.records if "retiring instead of taking a new IP" in r.message]
    assert retired, "no worker lost its IP after the lists were in: vacuous"
    assert summary.status == "ok" and summary.ok == len(truth)
    store = Store(db_url)
    assert {code: store.member_codes(code) for code in truth} == truth
