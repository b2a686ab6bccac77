"""``boardsync sync --explain`` (issue 14): what was learned and the sizing arithmetic, in
words a user can check, without syncing and without writing to the database.

Through the CLI on real SQLite files (and PostgreSQL where the stored allowance is read);
the expected decayed values come from :func:`boardsync.allowance.decayed`, the rule the run
itself starts from, not from numbers copied out of the output.
"""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner, Result

from boardsync.allowance import Allowance, decayed
from boardsync.cli import cli
from boardsync.store.allowance import AllowanceStore

DAY_S = 86400.0
#: An extraction API nobody listens on: --explain never calls it.
API = ["--proxy", "api", "--proxy-api-url", "http://127.0.0.1:9/get"]


def explain(tmp_path: Path, db_url: str, *args: str, flag: str = "--explain") -> Result:
    """``sync --explain`` with learn pacing (from a config file: there is no --pacing flag)
    and explicit delays, so the start the output is checked against is known here."""
    config = tmp_path / "learn.toml"
    config.write_text('pacing = "learn"\n', encoding="utf-8")
    return CliRunner().invoke(
        cli, ["--config", str(config), "sync", "--db", db_url, "--state",
              str(tmp_path / "state.json"), "--req-delay-min", "1", "--req-delay-max", "2",
              *args, flag], catch_exceptions=False)


def test_a_fresh_database_is_explained_and_left_uncreated(tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    result = explain(tmp_path, f"sqlite:///{db}")
    assert result.exit_code == 0, result.output
    assert "pacing: learn." in result.stdout
    assert f"no database yet ({db} does not exist; nothing was created)" in result.stdout
    assert "the run starts at 1 request per req_delay_max = 2 s (0.5 req/s)" in result.stdout
    # no sync ran: no database, no run in it, no state file
    assert not db.exists() and not (tmp_path / "state.json").exists()


def test_a_stored_allowance_a_day_old_is_shown_as_stored_and_decayed(
        tmp_path: Path, db_url: str) -> None:
    stored = Allowance(rate=2.0, burst=4, windows=((30, 120.0),), rate_refuted=3.0, bans=2)
    store = AllowanceStore(db_url, "push2.eastmoney.com")
    store.save(stored.to_json(), time.time() - DAY_S)
    store.close()
    result = explain(tmp_path, db_url, "--workers", "0", "--ip-ttl", "45", *API)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "stored allowance for push2.eastmoney.com: learned 24.0 h ago" in out
    assert ("as stored: 2 req/s (one every 0.5 s), burst 4, concurrency 1, windows: at most "
            "30 per 120 s, a ban refuted 3 req/s, bans counted 2") in out
    start = decayed(stored, DAY_S, start=Allowance(rate=1 / 2))
    assert start.rate < stored.rate and start.burst < stored.burst
    # a day is one half-life: the refuted rate and the window are forgotten
    assert (f"the run starts from it decayed by its age (its excess over the start, 0.5 "
            f"req/s, burst 1, concurrency 1, halves every 24.0 h; refuted values and windows "
            f"older than that are forgotten): {start.rate:.3g} req/s (one every "
            f"{1 / start.rate:.3g} s), burst {start.burst}, concurrency {start.concurrency}, "
            f"no windows") in out
    per_ip = start.burst + start.rate * 45
    assert (f"one IP may serve about burst + rate x life = {start.burst} + {start.rate:.3g} "
            f"x 45 = {per_ip:.0f} requests in its life") in out
    assert "probe budget: 10 bans (5% of max_ips 200, at least 1)" in out
    # the workers are sized from the learner the run would build: live, by the allowance
    assert out.startswith("workers: ") and "sized live" in out
    # explaining wrote nothing: the allowance is as saved and no run was recorded
    found = store.load()
    store.close()
    assert found is not None and Allowance.from_json(found[0]) == stored
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        assert sa.inspect(engine).get_table_names() == ["learned_allowance"]
    finally:
        engine.dispose()


def test_explain_workers_is_the_same_explanation(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'b.db'}"
    old = explain(tmp_path, db_url, "--workers", "3", flag="--explain-workers")
    assert old.exit_code == 0, old.output
    assert old.stdout.startswith("workers: 3\n3 workers (configured)\n")
    assert old.stdout == explain(tmp_path, db_url, "--workers", "3").stdout
    assert "--explain-workers" not in CliRunner().invoke(cli, ["sync", "--help"]).output


def test_fixed_pacing_says_what_it_does_and_reads_nothing(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    result = CliRunner().invoke(cli, ["--preset", "reference", "sync", "--db", f"sqlite:///{db}",
                                      "--explain"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "pacing: fixed. After every request a worker waits a random" in result.stdout
    assert not db.exists()


def test_the_defaults_are_the_learner_and_fast_is_their_name(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'd.db'}"
    args = ["sync", "--db", db_url, *API, "--explain"]
    default = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert default.exit_code == 0, default.output
    assert "pacing: learn." in default.stdout and "sized live" in default.stdout
    fast = CliRunner().invoke(cli, ["--preset", "fast", *args], catch_exceptions=False)
    assert fast.stdout == default.stdout
    reference = CliRunner().invoke(cli, ["--preset", "reference", *args],
                                   catch_exceptions=False)
    assert reference.stdout.startswith("workers: 6\n") and "pacing: fixed." in reference.stdout


def test_a_young_rate_is_explained_with_the_ages_it_holds_for(tmp_path: Path,
                                                               sqlite_url: str) -> None:
    """A rate a prober followed for 40 s unbanned holds for IPs that young: both rates are
    shown, and the per-IP arithmetic counts each for its part of the life."""
    store = AllowanceStore(sqlite_url, "push2.eastmoney.com")
    store.save(Allowance(rate=0.5, young_rate=1.0, young_span=40.0).to_json(), time.time())
    store.close()
    result = explain(tmp_path, sqlite_url, "--workers", "0", "--ip-ttl", "46",
                     *API)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "1 req/s for an IP's first 40 s (a prober followed it that long unbanned)" in out
    assert ("so one IP may serve about burst + young rate x its first 40 s + rate x the rest "
            "= 1 + 1 x 40 + 0.5 x 6 = 44 requests in its life") in out
