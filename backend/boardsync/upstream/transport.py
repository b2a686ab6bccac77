"""How one GET reaches the upstream: ``requests`` or a browser's TLS fingerprint (curl_cffi).

Why two transports: in 2026 some East Money routes close on Python's TLS ClientHello (no
GREASE) before any answer while a browser is served on the same IP (``EASTMONEY_API.md`` §13:
hoxit's diary, AIPicking 364bff5, akshare-proxy-patch). ``requests`` stays the default;
``browser`` sends through curl_cffi's Chrome impersonation, an optional extra
(``boardsync[browser]``) imported only when that transport is built.

Why one module for both: this is the boundary where third-party exceptions become
:mod:`boardsync.errors` classes (``raise ... from e``), so both transports must map the same
event to the same class. Both behave alike: HTTP and CONNECT proxies (the proxy URL for both
schemes), TLS always verified (``True`` or a CA-bundle path, never off), ``(connect, read)``
timeouts, no redirects followed, no ``HTTP(S)_PROXY`` from the environment, one session per
thread whose cookies are cleared when the proxy key changes (no cookie links two IPs).

Which failure is which (checked against the simulator's gateway and a dead port):

* the proxy took no connection -> :class:`ProxyDead`;
* the proxy answered our ``CONNECT`` with an error status, the name did not resolve, or
  nothing listens on the host's port -> :class:`Unreachable` (the endpoint, not the IP);
* connected, then closed or reset before any answer (TLS stage included) ->
  :class:`ConnectionFailed` (requests reports it inside a tunnel as a ``ProxyError``);
* timeouts -> :class:`FetchTimeout`; an undecodable body -> :class:`InvalidResponse`.
"""

from __future__ import annotations

import http.client
import importlib
import importlib.util
import logging
import re
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import requests
import urllib3.exceptions

from ..errors import (
    BadRequest,
    ConfigError,
    ConnectionFailed,
    FetchTimeout,
    InvalidResponse,
    ProxyDead,
    Unreachable,
    Untrusted,
    UpstreamError,
)
from ..redact import scrub

logger = logging.getLogger(__name__)

#: The transports a setting may name; ``auto`` is resolved by the pool (requests first).
TRANSPORTS = ("auto", "requests", "browser")
#: The curl_cffi profile: its current Chrome (a browser's ClientHello with GREASE).
IMPERSONATE = "chrome"
#: The extra that brings curl_cffi.
BROWSER_EXTRA = "pip install 'boardsync[browser]'"


@dataclass(frozen=True, slots=True)
class Reply:
    """What one GET got back: status, headers, the whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class Transport(Protocol):
    """Sends one GET; raises :mod:`boardsync.errors` classes only."""

    name: str

    def send(self, url: str, *, params: Mapping[str, str | int], headers: Mapping[str, str],
             key: str, proxy_url: str | None, timeout: tuple[float, float],
             verify: bool | str, via: str) -> Reply: ...

    def close(self) -> None: ...


def browser_available() -> bool:
    """True when curl_cffi (the ``browser`` extra) is installed; nothing is imported."""
    return importlib.util.find_spec("curl_cffi") is not None


class _Sessions:
    """One session per thread, its cookies forgotten when the proxy key changes."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory
        self._local = threading.local()
        self._made: list[Any] = []
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self.factory()
            self._local.session, self._local.key = session, key
            with self._lock:
                self._made.append(session)
        elif self._local.key != key:
            session.cookies.clear()  # a new identity must not carry the old one's cookies
            self._local.key = key
        return session

    def close(self) -> None:
        with self._lock:
            made, self._made = self._made, []
        for session in made:
            session.close()


class RequestsTransport:
    """``requests`` (Python's ssl): the default transport."""

    name = "requests"

    def __init__(self, session_factory: Callable[[], requests.Session] = requests.Session
                 ) -> None:
        def make() -> requests.Session:
            session = session_factory()
            session.trust_env = False  # HTTP(S)_PROXY must never route a "direct" request
            return session

        self.sessions = _Sessions(make)

    def send(self, url: str, *, params: Mapping[str, str | int], headers: Mapping[str, str],
             key: str, proxy_url: str | None, timeout: tuple[float, float],
             verify: bool | str, via: str) -> Reply:
        proxies = {"http": proxy_url, "https": proxy_url} if proxy_url else {}
        try:
            r = self.sessions.get(key).get(url, params=dict(params), headers=dict(headers),
                                           proxies=proxies, timeout=timeout, verify=verify,
                                           allow_redirects=False)
            body = r.content
        except Exception as e:  # noqa: BLE001 - translated here, the only boundary
            raise translate_requests(e, proxy_url, via) from e
        return Reply(r.status_code, r.headers, body)

    def close(self) -> None:
        self.sessions.close()


class BrowserTransport:
    """curl_cffi with a browser's TLS and HTTP/2 fingerprint (``impersonate="chrome"``).

    Connections are not reused (``FORBID_REUSE``): libcurl silently sends a request again on
    a fresh connection when the reused one turns out closed, so every reset or ban close
    would cost the IP a second request its pacing never saw (measured: 55 requests for 40
    calls at a 50 % reset rate, and bans on the reference world). A new connection per
    request costs a handshake, not the IP's allowance.

    Raises:
        ConfigError: curl_cffi is not installed (the ``browser`` extra).
    """

    name = "browser"

    def __init__(self) -> None:
        try:
            self._curl = importlib.import_module("curl_cffi.requests")
        except ImportError as e:
            raise ConfigError(f"transport = browser needs curl_cffi: {BROWSER_EXTRA}",
                              key="transport") from e

        forbid_reuse = importlib.import_module("curl_cffi").CurlOpt.FORBID_REUSE

        def make() -> Any:
            return self._curl.Session(impersonate=IMPERSONATE, trust_env=False,
                                      curl_options={forbid_reuse: 1})

        self.sessions = _Sessions(make)

    def send(self, url: str, *, params: Mapping[str, str | int], headers: Mapping[str, str],
             key: str, proxy_url: str | None, timeout: tuple[float, float],
             verify: bool | str, via: str) -> Reply:
        proxies = {"http": proxy_url, "https": proxy_url} if proxy_url else None
        # The browser profile sends its own User-Agent and Accept headers; ours would give
        # the fingerprint away (a Chrome hello with another UA), so only the page's go along.
        extra = {k: v for k, v in headers.items() if k in ("Referer", "Accept-Language")}
        try:
            r = self.sessions.get(key).get(url, params=dict(params), headers=extra,
                                           proxies=proxies, timeout=timeout, verify=verify,
                                           allow_redirects=False)
            body = r.content
        except Exception as e:  # noqa: BLE001 - translated here, the only boundary
            raise translate_curl(e, proxy_url, via) from e
        return Reply(r.status_code, dict(r.headers), body)

    def close(self) -> None:
        self.sessions.close()


def make_transport(name: str, *,
                   session_factory: Callable[[], requests.Session] = requests.Session
                   ) -> Transport:
    """The transport called ``name`` (``requests`` or ``browser``).

    Raises:
        ConfigError: an unknown name, or ``browser`` without curl_cffi installed.
    """
    if name == "requests":
        return RequestsTransport(session_factory)
    if name == "browser":
        return BrowserTransport()
    raise ConfigError(f"transport: {name!r} is not one of requests, browser", key="transport")


# --- requests' exceptions -----------------------------------------------------------------

_TUNNEL_STATUS = re.compile(r"Tunnel connection failed: (\d{3})")


def translate_requests(e: Exception, proxy_url: str | None, via: str) -> UpstreamError:
    """Map one ``requests``/``urllib3``/socket exception to a boardsync error (not raised).

    Order matters: ``ProxyError`` and ``ConnectTimeout`` are ``ConnectionError`` subclasses,
    and a read timeout while the *body* streams surfaces as a ``ConnectionError`` wrapping
    urllib3's ``ReadTimeoutError`` (requests' ``iter_content``), which is still a timeout.
    """
    exc = requests.exceptions
    root = root_cause(e)
    reason = type(e).__name__ if root is e else f"{type(e).__name__} <- {type(root).__name__}"
    reason = scrub(f"{reason}: {root}", proxy_url)
    if isinstance(root, ssl.SSLCertVerificationError):
        return _untrusted(via, reason)
    if isinstance(e, exc.ProxyError):
        return _proxy_failure(root, via, reason)
    if isinstance(e, exc.InvalidProxyURL):
        return ProxyDead(f"proxy failed for {via}: {reason}")
    if isinstance(e, exc.Timeout):
        return FetchTimeout(f"timeout on {via}: {reason}")
    if isinstance(e, exc.ConnectionError) and _caused_by_read_timeout(e):
        return FetchTimeout(f"read timeout on {via}: {reason}")
    if isinstance(e, exc.ContentDecodingError):
        return InvalidResponse(f"undecodable body from {via}: {reason}")
    if isinstance(e, exc.InvalidURL | exc.MissingSchema | exc.InvalidSchema | exc.InvalidHeader):
        return BadRequest(f"bad request to {via}: {reason}")
    if isinstance(e, TimeoutError | urllib3.exceptions.TimeoutError):
        return FetchTimeout(f"timeout on {via}: {reason}")
    if isinstance(root, socket.gaierror | ConnectionRefusedError) and not proxy_url:
        return Unreachable(f"cannot connect to {via}: {reason}")
    # ConnectionError (reset, RemoteDisconnected, SSL), ChunkedEncodingError, any other
    # RequestException, a raw urllib3/http.client/socket error: a dropped connection.
    return ConnectionFailed(f"connection failed to {via}: {reason}")


def _untrusted(via: str, reason: str) -> Untrusted:
    return Untrusted(f"the TLS certificate of {via} is not trusted: {reason}; check ca_bundle "
                     "(or whether a proxy re-signs HTTPS)")


def _proxy_failure(root: BaseException, via: str, reason: str) -> UpstreamError:
    """A ``ProxyError``: the tunnel's answer, a drop after connecting, or a dead proxy."""
    tunnel = _TUNNEL_STATUS.search(str(root))
    if tunnel is not None and tunnel.group(1) != "407":
        # The proxy is alive and says it cannot reach or resolve the host.
        return Unreachable(f"the proxy cannot reach {via}: {reason}")
    if _dropped_after_connect(root):
        # We reached the proxy (and through a tunnel, the host) and the connection closed
        # without an answer: how a reset, a ban or a refusal of this client reaches us, not
        # proof that the proxy is dead.
        return ConnectionFailed(f"connection dropped via {via}: {reason}")
    return ProxyDead(f"proxy failed for {via}: {reason}")


def _dropped_after_connect(root: BaseException) -> bool:
    """True when the connection was established and then closed or reset without a reply."""

    if isinstance(root, http.client.RemoteDisconnected | ConnectionResetError | ssl.SSLError):
        return True
    return isinstance(root, ConnectionAbortedError | BrokenPipeError)


def root_cause(e: BaseException) -> BaseException:
    """The innermost exception wrapped in ``e`` (requests -> MaxRetryError -> reason -> ...).

    Its text ("[Errno 111] Connection refused", "Remote end closed connection without
    response") is what an operator needs; the outer layers repeat the URL.
    """
    seen = {id(e)}
    cur = e
    while True:
        nxt = getattr(cur, "reason", None)
        if not isinstance(nxt, BaseException):
            nxt = next((a for a in reversed(cur.args) if isinstance(a, BaseException)), None)
        if nxt is None or id(nxt) in seen:
            return cur
        seen.add(id(nxt))
        cur = nxt


def _caused_by_read_timeout(e: BaseException) -> bool:
    seen: set[int] = set()
    stack: list[object] = [e]
    while stack:
        cur = stack.pop()
        if not isinstance(cur, BaseException) or id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, urllib3.exceptions.ReadTimeoutError | TimeoutError):
            return True
        stack.extend(cur.args)
        stack.extend((cur.__cause__, cur.__context__))
    return False


# --- curl_cffi's exceptions ---------------------------------------------------------------

#: libcurl error codes (https://curl.se/libcurl/c/libcurl-errors.html) by what they mean here.
_CURL_UNREACHABLE = {6}  # COULDNT_RESOLVE_HOST
_CURL_UNTRUSTED = {60}  # PEER_FAILED_VERIFICATION (the certificate chain is not trusted)
_CURL_PROXY_DEAD = {5, 97}  # COULDNT_RESOLVE_PROXY, PROXY (handshake with the proxy)
_CURL_TIMEOUT = {28}  # OPERATION_TIMEDOUT
_CURL_BAD_BODY = {61}  # BAD_CONTENT_ENCODING
_CURL_BAD_REQUEST = {3}  # URL_MALFORMAT


def translate_curl(e: Exception, proxy_url: str | None, via: str) -> UpstreamError:
    """Map one curl_cffi exception to the class :func:`translate_requests` gives the same
    event (not raised); the libcurl code decides, its message tells a tunnel refused from
    a proxy that took no connection (both are code 7, COULDNT_CONNECT)."""
    code = int(getattr(e, "code", 0) or 0)
    text = str(e)
    reason = scrub(f"{type(e).__name__} (curl {code}): {text.split('. See ')[0]}", proxy_url)
    if code in _CURL_TIMEOUT or "Timeout" in type(e).__name__:
        return FetchTimeout(f"timeout on {via}: {reason}")
    if code in _CURL_UNTRUSTED:
        return _untrusted(via, reason)
    if code in _CURL_UNREACHABLE:
        return Unreachable(f"cannot resolve {via}: {reason}")
    if code in _CURL_PROXY_DEAD:
        return ProxyDead(f"proxy failed for {via}: {reason}")
    if code == 7 or "CONNECT tunnel failed" in text:
        tunnel = re.search(r"CONNECT tunnel failed, response (\d{3})", text)
        if tunnel is not None and tunnel.group(1) != "407":
            return Unreachable(f"the proxy cannot reach {via}: {reason}")
        if proxy_url and (" over proxy " in text or tunnel is not None):
            return ProxyDead(f"proxy failed for {via}: {reason}")
        return Unreachable(f"cannot connect to {via}: {reason}")
    if code in _CURL_BAD_BODY:
        return InvalidResponse(f"undecodable body from {via}: {reason}")
    if code in _CURL_BAD_REQUEST:
        return BadRequest(f"bad request to {via}: {reason}")
    # 52 empty reply, 55/56 send/recv failure, 35 TLS handshake, 18 partial body ...
    return ConnectionFailed(f"connection failed to {via}: {reason}")
