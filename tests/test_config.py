"""Settings: precedence, unknown keys, bad values, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from boardsync.config import FIELDS, load_settings
from boardsync.errors import ConfigError


def test_defaults_are_valid_and_match_the_table() -> None:
    s = load_settings(env={})
    assert s.db_url == "sqlite:///data/boardsync.db"
    assert s.workers == FIELDS["workers"].default
    assert s.kinds == ("industry", "concept", "region")


def test_precedence_flag_beats_env_beats_file_beats_default(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("workers = 3\nmax_retry = 4\nmax_ips = 50\n")
    s = load_settings(
        {"workers": 9, "max_retry": None},
        config_path=cfg,
        env={"BOARDSYNC_WORKERS": "7", "BOARDSYNC_MAX_RETRY": "5"},
    )
    assert (s.workers, s.max_retry, s.max_ips) == (9, 5, 50)


def test_sections_in_file_are_flattened(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[sync]\nkinds = ['concept']\n")
    assert load_settings(config_path=cfg, env={}).kinds == ("concept",)


@pytest.mark.parametrize(
    ("flags", "key"),
    [
        ({"workers": -1}, "workers"),
        ({"req_delay_min": 3.0, "req_delay_max": 1.0}, "req_delay_min"),
        ({"upstream_url": "not a url"}, "upstream_url"),
        ({"upstream_url": "ftp://x"}, "upstream_url"),
        ({"db_url": "mysql://x/y"}, "db_url"),
        ({"db_url": "::::"}, "db_url"),
        ({"kinds": "industry,stocks"}, "kinds"),
        ({"boards": "BK04"}, "boards"),
        ({"max_ips": 0}, "max_ips"),
        ({"ip_ttl": 0}, "ip_ttl"),
        ({"ip_thrift": -1}, "ip_thrift"),
        ({"ip_ttl_jitter": 1.5}, "ip_ttl_jitter"),
        ({"shrink_threshold": 0}, "shrink_threshold"),
        ({"proxy": "socks"}, "proxy"),
        ({"proxy": "api"}, "proxy_api_url"),
        ({"proxy": "tunnel"}, "proxy_tunnel_url"),
        ({"proxy": "static", "proxy_file": "/nonexistent/list.txt"}, "proxy_file"),
        ({"workers": "many"}, "workers"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_values_name_the_key(flags: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(flags, env={})
    assert info.value.key == key
    assert key in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_key_in_file_and_env(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("wokers = 3\n")
    with pytest.raises(ConfigError, match="wokers: unknown key"):
        load_settings(config_path=cfg, env={})
    with pytest.raises(ConfigError, match="wokrers"):
        load_settings(env={"BOARDSYNC_WOKRERS": "3"})


def test_wrong_type_in_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('workers = "six"\n')
    with pytest.raises(ConfigError, match="workers"):
        load_settings(config_path=cfg, env={})


def test_workers_auto_and_durations() -> None:
    s = load_settings({"workers": "auto", "max_age": "12h"}, env={})
    assert s.workers == 0
    assert s.max_age == 12 * 3600


def test_secrets_are_redacted_everywhere() -> None:
    s = load_settings(
        {
            "proxy": "api",
            "proxy_api_url": "http://api.example.test/get?secret_id=SID123&sig=CANARYSIG",
            "proxy_api_key": "CANARYKEY",
            "db_url": "postgresql://u:CANARYDBPW@127.0.0.1/test",
        },
        env={},
    )
    text = repr(s) + str(s.redacted())
    for secret in ("CANARYSIG", "CANARYKEY", "CANARYDBPW", "SID123"):
        assert secret not in text
    assert "CANARYDBPW" in s.secrets() and "CANARYKEY" in s.secrets()
