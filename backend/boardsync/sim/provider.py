"""The simulated proxy provider's extraction API (``GET /get?key=&num=&format=txt|json``).

Modelled on the zhima / juliang family (``PROXY_PROVIDERS.md`` §1.3): errors are HTTP 200 with
a JSON body even when text was asked for; too-fast calls get code 111 "请N秒后再试" (N its
interval), an exhausted daily quota code 121, a wrong key code 113. Success lines are joined
by CRLF.

How the TTL is given follows the scenario's ``ttl_format`` (real providers differ, and a
client must read all three):

================  ==========================================  ===============================
``ttl_format``    text line                                   JSON item
================  ==========================================  ===============================
``seconds``       ``ip:port,<seconds_left>`` (kuaidaili       ``{ip, port, expire_time, ttl,
                  ``f_et=1``, 巨量 ``ip_remain=1``)             outip}``
``expire_time``   ``ip:port,YYYY-MM-DD HH:MM:SS``             ``{ip, port, expire_time,
                  (zhima ``ts=1``; inferred: §1.3 shows the     outip}`` (zhima, 豌豆)
                  field in JSON only)
``none``          ``ip:port`` (the default of every text      ``{ip, port, outip}`` (91HTTP,
                  API)                                        携趣)
================  ==========================================  ===============================

``seconds_left``/``ttl`` are real (scaled) seconds. ``expire_time`` is the wall time of expiry
as a naive time of day in China Standard Time (UTC+8), as the Chinese providers this models
write it, whatever the zone of the host the simulator runs on.
"""

from __future__ import annotations

import json
import logging
import math
import random
from datetime import datetime, timedelta, timezone
from typing import Any

from .gateway import Gateway, IssuedIP, fake_identity
from .httpd import Conn, Reply, Request
from .state import SimState

logger = logging.getLogger(__name__)

#: The zone of the providers' ``expire_time`` (China Standard Time, no daylight saving).
PROVIDER_ZONE = timezone(timedelta(hours=8), "CST")


def too_fast(retry_real_s: float) -> dict[str, object]:
    """The "too fast" refusal, naming the wait as providers do ("请2秒后再试": their own
    interval in whole seconds); the simulator states it in real seconds, so a client that
    honours it waits the simulated time at any time scale."""
    return {"code": 111, "data": [], "msg": f"请{retry_real_s:.3g}秒后再试", "success": False}


ERR_QUOTA = {"code": 121, "msg": "今日提取数量已用完 (daily quota exhausted)", "success": False,
             "data": []}
ERR_KEY = {"code": 113, "msg": "请添加白名单或检查key (invalid key)", "success": False,
           "data": []}
ERR_PARAM = {"code": 116, "msg": "参数错误 (bad parameter)", "success": False, "data": []}


def _json(obj: Any) -> Reply:
    return Reply(200, json.dumps(obj, ensure_ascii=False).encode("utf-8"),
                 "application/json; charset=utf-8")


def format_seconds(seconds: float) -> str:
    """``3.0`` -> ``"3"``, ``0.6`` -> ``"0.6"`` (real seconds, millisecond precision)."""
    return format(round(seconds, 3), "g")


def render_success(fresh: list[IssuedIP], fmt: str, ttl_format: str, lifetime: float,
                   wall: datetime) -> Reply:
    """The success reply for ``fresh`` IPs in ``fmt`` (txt/json), the TTL as ``ttl_format`` says.

    Pure, so each wire form is a test of its own; ``seconds`` is byte for byte what the
    provider served before ``ttl_format`` existed (the calibrated scenarios depend on it).

    Args:
        fresh: the IPs just issued, in order.
        fmt: ``txt`` or ``json``.
        ttl_format: ``seconds``, ``expire_time`` or ``none`` (see the module docstring).
        lifetime: real seconds each IP lives from now.
        wall: the wall time now (aware), the base of ``expire_time``.
    """
    # A naive local time of day, as the providers this models write it.
    expire = (wall + timedelta(seconds=lifetime)).astimezone(PROVIDER_ZONE).strftime(
        "%Y-%m-%d %H:%M:%S")
    if fmt == "txt":
        extra = {"seconds": "," + format_seconds(lifetime), "expire_time": "," + expire,
                 "none": ""}[ttl_format]
        body = "\r\n".join(f"127.0.0.1:{ip.port}{extra}" for ip in fresh)
        return Reply(200, body.encode("ascii"), "text/plain; charset=utf-8")
    data: list[dict[str, Any]] = []
    for ip in fresh:
        item: dict[str, Any] = {"ip": "127.0.0.1", "port": ip.port}
        if ttl_format in ("seconds", "expire_time"):
            item["expire_time"] = expire
        if ttl_format == "seconds":
            item["ttl"] = round(lifetime, 3)
        item["outip"] = ip.identity
        data.append(item)
    return _json({"code": 0, "msg": "ok", "success": True, "data": data})


class Provider:
    """Extraction API state: last call, quota per simulated day, the issued IPs."""

    def __init__(self, state: SimState, gateway: Gateway, api_key: str) -> None:
        self.state = state
        self.gateway = gateway
        self.api_key = api_key
        self.rng = random.Random(f"{state.seed}:provider")
        self.last_served: float | None = None
        self.quota_day = 0
        self.used_today = 0
        self.day_offset = 0  # advanced by Simulator.advance_day (a new day, a new quota)
        self.issued: list[IssuedIP] = []
        self._identities: set[str] = set()

    def new_day(self) -> None:
        """Start a new quota day now (called when the market advances a day)."""
        self.day_offset += 1

    def _day(self, now: float) -> int:
        length = self.state.scenario.day_length_s
        return (int(now // length) if length > 0 else 0) + self.day_offset

    async def handle(self, request: Request, conn: Conn | None = None) -> Reply:
        if request.path != "/get":
            return Reply(404, b'{"code":404,"msg":"not found","success":false,"data":[]}')
        st = self.state
        s = st.scenario
        params = request.query
        now = st.now()
        with st.lock:
            c = st.counters
            c.extract_calls += 1
            if params.get("key") != self.api_key:
                c.extract_refused_key += 1
                return _json(ERR_KEY)
            try:
                num = int(params.get("num", "1"))
            except ValueError:
                num = 0
            fmt = params.get("format", "txt")
            if num < 1 or fmt not in ("txt", "json"):
                c.extract_refused_other += 1
                return _json(ERR_PARAM)
            # Arrival jitter on loopback (threads, GIL) can make calls a client spaced exactly
            # ``interval`` apart arrive a few ms closer; the tolerance absorbs that.
            min_gap = s.extract_min_interval_s * (1 - s.extract_interval_tolerance)
            if self.last_served is not None and now - self.last_served < min_gap:
                c.extract_refused_too_fast += 1
                return _json(too_fast(st.real(max(1.0, math.ceil(s.extract_min_interval_s)))))
            day = self._day(now)
            if day != self.quota_day:
                self.quota_day, self.used_today = day, 0
            left = s.extract_quota_per_day - self.used_today
            if left <= 0:
                c.extract_refused_quota += 1
                return _json(ERR_QUOTA)
            self.last_served = now
            count = min(num, left, s.extract_max_num)
            self.used_today += count
            fresh = [self._new_ip(now) for _ in range(count)]
            c.ips_issued += count
            c.ips_doa += sum(ip.doa for ip in fresh)
            c.ips_bad += sum(ip.bad for ip in fresh)
        for ip in fresh:
            await self.gateway.open_ip(ip)
        return render_success(fresh, fmt, s.ttl_format, st.real(s.ip_lifetime_s), st.wall())

    def _new_ip(self, now: float) -> IssuedIP:
        s = self.state.scenario
        while True:
            identity = fake_identity(self.rng)
            if identity not in self._identities:
                self._identities.add(identity)
                break
        doa = self.rng.random() < s.ip_doa_fraction
        bad = self.rng.random() < s.ip_bad_fraction
        index = len(self.issued)
        ip = IssuedIP(index=index, identity=identity, issued_at=now,
                      expires_at=now + s.ip_lifetime_s, doa=doa, bad=bad,
                      rng=random.Random(f"{self.state.seed}:ip:{index}"))
        self.issued.append(ip)
        return ip
