"""The one client of the push2 ``clist`` endpoint: one request, over the pool, errors translated.

Why it is shaped like this:

* :class:`UpstreamClient` is what workers hold. Each request goes to the lane the shared
  :class:`~boardsync.upstream.pool.Pool` picks (endpoint x transport, by measured health),
  through that lane's transport (:mod:`.transport`: ``requests`` or curl_cffi's browser
  impersonation), which is where third-party exceptions become :mod:`boardsync.errors`
  classes (``raise ... from e``); the outcome goes back to the pool, which may refine a
  failure into the route's (:class:`~boardsync.errors.Refused`). So the rest of boardsync
  sees one error hierarchy and one classifier decides what to do.
* **One request, no hooks.** :meth:`UpstreamClient.get_page` sends one GET and returns one
  :class:`~boardsync.upstream.parse.Page`; paging is judged by
  :class:`~boardsync.upstream.paging.Pager` and driven by the caller, which paces, times and
  retries each request itself. So the client calls nobody back.
* **Timeouts.** ``timeout=(connect, read)``; the read timeout is per socket read, so a
  server that stalls mid-body is a :class:`FetchTimeout` too.
* **Redirects are not followed** (a redirect to a verification page is a block symptom, and
  following it could leave the configured host): 3xx is :class:`HTTPStatusError`. TLS
  certificates are always verified.
* **Each route gets its parameters** (:mod:`.web`: the web page's ``ut``, ``dect``,
  ``wbp2u`` on ``/webguest/``), every route the page's ``Referer``.
* **Errors name the proxy by key** (never its URL, which may hold a password) and the
  endpoint without userinfo; exception texts are scrubbed of the proxy's password.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import requests

from ..clock import SYSTEM, Clock
from ..config import Settings
from ..defaults import FIELDS
from ..durations import parse_retry_after
from ..errors import Blocked, ConfigError, HTTPStatusError, InvalidResponse, UpstreamError
from .paging import Query
from .parse import Page, parse_page
from .pool import Lane, Pool, endpoint
from .transport import Reply, Transport, make_transport
from .web import ROUTE_PATHS, WEB_REFERER, route_params

logger = logging.getLogger(__name__)

#: Path of the list endpoint, appended to a base URL that has no path of its own.
CLIST_PATH = ROUTE_PATHS["api"]
DEFAULT_BASE_URL = "https://29.push2.eastmoney.com"
#: A current desktop browser; the upstream has been reported to check headers (akshare #7015).
DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/128.0.0.0 Safari/537.36"
)
DEFAULT_REFERER = WEB_REFERER
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


class UpstreamClient:
    """Client of the ``clist`` endpoint; cheap to create, safe to share between threads.

    Args:
        base_url: one endpoint, used when no ``pool`` is given (a one-lane pool):
            ``scheme://host[:port]`` (``/api/qt/clist/get`` is appended) or a full endpoint
            URL with a path (e.g. a ``/webguest/...`` variant).
        pool: the run's shared pool of lanes (endpoints x transports); None = ``base_url``.
        transport: the transport of the one-lane pool made from ``base_url``.
        session_factory: makes a ``requests.Session``; one is made lazily per thread.
        timeout: ``(connect, read)`` seconds per request (read = per socket read).
        page_size: the ``pz`` we ask for; the server may return fewer rows per page.
        user_agent/referer: browser-like headers sent with every request.
        ut: a ``ut`` token sent on every route; None or ``""`` = each route's own (none on
            ``/api/``, the web page's on ``/webguest/``).
        clock: its wall time turns a ``Retry-After`` date into seconds.
        verify: ``True`` (certifi's roots) or the path of a CA bundle; never ``False``.

    Raises:
        ConfigError: ``base_url`` is not ``http(s)://host...``, ``page_size`` is not
            1..1000, or TLS verification is turned off.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        pool: Pool | None = None,
        transport: str = "requests",
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
        if verify is False:
            raise ConfigError("TLS verification cannot be turned off; give a CA bundle instead",
                              key="ca_bundle")
        self.pool = pool or Pool([endpoint(base_url, "upstream_url")], transport=transport,
                                 clock=clock)
        self.url = self.pool.lanes[0].endpoint.url
        self.safe_url = self.pool.lanes[0].endpoint.safe_url
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
        self.verify = verify
        self._transports: dict[str, Transport] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    # -- transports ----------------------------------------------------------------------

    def transport(self, name: str) -> Transport:
        """This client's transport ``name``, built on first use (curl_cffi only then)."""
        with self._lock:
            made = self._transports.get(name)
            if made is None:
                made = self._transports[name] = make_transport(
                    name, session_factory=self.session_factory)
            return made

    @property
    def _sessions(self) -> list[Any]:
        """Every session made so far, in any thread and transport (for tests)."""
        return [s for t in self._transports.values() for s in getattr(t, "sessions")._made]

    def close(self) -> None:
        """Close every session this client made (in any thread, any transport)."""
        with self._lock:
            transports = list(self._transports.values())
        for t in transports:
            t.close()

    def __enter__(self) -> UpstreamClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one request ---------------------------------------------------------------------

    def params(self, query: Query[Any], pn: int, route: str = "api") -> dict[str, str | int]:
        """The query string of page ``pn`` of ``query`` on ``route`` (sorted by code, one
        page of rows, with what the route needs: :func:`~boardsync.upstream.web.route_params`)."""
        params: dict[str, str | int] = {
            "pn": pn,
            "pz": self.page_size,
            "po": 1,
            "np": 1,
            "fid": "f12",
            "fs": query.fs,
            "fields": query.fields,
        }
        params.update(route_params(route, self.ut))
        return params

    def get_page(self, query: Query[Any], pn: int, proxy: ProxyLike | None) -> Page:
        """Page ``pn`` of ``query`` in one GET through ``proxy`` (None or ``url`` None = direct),
        on the lane the pool picks.

        Raises:
            FetchTimeout: connect or read timeout (also mid-body).
            ProxyDead: the proxy refused or failed the connection.
            ConnectionFailed: refused, reset or closed without a reply (direct, or dropped
                after the proxy accepted); :class:`~boardsync.errors.Refused` when the pool
                blames the route, :class:`~boardsync.errors.Unreachable` when the host does
                not resolve or take a connection.
            Blocked: HTTP 403/429 (with ``retry_after`` from ``Retry-After``).
            HTTPStatusError: any other status than 200, 3xx included (``status``).
            InvalidResponse: the body is not a ``clist`` envelope (see the parser).
            BadRequest: the URL or a header could not be sent.
            NoRoute: every lane is refused or unreachable (the run must stop).

            Each upstream error carries ``proxy`` (the key, never the URL) and ``url``
            (credential-free).
        """
        key = proxy_key(proxy)
        proxy_url = proxy.url if proxy is not None else None
        lane = self.pool.choose(key)
        self._local.url = lane.endpoint.safe_url
        via = f"{lane.endpoint.safe_url} via {key}"
        try:
            reply = self.transport(lane.transport).send(
                lane.endpoint.url, params=self.params(query, pn, lane.endpoint.route),
                headers=self.headers, key=key, proxy_url=proxy_url, timeout=self.timeout,
                verify=self.verify, via=via if lane.transport == "requests"
                else f"{via} ({lane.transport})")
        except UpstreamError as e:
            judged = self.pool.failed(lane, key, e)
            if judged is e:
                raise self.blame(e, proxy) from e.__cause__
            raise self.blame(judged, proxy) from e
        logger.debug("Upstream: GET %s pn=%d via %s (%s) -> %s (%d bytes)",
                     lane.endpoint.safe_url, pn, key, lane.transport, reply.status,
                     len(reply.body))
        return self._judge(reply, lane, key, proxy, via)

    def _judge(self, reply: Reply, lane: Lane, key: str, proxy: ProxyLike | None,
               via: str) -> Page:
        """The page in ``reply``, or the error it is (recorded on the lane either way)."""
        if reply.status != 200:
            retry_after = parse_retry_after(reply.headers.get("Retry-After"), self.clock.wall())
            cls = Blocked if reply.status in (403, 429) else HTTPStatusError
            error: UpstreamError = cls(f"HTTP {reply.status} from {via}", status=reply.status,
                                       retry_after=retry_after)
            raise self.blame(self.pool.failed(lane, key, error), proxy)
        try:
            page = parse_page(reply.body)
        except InvalidResponse as e:
            raise self.blame(self.pool.failed(lane, key, e), proxy) from None
        self.pool.succeeded(lane, key)
        return page

    def blame(self, error: E, proxy: ProxyLike | None) -> E:
        """Set ``error.proxy`` (the key) and ``error.url`` to this request's; return it.

        For errors raised away from the socket, e.g. by the pager::

            except UpstreamError as e:
                raise client.blame(e, proxy)
            ...
            raise client.blame(IncompleteData(pager.reason), proxy)
        """
        error.proxy = proxy_key(proxy)
        error.url = getattr(self._local, "url", self.safe_url)
        return error


def client_for(settings: Settings, pool: Pool, *, clock: Clock = SYSTEM) -> UpstreamClient:
    """A worker's client on the run's shared ``pool``, with the settings' timeouts, page size
    and CA bundle."""
    return UpstreamClient(pool=pool, timeout=(settings.connect_timeout, settings.read_timeout),
                          page_size=settings.page_size, clock=clock,
                          verify=settings.ca_bundle or True)
