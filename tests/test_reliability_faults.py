"""Nothing lost, nothing duplicated, in-process: injected faults against a real sync.

Each test runs :class:`~boardsync.run.Run` against the simulator (real sockets, real proxy
extraction) and a real database, with a small market and every duration scaled down, then
injects one fault for real: a shrunken board, a spent quota, an upstream outage, garbled
bodies, a database that goes away (``pg_terminate_backend`` on PostgreSQL).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from boardsync.cli import STATUS_EXIT
from boardsync.config import Settings, load_settings
from boardsync.demo import scaled
from boardsync.outcomes import Summary
from boardsync.progress import format_summary
from boardsync.run import Run
from boardsync.sim import Simulator, load_scenario
from boardsync.store import Store
from helpers import assert_db_equals_truth, pause
from test_reliability import record

SCALE = 0.01
#: A small market (80 boards, ~5000 memberships) so each run takes about a second.
SMALL = {"stocks": 800, "industry_boards": 20, "industry_memberships": 1000,
         "concept_boards": 60, "concept_memberships": 4000, "largest_board_size": 400}


@contextmanager
def world(seed: int = 3, scale: float = SCALE, **overrides: Any) -> Iterator[Simulator]:
    scn = load_scenario("clean").with_overrides(**(SMALL | overrides))
    with Simulator(scn, time_scale=scale, seed=seed) as sim:
        yield sim


def settings_for(sim: Simulator, db_url: str, tmp_path: Path, scale: float = SCALE,
                 **flags: Any) -> Settings:
    """Settings pointed at ``sim``; durations in ``flags`` are unscaled (reference) seconds."""
    base = {"db_url": db_url, "state_path": str(tmp_path / "state.json"), "progress": "none",
            "max_ips": 100000, "workers": 4}
    s = load_settings(base | flags, env={}, config_path=None)
    return scaled(s, scale, upstream_url=sim.upstream_url, proxy="api",
                  proxy_api_url=sim.extract_url, proxy_api_key=sim.api_key)


def remaining(s: Settings, done: set[str]) -> set[str]:
    return set(statuses(s)) - done - {c for c, v in statuses(s).items() if v == "deleted"}


def read_state(s: Settings) -> dict[str, Any]:
    return json.loads(Path(s.state_path).read_text())


def statuses(s: Settings) -> dict[str, str]:
    return {code: b["status"] for code, b in read_state(s)["boards"].items()}


def assert_exact(db_url: str, truth: dict[str, frozenset[str]],
                 codes: Any = None) -> None:
    """The database holds exactly ``truth`` for ``codes`` (all by default), no duplicates,
    and one open history interval per current member."""
    assert_db_equals_truth(db_url, {c: truth[c] for c in (truth if codes is None else codes)})
    store = Store(db_url)
    try:
        with store.engine.connect() as conn:
            open_n = conn.execute(text(
                "SELECT COUNT(*) FROM membership_history WHERE valid_to IS NULL")).scalar()
            current_n = conn.execute(text("SELECT COUNT(*) FROM memberships")).scalar()
    finally:
        store.dispose()
    assert open_n == current_n, "one open history interval per current member"


def on_write(sync: Run, call: int, action: Callable[[], None]) -> None:
    """Run ``action`` just before the ``call``-th database write of ``sync`` (1-based)."""
    real = sync.store.write_boards
    calls = [0]

    def write_boards(run_id: str, items: Any) -> Any:
        calls[0] += 1
        if calls[0] == call:
            action()
        return real(run_id, items)

    sync.store.write_boards = write_boards  # type: ignore[method-assign]


# -- 4. suspicious data ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("accept", ["accept_shrink", "force"])
def test_shrunken_or_empty_board_is_held_back_until_accepted(sqlite_url: str, tmp_path: Path,
                                                            accept: str) -> None:
    with world() as sim:
        s = settings_for(sim, sqlite_url, tmp_path)
        assert Run(s).run().status == "ok"
        truth = sim.truth()
        big = sorted((c for c in truth if len(truth[c]) >= 20), key=lambda c: len(truth[c]))
        shrunk, emptied = big[-1], big[-2]
        sim.set_shrink(shrunk, 0.3)
        sim.set_shrink(emptied, 0.0)
        again = s.replace(max_age=0.0)  # refetch everything, guard on
        summary = Run(again).run()
        assert summary.status == "partial" and STATUS_EXIT[summary.status] == 1
        assert sorted(summary.suspicious_boards) == sorted([shrunk, emptied])
        assert summary.suspicious == 2 and summary.ok == len(truth) - 2
        text_summary = format_summary(summary)
        assert shrunk in text_summary and emptied in text_summary
        state = read_state(again)
        for code in (shrunk, emptied):
            board = state["boards"][code]
            assert board["status"] == "suspicious"
            assert board["rows"] == len(truth[code])  # what the database still holds
        assert state["boards"][emptied]["fetched_rows"] == 0
        assert_exact(sqlite_url, truth)  # neither held-back board was touched
        accepted = Run(again.replace(**{accept: True})).run()
        assert accepted.status == "ok", accepted
        store = Store(sqlite_url)
        assert store.member_codes(emptied) == set()
        kept = store.member_codes(shrunk)
        assert kept < set(truth[shrunk]) and len(kept) == int(len(truth[shrunk]) * 0.3)
        assert statuses(again)[shrunk] == "ok"


def test_shrink_threshold_is_configurable() -> None:
    from boardsync.validate import is_suspicious

    assert is_suspicious(200, 99, 0.5) and not is_suspicious(200, 100, 0.5)
    assert is_suspicious(200, 179, 0.1) and not is_suspicious(200, 180, 0.1)
    assert is_suspicious(10, 0, 1.0) and not is_suspicious(None, 0, 0.5)


# -- 7. quota exhaustion -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("limit", ["max_ips", "provider_quota"])
def test_quota_runs_out_then_next_run_fetches_only_the_rest(sqlite_url: str, tmp_path: Path,
                                                           limit: str) -> None:
    overrides = {"extract_quota_per_day": 6} if limit == "provider_quota" else {}
    flags: dict[str, Any] = {"ip_ttl": 15.0}
    if limit == "max_ips":
        flags["max_ips"] = 6
    with world(**overrides) as sim:
        s = settings_for(sim, sqlite_url, tmp_path, **flags)
        first = Run(s).run()
        assert first.status == "partial", first
        assert first.stop_reason and "quota" in first.stop_reason
        assert first.remaining and first.ok > 0
        st = statuses(s)
        ok = {c for c, v in st.items() if v == "ok"}
        assert set(first.remaining) == {c for c, v in st.items() if v in ("pending", "retrying")}
        assert ok | set(first.remaining) == set(sim.truth())
        assert read_state(s)["current_run"] == first.run_id, "resumable"
        s2 = s if limit == "provider_quota" else s.replace(max_ips=100000)
        summary, runs = first, 1
        while summary.status != "ok":
            assert runs < 10 and summary.ok > 0, "every run makes progress"
            done = {c for c, v in statuses(s).items() if v == "ok"}
            todo = remaining(s, done)
            before = dict(sim.counters()["requests_by_board"])
            if limit == "provider_quota":
                assert sim.provider is not None
                sim.provider.new_day()  # a fresh daily quota, same market
            summary = Run(s2).run()
            runs += 1
            assert summary.run_id == first.run_id, "the unfinished run is resumed"
            after = sim.counters()["requests_by_board"]
            fetched = {c for c in after if after[c] != before.get(c, 0)}
            assert fetched <= todo, "only what remained is fetched"
            assert {c for c, v in statuses(s).items() if v == "ok"} - done <= fetched
        assert_exact(sqlite_url, sim.truth())
        record(f"quota_{limit}", {"ok_first_run": len(ok), "remaining": len(first.remaining),
                                  "runs": runs})


# -- 6. upstream outage: the breaker pauses instead of rotating ---------------------------


_last_faults: list[dict[str, int]] = [{}]


def _outage_run(db_url: str, tmp_path: Path, kind: str, outage_s: float,
                **flags: Any) -> tuple[int, Summary, dict[str, frozenset[str]], int]:
    """Sync with an upstream outage of ``outage_s`` real seconds starting at the 2nd write.

    Returns (IPs extracted during the outage, summary, truth, breaker opens).
    """
    with world(seed=4) as sim:
        s = settings_for(sim, db_url, tmp_path, max_retry=10, **flags)
        sync = Run(s)
        window: dict[str, int] = {}
        done = threading.Event()

        def outage() -> None:
            window["start"] = sim.counters()["ips_issued"]
            sim.set_outage(kind)
            pause(outage_s)
            window["end"] = sim.counters()["ips_issued"]
            sim.set_outage(None)
            done.set()

        on_write(sync, 1, lambda: threading.Thread(target=outage, daemon=True).start())
        summary = sync.run()
        _last_faults[0] = sim.counters()["faults"]
        assert done.is_set(), "the outage must end before the run does"
        return window["end"] - window["start"], summary, sim.truth(), sync.breaker.opens


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["502", "reset"])
def test_upstream_outage_opens_breaker_ips_stay_constant_then_completes(
        tmp_path: Path, kind: str) -> None:
    results, opened = {}, {}
    for outage_s in (0.5, 2.0):
        db = tmp_path / f"o{outage_s}"
        db.mkdir()
        url = f"sqlite:///{db / 'db.sqlite'}"
        ips, summary, truth, opens = _outage_run(url, db, kind, outage_s)
        assert opens >= 1, "the breaker must open"
        assert summary.status == "ok", summary
        assert summary.failed == 0
        assert_exact(url, truth)
        results[outage_s], opened[outage_s] = ips, opens
        record(f"outage_{kind}_{outage_s}s", {"ips": ips, "breaker_opens": opens,
                                              "faults": _last_faults[0]})
    # At most one fresh IP per worker (4) as the breaker opens, plus one per probe; probes
    # back off exponentially, so 4x the outage adds at most 2 opens, not 4x the IPs (how many
    # IPs the short outage happened to need depends on the machine's load, so the long one is
    # bounded by its own opens, not by the short one's IPs).
    for outage_s, ips in results.items():
        assert ips <= 4 + opened[outage_s], (results, opened)
    assert opened[2.0] <= opened[0.5] + 2, opened


@pytest.mark.slow
def test_without_breaker_the_same_outage_burns_ips(tmp_path: Path) -> None:
    """The baseline: breaker_ips = 0 rotates on every failure and the quota burns."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    ips, _summary, _truth, opens = _outage_run(url, tmp_path, "502", 2.0, breaker_ips=0)
    assert opens == 0
    assert ips > 20, ips
    record("outage_502_2.0s_no_breaker", {"ips": ips, "faults": _last_faults[0]})


# -- 8. bad upstream bodies through the whole worker path ---------------------------------


@pytest.mark.slow
@settings(max_examples=4, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate],  # a whole sync per example: no shrinking
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000),
       rates=st.tuples(st.floats(0.05, 0.2), st.floats(0.05, 0.2), st.floats(0.05, 0.2)))
def test_garbled_bodies_never_reach_the_database(tmp_path_factory: pytest.TempPathFactory,
                                                 seed: int,
                                                 rates: tuple[float, float, float]) -> None:
    html, truncated, null = rates
    tmp = tmp_path_factory.mktemp("garbled")
    url = f"sqlite:///{tmp / 'db.sqlite'}"
    with world(seed=seed, fault_html=html, fault_truncated=truncated,
               fault_null_data=null) as sim:
        s = settings_for(sim, url, tmp, max_retry=3, page_retries=2, breaker_ips=0)
        summary = Run(s).run()
        truth = sim.truth()
        faults = sim.counters()["faults"]
    assert summary.status in ("ok", "partial"), summary
    assert sum(faults.values()) > 0
    ok = {c for c, v in statuses(s).items() if v == "ok"}
    assert len(ok) == summary.ok
    assert_exact(url, truth, ok)  # every board written is exact
    store = Store(url)
    stray = [c for c in truth if c not in ok and store.member_codes(c)]
    assert stray == [], "a board that was not written ok has no rows"
    record(f"garbled_seed_{seed}", {"faults": faults, "boards_ok": len(ok),
                                    "boards": len(truth)})


# -- 3. database outage (PostgreSQL) -------------------------------------------------------


class PgOutage:
    """Cut a PostgreSQL test database away: refuse new connections, terminate the live ones.

    ``ALTER DATABASE ... ALLOW_CONNECTIONS false`` keeps everyone out (superusers too), and a
    loop runs ``pg_terminate_backend`` on every backend of the database but the admin session.
    """

    def __init__(self, db_url: str) -> None:
        import psycopg2

        self.name = db_url.rsplit("/", 1)[1]
        admin = db_url.rsplit("/", 1)[0] + "/test"
        self.conn = psycopg2.connect(admin.replace("postgresql+psycopg2://", "postgresql://"))
        self.conn.autocommit = True
        self.terminated = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sql(self, sql: str, *args: Any) -> Any:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else None

    def cut(self) -> None:
        self._sql(f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS false')
        self._terminate()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _terminate(self) -> None:
        rows = self._sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s AND pid <> pg_backend_pid()", self.name)
        self.terminated += sum(1 for (r,) in rows if r)

    def _loop(self) -> None:
        while not self._stop.wait(0.01):
            self._terminate()

    def restore(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sql(f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS true')

    def close(self) -> None:
        self.restore()
        self.conn.close()


@pytest.mark.slow
@pytest.mark.pg
def test_pg_outage_short_writes_retry_with_backoff_and_finish(pg_url: str,
                                                              tmp_path: Path) -> None:
    outage = PgOutage(pg_url)
    try:
        with world(seed=6) as sim:
            s = settings_for(sim, pg_url, tmp_path, db_retries=5)
            sync = Run(s)

            def cut_for_a_while() -> None:
                outage.cut()
                # back after ~0.8 s: inside the 0.5 + 1 + 2 s backoff of the write retries
                threading.Timer(0.8, outage.restore).start()

            on_write(sync, 2, cut_for_a_while)
            summary = sync.run()
            truth = sim.truth()
    finally:
        outage.close()
    assert outage.terminated >= 1
    assert summary.status == "ok", summary
    assert summary.errors.get("db_unavailable", 0) >= 1
    assert_exact(pg_url, truth)
    record("pg_short_outage", {"backends_terminated": outage.terminated,
                               "db_errors": summary.errors.get("db_unavailable", 0)})


@pytest.mark.slow
@pytest.mark.pg
def test_pg_outage_long_stops_cleanly_then_next_run_finishes(pg_url: str,
                                                             tmp_path: Path) -> None:
    outage = PgOutage(pg_url)
    try:
        with world(seed=8) as sim:
            s = settings_for(sim, pg_url, tmp_path, db_retries=2)
            sync = Run(s)
            on_write(sync, 2, outage.cut)
            first = sync.run()
            outage.restore()
            truth = sim.truth()
            assert first.status == "partial", first
            assert first.stop_reason and "database unavailable" in first.stop_reason
            st = statuses(s)
            unwritten = {c for c, v in st.items() if v == "fetched_unwritten"}
            ok = {c for c, v in st.items() if v == "ok"}
            assert unwritten and ok
            assert unwritten <= set(first.remaining)
            for code in unwritten:
                assert read_state(s)["boards"][code]["checksum_fetched"]
            # nothing half-written: the written boards are exact, the others hold nothing
            assert_exact(pg_url, truth, ok)
            store = Store(pg_url)
            assert [c for c in truth if c not in ok and store.member_codes(c)] == []
            store.dispose()
            before = dict(sim.counters()["requests_by_board"])
            second = Run(s).run()
            after = sim.counters()["requests_by_board"]
    finally:
        outage.close()
    assert second.status == "ok", second
    assert second.run_id == first.run_id
    assert [c for c in ok if after.get(c, 0) != before.get(c, 0)] == []
    assert_exact(pg_url, truth)
    assert set(statuses(s).values()) == {"ok"}
    record("pg_long_outage", {"backends_terminated": outage.terminated,
                              "fetched_unwritten": len(unwritten), "written_before": len(ok)})
