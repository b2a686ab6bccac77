"""The values the proxy layer passes around: a handed-out proxy, an endpoint, the counters.

Why a module of their own: sources produce :class:`ProxyEndpoint`, the manager turns them into
:class:`Proxy`, and the sync, the CLI and the state file read :class:`ProxyStats`; keeping the
values apart lets each of those import them without pulling in HTTP or threading.

Secrets: a proxy URL may hold ``user:pass``, so both reprs show the ``key`` (``host:port``) only.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True, repr=False)
class Proxy:
    """One proxy as handed to a worker.

    ``key`` names it in logs and stats (``host:port``, ``"direct"`` or ``"tunnel"``); ``url`` is
    what the HTTP client uses (``None`` = connect directly) and may embed ``user:pass``, which is
    why ``repr`` shows the key only. ``expires_at`` is on the manager's clock (``Clock.now``).
    ``identity_hint`` is the exit IP when the provider tells us (it can differ from ``host``).
    ``born`` is when it was extracted and ``stated_life`` the lifetime the provider stated
    then (``None`` = not stated): the crew learns how long the provider's IPs live from them.
    """

    key: str
    url: str | None
    expires_at: float
    identity_hint: str | None = None
    born: float = 0.0
    stated_life: float | None = None

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
