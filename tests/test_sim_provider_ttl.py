"""The simulated provider's ``ttl_format`` variants, served over a real socket by a running
``Simulator`` and read back by boardsync's own extraction parser.

The simulator reads time from a ``FakeClock`` that never moves, so every expected TTL is exact.
``expire_time`` is written in China time (UTC+8), the zone boardsync reads it in, whatever the
host's zone: the TTL the parser derives is the lifetime, to the second.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import requests

from boardsync.proxy import parse_extraction_body
from boardsync.sim import Simulator, load_scenario
from boardsync.sim.provider import PROVIDER_ZONE, render_success
from helpers import T0, FakeClock

SCALE = 0.01
LIFETIME_S = 86_400.0  # simulated; a real 864 s, so no IP can expire during a test
REAL_LIFETIME = LIFETIME_S * SCALE
CLOCK_T0 = 1000.0
WALL_NOW = T0.timestamp()  # the fake clock's wall time, which never moves
EXPIRY = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


@contextmanager
def sim(ttl_format: str) -> Iterator[Simulator]:
    scn = load_scenario("clean").with_overrides(
        latency_median_s=0.0, extract_min_interval_s=0.0, ip_lifetime_s=LIFETIME_S,
        ttl_format=ttl_format)
    with Simulator(scn, time_scale=SCALE, seed=7, clock=FakeClock(CLOCK_T0)) as s:
        yield s


def extract(s: Simulator, fmt: str, num: int = 3) -> requests.Response:
    params: dict[str, str | int] = {"key": s.api_key, "num": num, "format": fmt}
    return requests.get(s.extract_url, timeout=5, params=params)


@pytest.mark.parametrize("fmt", ["txt", "json"])
@pytest.mark.parametrize("ttl_format", ["seconds", "expire_time", "none"])
def test_every_variant_is_parsed_by_boardsync(ttl_format: str, fmt: str) -> None:
    with sim(ttl_format) as s:
        reply = extract(s, fmt)
        issued = s.provider.issued if s.provider else []
    assert reply.status_code == 200
    eps = parse_extraction_body(reply.content, wall_now=WALL_NOW)
    assert [e.port for e in eps] == [ip.port for ip in issued] and len(eps) == 3
    assert all(e.host == "127.0.0.1" for e in eps)
    expected = {"seconds": REAL_LIFETIME, "expire_time": REAL_LIFETIME,
                "none": None}[ttl_format]
    for ep in eps:
        assert ep.ttl_s == (None if expected is None else pytest.approx(expected, abs=1.0))
    if fmt == "json":
        assert [e.identity_hint for e in eps] == [ip.identity for ip in issued]


def test_text_wire_forms() -> None:
    with sim("seconds") as s:
        seconds = extract(s, "txt", 2).text
    with sim("expire_time") as s:
        expire = extract(s, "txt", 2).text
    with sim("none") as s:
        bare = extract(s, "txt", 2).text
    assert re.fullmatch(r"127\.0\.0\.1:\d+,864\r\n127\.0\.0\.1:\d+,864", seconds)
    assert re.fullmatch(rf"127\.0\.0\.1:\d+,{EXPIRY}\r\n127\.0\.0\.1:\d+,{EXPIRY}", expire)
    assert re.fullmatch(r"127\.0\.0\.1:\d+\r\n127\.0\.0\.1:\d+", bare)


def test_json_wire_forms() -> None:
    keys: dict[str, list[str]] = {}
    for ttl_format in ("seconds", "expire_time", "none"):
        with sim(ttl_format) as s:
            body = extract(s, "json", 1).json()
        assert body["code"] == 0 and body["success"] is True
        keys[ttl_format] = list(body["data"][0])
    assert keys == {"seconds": ["ip", "port", "expire_time", "ttl", "outip"],
                    "expire_time": ["ip", "port", "expire_time", "outip"],
                    "none": ["ip", "port", "outip"]}


def test_seconds_form_is_byte_for_byte_the_calibrated_one() -> None:
    """``seconds`` renders exactly what the provider served before ``ttl_format`` existed."""
    class _IP:
        def __init__(self, port: int, identity: str) -> None:
            self.port, self.identity = port, identity

    fresh = [_IP(4001, "58.1.2.3"), _IP(4002, "59.4.5.6")]
    txt = render_success(fresh, "txt", "seconds", 0.6, T0)  # type: ignore[arg-type]
    assert txt.body == b"127.0.0.1:4001,0.6\r\n127.0.0.1:4002,0.6"
    js = render_success(fresh[:1], "json", "seconds", 0.6, T0)  # type: ignore[arg-type]
    expire = (T0 + timedelta(seconds=0.6)).astimezone(PROVIDER_ZONE).strftime(
        "%Y-%m-%d %H:%M:%S")
    assert js.body == ('{"code": 0, "msg": "ok", "success": true, "data": [{"ip": "127.0.0.1", '
                       f'"port": 4001, "expire_time": "{expire}", "ttl": 0.6, '
                       '"outip": "58.1.2.3"}]}').encode()
