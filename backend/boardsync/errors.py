"""The one exception hierarchy of boardsync.

Every failure the library raises is a :class:`BoardsyncError`. Third-party exceptions
(`requests`, `sqlalchemy`, `psycopg2`) are translated into these at one boundary (the
fetch client, the proxy sources, the store) with ``raise ... from e`` so the cause is
kept. Each upstream/proxy error carries an ``error_class`` string: the key the
classifier (:mod:`boardsync.policy`) looks up to decide whether to rotate the IP and
whether to retry. Errors caused by bad input also inherit from :class:`ValueError`.
"""

from __future__ import annotations


class BoardsyncError(Exception):
    """Root of every error boardsync raises; catch this to catch them all."""

    #: Name the classifier maps to a decision; subclasses override it.
    error_class: str = "unexpected"


# --- configuration and usage -------------------------------------------------------


class ConfigError(BoardsyncError, ValueError):
    """A configuration value or CLI usage is invalid; never retried (exit code 2)."""

    error_class = "bad_config"

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


# --- upstream (East Money) -------------------------------------------------------


class UpstreamError(BoardsyncError):
    """A request to the upstream failed; base of every fetch failure (see the classifier)."""

    error_class = "upstream"

    def __init__(
        self,
        message: str,
        *,
        proxy: str | None = None,
        url: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        #: Key of the proxy the request went through (``None`` when direct).
        self.proxy = proxy
        #: The URL with secrets removed.
        self.url = url
        #: Seconds the server asked us to wait, when it said so.
        self.retry_after = retry_after


class FetchTimeout(UpstreamError):
    """The upstream (or the proxy) did not answer within the timeout; safe to retry elsewhere."""

    error_class = "timeout"


class ConnectionFailed(UpstreamError):
    """The connection was reset, refused or closed without a reply; safe to retry on a new IP."""

    error_class = "connection"


class Refused(ConnectionFailed):
    """A fresh IP was closed on before any answer on one route while others remain to try:
    the route (or this client's fingerprint on it) is refusing, not the IP; ask elsewhere."""

    error_class = "refused"


class Unreachable(ConnectionFailed):
    """The host does not resolve or takes no connection (directly, or the proxy's CONNECT
    said so): the endpoint is wrong or down, not the IP; ask another endpoint."""

    error_class = "unreachable"


class Untrusted(Unreachable):
    """The host's TLS certificate is not trusted by the CA bundle (``ca_bundle``): a wrong
    bundle, or a proxy that re-signs HTTPS. Neither the IP's nor the route's fault, and no
    other IP will fix it: treated as an unreachable host, so the run fails fast with exit 2
    saying so instead of walking the pool and buying IPs."""

    error_class = "untrusted"


class HTTPStatusError(UpstreamError):
    """The upstream answered with a non-200 status; the code decides whether to rotate."""

    error_class = "http_status"

    def __init__(self, message: str, *, status: int, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.status = status


class Blocked(HTTPStatusError):
    """The upstream refused this identity (HTTP 403/429): rotate the IP, then retry."""

    error_class = "blocked"


class InvalidResponse(UpstreamError, ValueError):
    """The body is not the expected JSON envelope (HTML, truncated, bad types); retry elsewhere."""

    error_class = "invalid_json"


class RcError(InvalidResponse):
    """The envelope's ``rc`` is not 0 but ``data`` is not null: an answer we cannot trust;
    retry on another IP (a soft failure, like a garbled body)."""

    error_class = "rc_error"


class Captcha(InvalidResponse):
    """HTTP 200 with East Money's slider-captcha page instead of JSON: a ban signal on this IP;
    rotate at once and slow down, retry elsewhere (asking again on this IP only deepens it)."""

    error_class = "captcha"


class TooManyPages(InvalidResponse):
    """Page 1 plans more pages than any real board needs: the fetch is refused whole.

    Not a bad *page* (asking page 1 again would plan the same), so it fails the attempt at
    once instead of being asked again in place.
    """


class EmptyData(UpstreamError):
    """``data`` was null or empty where rows were expected; may be a soft ban, retry on a new IP."""

    error_class = "empty_data"


class NoQuote(EmptyData):
    """``rc=100, data=null`` for a board's members: the directory lists the board but it has no
    quote (BK1362 in 2026). Recorded as listed without a quote; not retried."""

    error_class = "no_quote"


class SoftBan(EmptyData):
    """``data: null`` (HTTP 200) for a board the directory lists: the board exists, so the
    pacing or the IP is to blame; rotate at once and slow down, retry elsewhere."""

    error_class = "soft_ban"


class IncompleteData(UpstreamError):
    """The pages fetched do not add up to ``data.total``; retry the whole board."""

    error_class = "incomplete"


class BadRequest(UpstreamError, ValueError):
    """A code or parameter we were about to send is malformed; a bug or bad input, not retried."""

    error_class = "bad_request"


# --- proxies --------------------------------------------------------------------------


class ProxyError(BoardsyncError):
    """A failure of the proxy layer (provider API or proxy itself)."""

    error_class = "proxy"


class ProxyDead(ProxyError, UpstreamError):
    """The proxy refused or dropped our connection before reaching the upstream; evict it."""

    error_class = "proxy_dead"


class ExtractionThrottled(ProxyError):
    """The provider said we called its extraction API too fast; wait and call again."""

    error_class = "extract_throttled"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QuotaExhausted(ProxyError):
    """No more IPs may be extracted (``--max-ips`` or the provider's daily quota); stop cleanly."""

    error_class = "quota_exhausted"


class ProviderAuthError(ProxyError, ValueError):
    """The provider refused our key or signature; a configuration problem, not retried."""

    error_class = "provider_auth"


class ProviderError(ProxyError):
    """The provider answered with an error we do not recognise or a malformed body; retry later."""

    error_class = "provider_error"


# --- storage and state ---------------------------------------------------------------


class StorageError(BoardsyncError):
    """The database failed; the transaction was rolled back, nothing was half-written."""

    error_class = "storage"


class DatabaseUnavailable(StorageError):
    """The database cannot be reached or the connection was cut; safe to retry with backoff."""

    error_class = "db_unavailable"


class Locked(StorageError):
    """Another sync holds the run lock on this database; exit with the "locked" code."""

    error_class = "locked"

    def __init__(self, message: str, holder: str | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class StateError(BoardsyncError):
    """The state file cannot be read, parsed or written."""

    error_class = "state"


class Interrupted(BoardsyncError):
    """A stop was requested (signal or shutdown) before the work finished."""

    error_class = "interrupted"


class NoRoute(Interrupted):
    """Every upstream endpoint and transport is refused or unreachable: the run stops, since
    a new IP cannot fix it (``tried`` names each lane and what it did)."""

    error_class = "no_route"

    def __init__(self, message: str, tried: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.tried = tried


class RoutesRefused(NoRoute):
    """Fresh IPs kept being closed on before any answer on every endpoint: the upstream
    refuses this client or these IPs (its own exit code; another route, the browser
    transport or mainland residential IPs may help)."""

    error_class = "routes_refused"


class UpstreamUnreachable(NoRoute, ConfigError):
    """At start no upstream host resolved or took a connection: a configuration or network
    problem, reported in one line with the usage exit code before any IP is wasted."""

    error_class = "upstream_unreachable"

    def __init__(self, message: str, tried: tuple[str, ...] = ()) -> None:
        NoRoute.__init__(self, message, tried)
        self.key = "upstreams"
