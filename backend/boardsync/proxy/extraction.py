"""The extraction API's replies: parse the proxies out, or classify the error they carry.

Pure (no I/O, no clock of its own) so every real provider's shape is a one-line test. The
parser accepts kuaidaili, zhima, 巨量, 91HTTP, qg.net and similar shapes, and classifies their
error bodies, which arrive with HTTP 200 and often as JSON even when text was asked for.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import (
    ExtractionThrottled,
    ProviderAuthError,
    ProviderError,
    ProxyError,
    QuotaExhausted,
)
from .values import ProxyEndpoint

#: Chinese providers print expiry times in Beijing time without a zone.
PROVIDER_TZ = timezone(timedelta(hours=8))

_TOKEN_RE = re.compile(
    r"^(?P<host>(?:\d{1,3}\.){3}\d{1,3}|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*):(?P<port>\d{1,5})"
    r"(?:,(?P<extra>.*))?$"
)
_NUMBER_RE = re.compile(r"^\d+(?:\.\d+)?$")
#: The space inside ``ip:port,2026-09-04 12:00:33`` (an expiry after the address), which the
#: text splitter would otherwise take for a separator between two entries.
_EXPIRY_GAP_RE = re.compile(r"(,\d{4}[-/]\d{1,2}[-/]\d{1,2}) (?=\d{1,2}:\d{2}:\d{2})")
_KDL_ERROR_RE = re.compile(r"^ERROR\s*\(\s*(?P<code>-?\d+)\s*\)\s*:?\s*(?P<msg>.*)$", re.S)
_RETRY_SECS_RE = re.compile(r"(\d+(?:\.\d+)?)\s*秒后再试")
_RETRY_AFTER_RE = re.compile(r"retry[ _-]?after\D{0,5}(\d+(?:\.\d+)?)", re.I)

_THROTTLED_CODES = frozenset({111, -120, -11})
_QUOTA_CODES = frozenset({-102, -100, 121, 10048, -51})
_AUTH_CODES = frozenset({113, -104, -107, -108, -12})
_THROTTLED_WORDS = ("frequen", "秒后再试", "频率", "频繁", "too fast", "too many", "rate limit")
_QUOTA_WORDS = ("quota", "用完", "余额", "套餐", "balance", "余量", "已过期")
_AUTH_WORDS = ("key", "signature", "白名单", "whitelist", "签名", "密钥", "unauthor", "forbidden")
_SUCCESS_CODES = frozenset({0, 200, "0", "200", "SUCCESS", "success"})


def _as_int(code: object) -> int | None:
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and re.fullmatch(r"-?\d+", code.strip()):
        return int(code.strip())
    return None


def classify_error_body(code: object, message: str) -> ProxyError:
    """Map a provider error (code and message) to the exception the manager acts on.

    Codes decide first (they are exact), then words in the message: too fast
    (:class:`ExtractionThrottled`, with ``retry_after`` from "请N秒后再试"), quota
    (:class:`QuotaExhausted`), key/signature/whitelist (:class:`ProviderAuthError`), anything
    else :class:`ProviderError` (retry later). Too fast is checked before quota and auth because
    waiting is the cheap and always-safe reaction.

    Example: ``classify_error_body(111, "请2秒后再试")`` ->
    ``ExtractionThrottled(retry_after=2.0)``.
    """
    icode = _as_int(code)
    msg = (message or "").strip()
    low = msg.lower()
    shown = f"provider error {code if code is not None else ''}: {msg[:200]}".replace(" :", ":")
    retry_after: float | None = None
    m = _RETRY_SECS_RE.search(msg) or _RETRY_AFTER_RE.search(msg)
    if m:
        retry_after = float(m.group(1))
    if icode in _THROTTLED_CODES:
        return ExtractionThrottled(shown, retry_after=retry_after)
    if icode in _QUOTA_CODES:
        return QuotaExhausted(shown)
    if icode in _AUTH_CODES:
        return ProviderAuthError(shown)
    if any(w in low for w in _THROTTLED_WORDS):
        return ExtractionThrottled(shown, retry_after=retry_after)
    if any(w in low for w in _QUOTA_WORDS):
        return QuotaExhausted(shown)
    if any(w in low for w in _AUTH_WORDS):
        return ProviderAuthError(shown)
    return ProviderError(shown)


def _parse_token(token: str, wall_now: float | None = None) -> ProxyEndpoint | None:
    """``ip:port[,seconds|,expiry][,extras...]`` -> endpoint, or None when it is not an address.

    Extras after the TTL (巨量 ``city_name=1``) are ignored; a first extra that is neither a
    number nor an expiry time (a city name) means no TTL was stated. An expiry
    (``2026-09-04 12:00:33``, or with ``T`` for the space) is read as :func:`_seconds_left`
    reads one, against ``wall_now``; without ``wall_now`` it states no TTL.
    """
    m = _TOKEN_RE.match(token.strip())
    if m is None:
        return None
    port = int(m.group("port"))
    if not 1 <= port <= 65535:
        return None
    ttl: float | None = None
    extra = m.group("extra")
    if extra:
        first = extra.split(",", 1)[0].strip()
        if _NUMBER_RE.match(first):
            ttl = float(first)
        elif wall_now is not None:
            ttl = _seconds_left(first.replace("T", " "), wall_now)
    return ProxyEndpoint(host=m.group("host"), port=port, ttl_s=ttl)


def _seconds_left(value: object, wall_now: float) -> float | None:
    """A provider expiry (``"2020-12-01 00:12:33"`` Beijing time, or epoch seconds) -> seconds."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        # Epoch timestamps are large; small numbers are already "seconds left".
        return float(value) - wall_now if value > 1e9 else float(value)
    if isinstance(value, str):
        s = value.strip()
        if _NUMBER_RE.match(s):
            return _seconds_left(float(s), wall_now)
        for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y/%m/%d %H:%M:%S"):
            try:
                dt = datetime.strptime(s, fmt).replace(tzinfo=PROVIDER_TZ)
            except ValueError:
                continue
            return dt.timestamp() - wall_now
    return None


def _item_endpoint(item: object, wall_now: float) -> ProxyEndpoint | None:
    """One element of a JSON ``data`` list: a ``"ip:port[,secs]"`` string or an object."""
    if isinstance(item, str):
        return _parse_token(item, wall_now)
    if not isinstance(item, dict):
        return None
    ep: ProxyEndpoint | None = None
    # qg.net: ``server`` is the proxy address, ``proxy_ip`` only the exit IP; old qg: ``host``.
    for addr_key in ("server", "host", "proxy"):
        addr = item.get(addr_key)
        if isinstance(addr, str) and ":" in addr:
            ep = _parse_token(addr)
            if ep is not None:
                break
    if ep is None:
        ip = item.get("ip", item.get("IP", item.get("Ip")))
        port = _as_int(item.get("port", item.get("Port", item.get("PORT"))))
        if not isinstance(ip, str) or port is None:
            return None
        ep = _parse_token(f"{ip}:{port}")
        if ep is None:
            return None
    ttl: float | None = None
    for ttl_key in ("ttl", "remain", "ip_remain", "expire_in"):
        if item.get(ttl_key) is not None:
            ttl = _seconds_left(item[ttl_key], wall_now)
            break
    else:
        for exp_key in ("expire_time", "deadline", "expire", "expired_at", "ExpireTime"):
            if item.get(exp_key) is not None:
                ttl = _seconds_left(item[exp_key], wall_now)
                break
    user = item.get("user", item.get("username"))
    pw = item.get("pass", item.get("password"))
    exit_ip = item.get("proxy_ip", item.get("outip"))
    return ProxyEndpoint(
        host=ep.host, port=ep.port, ttl_s=ttl if ttl is not None else ep.ttl_s,
        username=user if isinstance(user, str) and user else None,
        password=pw if isinstance(pw, str) and pw else None,
        identity_hint=exit_ip if isinstance(exit_ip, str) and exit_ip else None,
    )


def _parse_json_body(obj: Any, wall_now: float) -> list[ProxyEndpoint]:
    if isinstance(obj, list):  # a bare list of items: rare, but unambiguous
        data: Any = obj
    elif isinstance(obj, dict):
        code = obj.get("code", obj.get("Code", obj.get("status")))
        msg = obj.get("msg", obj.get("message", obj.get("Msg", "")))
        msg = msg if isinstance(msg, str) else json.dumps(msg, ensure_ascii=False)
        if code not in _SUCCESS_CODES or obj.get("success") is False:
            raise classify_error_body(code, msg)
        data = obj.get("data", obj.get("Data"))
        if isinstance(data, dict):
            if "proxy_list" in data:
                data = data["proxy_list"]
            elif any(k in data for k in ("ip", "IP", "server")):
                data = [data]
        if not data:
            # 巨量 documents an empty list as "check the whitelist or the package balance".
            raise ProviderError(f"provider returned no IPs: {msg[:200]}")
    else:
        raise ProviderError("provider JSON body is neither an object nor a list")
    if not isinstance(data, list):
        raise ProviderError("provider JSON body has no list of proxies")
    out = []
    for item in data:
        ep = _item_endpoint(item, wall_now)
        if ep is None:
            raise ProviderError("provider JSON body holds an entry that is not ip:port")
        out.append(ep)
    return out


def parse_extraction_body(body: str | bytes, *, wall_now: float) -> list[ProxyEndpoint]:
    """Parse an extraction reply into endpoints, or raise the error it carries.

    The shape is sniffed from the content, not from the format we asked for, because providers
    send JSON error bodies in text mode (zhima, 巨量) and kuaidaili sends ``ERROR(code): msg``
    text in either mode. Accepted:

    - text: every non-empty line (CRLF/LF; space or ``|`` separators too) is
      ``host:port[,seconds|,YYYY-MM-DD HH:MM:SS][,extras]`` (no TTL stated: ``ttl_s`` None,
      and the manager keeps the IP for its configured ``ip_ttl``);
    - JSON: ``code`` 0/200/"SUCCESS" (and ``success`` not false) with ``data`` a list of
      ``{ip|IP, port|Port, expire_time|deadline?, ttl?}`` (or qg.net ``server``), or
      ``data.proxy_list`` of ``"ip:port[,secs]"`` strings or ``{ip, port}`` objects.

    Anything else is an error body, classified by :func:`classify_error_body`. A single line
    that is not an address makes the whole body an error: it is never half-trusted.

    Args:
        body: the raw reply.
        wall_now: epoch seconds of the caller's wall clock, to turn an absolute
            ``expire_time`` into seconds left.

    Raises:
        ExtractionThrottled, QuotaExhausted, ProviderAuthError, ProviderError.
    """
    text = _decode(body) if isinstance(body, bytes) else body
    text = text.strip().lstrip("\ufeff")
    if not text:
        raise ProviderError("provider returned an empty body")
    if text[0] in "{[":
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        if obj is not None:
            return _parse_json_body(obj, wall_now)
    tokens = [t for t in re.split(r"[\s|]+", _EXPIRY_GAP_RE.sub(r"\1T", text)) if t]
    endpoints = [_parse_token(t, wall_now) for t in tokens]
    if all(ep is not None for ep in endpoints):
        return [ep for ep in endpoints if ep is not None]
    m = _KDL_ERROR_RE.match(text)
    if m:
        raise classify_error_body(int(m.group("code")), m.group("msg"))
    if text.lstrip().startswith("<"):
        raise ProviderError("provider returned HTML instead of proxies")
    raise classify_error_body(None, text)


def _decode(body: bytes) -> str:
    """UTF-8, else GB18030 (older Chinese providers), else UTF-8 with replacement."""
    for enc in ("utf-8", "gb18030"):
        try:
            return body.decode(enc)
        except UnicodeDecodeError:
            continue
    return body.decode("utf-8", errors="replace")

