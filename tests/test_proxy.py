"""Proxy layer: values, sources, the extraction parser, the manager, and the HTTP path.

No mocks: the manager runs against small in-memory sources (real classes implementing the
source protocol), time is a FakeClock whose sleep advances now, and the extraction API is a
real stdlib HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from boardsync.config import load_settings
from boardsync.errors import (
    ConfigError,
    ExtractionThrottled,
    Interrupted,
    ProviderAuthError,
    ProviderError,
    QuotaExhausted,
)
from boardsync.proxy import (
    PROVIDER_TZ,
    DirectSource,
    ExtractionApiSource,
    LeakyBucket,
    Proxy,
    ProxyEndpoint,
    ProxyManager,
    ProxySource,
    StaticListSource,
    TunnelSource,
    jittered_ttl,
    parse_extraction_body,
)
from boardsync.redact import strip_url
from boardsync.sizing import (
    DEFAULT_WORKERS_DIRECT,
    DEFAULT_WORKERS_UNPACED,
    resolve_workers,
    workers_auto,
)
from helpers import T0, FakeClock


class ScriptedSource:
    """An extraction source that plays a script: each step is a list of keys or an exception.

    After the script, it issues fresh unique IPs. Records the clock time of every call.
    Like every extraction source it offers no shared proxy and no free supply.
    """

    def __init__(self, script: list[object] | None = None, *,
                 now: Callable[[], float] | None = None, extra: int = 0,
                 ttl: float | None = None, pause: float = 0.0) -> None:
        self.script = list(script or [])
        self.now = now or time.monotonic
        self.extra = extra
        self.ttl = ttl
        self.pause = pause
        self.calls: list[float] = []
        self.issued = 0
        self._n = 0
        self._lock = threading.Lock()

    def shared(self) -> Proxy | None:
        return None

    def supply(self) -> int | None:
        return None

    def fetch(self, count: int) -> list[ProxyEndpoint]:
        with self._lock:
            self.calls.append(self.now())
            step = self.script.pop(0) if self.script else None
        if self.pause:
            time.sleep(self.pause)
        if isinstance(step, BaseException):
            raise step
        with self._lock:
            if step is None:
                keys = []
                for _ in range(count + self.extra):
                    self._n += 1
                    keys.append(f"10.0.{self._n // 250}.{self._n % 250 + 1}:8000")
            else:
                keys = list(step)  # type: ignore[call-overload]
            self.issued += len(keys)
        return [ProxyEndpoint(k.split(":")[0], int(k.split(":")[1]), self.ttl) for k in keys]


def manager(source: ProxySource, clock: FakeClock | None = None, *, interval: float = 0.0,
            max_ips: int = 100, ttl_s: float = 60.0, jitter: float = 0.0, batch: int = 1,
            **kw: object) -> ProxyManager:
    clock = clock or FakeClock()
    return ProxyManager(
        source,
        max_ips=max_ips, ttl_s=ttl_s, ttl_jitter=jitter,
        bucket=LeakyBucket(interval, clock=clock),
        clock=clock, rng=random.Random(7), batch=batch, **kw,  # type: ignore[arg-type]
    )


# --- values ---------------------------------------------------------------------------------


def test_proxy_repr_hides_credentials() -> None:
    p = Proxy("1.2.3.4:80", "http://user:s3cret@1.2.3.4:80", 5.0)
    assert "s3cret" not in repr(p) and "s3cret" not in str(p) and "user" not in repr(p)
    assert "1.2.3.4:80" in repr(p)
    assert "s3cret" not in repr([p])


def test_endpoint_url_quotes_credentials() -> None:
    ep = ProxyEndpoint("1.2.3.4", 80, None, "u@x", "p:w/d")
    assert ep.url() == "http://u%40x:p%3Aw%2Fd@1.2.3.4:80"
    assert ep.key == "1.2.3.4:80"
    assert "p:w" not in repr(ep)


def test_extraction_url_is_logged_stripped() -> None:
    assert strip_url("https://u:p@api.example.test:8443/get?key=K&num=1#x") == (
        "https://api.example.test:8443/get"
    )


# --- TTL and sizing -------------------------------------------------------------------------


def test_jittered_ttl_range_and_spread() -> None:
    rng = random.Random(1)
    values = [jittered_ttl(45.0, 0.15, None, rng) for _ in range(2000)]
    assert all(45 * 0.85 <= v <= 45 * 1.15 for v in values)
    assert min(values) < 45 * 0.87 and max(values) > 45 * 1.13  # really spread


def test_jittered_ttl_provider_cap() -> None:
    rng = random.Random(2)
    capped = [jittered_ttl(45.0, 0.15, 30.0, rng) for _ in range(2000)]
    assert all(30 * 0.85 <= v <= 30.0 for v in capped)
    loose = [jittered_ttl(45.0, 0.15, 300.0, rng) for _ in range(2000)]
    assert all(45 * 0.85 <= v <= 45 * 1.15 for v in loose)
    assert jittered_ttl(45.0, 0.0, None, rng) == 45.0
    assert jittered_ttl(45.0, 0.15, -3.0, rng) == 0.0  # already dead on arrival


def test_workers_auto_littles_law() -> None:
    n, why = workers_auto(0.5, 45.0)
    assert n == 11
    assert "0.5 × 45 = 22.5" in why and "Little" in why
    assert workers_auto(0.5, 60.0)[0] == 15
    assert workers_auto(10.0, 60.0, max_workers=32)[0] == 32
    assert workers_auto(0.01, 10.0)[0] == 1
    assert workers_auto(0.5, 45.0, safety=3.0)[0] == 7


def test_workers_auto_without_a_finite_rate_is_the_small_fixed_pool() -> None:
    for qps, ttl in ((float("inf"), 45.0), (0.0, 45.0), (0.5, 0.0)):
        n, why = workers_auto(qps, ttl)
        assert n == DEFAULT_WORKERS_UNPACED and "extraction rate" in why
    assert workers_auto(0.0, 45.0, max_workers=3)[0] == 3


def test_resolve_workers_configured_count_wins(tmp_path: Path) -> None:
    assert resolve_workers(load_settings({"workers": 7}, env={})) == (
        7, "7 workers (configured)")


def test_resolve_workers_auto_fixed_pools(tmp_path: Path) -> None:
    plist = tmp_path / "p.txt"
    plist.write_text("1.2.3.4:80\n")
    cases = [
        ({"proxy": "direct"}, DEFAULT_WORKERS_DIRECT),
        ({"proxy": "tunnel", "proxy_tunnel_url": "http://u:pw@127.0.0.1:9000"},
         DEFAULT_WORKERS_UNPACED),
        ({"proxy": "static", "proxy_file": str(plist)}, DEFAULT_WORKERS_UNPACED),
    ]
    for flags, expected in cases:
        n, why = resolve_workers(load_settings({"workers": "auto", **flags}, env={}))
        assert n == expected
        assert why == (f"proxy = {flags['proxy']}: no extraction rate to size by; "
                       "using a small fixed pool")


def test_resolve_workers_auto_extraction_api_uses_littles_law() -> None:
    api_flags = {"workers": "auto", "proxy": "api", "proxy_api_url": "http://127.0.0.1:9/get"}
    s = load_settings({**api_flags, "extract_interval": 2.0, "ip_ttl": 45.0}, env={})
    assert resolve_workers(s) == workers_auto(0.5, 45.0)
    assert resolve_workers(s)[0] == 11
    unspaced = load_settings({**api_flags, "extract_interval": 0, "ip_ttl": 45.0}, env={})
    assert resolve_workers(unspaced) == workers_auto(10.0, 45.0)


# --- static list and tunnel -----------------------------------------------------------------


def test_static_list_parsing(tmp_path: Path) -> None:
    f = tmp_path / "proxies.txt"
    f.write_text(
        "# office proxies\n\n1.2.3.4:8080\n  socks5://alice:pw@5.6.7.8:1080  \n"
        "http://proxy.example.test:3128\n"
    )
    src = StaticListSource(f)
    assert [e.key for e in src.endpoints] == ["1.2.3.4:8080", "5.6.7.8:1080",
                                              "proxy.example.test:3128"]
    assert src.endpoints[1].url() == "socks5://alice:pw@5.6.7.8:1080"
    assert src.endpoints[0].url() == "http://1.2.3.4:8080"
    assert [e.key for e in src.fetch(4)][-1] == "1.2.3.4:8080"  # goes round


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("1.2.3.4:80\nnot a proxy\n", 2),
        ("# c\n\nbob:secretpw@1.2.3.4\n", 3),
        ("1.2.3.4:99999\n", 1),
        ("1.2.3.4:80/path\n", 1),
    ],
)
def test_static_list_bad_line_names_line_number(tmp_path: Path, text: str, line: int) -> None:
    f = tmp_path / "p.txt"
    f.write_text(text)
    with pytest.raises(ConfigError, match=f"line {line}") as ei:
        StaticListSource(f)
    assert "secretpw" not in str(ei.value)


def test_static_list_empty_or_missing(tmp_path: Path) -> None:
    f = tmp_path / "p.txt"
    f.write_text("# nothing\n\n")
    with pytest.raises(ConfigError, match="no proxies"):
        StaticListSource(f)
    with pytest.raises(ConfigError, match="cannot read"):
        StaticListSource(tmp_path / "missing.txt")


def test_static_manager_skips_evicted_and_exhausts(tmp_path: Path) -> None:
    f = tmp_path / "p.txt"
    f.write_text("1.1.1.1:80\n2.2.2.2:80\n")
    pm = manager(StaticListSource(f), interval=5.0, max_ips=0)
    a = pm.acquire()
    b = pm.acquire()
    assert {a.key, b.key} == {"1.1.1.1:80", "2.2.2.2:80"}
    pm.release(a)
    pm.mark_failed(b, "proxy_dead")
    for _ in range(3):
        p = pm.acquire()
        assert p.key == a.key
        pm.release(p)
    p = pm.acquire()
    pm.mark_failed(p, "proxy_dead")
    with pytest.raises(QuotaExhausted, match="static"):
        pm.acquire()
    assert pm.remaining_ips() is None


def test_tunnel_and_direct_share_one_proxy() -> None:
    tunnel = TunnelSource("http://user:pw@127.0.0.1:9000")
    pm = manager(tunnel, max_ips=0)
    a, b = pm.acquire(), pm.acquire()
    assert a is b and a.key == "tunnel" and a.url == "http://user:pw@127.0.0.1:9000"
    assert "pw" not in repr(tunnel)
    pm.mark_failed(a, "blocked")
    assert pm.is_alive(a)
    assert pm.acquire() is a
    assert pm.stats().failed == 1 and pm.stats().extracted == 0
    d = manager(DirectSource(), max_ips=0)
    p = d.acquire()
    assert p.url is None and p.key == "direct" and d.is_alive(p)
    d.mark_failed(p, "timeout")
    assert d.acquire() is p and d.stats().failed == 1


def test_sources_tell_the_manager_what_it_needs(tmp_path: Path) -> None:
    f = tmp_path / "p.txt"
    f.write_text("1.1.1.1:80\n2.2.2.2:80\n")
    direct, tunnel = DirectSource(), TunnelSource("http://u:pw@127.0.0.1:9000")
    assert (direct.shared().key, direct.shared().url, direct.supply()) == ("direct", None, 1)
    assert (tunnel.shared().key, tunnel.supply()) == ("tunnel", 1)
    static = StaticListSource(f)
    assert (static.shared(), static.supply()) == (None, 2)
    api_src = ExtractionApiSource("http://127.0.0.1:9/get")
    assert (api_src.shared(), api_src.supply()) == (None, None)


class GatewaySource:
    """A source of a kind the manager has never heard of, offering one shared proxy."""

    def shared(self) -> Proxy:
        return GATEWAY

    def supply(self) -> int:
        return 1

    def fetch(self, count: int) -> list[ProxyEndpoint]:
        raise AssertionError("a shared proxy is never fetched")


GATEWAY = Proxy("gateway", "http://gw.example.test:1", float("inf"))


def test_manager_serves_any_source_that_offers_a_shared_proxy() -> None:
    pm = manager(GatewaySource(), max_ips=0)
    assert pm.acquire() is GATEWAY and pm.acquire() is GATEWAY
    pm.mark_failed(GATEWAY, "blocked")
    assert pm.is_alive(GATEWAY) and pm.acquire() is GATEWAY
    assert pm.remaining_ips() is None
    assert (pm.stats().failed, pm.stats().in_use, pm.stats().extracted) == (1, 2, 0)


def test_tunnel_url_must_have_host_and_port() -> None:
    with pytest.raises(ConfigError):
        TunnelSource("http://user:pw@gateway.example.test")
    with pytest.raises(ConfigError):
        TunnelSource("")


# --- the extraction parser: real provider shapes (PROXY_PROVIDERS.md §1) --------------------

WALL = datetime(2024, 5, 1, 12, 0, 0, tzinfo=PROVIDER_TZ).timestamp()


def keys(eps: list[ProxyEndpoint]) -> list[str]:
    return [e.key for e in eps]


def test_kuaidaili_text_with_f_et() -> None:
    eps = parse_extraction_body(b"113.121.20.15:19382,58\r\n27.150.87.147:22004,119\r\n",
                                wall_now=WALL)
    assert keys(eps) == ["113.121.20.15:19382", "27.150.87.147:22004"]
    assert [e.ttl_s for e in eps] == [58.0, 119.0]


def test_kuaidaili_text_plain_and_other_separators() -> None:
    assert keys(parse_extraction_body("1.2.3.4:80\n5.6.7.8:81", wall_now=WALL)) == [
        "1.2.3.4:80", "5.6.7.8:81"]
    assert keys(parse_extraction_body("1.2.3.4:80 5.6.7.8:81", wall_now=WALL)) == [
        "1.2.3.4:80", "5.6.7.8:81"]
    assert keys(parse_extraction_body("1.2.3.4:80|5.6.7.8:81", wall_now=WALL)) == [
        "1.2.3.4:80", "5.6.7.8:81"]
    assert parse_extraction_body("1.2.3.4:80", wall_now=WALL)[0].ttl_s is None


def test_kuaidaili_json_proxy_list() -> None:
    body = ('{"msg": "", "code": 0, "data": {"count": 2, "today_left_count": 98, '
            '"proxy_list": ["124.172.117.189:80,55", "219.133.31.120:8888"]}}')
    eps = parse_extraction_body(body, wall_now=WALL)
    assert keys(eps) == ["124.172.117.189:80", "219.133.31.120:8888"]
    assert [e.ttl_s for e in eps] == [55.0, None]


def test_zhima_json_list_with_expire_time() -> None:
    body = ('{"code":0,"data":[{"ip":"115.226.137.200","port":4223,'
            '"expire_time":"2024-05-01 12:01:30","city":"浙江省丽水市","isp":"电信"}],'
            '"msg":"0","success":true}')
    (ep,) = parse_extraction_body(body.encode("utf-8"), wall_now=WALL)
    assert ep.key == "115.226.137.200:4223"
    assert ep.ttl_s == pytest.approx(90.0)


def test_juliang_text_ip_remain_and_city() -> None:
    eps = parse_extraction_body("114.98.162.2:48581,281\r\n112.84.17.21:31114,江苏徐州\r\n",
                                wall_now=WALL)
    assert keys(eps) == ["114.98.162.2:48581", "112.84.17.21:31114"]
    assert [e.ttl_s for e in eps] == [281.0, None]


def test_juliang_json_code_200() -> None:
    body = '{"code":200,"msg":"请求成功","data":{"count":1,"proxy_list":["1.2.3.4:5678,120"]}}'
    (ep,) = parse_extraction_body(body, wall_now=WALL)
    assert ep.key == "1.2.3.4:5678" and ep.ttl_s == 120.0


def test_91http_json_proxy_list_of_objects() -> None:
    body = ('{"code":0,"data":{"proxy_list":[{"ip":"1.2.3.4","port":80},'
            '{"ip":"5.6.7.8","port":"81"}],"surplus_quantity":50}}')
    assert keys(parse_extraction_body(body, wall_now=WALL)) == ["1.2.3.4:80", "5.6.7.8:81"]


def test_qg_success_uses_server_not_exit_ip() -> None:
    body = ('{"code":"SUCCESS","data":[{"proxy_ip":"123.54.55.24","server":"123.54.55.99:59419",'
            '"area":"河南省商丘市","isp":"电信","deadline":"2024-05-01 12:01:00"}],'
            '"request_id":"abc"}')
    (ep,) = parse_extraction_body(body, wall_now=WALL)
    assert ep.key == "123.54.55.99:59419" and ep.identity_hint == "123.54.55.24"
    assert ep.ttl_s == pytest.approx(60.0)


def test_xiequ_capitalised_fields() -> None:
    body = '{"code":0,"data":[{"IP":"1.2.3.4","Port":8888}],"msg":"0"}'
    assert keys(parse_extraction_body(body, wall_now=WALL)) == ["1.2.3.4:8888"]


@pytest.mark.parametrize(
    ("body", "exc", "retry_after"),
    [
        ('{"code":111,"data":[],"msg":"请2秒后再试","success":false}', ExtractionThrottled, 2.0),
        ('{"code":111,"data":[],"msg":"请1秒后再试","success":false}', ExtractionThrottled, 1.0),
        ("ERROR(-120): 接口调用频率超出限制", ExtractionThrottled, None),
        ('{"Code":-11,"Msg":"请求过于频繁"}', ExtractionThrottled, None),
        ('{"code":429,"msg":"too fast, retry after 3 s"}', ExtractionThrottled, 3.0),
        ("ERROR(-102): 订单无效或已过期", QuotaExhausted, None),
        ("ERROR(-51): no more", QuotaExhausted, None),
        ('{"code":10048,"msg":"没有可用套餐"}', QuotaExhausted, None),
        ('{"code":121,"msg":"您的套餐今日已到达上限"}', QuotaExhausted, None),
        ('{"code":5,"msg":"daily quota exceeded"}', QuotaExhausted, None),
        ('{"code":113,"data":[],"msg":"请添加白名单1.2.3.4","success":false}',
         ProviderAuthError, None),
        ("ERROR(-108): IP白名单错误", ProviderAuthError, None),
        ("ERROR(-104): 签名错误", ProviderAuthError, None),
        ('{"code":-12,"msg":"Authkey被封禁"}', ProviderAuthError, None),
        ('{"code":7,"msg":"invalid key"}', ProviderAuthError, None),
        ('{"code": -3, "msg": "参数错误", "data": ""}', ProviderError, None),
        ('{"code": 115, "data": [], "msg": "请重新提取", "success": false}', ProviderError, None),
        ("<html><body>502 Bad Gateway</body></html>", ProviderError, None),
        ("", ProviderError, None),
        ("something went wrong", ProviderError, None),
        ('{"code":200,"msg":"请检查白名单或套餐余量","data":{"proxy_list":[]}}', ProviderError,
         None),
    ],
)
def test_error_bodies_are_classified(body: str, exc: type[Exception],
                                     retry_after: float | None) -> None:
    with pytest.raises(exc) as ei:
        parse_extraction_body(body, wall_now=WALL)
    assert type(ei.value) is exc
    if exc is ExtractionThrottled:
        assert ei.value.retry_after == retry_after  # type: ignore[attr-defined]


def test_one_bad_line_makes_the_whole_body_an_error() -> None:
    with pytest.raises(ProviderError):
        parse_extraction_body("1.2.3.4:80\r\nnot an ip\r\n", wall_now=WALL)
    with pytest.raises(ProviderError):
        parse_extraction_body('{"code":0,"data":[{"ip":"1.2.3.4"}]}', wall_now=WALL)  # no port


def test_gbk_body_is_decoded() -> None:
    body = '{"code":111,"msg":"请2秒后再试","success":false}'.encode("gbk")
    with pytest.raises(ExtractionThrottled):
        parse_extraction_body(body, wall_now=WALL)


# --- the manager -------------------------------------------------------------------------------


def test_each_acquire_gets_a_fresh_exclusive_proxy() -> None:
    src = ScriptedSource()
    pm = manager(src)
    a, b = pm.acquire(), pm.acquire()
    assert a.key != b.key
    assert pm.stats().in_use == 2 and pm.stats().extracted == 2
    assert pm.remaining_ips() == 98


def test_calls_go_through_the_bucket() -> None:
    clock = FakeClock()
    src = ScriptedSource(now=clock.now)
    pm = manager(src, clock, interval=2.0)
    for _ in range(4):
        pm.acquire()
    assert src.calls == [1000.0, 1002.0, 1004.0, 1006.0]
    assert pm.stats().extract_calls == 4


def test_ttl_is_jittered_and_capped_by_provider() -> None:
    clock = FakeClock()
    pm = manager(ScriptedSource(), clock, ttl_s=45.0, jitter=0.15)
    ttls = [pm.acquire().expires_at - clock.now() for _ in range(50)]
    assert all(45 * 0.85 <= t <= 45 * 1.15 for t in ttls) and len(set(ttls)) > 40
    pm2 = manager(ScriptedSource(ttl=20.0), clock, ttl_s=45.0, jitter=0.15)
    ttls2 = [pm2.acquire().expires_at - clock.now() for _ in range(50)]
    assert all(20 * 0.85 <= t <= 20.0 for t in ttls2)


def test_expiry_release_and_counters() -> None:
    clock = FakeClock()
    pm = manager(ScriptedSource(), clock, ttl_s=10.0)
    a = pm.acquire()
    assert pm.is_alive(a)
    clock.advance(10.0)
    assert not pm.is_alive(a)
    pm.release(a)
    b = pm.acquire()
    pm.mark_failed(b, "blocked")
    assert not pm.is_alive(b)
    c = pm.acquire()
    s = pm.stats()
    assert (s.extracted, s.expired, s.failed, s.in_use) == (3, 1, 1, 1)
    assert len({a.key, b.key, c.key}) == 3


def test_failed_key_is_never_handed_out_again_even_if_reissued() -> None:
    src = ScriptedSource([["9.9.9.9:80"], ["9.9.9.9:80"], ["9.9.9.9:80", "8.8.8.8:80"]])
    pm = manager(src, batch=2)
    a = pm.acquire()
    assert a.key == "9.9.9.9:80"
    pm.mark_failed(a, "proxy_dead")
    b = pm.acquire()  # provider re-issues 9.9.9.9 (skipped), then 9.9.9.9 + 8.8.8.8
    assert b.key == "8.8.8.8:80"
    for _ in range(5):
        assert pm.acquire().key != "9.9.9.9:80"
    assert pm.stats().extracted >= 4  # re-issued IPs still count against the budget


def test_expired_pooled_proxies_are_dropped() -> None:
    clock = FakeClock()
    src = ScriptedSource([["1.1.1.1:1", "2.2.2.2:2", "3.3.3.3:3"]])
    pm = manager(src, clock, batch=3, ttl_s=10.0)
    assert pm.acquire().key == "1.1.1.1:1"
    clock.advance(11)
    p = pm.acquire()
    assert p.key not in ("2.2.2.2:2", "3.3.3.3:3")
    assert pm.stats().expired == 2


def test_quota_budget_and_pool() -> None:
    src = ScriptedSource()
    pm = manager(src, max_ips=3, batch=3)
    got = [pm.acquire() for _ in range(3)]
    assert len(src.calls) == 1 and len({p.key for p in got}) == 3
    with pytest.raises(QuotaExhausted, match="max_ips"):
        pm.acquire()
    assert pm.remaining_ips() == 0


def test_provider_returning_more_than_asked_is_trimmed_to_budget() -> None:
    src = ScriptedSource(extra=5)
    pm = manager(src, max_ips=4, batch=1)
    for _ in range(4):
        pm.acquire()
    with pytest.raises(QuotaExhausted):
        pm.acquire()
    assert pm.stats().extracted == 4


def test_max_ips_never_exceeded_with_8_threads_racing() -> None:
    src = ScriptedSource(extra=2, pause=0.001)
    pm = ProxyManager(src, max_ips=37, ttl_s=60.0, bucket=LeakyBucket(0), batch=2)
    handed: list[str] = []
    lock = threading.Lock()
    quota_hits = []

    def run(i: int) -> None:
        while True:
            try:
                p = pm.acquire(timeout=5)
            except QuotaExhausted:
                quota_hits.append(i)
                return
            with lock:
                handed.append(p.key)
            if i % 2:
                pm.mark_failed(p, "blocked")
            else:
                pm.release(p)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(quota_hits) == list(range(8))
    s = pm.stats()
    assert s.extracted == 37 and len(handed) == 37 and len(set(handed)) == 37
    assert s.expired + s.failed == 37 and s.in_use == 0


def test_provider_quota_error_is_sticky() -> None:
    src = ScriptedSource([QuotaExhausted("ERROR(-102): 订单无效或已过期")])
    pm = manager(src)
    with pytest.raises(QuotaExhausted):
        pm.acquire()
    with pytest.raises(QuotaExhausted):
        pm.acquire()
    assert len(src.calls) == 1


def test_throttled_waits_provider_delay_through_the_bucket() -> None:
    clock = FakeClock()
    src = ScriptedSource([ExtractionThrottled("请3秒后再试", retry_after=3.0)], now=clock.now)
    pm = manager(src, clock, interval=2.0)
    p = pm.acquire()
    assert src.calls == [1000.0, 1003.0]
    s = pm.stats()
    assert (s.throttled_calls, s.extract_calls, s.extracted) == (1, 2, 1)
    pm.acquire()
    assert src.calls[-1] == 1005.0  # the bucket spacing continues from the retry
    assert p.key


def test_throttled_without_retry_after_waits_one_interval() -> None:
    clock = FakeClock()
    src = ScriptedSource([ExtractionThrottled("too fast")], now=clock.now)
    pm = manager(src, clock, interval=2.0)
    pm.acquire()
    assert src.calls == [1000.0, 1002.0]


def test_throttled_too_often_gives_up() -> None:
    clock = FakeClock()
    src = ScriptedSource([ExtractionThrottled("too fast")] * 4, now=clock.now)
    pm = manager(src, clock, interval=1.0, max_throttle_retries=2)
    with pytest.raises(ExtractionThrottled):
        pm.acquire()
    assert len(src.calls) == 3
    assert pm.remaining_ips() == 100  # nothing was reserved for good


def test_auth_error_propagates_and_frees_budget() -> None:
    src = ScriptedSource([ProviderAuthError("ERROR(-104): 签名错误")])
    pm = manager(src, max_ips=1)
    with pytest.raises(ProviderAuthError):
        pm.acquire()
    assert pm.acquire().key  # the budget reserved for the failed call came back


def test_stop_event_interrupts() -> None:
    clock = FakeClock()
    pm = manager(ScriptedSource(), clock, interval=2.0)
    stop = threading.Event()
    pm.acquire(stop_event=stop)
    stop.set()
    with pytest.raises(Interrupted):
        pm.acquire(stop_event=stop)


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        manager(ScriptedSource(), max_ips=-1)
    with pytest.raises(ConfigError):
        manager(ScriptedSource(), ttl_s=0)
    with pytest.raises(ConfigError):
        manager(ScriptedSource(), jitter=1.0)


# --- the HTTP path against a real loopback server --------------------------------------------


class Provider:
    """A stdlib HTTP server on 127.0.0.1:0 serving canned (status, body) replies in order."""

    def __init__(self, replies: list[tuple[int, str]]) -> None:
        self.replies = list(replies)
        self.queries: list[dict[str, list[str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                outer.queries.append(parse_qs(urlsplit(self.path).query))
                status, body = outer.replies.pop(0) if outer.replies else (500, "no more")
                data = body.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/get?order=abc"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider() -> Iterator[type[Provider]]:
    started: list[Provider] = []

    class Started(Provider):
        def __init__(self, replies: list[tuple[int, str]]) -> None:
            super().__init__(replies)
            started.append(self)

    yield Started
    for p in started:
        p.close()


KEY = "CANARYKEY123"


def api(url: str, fmt: str = "txt") -> ExtractionApiSource:
    return ExtractionApiSource(url, key=KEY, fmt=fmt, timeout=(2, 2))


def test_http_success_txt(provider: type[Provider], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    prov = provider([(200, "1.2.3.4:80,50\r\n5.6.7.8:81,60\r\n")])
    eps = api(prov.url).fetch(2)
    assert keys(eps) == ["1.2.3.4:80", "5.6.7.8:81"]
    q = prov.queries[0]
    assert q == {"order": ["abc"], "key": [KEY], "num": ["2"], "format": ["txt"]}
    assert KEY not in caplog.text


def test_http_secrets_in_the_url_are_not_logged(provider: type[Provider],
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    prov = provider([(200, "1.2.3.4:80")])
    ExtractionApiSource(prov.url + "&signature=CANARYSIG999", key="", timeout=(2, 2)).fetch(1)
    assert prov.queries[0]["signature"] == ["CANARYSIG999"]
    assert "CANARYSIG999" not in caplog.text


def test_http_success_json(provider: type[Provider]) -> None:
    prov = provider([(200, '{"code":0,"data":[{"ip":"1.2.3.4","port":80,"ttl":30}]}')])
    (ep,) = api(prov.url, "json").fetch(1)
    assert ep.key == "1.2.3.4:80" and ep.ttl_s == 30.0
    assert prov.queries[0]["format"] == ["json"]


def test_http_expiry_times_are_read_on_the_injected_wall_clock(
        provider: type[Provider]) -> None:
    # T0 is 08:00 UTC = 16:00 in Beijing, the zone providers print their times in.
    expiry = (T0 + timedelta(seconds=90)).astimezone(PROVIDER_TZ).strftime("%Y-%m-%d %H:%M:%S")
    prov = provider([(200, f'{{"code":0,"data":[{{"ip":"1.2.3.4","port":80,'
                           f'"expire_time":"{expiry}"}}]}}')])
    src = ExtractionApiSource(prov.url, key=KEY, fmt="json", timeout=(2, 2), clock=FakeClock())
    (ep,) = src.fetch(1)
    assert ep.ttl_s == pytest.approx(90.0)


def test_http_custom_param_names(provider: type[Provider]) -> None:
    prov = provider([(200, "1.2.3.4:80")])
    src = ExtractionApiSource(prov.url + "&num=9", key=KEY, key_param="secret_id",
                              num_param="num", fmt_param="type", timeout=(2, 2))
    src.fetch(3)
    q = prov.queries[0]
    assert q["secret_id"] == [KEY] and q["num"] == ["3"] and q["type"] == ["txt"]


def test_http_throttled_then_success_waits_on_the_clock(provider: type[Provider]) -> None:
    prov = provider([
        (200, '{"code":111,"data":[],"msg":"请2秒后再试","success":false}'),
        (200, "1.2.3.4:80"),
    ])
    clock = FakeClock()
    pm = manager(api(prov.url), clock, interval=1.0)
    p = pm.acquire()
    assert p.key == "1.2.3.4:80"
    assert clock.now() == 1002.0  # waited the provider's 2 s (longer than the 1 s interval)
    assert pm.stats().throttled_calls == 1 and len(prov.queries) == 2


def test_http_quota_body(provider: type[Provider]) -> None:
    prov = provider([(200, "ERROR(-102): 订单无效或已过期")])
    pm = manager(api(prov.url))
    with pytest.raises(QuotaExhausted):
        pm.acquire()


def test_http_bad_key_body(provider: type[Provider]) -> None:
    prov = provider([(200, '{"code":-104,"msg":"签名错误"}')])
    with pytest.raises(ProviderAuthError) as ei:
        api(prov.url).fetch(1)
    assert KEY not in str(ei.value)


def test_http_error_status_with_error_body(provider: type[Provider]) -> None:
    prov = provider([(403, '{"code":113,"msg":"请添加白名单1.2.3.4"}'), (502, "bad gateway"),
                     (429, "")])
    src = api(prov.url)
    with pytest.raises(ProviderAuthError):
        src.fetch(1)
    with pytest.raises(ProviderError, match="HTTP 502"):
        src.fetch(1)
    with pytest.raises(ExtractionThrottled):
        src.fetch(1)


def test_http_connection_refused_is_provider_error_without_key() -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as srv:
        port = srv.server_address[1]
    src = api(f"http://127.0.0.1:{port}/get")
    with pytest.raises(ProviderError) as ei:
        src.fetch(1)
    assert KEY not in str(ei.value)
    assert ei.value.__cause__ is not None
    assert KEY not in repr(src)


def test_extraction_source_validates_config() -> None:
    with pytest.raises(ConfigError):
        ExtractionApiSource("")
    with pytest.raises(ConfigError):
        ExtractionApiSource("ftp://x/get")
    with pytest.raises(ConfigError):
        ExtractionApiSource("http://127.0.0.1/get", fmt="xml")


# --- against the bundled simulator ----------------------------------------------------------


def test_simulator_extraction_is_never_refused_as_too_fast() -> None:
    try:
        from boardsync.sim import Simulator, load_scenario
    except ImportError:
        pytest.skip("boardsync.sim is not available yet")
    scenario = load_scenario("reference")
    scale = 0.04  # 2 s simulated -> 0.08 s real between calls
    with Simulator(scenario, time_scale=scale, seed=7) as sim:
        interval = _scenario_min_interval(scenario) * scale
        src = ExtractionApiSource(sim.extract_url, key=sim.api_key, fmt="txt")
        pm = ProxyManager(src, max_ips=6, ttl_s=60.0, bucket=LeakyBucket(interval),
                          rng=random.Random(1))
        got = []
        for _ in range(6):
            p = pm.acquire(timeout=30)
            got.append(p.key)
            pm.release(p)
        assert len(set(got)) == 6
        assert sim.counters()["extract_refused_too_fast"] == 0


def _scenario_min_interval(scenario: object) -> float:
    """The scenario's minimum seconds between extraction calls, in unscaled seconds."""
    for path in (("extract_min_interval_s",), ("provider", "min_interval"),
                 ("provider", "extract_interval"), ("extract_interval",), ("min_interval",)):
        obj: object = scenario
        for part in path:
            obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part, None)
        if isinstance(obj, int | float):
            return float(obj)
    pytest.skip("cannot find the scenario's extraction interval")
    raise AssertionError  # unreachable


def test_demand_sized_prefetch_serves_the_first_callers_then_replacements_one_at_a_time(
) -> None:
    src = ScriptedSource()
    pm = manager(src, batch=20, demand_sized=True, prefetch=5)
    first = [pm.acquire() for _ in range(5)]  # one call of 5, then four from the pool
    assert len({p.key for p in first}) == 5
    assert len(src.calls) == 1 and pm.stats().extracted == 5
    pm.mark_failed(first[0], "proxy_dead")
    pm.acquire()  # a lone replacement asks for 1 IP, not the batch of 20
    assert len(src.calls) == 2 and pm.stats().extracted == 6


def test_demand_sized_asks_for_the_callers_waiting_at_most_batch() -> None:
    src = ScriptedSource()
    pm = manager(src, batch=3, demand_sized=True)
    pm._waiting = 7  # seven callers queued behind this one (white-box: no threads needed)
    pm.acquire()
    assert pm.stats().extracted == 3  # capped by the batch
    pm._waiting = 0
    assert pm.acquire().key != ""  # served from the pool, no new call
    assert len(src.calls) == 1
