"""State file: atomic and private writes, refusal to clobber a bad file, redaction, resume data."""

from __future__ import annotations

import json
import stat
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from boardsync.clock import iso
from boardsync.errors import StateError
from boardsync.redact import REDACTED, is_secret_key, redact, redact_text
from boardsync.state import StateFile
from helpers import T0, FakeClock


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "state.json"


def test_missing_file_is_empty_state_and_save_creates_0600(path: Path) -> None:
    sf = StateFile(path)
    data = sf.load()
    assert data["version"] == 1 and data["runs"] == [] and data["boards"] == {}
    assert sf.current_run() is None
    assert sf.save() is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["version"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temp left


def test_existing_lax_permissions_are_tightened(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": 1, "runs": [], "boards": {}}))
    path.chmod(0o644)
    sf = StateFile(path)
    sf.update_board("BK0475", status="pending")
    sf.save(force=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_round_trip_runs_and_boards(path: Path) -> None:
    sf = StateFile(path)
    sf.begin_run("r1", "incremental", {"max_ips": 5})
    sf.update_board("BK0475", status="pending", kind="industry", name="银行")
    sf.update_board("BK0475", status="retrying", attempts=1, last_error_class="timeout")
    sf.update_board("BK0475", status="ok", attempts=2, rows=42, checksum="c" * 64,
                    run_id="r1", synced_at="2026-05-01T08:00:00+00:00", last_error_class=None)
    sf.finish_run("r1", "ok", {"ok": 1}, {"extracted": 3}, {"timeout": 1})
    sf.save(force=True)
    again = StateFile(path)
    again.load()
    rec = again.board("BK0475")
    assert rec is not None
    assert (rec["status"], rec["attempts"], rec["rows"], rec["name"], rec["run_id"]) == (
        "ok", 2, 42, "银行", "r1")
    assert rec["error_counts"] == {"timeout": 1} and rec["written_by"] == ["r1"]
    [run] = again.runs()
    assert (run["id"], run["status"], run["totals"], run["ips"], run["errors"]) == (
        "r1", "ok", {"ok": 1}, {"extracted": 3}, {"timeout": 1})
    assert run["started_at"] and run["finished_at"]
    assert again.current_run() is None
    assert again.board("BK0001") is None and list(again.boards()) == ["BK0475"]


def test_resumable_run_stays_current_and_remaining(path: Path) -> None:
    sf = StateFile(path)
    sf.update_board("BK0009", status="failed")  # before the run: not its business
    sf.begin_run("r1", "incremental", {})
    for code in ("BK0001", "BK0002", "BK0003", "BK0004"):
        sf.update_board(code, status="pending")
    sf.update_board("BK0001", status="ok", run_id="r1")
    sf.update_board("BK0002", status="failed", last_error_class="blocked")
    sf.update_board("BK0003", status="fetched_unwritten")
    sf.update_board("BK0004", status="deleted")
    sf.finish_run("r1", "interrupted", {}, {}, {}, resumable=True)
    sf.save(force=True)
    again = StateFile(path)
    current = again.current_run()
    assert current is not None and current["id"] == "r1" and current["mode"] == "incremental"
    assert again.remaining("r1") == ["BK0002", "BK0003"]
    again.begin_run("r1", "incremental", {})  # resume: same record, running again
    assert [r["status"] for r in again.runs()] == ["running"]
    again.finish_run("r1", "ok", {}, {}, {})
    assert again.current_run() is None


def test_update_board_rejects_bad_input(path: Path) -> None:
    sf = StateFile(path)
    with pytest.raises(ValueError):
        sf.update_board("BK47", status="ok")
    with pytest.raises(ValueError):
        sf.update_board("BK0475", status="great")
    with pytest.raises(ValueError):
        sf.update_board("BK0475", stauts="ok")


@pytest.mark.parametrize("body,reason", [
    (b"{not json", "not valid JSON"),
    (b"", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"version": 2, "runs": [], "boards": {}}', "unknown version 2"),
    (b'{"runs": [], "boards": {}}', "unknown version None"),
    (b'{"version": 1, "runs": {}, "boards": {}}', "'runs'"),
])
def test_bad_file_is_state_error_and_never_overwritten(path: Path, body: bytes,
                                                       reason: str) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(body)
    sf = StateFile(path)
    with pytest.raises(StateError) as info:
        sf.load()
    assert str(path) in str(info.value) and reason in str(info.value)
    with pytest.raises(StateError):
        sf.update_board("BK0475", status="ok")
    with pytest.raises(StateError):
        sf.save(force=True)
    assert path.read_bytes() == body
    # a fresh object that never called load() refuses too (it loads lazily)
    with pytest.raises(StateError):
        StateFile(path).save(force=True)
    assert path.read_bytes() == body


def test_debounced_save(path: Path) -> None:
    clock = FakeClock()
    sf = StateFile(path, debounce_ms=500, clock=clock)
    assert sf.save() is True
    sf.update_board("BK0475", status="pending")
    clock.advance(0.2)
    assert sf.save() is False and sf.dirty
    assert "BK0475" not in json.loads(path.read_text())["boards"]
    assert sf.save(force=True) is True and not sf.dirty
    sf.update_board("BK0475", status="ok")
    clock.advance(0.499)
    assert sf.save() is False
    clock.advance(0.002)
    assert sf.save() is True
    assert json.loads(path.read_text())["boards"]["BK0475"]["status"] == "ok"


def test_timestamps_come_from_the_injected_clock(path: Path) -> None:
    clock = FakeClock()
    sf = StateFile(path, debounce_ms=0, clock=clock)
    sf.begin_run("r1", "incremental", {})
    clock.advance(60)
    sf.update_board("BK0475", status="ok", run_id="r1")
    clock.advance(60)
    sf.finish_run("r1", "ok", {}, None, {})
    sf.save(force=True)
    data = json.loads(path.read_text())
    run = data["runs"][0]
    assert run["started_at"] == iso(T0)
    assert data["boards"]["BK0475"]["updated_at"] == iso(T0 + timedelta(seconds=60))
    assert run["finished_at"] == data["updated_at"] == iso(clock.wall())


def test_readers_always_see_a_complete_file(path: Path) -> None:
    sf = StateFile(path, debounce_ms=0)
    sf.begin_run("r1", "incremental", {})
    sf.save(force=True)
    stop = threading.Event()
    seen: list[list[int]] = [[], []]
    errors: list[BaseException] = []

    def reader(k: int) -> None:
        while not stop.is_set():
            try:
                seen[k].append(len(json.loads(path.read_bytes())["boards"]))
            except BaseException as e:  # noqa: BLE001 - recorded for the assertion
                errors.append(e)
                return
            stop.wait(0.0005)  # let the writer have the GIL now and then

    readers = [threading.Thread(target=reader, args=(k,)) for k in range(2)]
    for t in readers:
        t.start()
    try:
        for i in range(120):
            sf.update_board(f"BK{i:04d}", status="ok", rows=i, name="x" * 200)
            sf.save()
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert errors == []
    for counts in seen:  # monotone per reader: never an older or a torn file
        assert counts and counts == sorted(counts)
    assert len(json.loads(path.read_text())["boards"]) == 120


def test_concurrent_updates_from_threads_are_all_kept(path: Path) -> None:
    sf = StateFile(path, debounce_ms=0)

    def work(k: int) -> None:
        for i in range(25):
            sf.update_board(f"BK{k}{i:03d}", status="ok")
            sf.save()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sf.save(force=True)
    assert len(StateFile(path).boards()) == 100


# --- redaction -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["password", "db_password", "proxy_api_key", "api_key", "key",
                                 "apiKey", "secret", "client_secret", "token", "access_token",
                                 "Authorization", "proxy-auth"])
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["max_ips", "kinds", "keyword", "key_count", "max_tokens",
                                 "proxy_api_key_param", "key_param", "monkey", "keys",
                                 "ip_ttl", "boards", "sort_key_order", "token_bucket"])
def test_ordinary_keys_are_kept(key: str) -> None:
    assert not is_secret_key(key)


def test_redact_walks_and_cuts_urls() -> None:
    params = {
        "db_url": "postgresql://bob:canary-db@db.local:5432/x",
        "proxy_tunnel_url": "http://u:canary-tunnel@gw:8000",
        "proxy_api_url": "http://p.local/get?num=1&key=canary-query&format=txt",
        "proxy_api_key": "canary-key",
        "proxy_api_key_param": "key",
        "max_ips": 100,
        "kinds": ["industry", "concept"],
        "nested": [{"token": "canary-token"}, "x://a:canary-list@h"],
        "password": "",
        "ok": None,
    }
    out = redact(params)
    assert "canary" not in json.dumps(out)
    assert out["db_url"] == f"postgresql://bob:{REDACTED}@db.local:5432/x"
    assert out["proxy_api_url"] == f"http://p.local/get?num=1&key={REDACTED}&format=txt"
    assert out["proxy_api_key"] == REDACTED and out["proxy_api_key_param"] == "key"
    assert out["max_ips"] == 100 and out["kinds"] == ["industry", "concept"]
    assert out["password"] == "" and out["ok"] is None
    assert params["proxy_api_key"] == "canary-key"  # input untouched
    assert redact_text("no secrets here: a:b, http://host/path") == \
        "no secrets here: a:b, http://host/path"


def test_params_are_redacted_on_disk(path: Path) -> None:
    sf = StateFile(path)
    sf.begin_run("r1", "force", {"proxy_api_key": "canary-k",
                                 "db_url": "postgresql://u:canary-p@h/d", "max_ips": 9})
    sf.save(force=True)
    text = path.read_text()
    assert "canary" not in text and '"max_ips": 9' in text
