"""Bad configuration and usage, secrets, TLS: what a user sees from ``boardsync``.

Every bad setting or unusable path ends in one ``boardsync: error:`` line, exit code 2, no
traceback and nothing written. Secrets (the provider key, the tunnel password, the database
password) appear in no log line, summary, state file, run record, error message or help text.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import ssl
import stat
import subprocess
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from boardsync.errors import BoardsyncError, StorageError
from boardsync.policy import classify
from boardsync.store import Store
from boardsync.upstream import UpstreamClient, board_list_query
from helpers import closed_port
from test_reliability import boardsync, simulator, sync_env


def run_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BOARDSYNC_")}
    return subprocess.run(boardsync(*args), cwd=cwd, env=base | (env or {}),
                          capture_output=True, text=True, timeout=timeout)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# -- 9. bad configuration and usage ---------------------------------------------------------

BAD_USAGE: dict[str, tuple[list[str], dict[str, str], str, str]] = {
    # name: (extra args, env, config file text, what the line must name)
    "unknown key in file": ([], {}, "bogus_key = 1\n", "bogus_key"),
    "wrong type in file": ([], {}, 'workers = "many"\n', "workers"),
    "unknown env setting": ([], {"BOARDSYNC_BOGUS_KEY": "1"}, "", "bogus_key"),
    "wrong type in env": ([], {"BOARDSYNC_MAX_IPS": "lots"}, "", "max_ips"),
    "min above max": (["--req-delay-min", "5", "--req-delay-max", "1"], {}, "",
                      "req_delay_min"),
    "zero ips": (["--max-ips", "0"], {}, "", "max_ips"),
    "shrink above 1": (["--shrink-threshold", "1.5"], {}, "", "shrink_threshold"),
    "negative timeout": (["--shutdown-timeout", "-1"], {}, "", "shutdown_timeout"),
    "api without url": (["--proxy", "api"], {}, "", "proxy_api_url"),
    "unknown kind": (["--kinds", "industry,planets"], {}, "", "planets"),
    "bad db scheme": (["--db", "mysql://u@h/db"], {}, "", "mysql"),
    "unreachable postgresql": (["--db", "postgresql://root@127.0.0.1:{port}/x"], {}, "",
                               "unavailable"),
    "state path under a file": (["--state", "{tmp}/afile/state.json"], {}, "",
                                "not a directory"),
    "sqlite path under a file": (["--db", "sqlite:///{tmp}/afile/db.sqlite"], {}, "",
                                 "cannot create its directory"),
}


@pytest.mark.parametrize("case", sorted(BAD_USAGE))
def test_bad_configuration_one_line_exit_2_nothing_written(tmp_path: Path, case: str) -> None:
    args, env, config, names = BAD_USAGE[case]
    (tmp_path / "afile").write_text("a regular file\n")
    (tmp_path / "boardsync.toml").write_text(config)
    fmt = {"tmp": str(tmp_path), "port": str(closed_port())}
    args = [a.format(**fmt) for a in args]
    defaults = ["--db", f"sqlite:///{tmp_path}/data/db.sqlite", "--state",
                f"{tmp_path}/data/state.json", "--upstream-url", f"http://127.0.0.1:{fmt['port']}"]
    before = tree(tmp_path)
    r = run_cli(["--config", str(tmp_path / "boardsync.toml"), "sync", *defaults, *args],
                cwd=tmp_path, env=env)
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("boardsync: error:")]
    assert len(errors) == 1, r.stderr
    assert names in errors[0]
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    assert tree(tmp_path) == before, "nothing written"


def test_state_check_creates_nothing_and_names_the_path(tmp_path: Path) -> None:
    from boardsync.errors import StateError
    from boardsync.state import StateFile

    (tmp_path / "afile").write_text("x")
    with pytest.raises(StateError, match="afile"):
        StateFile(tmp_path / "afile" / "deeper" / "state.json").check_writable()
    with pytest.raises(StateError, match="not a regular file"):
        StateFile(tmp_path).check_writable()
    StateFile(tmp_path / "new" / "dir" / "state.json").check_writable()
    assert not (tmp_path / "new").exists()


# -- 10. secrets ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.pg
def test_secrets_appear_nowhere(pg_url: str, tmp_path: Path) -> None:
    db_password = "CANARY_DBPW_5f3a9c"
    url = pg_url.replace("://root@", f"://root:{db_password}@")
    assert db_password in url
    state = tmp_path / "state.json"
    outputs: dict[str, str] = {}
    with simulator("clean", seed=21) as sim:
        tunnel_password = urlsplit(sim.tunnel_url).password
        assert tunnel_password
        canaries = {"db password": db_password, "tunnel password": tunnel_password,
                    "api key": sim.api_key}
        env = sync_env(sim, url, state, BOARDSYNC_PROXY_TUNNEL_URL=sim.tunnel_url)
        api = run_cli(["--log-level", "DEBUG", "sync"], tmp_path, env)
        assert api.returncode == 0, api.stderr[-2000:]
        outputs |= {"api run log": api.stderr, "api run summary": api.stdout}
        tunnel = run_cli(["--log-level", "DEBUG", "sync", "--force", "--proxy", "tunnel"],
                         tmp_path, env)
        assert tunnel.returncode == 0, tunnel.stderr[-2000:]
        assert sim.counters()["tunnel_requests"] > 0, "the tunnel (with its password) was used"
        outputs |= {"tunnel run log": tunnel.stderr, "tunnel run summary": tunnel.stdout}
        json_log = run_cli(["--log-level", "DEBUG", "--log-format", "json", "sync"], tmp_path,
                           env)
        outputs["json log"] = json_log.stderr + json_log.stdout
        down = dict(env, BOARDSYNC_DB_URL=f"postgresql://root:{db_password}@127.0.0.1:"
                                           f"{closed_port()}/x")
        failed = run_cli(["--log-level", "DEBUG", "sync"], tmp_path, down)
        assert failed.returncode == 2
        outputs["error message"] = failed.stderr + failed.stdout
        for args in (["--help"], ["sync", "--help"], ["db", "--help"]):
            r = run_cli(args, tmp_path, env)
            assert r.returncode == 0
            outputs[" ".join(args)] = r.stdout + r.stderr
    outputs["state file"] = state.read_text()
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    store = Store(url)
    outputs["run records"] = json.dumps([vars(r) if hasattr(r, "__dict__") else repr(r)
                                         for r in store.runs()], default=str)
    outputs["store repr"] = repr(store) + store.url
    store.dispose()
    try:
        Store(f"postgresql://root:{db_password}@127.0.0.1:{closed_port()}/x").init_schema()
    except StorageError as e:
        outputs["exception"] = f"{e} {e!r}"
    else:
        pytest.fail("a closed port must fail")
    assert len(outputs["run records"]) > 100
    leaks = [(what, where) for what, canary in canaries.items()
             for where, text in outputs.items() if canary in text]
    assert leaks == []


def test_settings_repr_and_redacted_hide_every_secret() -> None:
    from boardsync.config import load_settings

    s = load_settings({"db_url": "postgresql://u:CANARY_PW@h/db", "proxy": "tunnel",
                       "proxy_tunnel_url": "http://u:CANARY_TUN@127.0.0.1:9",
                       "proxy_api_key": "CANARY_KEY"}, env={}, config_path=None)
    text = repr(s) + json.dumps(s.redacted()) + str(s)
    for canary in ("CANARY_PW", "CANARY_TUN", "CANARY_KEY"):
        assert canary not in text


# -- TLS verification stays on ---------------------------------------------------------------


@pytest.fixture
def self_signed_https(tmp_path: Path) -> Any:
    """An https server on loopback with a self-signed certificate; yields (url, hits)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    hits: list[str] = []
    body = b'{"rc":0,"data":{"total":1,"diff":[{"f12":"BK0475","f14":"x"}]}}'

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", hits, cert
    finally:
        server.shutdown()
        server.server_close()


def test_tls_verification_stays_on(self_signed_https: Any) -> None:
    url, hits, _cert = self_signed_https
    client = UpstreamClient(url, timeout=(2.0, 2.0))
    with pytest.raises(BoardsyncError) as info:
        client.get_page(board_list_query("industry"), 1, None)
    error_class, decision = classify(info.value)
    assert error_class != "unexpected" and decision is not None
    chain = f"{info.value} {info.value.__cause__!r}"
    assert "CERTIFICATE_VERIFY_FAILED" in chain or "certificate verify failed" in chain
    assert hits == [], "no request got through an unverified certificate"
    client.close()
