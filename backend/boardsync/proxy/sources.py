"""Where proxies come from: no proxy, a static list, a provider's extraction API, a tunnel.

Every source answers the same three questions (:class:`ProxySource`), so the manager never
asks which kind it holds: is there one proxy everybody shares (:meth:`ProxySource.shared`), is
the supply a fixed free list or bought IP by IP (:meth:`ProxySource.supply`), and what are the
next endpoints (:meth:`ProxySource.fetch`).

Secrets: a proxy URL may hold ``user:pass`` and the extraction URL holds the API key; neither
is ever logged — logs name a proxy by its ``key`` (``host:port``) and the API by its URL
without the query string (:func:`boardsync.redact.strip_url`).
"""

from __future__ import annotations

import logging
import math
import re
import threading
from datetime import datetime
from pathlib import Path
from typing import NoReturn, Protocol
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import requests

from ..clock import SYSTEM, Clock
from ..durations import parse_retry_after
from ..errors import (
    ConfigError,
    ExtractionThrottled,
    ProviderAuthError,
    ProviderError,
    QuotaExhausted,
)
from ..redact import register_secret, strip_url
from .extraction import parse_extraction_body
from .values import Proxy, ProxyEndpoint

logger = logging.getLogger(__name__)


class ProxySource(Protocol):
    """Where proxies come from: what the manager needs to know, and nothing about the kind."""

    def shared(self) -> Proxy | None:
        """The one proxy every worker uses at once, or None when each gets its own.

        A shared proxy never expires and is never evicted: its exit IP changes by itself (a
        tunnel) or there is no proxy at all (direct), so there is nothing to switch to.
        """
        ...

    def supply(self) -> int | None:
        """How many distinct proxies the source offers for free, or None when they are bought.

        A number (a static list's length; 1 for a shared proxy) means fetching costs nothing:
        no quota, no pacing, and :meth:`fetch` goes round the same entries. None means every IP
        is extracted from a rationed, rate-limited provider: counted against ``max_ips`` and
        paced through the bucket.
        """
        ...

    def fetch(self, count: int) -> list[ProxyEndpoint]:
        """Up to ``count`` endpoints (may return more; the manager trims to its budget)."""
        ...


class SharedSource:
    """A source of exactly one proxy that every worker shares (direct mode, a tunnel).

    Nothing is extracted and nothing is rationed: the manager hands :meth:`shared` out to
    every caller, and evicting it only counts the failure.
    """

    def __init__(self, proxy: Proxy) -> None:
        self._proxy = proxy

    def shared(self) -> Proxy:
        return self._proxy

    def supply(self) -> int:
        """One proxy, free (the host itself, or a gateway paid by subscription)."""
        return 1

    def fetch(self, count: int) -> list[ProxyEndpoint]:
        """No endpoints to fetch: the manager hands out :meth:`shared`."""
        return []


class DirectSource(SharedSource):
    """No proxy: every request leaves from this host (the default when none is configured).

    Its one proxy is ``Proxy("direct", None, inf)``: ``url=None`` tells the client to
    connect directly.
    """

    def __init__(self) -> None:
        super().__init__(Proxy("direct", None, math.inf))

    def __repr__(self) -> str:
        return "DirectSource()"


class TunnelSource(SharedSource):
    """A provider's tunnel gateway: one fixed ``user:pass@host:port`` that rotates exit IPs itself.

    Its one proxy is the gateway, named ``"tunnel"`` (its exit IPs are the provider's business).

    Raises:
        ConfigError: the URL has no host or port.
    """

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
        super().__init__(Proxy("tunnel", self.url, math.inf))

    def __repr__(self) -> str:
        return f"TunnelSource(key={self.key!r})"


_STATIC_LINE_RE = re.compile(
    r"^(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://)?"
    r"(?:(?P<user>[^:@/\s]+)(?::(?P<pw>[^@/\s]*))?@)?"
    r"(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})/?$"
)


def _parse_static_list(path: Path, text: str) -> list[ProxyEndpoint]:
    """The endpoints of a proxy list file; blank lines and ``#`` comments skipped.

    Raises:
        ConfigError: a malformed line (named by number, never quoted: it may hold a password)
            or no proxies at all.
    """
    endpoints: list[ProxyEndpoint] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _STATIC_LINE_RE.match(line)
        port = int(m.group("port")) if m else 0
        if m is None or not 1 <= port <= 65535:
            raise ConfigError(
                f"{path}, line {lineno}: expected [scheme://][user:pass@]host:port",
                key="proxy_file",
            )
        endpoints.append(ProxyEndpoint(
            host=m.group("host"), port=port, username=m.group("user"),
            password=m.group("pw"), scheme=(m.group("scheme") or "http").lower(),
        ))
    if not endpoints:
        raise ConfigError(f"proxy list {path} has no proxies", key="proxy_file")
    return endpoints


class StaticListSource:
    """A file of proxies, one ``[scheme://][user:pass@]host:port`` per line.

    The file is read once, at construction, so a typo fails the run before any work starts.
    :meth:`fetch` goes round the list (a static proxy is not used up by rotating away from it);
    the manager skips evicted ones.

    Raises:
        ConfigError: the file cannot be read, is empty, or a line is malformed.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read proxy list {self.path}: {e}",
                              key="proxy_file") from e
        self.endpoints = _parse_static_list(self.path, text)
        self._next = 0
        self._lock = threading.Lock()

    def shared(self) -> Proxy | None:
        """None: each worker gets its own entry of the list."""
        return None

    def supply(self) -> int:
        """How many proxies the file lists (free: no quota, no pacing)."""
        return len(self.endpoints)

    def fetch(self, count: int) -> list[ProxyEndpoint]:
        """The next ``count`` entries, going round the list."""
        with self._lock:
            out = []
            for _ in range(max(0, count)):
                out.append(self.endpoints[self._next])
                self._next = (self._next + 1) % len(self.endpoints)
            return out

    def __repr__(self) -> str:
        return f"StaticListSource({str(self.path)!r})"


class ExtractionApiSource:
    """A provider's extraction API: one GET that returns fresh ``ip:port`` lines or JSON.

    The request is the configured URL (which may already carry order ids, signatures or
    filters in its query) plus ``key_param=key``, ``num_param=count`` and ``fmt_param=fmt``.
    The key is never logged: logs show :func:`~boardsync.redact.strip_url` of the URL, and the
    key and long query values are registered with :func:`~boardsync.redact.register_secret`
    so urllib3's request lines hide them too.

    Args:
        url: the extraction endpoint.
        key: the API key/secret (``""`` = none; the URL itself may authenticate).
        key_param, num_param, fmt_param: the provider's parameter names.
        fmt: ``"txt"`` or ``"json"``; the parser accepts either reply whatever was asked.
        session: a ``requests.Session`` to reuse (``None`` = a new one).
        timeout: ``(connect, read)`` seconds for the HTTP call.
        clock: its wall time turns absolute expiry times into seconds left.

    Raises:
        ConfigError: the URL is empty or not http(s), or ``fmt`` is neither txt nor json.
    """

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
        clock: Clock = SYSTEM,
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
        self._clock = clock
        self.safe_url = strip_url(url)
        # The key and any long query value (order ids, signatures) are secrets in logs.
        url_values = [v for _, v in parse_qsl(parts.query) if len(v) >= 8]
        for secret in (key, *url_values):
            register_secret(secret)
            register_secret(quote(secret, safe=""))

    def shared(self) -> Proxy | None:
        """None: each worker gets its own extracted IP."""
        return None

    def supply(self) -> int | None:
        """None: IPs are bought one by one from a rationed, rate-limited provider."""
        return None

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
        wall = self._clock.wall()
        if resp.status_code != 200:
            self._raise_for_status(resp, wall)
        return parse_extraction_body(resp.content, wall_now=wall.timestamp())

    def _raise_for_status(self, resp: requests.Response, wall: datetime) -> NoReturn:
        """A non-200 reply: the error its body names if it names one, else one by status."""
        try:
            parse_extraction_body(resp.content, wall_now=wall.timestamp())
        except (ExtractionThrottled, QuotaExhausted, ProviderAuthError):
            raise
        except ProviderError:
            pass
        status = resp.status_code
        if status == 429:
            raise ExtractionThrottled(
                f"extraction API {self.safe_url}: HTTP 429",
                retry_after=parse_retry_after(resp.headers.get("Retry-After"), wall),
            )
        if status in (401, 403):
            raise ProviderAuthError(f"extraction API {self.safe_url}: HTTP {status}")
        raise ProviderError(f"extraction API {self.safe_url}: HTTP {status}")

    def __repr__(self) -> str:
        return f"ExtractionApiSource({self.safe_url!r})"
