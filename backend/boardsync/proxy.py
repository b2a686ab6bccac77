"""Proxy IPs: where they come from, how fast we may ask for them, and who holds which.

The upstream bans an identity that asks too fast, so workers fetch through proxy IPs bought
from a provider whose *extraction API* is itself throttled (a minimum interval between calls)
and rationed (a daily quota; each IP lives about a minute). Three pieces keep that affordable:

- :class:`LeakyBucket` spaces extraction calls at least ``interval_s`` apart across all threads
  (a GCRA with zero burst: one shared "next allowed time"), because providers enforce a minimum
  *spacing* ("请2秒后再试"), not an average rate — a token bucket would burst after idle time.
- The sources (:class:`DirectSource`, :class:`StaticListSource`, :class:`ExtractionApiSource`,
  :class:`TunnelSource`) turn a provider into :class:`ProxyEndpoint` values. The extraction
  parser (:func:`parse_extraction_body`) accepts the real providers' shapes (kuaidaili, zhima,
  巨量, 91HTTP, qg.net, ...) and classifies their error bodies, which arrive with HTTP 200 and
  often as JSON even when text was asked for.
- :class:`ProxyManager` hands each worker a fresh IP for its exclusive use, with a jittered TTL
  so workers do not all rotate at once, never extracts more than ``max_ips``, and never hands
  out an IP again once a worker called :meth:`ProxyManager.mark_failed` on it.

Secrets: a proxy URL may hold ``user:pass`` and the extraction URL holds the API key; neither
is ever logged — logs name a proxy by its ``key`` (``host:port``) and the API by its URL
without the query string.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import requests

from .errors import (
    ConfigError,
    ExtractionThrottled,
    Interrupted,
    ProviderAuthError,
    ProviderError,
    ProxyError,
    QuotaExhausted,
)

logger = logging.getLogger(__name__)

#: Chinese providers print expiry times in Beijing time without a zone.
PROVIDER_TZ = timezone(timedelta(hours=8))

#: Longest single sleep while waiting for a bucket slot, so a stop request is noticed quickly.
_SLEEP_CHUNK_S = 0.25


# --- values ---------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Proxy:
    """One proxy as handed to a worker.

    ``key`` names it in logs and stats (``host:port``, ``"direct"`` or ``"tunnel"``); ``url`` is
    what the HTTP client uses (``None`` = connect directly) and may embed ``user:pass``, which is
    why ``repr`` shows the key only. ``expires_at`` is on the manager's clock (``now``).
    ``identity_hint`` is the exit IP when the provider tells us (it can differ from ``host``).
    """

    key: str
    url: str | None
    expires_at: float
    identity_hint: str | None = None

    def __repr__(self) -> str:
        return f"Proxy(key={self.key!r})"

    __str__ = __repr__


@dataclass(frozen=True, repr=False)
class ProxyEndpoint:
    """An address a source produced, before the manager gives it a TTL.

    ``ttl_s`` is the remaining lifetime the provider stated (``None`` = not stated).
    """

    host: str
    port: int
    ttl_s: float | None = None
    username: str | None = None
    password: str | None = None
    scheme: str = "http"
    identity_hint: str | None = None

    @property
    def key(self) -> str:
        """``host:port``: the identity of the proxy, safe to log."""
        return f"{self.host}:{self.port}"

    def url(self) -> str:
        """The proxy URL for the HTTP client, credentials percent-encoded (never log it)."""
        auth = ""
        if self.username is not None:
            auth = quote(self.username, safe="")
            if self.password is not None:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        return f"{self.scheme}://{auth}{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"ProxyEndpoint(key={self.key!r}, ttl_s={self.ttl_s!r})"


@dataclass(frozen=True)
class ProxyStats:
    """Counters for the summary, the state file and the progress bar.

    ``extracted`` counts every IP taken from the provider (dead on arrival or not: each costs
    quota); ``expired`` those given back at the end of their TTL; ``failed`` evictions;
    ``in_use`` proxies currently held by workers; ``throttled_calls`` extraction calls the
    provider refused as too fast; ``extract_calls`` every call made to the provider.
    """

    extracted: int = 0
    expired: int = 0
    failed: int = 0
    in_use: int = 0
    throttled_calls: int = 0
    extract_calls: int = 0


# --- the leaky bucket -----------------------------------------------------------------------


class LeakyBucket:
    """A forced minimum interval between calls, shared by every thread.

    State is one "next allowed time" (``_next``). :meth:`acquire` *reserves* the slot under the
    lock (``slot = max(now, _next)``; ``_next = slot + interval``) and sleeps until it outside
    the lock, so N threads that arrive together leave at ``t, t+I, t+2I, ...`` — exactly the
    provider's spacing, in arrival order, and no thread holds the lock while sleeping.

    Args:
        interval_s: minimum seconds between two calls; ``0`` means no limit.
        now: the clock (monotonic seconds); injected so tests step it exactly.
        sleep: how to wait; injected likewise.
    """

    def __init__(
        self,
        interval_s: float,
        *,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not interval_s >= 0 or math.isinf(interval_s):
            raise ConfigError(f"leaky bucket interval must be >= 0 s, got {interval_s!r}",
                              key="extract_interval")
        self.interval_s = float(interval_s)
        self._now = now
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next: float | None = None  # None: never used, the first call goes at once

    def wait_time(self) -> float:
        """Seconds until a call made now would be allowed (no side effect; 0 = go now)."""
        with self._lock:
            if self._next is None:
                return 0.0
            return max(0.0, self._next - self._now())

    def _reserve(self) -> float:
        """Take the next slot; returns its time on the injected clock."""
        with self._lock:
            t = self._now()
            slot = t if self._next is None else max(t, self._next)
            self._next = slot + self.interval_s
            return slot

    def _cancel(self, slot: float) -> None:
        """Give back a slot nobody will use, if nothing was reserved after it."""
        with self._lock:
            if self._next == slot + self.interval_s:
                self._next = slot

    def acquire(self, stop_event: threading.Event | None = None) -> float:
        """Block until this caller's slot; returns the slot time (on the injected clock).

        Sleeps in chunks of at most 0.25 s so a set ``stop_event`` is noticed promptly; then
        the slot is given back (when it is the last one) and :class:`Interrupted` is raised.
        """
        slot = self._reserve()
        while True:
            remaining = slot - self._now()
            if remaining <= 0:
                return slot
            if stop_event is not None and stop_event.is_set():
                self._cancel(slot)
                raise Interrupted("stop requested while waiting for the extraction bucket")
            self._sleep(min(remaining, _SLEEP_CHUNK_S) if stop_event is not None else remaining)

    def delay(self, seconds: float) -> None:
        """Make the next slot no earlier than ``seconds`` from now (the provider said too fast).

        Never moves the next slot earlier: a provider "retry in 1 s" must not cancel spacing
        already promised to queued callers.
        """
        with self._lock:
            target = self._now() + max(0.0, seconds)
            self._next = target if self._next is None else max(self._next, target)


# --- sources --------------------------------------------------------------------------------


class ProxySource(Protocol):
    """Where proxies come from.

    ``rotates_itself``: one fixed endpoint whose exit IP changes by itself (tunnel) or no proxy
    at all (direct) — the manager hands out that one shared proxy and never evicts it.
    ``unlimited``: fetching costs nothing (no quota, no rate limit), so the manager neither
    counts it against ``max_ips`` nor paces it through the bucket.
    """

    rotates_itself: bool
    unlimited: bool

    def fetch(self, count: int) -> list[ProxyEndpoint]:
        """Up to ``count`` endpoints (may return more; the manager trims to its budget)."""
        ...


class DirectSource:
    """No proxy: every request leaves from this host (the default when none is configured)."""

    rotates_itself = True
    unlimited = True

    def fetch(self, count: int) -> list[ProxyEndpoint]:
        """Direct has no endpoints; the manager hands out ``Proxy("direct", None, inf)``."""
        return []


class TunnelSource:
    """A provider's tunnel gateway: one fixed ``user:pass@host:port`` that rotates exit IPs itself.

    Raises:
        ConfigError: the URL has no host or port.
    """

    rotates_itself = True
    unlimited = True

    def __init__(self, url: str) -> None:
        if not url:
            raise ConfigError("tunnel proxy URL is empty", key="proxy_tunnel_url")
        parts = urlsplit(url if "://" in url else "http://" + url)
        try:
            port = parts.port
        except ValueError as e:
            raise ConfigError("tunnel proxy URL has a bad port", key="proxy_tunnel_url") from e
        if not parts.hostname or port is None:
            raise ConfigError("tunnel proxy URL needs host:port", key="proxy_tunnel_url")
        self.url = urlunsplit(parts)
        self.key = f"{parts.hostname}:{port}"

    def fetch(self, count: int) -> list[ProxyEndpoint]:
        """A tunnel is never extracted from; the manager hands out the gateway itself."""
        return []

    def __repr__(self) -> str:
        return f"TunnelSource(key={self.key!r})"


_STATIC_LINE_RE = re.compile(
    r"^(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://)?"
    r"(?:(?P<user>[^:@/\s]+)(?::(?P<pw>[^@/\s]*))?@)?"
    r"(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})/?$"
)


class StaticListSource:
    """A file of proxies, one ``[scheme://][user:pass@]host:port`` per line.

    Blank lines and ``#`` comments are skipped. The file is read once, at construction, so a
    typo fails the run before any work starts. :meth:`fetch` goes round the list (a static
    proxy is not used up by rotating away from it); the manager skips evicted ones.

    Raises:
        ConfigError: the file cannot be read, is empty, or a line is malformed (the message
            names the line number, never the line, which may hold a password).
    """

    rotates_itself = False
    unlimited = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read proxy list {self.path}: {e}",
                              key="proxy_file") from e
        self.endpoints: list[ProxyEndpoint] = []
        for lineno, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            m = _STATIC_LINE_RE.match(line)
            port = int(m.group("port")) if m else 0
            if m is None or not 1 <= port <= 65535:
                raise ConfigError(
                    f"{self.path}, line {lineno}: expected [scheme://][user:pass@]host:port",
                    key="proxy_file",
                )
            self.endpoints.append(ProxyEndpoint(
                host=m.group("host"), port=port, username=m.group("user"),
                password=m.group("pw"), scheme=(m.group("scheme") or "http").lower(),
            ))
        if not self.endpoints:
            raise ConfigError(f"proxy list {self.path} has no proxies", key="proxy_file")
        self._next = 0
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """How many proxies the file lists."""
        return len(self.endpoints)

    def fetch(self, count: int) -> list[ProxyEndpoint]:
        """The next ``count`` entries, going round the list."""
        with self._lock:
            out = []
            for _ in range(max(0, count)):
                out.append(self.endpoints[self._next])
                self._next = (self._next + 1) % len(self.endpoints)
            return out


# --- the extraction API parser ------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"^(?P<host>(?:\d{1,3}\.){3}\d{1,3}|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*):(?P<port>\d{1,5})"
    r"(?:,(?P<extra>.*))?$"
)
_NUMBER_RE = re.compile(r"^\d+(?:\.\d+)?$")
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


def _parse_token(token: str) -> ProxyEndpoint | None:
    """``ip:port[,seconds][,extras...]`` -> endpoint, or None when it is not an address.

    Extras after the seconds (巨量 ``city_name=1``) are ignored; a first extra that is not a
    number (a city name) means no TTL was stated.
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
        return _parse_token(item)
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


def parse_extraction_body(body: str | bytes, *, wall_now: float | None = None
                          ) -> list[ProxyEndpoint]:
    """Parse an extraction reply into endpoints, or raise the error it carries.

    The shape is sniffed from the content, not from the format we asked for, because providers
    send JSON error bodies in text mode (zhima, 巨量) and kuaidaili sends ``ERROR(code): msg``
    text in either mode. Accepted:

    - text: every non-empty line (CRLF/LF; space or ``|`` separators too) is
      ``host:port[,seconds][,extras]``;
    - JSON: ``code`` 0/200/"SUCCESS" (and ``success`` not false) with ``data`` a list of
      ``{ip|IP, port|Port, expire_time|deadline?, ttl?}`` (or qg.net ``server``), or
      ``data.proxy_list`` of ``"ip:port[,secs]"`` strings or ``{ip, port}`` objects.

    Anything else is an error body, classified by :func:`classify_error_body`. A single line
    that is not an address makes the whole body an error: it is never half-trusted.

    Args:
        body: the raw reply.
        wall_now: epoch seconds used to turn ``expire_time`` into seconds left
            (``None`` = ``time.time()``).

    Raises:
        ExtractionThrottled, QuotaExhausted, ProviderAuthError, ProviderError.
    """
    text = _decode(body) if isinstance(body, bytes) else body
    text = text.strip().lstrip("\ufeff")
    wall = time.time() if wall_now is None else wall_now
    if not text:
        raise ProviderError("provider returned an empty body")
    if text[0] in "{[":
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        if obj is not None:
            return _parse_json_body(obj, wall)
    tokens = [t for t in re.split(r"[\s|]+", text) if t]
    endpoints = [_parse_token(t) for t in tokens]
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


def redact_url(url: str) -> str:
    """The URL without its query, fragment or credentials: safe to log."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class _SecretRedactor(logging.Filter):
    """Replaces registered secrets in records of a third-party logger.

    urllib3 logs every request line, query string included, at DEBUG; with ``--log-level
    debug`` that would print the API key. A filter on that one logger is the narrowest fix
    that does not depend on how the CLI configures logging.
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            msg = record.getMessage()
            hits = [s for s in self.secrets if s in msg]
            if hits:
                for secret in hits:
                    msg = msg.replace(secret, "***")
                record.msg, record.args = msg, ()
        return True


_REDACTOR = _SecretRedactor()
logging.getLogger("urllib3.connectionpool").addFilter(_REDACTOR)


class ExtractionApiSource:
    """A provider's extraction API: one GET that returns fresh ``ip:port`` lines or JSON.

    The request is the configured URL (which may already carry order ids, signatures or
    filters in its query) plus ``key_param=key``, ``num_param=count`` and ``fmt_param=fmt``.
    The key is never logged: logs show :func:`redact_url` of the URL.

    Args:
        url: the extraction endpoint.
        key: the API key/secret (``""`` = none; the URL itself may authenticate).
        key_param, num_param, fmt_param: the provider's parameter names.
        fmt: ``"txt"`` or ``"json"``; the parser accepts either reply whatever was asked.
        session: a ``requests.Session`` to reuse (``None`` = a new one).
        timeout: ``(connect, read)`` seconds for the HTTP call.
        wall: epoch clock used to turn absolute expiry times into seconds left.
    """

    rotates_itself = False
    unlimited = False

    def __init__(
        self,
        url: str,
        *,
        key: str = "",
        key_param: str = "key",
        num_param: str = "num",
        fmt: str = "txt",
        fmt_param: str = "format",
        session: requests.Session | None = None,
        timeout: float | tuple[float, float] = (5.0, 10.0),
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not url:
            raise ConfigError("extraction API URL is empty", key="proxy_api_url")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("extraction API URL must be http(s)://host/...",
                              key="proxy_api_url")
        if fmt not in ("txt", "json"):
            raise ConfigError(f"extraction format must be txt or json, got {fmt!r}",
                              key="proxy_api_format")
        self.url = url
        self.key = key
        self.key_param = key_param
        self.num_param = num_param
        self.fmt = fmt
        self.fmt_param = fmt_param
        self.session = session if session is not None else requests.Session()
        self.timeout = timeout
        self._wall = wall
        self.safe_url = redact_url(url)
        # The key and any long query value (order ids, signatures) are secrets in logs.
        url_values = [v for _, v in parse_qsl(parts.query) if len(v) >= 8]
        for secret in (key, quote(key, safe=""), *url_values, *(quote(v, safe="") for v in
                                                                url_values)):
            if len(secret) >= 4:
                _REDACTOR.secrets.add(secret)

    def request_url(self, count: int) -> str:
        """The full request URL (contains the key: never log it)."""
        parts = urlsplit(self.url)
        ours = {self.num_param, self.fmt_param} | ({self.key_param} if self.key else set())
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                 if k not in ours]
        if self.key:
            query.append((self.key_param, self.key))
        query.append((self.num_param, str(count)))
        query.append((self.fmt_param, self.fmt))
        return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))

    def fetch(self, count: int) -> list[ProxyEndpoint]:
        """Call the API once for ``count`` IPs.

        Raises:
            ExtractionThrottled, QuotaExhausted, ProviderAuthError: the provider said so.
            ProviderError: network failure, HTTP error without a recognisable body, or a
                malformed body.
        """
        logger.debug("Proxy source: extracting %d from %s", count, self.safe_url)
        try:
            resp = self.session.get(self.request_url(count), timeout=self.timeout)
        except requests.RequestException as e:
            # The message names the class only: requests' own text includes the full URL.
            raise ProviderError(
                f"extraction call to {self.safe_url} failed: {type(e).__name__}"
            ) from e
        body = resp.content
        if resp.status_code != 200:
            try:
                parse_extraction_body(body, wall_now=self._wall())
            except (ExtractionThrottled, QuotaExhausted, ProviderAuthError):
                raise
            except ProviderError:
                pass
            if resp.status_code == 429:
                ra = resp.headers.get("Retry-After", "")
                raise ExtractionThrottled(
                    f"extraction API {self.safe_url}: HTTP 429",
                    retry_after=float(ra) if _NUMBER_RE.match(ra.strip()) else None,
                )
            if resp.status_code in (401, 403):
                raise ProviderAuthError(f"extraction API {self.safe_url}: HTTP "
                                        f"{resp.status_code}")
            raise ProviderError(f"extraction API {self.safe_url}: HTTP {resp.status_code}")
        return parse_extraction_body(body, wall_now=self._wall())

    def __repr__(self) -> str:
        return f"ExtractionApiSource({self.safe_url!r})"


# --- TTL and worker sizing ----------------------------------------------------------------


def jittered_ttl(ttl_s: float, jitter: float, provider_ttl: float | None,
                 rng: random.Random) -> float:
    """How long we keep an IP: ``min(provider_ttl, ttl_s) × U(1-jitter, 1+jitter)``.

    Jitter spreads rotations so workers that started together do not all extract at once
    (they would queue on the bucket). The result never exceeds ``provider_ttl``: upward jitter
    past the provider's stated lifetime would only keep a dead IP.

    Example: ``ttl_s=45, jitter=0.15`` -> somewhere in [38.25, 51.75]; with
    ``provider_ttl=40`` -> in [34, 40].

    Args:
        ttl_s: our configured lifetime in seconds.
        jitter: fraction in [0, 1); 0 = exactly ``ttl_s``.
        provider_ttl: seconds left according to the provider (``None`` = not stated).
        rng: source of randomness (seeded in tests).
    """
    base = ttl_s if provider_ttl is None else min(ttl_s, provider_ttl)
    j = min(max(jitter, 0.0), 0.999)
    ttl = base * rng.uniform(1.0 - j, 1.0 + j)
    if provider_ttl is not None:
        ttl = min(ttl, provider_ttl)
    return max(0.0, ttl)


#: Worker count when the source rotates by itself or has no extraction rate to size by.
DEFAULT_WORKERS_UNPACED = 4


def workers_auto(provider_qps: float, ip_ttl_s: float, safety: float = 2.0,
                 max_workers: int = 32, *, source: ProxySource | None = None
                 ) -> tuple[int, str]:
    """A safe worker count from the provider's rate and the IP lifetime (Little's law).

    Each worker holds one IP for its TTL, and IPs arrive at most ``provider_qps`` per second,
    so at most ``L = λ × W = qps × ttl`` IPs can be in use at once; dividing by ``safety``
    leaves room for dead-on-arrival IPs, evictions and throttled calls. Example: 0.5 calls/s
    × 45 s = 22.5 IPs in flight; / 2.0 -> 11 workers.

    Returns:
        ``(workers, explanation)`` with a one-paragraph explanation of the arithmetic.
        Direct/tunnel sources (or a non-positive/infinite rate) get a small fixed default.
    """
    if source is not None and (source.rotates_itself or source.unlimited):
        n = min(DEFAULT_WORKERS_UNPACED, max_workers)
        return n, (f"{n} workers: the proxy source needs no extraction (direct, tunnel or "
                   f"static list), so there is no extraction rate to size by; a small fixed "
                   f"pool keeps the request rate per exit IP low.")
    if not provider_qps > 0 or math.isinf(provider_qps) or not ip_ttl_s > 0:
        n = min(DEFAULT_WORKERS_UNPACED, max_workers)
        return n, (f"{n} workers: no finite extraction rate and IP lifetime to size by "
                   f"(qps={provider_qps}, ttl={ip_ttl_s} s); using a small fixed pool.")
    safety = max(safety, 1.0)
    in_flight = provider_qps * ip_ttl_s
    raw = in_flight / safety
    n = max(1, min(max_workers, math.floor(raw)))
    capped = " (capped)" if math.floor(raw) > max_workers else ""
    floored = " (at least 1)" if math.floor(raw) < 1 else ""
    return n, (
        f"{n} workers{capped}{floored}: each worker keeps one proxy IP for about "
        f"{ip_ttl_s:g} s and the provider hands out at most {provider_qps:g} IPs per second, "
        f"so by Little's law (L = λ × W) at most {provider_qps:g} × {ip_ttl_s:g} = "
        f"{in_flight:g} IPs can be in use at once; dividing by a safety factor of "
        f"{safety:g} (dead-on-arrival IPs, evictions, throttled calls) gives "
        f"{raw:.2f}, rounded down to {math.floor(raw)}, within [1, {max_workers}]."
    )


# --- the manager --------------------------------------------------------------------------


class ProxyManager:
    """Hands each worker a fresh, live proxy for its exclusive use.

    Extraction sources: the pool holds extracted IPs not yet handed out (each with its
    jittered TTL, counted from extraction since that is when the provider's clock starts).
    When the pool is empty, the caller extracts — through the bucket, so provider calls are
    never closer than its interval; a "too fast" reply delays the bucket by what the provider
    asked (or one interval) and tries again. The budget (``max_ips``) is reserved under the
    lock *before* the call, so threads racing to extract can never overshoot it together; the
    lock is never held while sleeping or doing HTTP.

    Direct and tunnel sources: every caller gets the same shared proxy; evictions are counted
    but not acted on (rotation is the tunnel's job). Static lists: round-robin without quota or
    pacing, skipping evicted entries.

    Args:
        source: a :class:`ProxySource`.
        max_ips: most IPs to extract in this run (every IP counts, dead on arrival or not).
        ttl_s: how long to keep an IP before rotating (capped by the provider's TTL).
        ttl_jitter: ± fraction applied to each TTL (0 = none).
        bucket: the shared :class:`LeakyBucket` for provider calls.
        now: monotonic clock; ``expires_at`` values are on it.
        rng: randomness for the jitter.
        batch: IPs asked per provider call (extras wait in the pool).
        demand_sized: ask each call for only as many IPs as callers are waiting for at that
            moment (at least 1, at most ``batch``), so a replacement for one evicted IP does
            not pull a whole batch that would then age unused in the pool. False = always
            ``batch``.
        prefetch: with ``demand_sized``, IPs the *first* call asks for (at most ``batch``),
            for the workers about to start: with ``prefetch`` = workers + 1 one call serves
            the board-list fetch and every worker, instead of one call (one ``interval``) per
            worker. 0 = no prefetch.
        max_throttle_retries: "too fast" replies tolerated in a row before giving up
            (raising :class:`ExtractionThrottled`).
    """

    def __init__(
        self,
        source: ProxySource,
        *,
        max_ips: int,
        ttl_s: float,
        ttl_jitter: float = 0.15,
        bucket: LeakyBucket,
        now: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        batch: int = 1,
        max_throttle_retries: int = 10,
        demand_sized: bool = False,
        prefetch: int = 0,
    ) -> None:
        if max_ips < 0:
            raise ConfigError(f"max_ips must be >= 0, got {max_ips}", key="max_ips")
        if not ttl_s > 0:
            raise ConfigError(f"ip TTL must be > 0 s, got {ttl_s}", key="ip_ttl")
        if not 0 <= ttl_jitter < 1:
            raise ConfigError(f"ip TTL jitter must be in [0, 1), got {ttl_jitter}",
                              key="ip_ttl_jitter")
        self.source = source
        self.max_ips = max_ips
        self.ttl_s = ttl_s
        self.ttl_jitter = ttl_jitter
        self.bucket = bucket
        self._now = now
        self._rng = rng if rng is not None else random.Random()
        self.batch = max(1, batch)
        self.demand_sized = demand_sized
        self._prefetch = max(0, prefetch)  # consumed by the first extraction call
        self._waiting = 0  # callers inside acquire() without a proxy yet
        self.max_throttle_retries = max(0, max_throttle_retries)
        self._cond = threading.Condition(threading.Lock())
        self._extract_lock = threading.Lock()  # one extraction call in flight at a time
        self._pool: deque[Proxy] = deque()
        self._in_use: dict[str, Proxy] = {}
        self._dead: set[str] = set()
        self._reserved = 0  # IPs budgeted to extraction calls in flight
        self._provider_quota_out: str | None = None
        self._extracted = self._expired = self._failed = 0
        self._throttled = self._calls = 0
        self._shared_users = 0
        self._shared: Proxy | None = None
        if source.rotates_itself:
            if isinstance(source, TunnelSource):
                self._shared = Proxy("tunnel", source.url, math.inf)
            else:
                self._shared = Proxy("direct", None, math.inf)

    # -- queries --

    def is_alive(self, proxy: Proxy) -> bool:
        """True while ``proxy`` is within its TTL and has not been evicted."""
        if self._shared is not None and proxy.key == self._shared.key:
            return True
        with self._cond:
            dead = proxy.key in self._dead
        return not dead and self._now() < proxy.expires_at

    def remaining_ips(self) -> int | None:
        """IPs still allowed by ``max_ips`` (``None`` = the source is not rationed)."""
        if self.source.unlimited:
            return None
        with self._cond:
            return max(0, self.max_ips - self._extracted)

    def stats(self) -> ProxyStats:
        """A snapshot of the counters."""
        with self._cond:
            in_use = self._shared_users if self._shared is not None else len(self._in_use)
            return ProxyStats(self._extracted, self._expired, self._failed, in_use,
                              self._throttled, self._calls)

    # -- hand out / give back --

    def acquire(self, timeout: float | None = None,
                stop_event: threading.Event | None = None) -> Proxy:
        """A fresh live proxy for the caller's exclusive use.

        Args:
            timeout: most seconds (on ``now``) to wait for the bucket or for other threads'
                extractions (``None`` = no limit).
            stop_event: when set, stop waiting and raise :class:`Interrupted`.

        Raises:
            QuotaExhausted: ``max_ips`` is spent (or the provider's quota) and nothing is
                pooled; or a static list whose every entry was evicted.
            ExtractionThrottled: still "too fast" after ``max_throttle_retries`` waits.
            ProviderAuthError, ProviderError: the provider call failed.
            Interrupted: ``stop_event`` was set.
            ProxyError: ``timeout`` passed.
        """
        if stop_event is not None and stop_event.is_set():
            raise Interrupted("stop requested before acquiring a proxy")
        if self._shared is not None:
            with self._cond:
                self._shared_users += 1
            return self._shared
        if self.source.unlimited:
            return self._acquire_static()
        deadline = None if timeout is None else self._now() + timeout
        with self._cond:
            self._waiting += 1
        try:
            return self._acquire_extracted(deadline, stop_event)
        finally:
            with self._cond:
                self._waiting -= 1

    def _acquire_extracted(self, deadline: float | None, stop_event: threading.Event | None
                           ) -> Proxy:
        """:meth:`acquire` for extraction sources: pooled, else extract (demand-sized)."""
        while True:
            with self._cond:
                proxy = self._take_pooled()
                if proxy is not None:
                    return proxy
                if self._provider_quota_out is not None:
                    raise QuotaExhausted(self._provider_quota_out)
                budget = self.max_ips - self._extracted - self._reserved
                if budget <= 0:
                    if self._reserved == 0:
                        raise QuotaExhausted(
                            f"max_ips reached: {self._extracted} of {self.max_ips} IPs extracted"
                        )
                    # Others are extracting the last IPs; one may come back spare (or fail
                    # and free its budget). Wait for them rather than give up early.
                    self._wait_for_others(deadline, stop_event)
                    continue
                n = min(self.batch, budget)
                if self.demand_sized:
                    n = min(n, max(1, self._waiting - self._reserved, self._prefetch))
                    self._prefetch = 0
                self._reserved += n
            try:
                proxy = self._extract(n, deadline, stop_event)
            finally:
                with self._cond:
                    self._reserved -= n
                    self._cond.notify_all()
            if proxy is not None:
                return proxy

    def _wait_for_others(self, deadline: float | None, stop_event: threading.Event | None
                         ) -> None:
        """Called with the lock held: wait a little for in-flight extractions to finish."""
        if stop_event is not None and stop_event.is_set():
            raise Interrupted("stop requested while waiting for a proxy")
        if deadline is not None and self._now() >= deadline:
            raise ProxyError("no proxy became available within the timeout")
        # Real-time wait: woken by notify_all when any extraction finishes.
        self._cond.wait(0.05)

    def _take_pooled(self) -> Proxy | None:
        """Lock held: pop the first live pooled proxy (expired ones are counted and dropped)."""
        t = self._now()
        while self._pool:
            p = self._pool.popleft()
            if p.key in self._dead or p.key in self._in_use:
                continue
            if t >= p.expires_at:
                self._expired += 1
                logger.debug("Proxy %s: expired in the pool before use", p.key)
                continue
            self._in_use[p.key] = p
            return p
        return None

    def _extract(self, n: int, deadline: float | None, stop_event: threading.Event | None
                 ) -> Proxy | None:
        """One extraction of up to ``n`` IPs through the bucket; returns one for the caller.

        Returns ``None`` when every IP returned was unusable (evicted before, already held);
        the caller loops, and the budget bounds the loop.
        """
        throttled = 0
        while True:
            if deadline is not None and self.bucket.wait_time() > deadline - self._now():
                raise ProxyError("no proxy available within the timeout (extraction bucket)")
            # One caller at a time reserves a slot *and* makes the call: a slot reserved while
            # an earlier call is still in flight could not honour that call's answer time.
            with self._extract_lock:
                self.bucket.acquire(stop_event)
                with self._cond:
                    # Another thread may have pooled spare IPs while we queued on the bucket.
                    proxy = self._take_pooled()
                    if proxy is not None:
                        return proxy
                    self._calls += 1
                try:
                    endpoints = self.source.fetch(n)
                except ExtractionThrottled as e:
                    with self._cond:
                        self._throttled += 1
                    wait = e.retry_after if e.retry_after is not None else self.bucket.interval_s
                    self.bucket.delay(max(wait, self.bucket.interval_s))
                    throttled += 1
                    if throttled > self.max_throttle_retries:
                        raise
                    logger.info("Proxy manager: provider says too fast (%s); waiting %.2f s",
                                e, wait)
                    continue
                except QuotaExhausted as e:
                    with self._cond:
                        self._provider_quota_out = f"provider quota exhausted: {e}"
                    logger.warning("Proxy manager: provider quota exhausted: %s", e)
                    raise
                finally:
                    # Space the next call from this call's *answer*: the provider measures
                    # arrivals and received this call before answering, so answer + interval
                    # is always far enough apart (send times are not).
                    self.bucket.delay(self.bucket.interval_s)
            return self._admit(endpoints, n)

    def _admit(self, endpoints: list[ProxyEndpoint], n: int) -> Proxy | None:
        """Count and pool what the provider returned; hand one to the caller."""
        if len(endpoints) > n:
            logger.debug("Proxy manager: provider returned %d IPs for %d asked; keeping %d",
                         len(endpoints), n, n)
            endpoints = endpoints[:n]
        t = self._now()
        with self._cond:
            self._extracted += len(endpoints)
            fresh: list[Proxy] = []
            for ep in endpoints:
                if ep.key in self._dead:
                    logger.info("Proxy %s: re-issued by the provider but evicted before; "
                                "skipped", ep.key)
                    continue
                if ep.key in self._in_use or any(p.key == ep.key for p in self._pool):
                    logger.info("Proxy %s: re-issued while already held; skipped", ep.key)
                    continue
                ttl = jittered_ttl(self.ttl_s, self.ttl_jitter, ep.ttl_s, self._rng)
                fresh.append(Proxy(ep.key, ep.url(), t + ttl, ep.identity_hint))
            if not fresh:
                return None
            mine = fresh[0]
            self._in_use[mine.key] = mine
            self._pool.extend(fresh[1:])
            logger.debug("Proxy %s: extracted (%d of %d used)", mine.key, self._extracted,
                         self.max_ips)
            return mine

    def _acquire_static(self) -> Proxy:
        """Static list: the next entry not evicted and not held; share one if all are held."""
        size = max(1, int(getattr(self.source, "size", 1)))
        with self._cond:
            shared: ProxyEndpoint | None = None
            for _ in range(size):
                fetched = self.source.fetch(1)
                if not fetched:
                    break
                ep = fetched[0]
                if ep.key in self._dead:
                    continue
                if ep.key in self._in_use:
                    shared = shared or ep
                    continue
                self._calls += 1
                self._extracted += 1
                ttl = jittered_ttl(self.ttl_s, self.ttl_jitter, ep.ttl_s, self._rng)
                p = Proxy(ep.key, ep.url(), self._now() + ttl)
                self._in_use[p.key] = p
                return p
            if shared is not None:
                # More workers than proxies: sharing beats blocking a worker indefinitely.
                logger.info("Proxy %s: every static proxy is in use; sharing one", shared.key)
                ttl = jittered_ttl(self.ttl_s, self.ttl_jitter, shared.ttl_s, self._rng)
                return Proxy(shared.key, shared.url(), self._now() + ttl)
        raise QuotaExhausted("every proxy in the static list has been evicted")

    def release(self, proxy: Proxy) -> None:
        """Give back a proxy whose TTL ran out (or at shutdown): counted expired, never reused."""
        with self._cond:
            if self._shared is not None and proxy.key == self._shared.key:
                self._shared_users = max(0, self._shared_users - 1)
                return
            if self._in_use.get(proxy.key) is proxy:
                del self._in_use[proxy.key]
                self._expired += 1
            self._cond.notify_all()

    def mark_failed(self, proxy: Proxy, reason: str) -> None:
        """Evict ``proxy`` now: its key is never handed out again, even if re-extracted.

        For direct/tunnel the failure is counted but nothing is evicted: there is nothing else
        to switch to, and rotating exit IPs is the tunnel's own job.
        """
        with self._cond:
            self._failed += 1
            if self._shared is not None and proxy.key == self._shared.key:
                self._shared_users = max(0, self._shared_users - 1)
                logger.info("Proxy %s: failed (%s); not evicted, rotation is the %s's job",
                            proxy.key, reason, "tunnel" if proxy.url else "direct mode")
                return
            self._dead.add(proxy.key)
            if self._in_use.get(proxy.key) is proxy:
                del self._in_use[proxy.key]
            self._pool = deque(p for p in self._pool if p.key != proxy.key)
            self._cond.notify_all()
        logger.debug("Proxy %s: evicted (%s)", proxy.key, reason)

