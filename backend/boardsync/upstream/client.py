"""The one HTTP boundary to the push2 ``clist`` endpoint: one request, errors translated.

Why it is shaped like this:

* :class:`UpstreamClient` is the only place that touches ``requests``. Every
  ``requests``/``urllib3`` exception is translated here (``raise ... from e``), so the rest of
  boardsync only sees :mod:`boardsync.errors` classes and one classifier decides what to do.
* **One request, no hooks.** :meth:`UpstreamClient.get_page` sends one GET and returns one
  :class:`~boardsync.upstream.parse.Page`; paging is judged by
  :class:`~boardsync.upstream.paging.Pager` and driven by the caller, which paces, times and
  retries each request itself. So the client calls nobody back.
* **Timeouts.** ``timeout=(connect, read)``; the read timeout is per socket read, so a
  server that stalls mid-body is a :class:`FetchTimeout` too (requests reports that one as a
  ``ConnectionError`` wrapping urllib3's ``ReadTimeoutError``; we look through it).
* **Redirects are not followed** (a redirect to a verification page is a block symptom, and
  following it could leave the configured host): 3xx is :class:`HTTPStatusError`. TLS
  certificates are always verified.
* **Sessions** are thread-local (one per thread per client), with ``trust_env = False`` so
  ``HTTP(S)_PROXY`` from the environment can never silently route a "direct" request, and
  cookies are cleared whenever the proxy key changes so no cookie links two IPs.
* **Errors name the proxy by key** (never its URL, which may hold a password) and the
  endpoint without userinfo; exception texts are scrubbed of the proxy's password.
"""

from __future__ import annotations

import http.client
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3.exceptions

from ..clock import SYSTEM, Clock
from ..defaults import FIELDS
from ..durations import parse_retry_after
from ..errors import (
    BadRequest,
    Blocked,
    ConfigError,
    ConnectionFailed,
    FetchTimeout,
    HTTPStatusError,
    InvalidResponse,
    ProxyDead,
    UpstreamError,
)
from ..redact import scrub, without_userinfo
from .paging import Query
from .parse import Page, parse_page

logger = logging.getLogger(__name__)

#: Path of the list endpoint, appended to a base URL that has no path of its own.
CLIST_PATH = "/api/qt/clist/get"
DEFAULT_BASE_URL: str = FIELDS["upstream_url"].default
#: A current desktop browser; the upstream has been reported to check headers (akshare #7015).
DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/128.0.0.0 Safari/537.36"
)
DEFAULT_REFERER = "https://quote.eastmoney.com/"
#: Page size we ask for; the server silently caps it at 100 (or lower), see the pager.
DEFAULT_PAGE_SIZE: int = FIELDS["page_size"].default
#: ``(connect, read)`` seconds per request.
DEFAULT_TIMEOUT: tuple[float, float] = (FIELDS["connect_timeout"].default,
                                        FIELDS["read_timeout"].default)

E = TypeVar("E", bound=UpstreamError)


class ProxyLike(Protocol):
    """What the client needs of a proxy: a loggable ``key`` and a ``url`` (None = direct).

    Read at every request, so a caller may swap the IP between pages (the worker's slot).
    """

    @property
    def key(self) -> str: ...

    @property
    def url(self) -> str | None: ...


def proxy_key(proxy: ProxyLike | None) -> str:
    """The name errors and logs use for ``proxy``: its key, or ``"direct"`` for None."""
    return proxy.key if proxy is not None else "direct"


def _clist_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"upstream URL must be http(s)://host: {without_userinfo(base_url)!r}",
                          key="upstream_url")
    if parts.path in ("", "/"):
        return urlunsplit((parts.scheme, parts.netloc, CLIST_PATH, "", ""))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class UpstreamClient:
    """HTTP client of the ``clist`` endpoint; cheap to create, safe to share between threads.

    Args:
        base_url: ``scheme://host[:port]`` (``/api/qt/clist/get`` is appended) or a full
            endpoint URL with a path (used as is, e.g. a ``/webguest/...`` variant).
        session_factory: makes a ``requests.Session``; one is made lazily per thread.
        timeout: ``(connect, read)`` seconds per request (read = per socket read).
        page_size: the ``pz`` we ask for; the server may return fewer rows per page.
        user_agent/referer: browser-like headers sent with every request.
        ut: optional public page token sent as ``ut``; None or ``""`` = not sent.
        clock: its wall time turns a ``Retry-After`` date into seconds.
        verify: ``True`` (certifi's roots) or the path of a CA bundle; never ``False``.

    Raises:
        ConfigError: ``base_url`` is not ``http(s)://host...``, or ``page_size`` is not
            1..1000.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        session_factory: Callable[[], requests.Session] = requests.Session,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        page_size: int = DEFAULT_PAGE_SIZE,
        user_agent: str = DEFAULT_USER_AGENT,
        referer: str = DEFAULT_REFERER,
        ut: str | None = None,
        clock: Clock = SYSTEM,
        verify: bool | str = True,
    ) -> None:
        if not 1 <= page_size <= 1000:
            raise ConfigError(f"page_size must be 1..1000, got {page_size}", key="page_size")
        self.url = _clist_url(base_url)
        self.safe_url = without_userinfo(self.url)
        self.session_factory = session_factory
        self.timeout = timeout
        self.page_size = page_size
        self.headers = {
            "User-Agent": user_agent,
            "Referer": referer,
            "Accept": "*/*",
            "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8",
        }
        self.ut = ut
        self.clock = clock
        if verify is False:
            raise ConfigError("TLS verification cannot be turned off; give a CA bundle instead",
                              key="ca_bundle")
        self.verify = verify
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    # -- sessions ------------------------------------------------------------------------

    def _session(self, key: str) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self.session_factory()
            session.trust_env = False
            self._local.session = session
            self._local.proxy_key = key
            with self._sessions_lock:
                self._sessions.append(session)
        elif self._local.proxy_key != key:
            session.cookies.clear()  # a new identity must not carry the old one's cookies
            self._local.proxy_key = key
        return session

    def close(self) -> None:
        """Close every session this client made (in any thread)."""
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def __enter__(self) -> UpstreamClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one request ---------------------------------------------------------------------

    def params(self, query: Query[Any], pn: int) -> dict[str, str | int]:
        """The query string of page ``pn`` of ``query`` (sorted by code, one page of rows)."""
        params: dict[str, str | int] = {
            "pn": pn,
            "pz": self.page_size,
            "po": 1,
            "np": 1,
            "fltt": 2,
            "invt": 2,
            "fid": "f12",
            "fs": query.fs,
            "fields": query.fields,
        }
        if self.ut:
            params["ut"] = self.ut
        return params

    def get_page(self, query: Query[Any], pn: int, proxy: ProxyLike | None) -> Page:
        """Page ``pn`` of ``query`` in one GET through ``proxy`` (None or ``url`` None = direct).

        Raises:
            FetchTimeout: connect or read timeout (also mid-body).
            ProxyDead: the proxy refused or failed the connection.
            ConnectionFailed: refused, reset or closed without a reply (direct, or dropped
                after the proxy accepted).
            Blocked: HTTP 403/429 (with ``retry_after`` from ``Retry-After``).
            HTTPStatusError: any other status than 200, 3xx included (``status``).
            InvalidResponse: the body is not a ``clist`` envelope (see the parser).
            BadRequest: the URL or a header could not be sent.

            Each carries ``proxy`` (the key, never the URL) and ``url`` (credential-free).
        """
        key = proxy_key(proxy)
        proxy_url = proxy.url if proxy is not None else None
        proxies = {"http": proxy_url, "https": proxy_url} if proxy_url else {}
        try:
            response = self._session(key).get(
                self.url,
                params=self.params(query, pn),
                headers=self.headers,
                proxies=proxies,
                timeout=self.timeout,
                verify=self.verify,
                allow_redirects=False,
            )
            body = response.content
        except Exception as e:  # noqa: BLE001 - translated here, the only boundary
            raise self.blame(_translate(e, proxy_url, f"{self.safe_url} via {key}"), proxy) from e
        status = response.status_code
        logger.debug("Upstream: GET %s pn=%d via %s -> %s (%d bytes)", self.safe_url, pn, key,
                     status, len(body))
        if status != 200:
            retry_after = parse_retry_after(response.headers.get("Retry-After"),
                                            self.clock.wall())
            cls = Blocked if status in (403, 429) else HTTPStatusError
            raise self.blame(cls(f"HTTP {status} from {self.safe_url} via {key}",
                                 status=status, retry_after=retry_after), proxy)
        try:
            return parse_page(body)
        except InvalidResponse as e:
            raise self.blame(e, proxy)

    def blame(self, error: E, proxy: ProxyLike | None) -> E:
        """Set ``error.proxy`` (the key) and ``error.url`` to this request's; return it.

        For errors raised away from the socket, e.g. by the pager::

            except UpstreamError as e:
                raise client.blame(e, proxy)
            ...
            raise client.blame(IncompleteData(pager.reason), proxy)
        """
        error.proxy, error.url = proxy_key(proxy), self.safe_url
        return error


# --- exception translation ----------------------------------------------------------------


def _translate(e: Exception, proxy_url: str | None, via: str) -> UpstreamError:
    """Map one ``requests``/``urllib3``/socket exception to a boardsync error (not raised).

    Order matters: ``ProxyError`` and ``ConnectTimeout`` are ``ConnectionError`` subclasses,
    and a read timeout while the *body* streams surfaces as a ``ConnectionError`` wrapping
    urllib3's ``ReadTimeoutError`` (requests' ``iter_content``), which is still a timeout.
    """
    exc = requests.exceptions
    root = _root_cause(e)
    reason = type(e).__name__ if root is e else f"{type(e).__name__} <- {type(root).__name__}"
    reason = scrub(f"{reason}: {root}", proxy_url)
    if isinstance(e, exc.ProxyError) and _dropped_after_connect(root):
        # We reached the proxy and it closed without an answer: for a plain-HTTP forward
        # proxy that is how an upstream reset or a ban reaches us, so it is a connection
        # failure on this identity (forgiven once), not proof that the proxy is dead.
        return ConnectionFailed(f"connection dropped via {via}: {reason}")
    if isinstance(e, exc.ProxyError | exc.InvalidProxyURL):
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
    # ConnectionError (refused, reset, RemoteDisconnected, SSL), ChunkedEncodingError, any
    # other RequestException, a raw urllib3/http.client/socket error: a dropped connection.
    return ConnectionFailed(f"connection failed to {via}: {reason}")


def _dropped_after_connect(root: BaseException) -> bool:
    """True when the connection was established and then closed or reset without a reply."""
    if isinstance(root, http.client.RemoteDisconnected | ConnectionResetError):
        return True
    return isinstance(root, ConnectionAbortedError | BrokenPipeError)


def _root_cause(e: BaseException) -> BaseException:
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
