"""The upstream pool: endpoints (host + route) x transports, each with measured health.

Why a pool: in 2026 East Money's hosts and routes are not equivalent, and which ones answer
depends on the network (``EASTMONEY_API.md`` §13), so boardsync measures instead of assuming.
Each *lane* - one endpoint through one transport - keeps its outcomes; every request goes to
the healthiest lane, and a lane that failed cools down for ``cooldown_s`` (stock-sdk's
``fallback.ts``: 30 s per host after one failure). Health is the success share with one
success and one failure assumed (``(ok + 1) / (ok + failed + 2)``), so an untried lane
(0.5) ranks below one that works and above one that mostly fails (17.push2's 2/6 is 0.375);
ties go to the configured order.

Telling a refusal from a dead IP (the heart of it): an IP with no success yet in this run
(*fresh*) closed on before any answer is not a rate ban (nothing was asked of it before),
so the lane, not the IP, is blamed: the IP is kept and the page asked on the next lane
(:class:`~boardsync.errors.Refused`); with ``transport = auto`` the next lane is the same
route through the browser transport, where installed, then the next route. A lane on which
``witnesses`` distinct fresh IPs failed that way, and which never answered in this run (one
that did is in an outage, the breaker's business), is *refused* for the run: three, because
one such failure is within the field's noise (about 7 % of requests reset) and three
independent ones in a row happen about once in 3,000 (the same
arithmetic as the policy's streak; hoxit's diary saw requests fail 0/3 where a browser got
3/3). A fresh IP that failed on every lane is let go (the policy's usual streak), since the
IP itself may be the one refused (a datacenter or non-mainland exit). When no lane is left
the pool's :attr:`fatal` error ends the run: :class:`~boardsync.errors.RoutesRefused`, or,
when no host resolved or took a connection before any success,
:class:`~boardsync.errors.UpstreamUnreachable` (a configuration error, exit 2).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..clock import SYSTEM, Clock
from ..config import Settings
from ..defaults import DEFAULT_UPSTREAMS as _DEFAULT_UPSTREAMS
from ..errors import (
    Blocked,
    Captcha,
    ConfigError,
    ConnectionFailed,
    FetchTimeout,
    HTTPStatusError,
    InvalidResponse,
    NoRoute,
    ProxyDead,
    RcError,
    Refused,
    RoutesRefused,
    TooManyPages,
    Unreachable,
    UpstreamError,
    UpstreamUnreachable,
)
from ..redact import without_userinfo
from .transport import BROWSER_EXTRA, TRANSPORTS, browser_available
from .web import ROUTE_PATHS, route_of

logger = logging.getLogger(__name__)

#: The default pool, best first, from §13's measurements (stock-sdk 775ceb1, 2026-08-19):
#: 29/79/91.push2 answered 6/6 and 17.push2 only 2/6, so the numbered hosts come in that
#: order, each on ``/api/`` (what every library calls) and on the web page's ``/webguest/``
#: (which kept answering where ``/api/`` was refused: "2026-06: 原 /api/ 路径被封"). Bare
#: ``push2`` answered 0/6 on ``/api/`` and is the worst-measured default of old, so only its
#: ``/webguest/`` is kept (hoxit: 3/3 there while ``/api/`` failed). ``push2delay`` answers
#: reliably (6/6; litchi-head's only working host) but its quotes lag, so it comes last:
#: members are the same, quotes are not. (The literal lives in the defaults table.)
DEFAULT_UPSTREAMS: tuple[str, ...] = _DEFAULT_UPSTREAMS
#: Seconds a lane rests after a failure (stock-sdk's per-host cool-down).
DEFAULT_COOLDOWN_S = 30.0
#: Distinct fresh IPs closed on by a lane, with no success between, that make it refused.
REFUSAL_WITNESSES = 3
OK, REFUSED, UNREACHABLE = "ok", "refused", "unreachable"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One ``clist`` endpoint: its full URL, host and route name."""

    url: str
    host: str
    route: str

    @property
    def safe_url(self) -> str:
        return without_userinfo(self.url)

    @property
    def name(self) -> str:
        """``29.push2.eastmoney.com/webguest`` (for logs and tables)."""
        return f"{self.host}/{self.route}"


def endpoint(url: str, key: str = "upstreams") -> Endpoint:
    """An endpoint from a URL: a full endpoint URL, or a base URL (``/api/qt/clist/get`` is
    appended when it has no path).

    Raises:
        ConfigError: not ``http(s)://host...``.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{key}: an upstream must be http(s)://host[/path]: "
                          f"{without_userinfo(url)!r}", key=key)
    path = parts.path if parts.path not in ("", "/") else ROUTE_PATHS["api"]
    full = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    return Endpoint(full, parts.hostname, route_of(path))


@dataclass(frozen=True, slots=True)
class Lane:
    """One endpoint through one transport; ``rank`` is its place in the configured order."""

    endpoint: Endpoint
    transport: str
    rank: int

    @property
    def name(self) -> str:
        return f"{self.endpoint.name} ({self.transport})"


@dataclass(frozen=True, slots=True)
class Blame:
    """A lane's last counted failure on one identity, kept until that identity answers or
    its proxy is found dead: the cool-down it replaced and the one it set."""

    lane: Lane
    cool_before: float
    cool_set: float


@dataclass
class Health:
    """What one lane did: successes, counted failures, its cool-down and verdict."""

    ok: int = 0
    failed: int = 0
    cool_until: float = float("-inf")
    state: str = OK
    why: str = ""
    witnesses: set[str] = field(default_factory=set)

    @property
    def share(self) -> float:
        return (self.ok + 1) / (self.ok + self.failed + 2)


def counts_against_lane(error: UpstreamError) -> bool:
    """True for failures that may be the lane's (connection, timeout, bad body, 5xx, a
    redirect); 403/429, a captcha page, an ``rc`` error, a dead proxy, ``data: null`` and a
    bad plan are the IP's or the board's and leave the lane's health alone (a captcha is a
    ban of the IP: cooling the lane for it would push every worker down the pool)."""
    if isinstance(error, TooManyPages | Captcha | RcError):
        return False
    if isinstance(error, HTTPStatusError):
        return error.status >= 500 or 300 <= error.status < 400
    return isinstance(error, ConnectionFailed | FetchTimeout | InvalidResponse)


class Pool:
    """The lanes of a run and their health; shared by every worker's client (thread-safe).

    Args:
        endpoints: in preference order.
        transport: ``requests``, ``browser`` or ``auto`` (requests; a route's browser lane
            opens once that route closes on fresh IPs, where curl_cffi is installed).
        clock: cool-downs are measured on it.
        cooldown_s: rest after a failure (0 = none).
        witnesses: distinct fresh IPs that make a lane refused.
    """

    def __init__(self, endpoints: Sequence[Endpoint], *, transport: str = "requests",
                 clock: Clock = SYSTEM, cooldown_s: float = DEFAULT_COOLDOWN_S,
                 witnesses: int = REFUSAL_WITNESSES, browser: bool | None = None) -> None:
        if not endpoints:
            raise ConfigError("upstreams: at least one endpoint is needed", key="upstreams")
        if transport not in TRANSPORTS:
            raise ConfigError(f"transport: {transport!r} is not one of {', '.join(TRANSPORTS)}",
                              key="transport")
        has_browser = browser_available() if browser is None else browser
        if transport == "browser" and not has_browser:
            raise ConfigError(f"transport = browser needs curl_cffi: {BROWSER_EXTRA}",
                              key="transport")
        names = {"requests": ("requests",), "browser": ("browser",),
                 "auto": ("requests", "browser") if has_browser else ("requests",)}[transport]
        self.auto = transport == "auto"
        self.lanes = [Lane(ep, t, i * 2 + j) for i, ep in enumerate(endpoints)
                      for j, t in enumerate(names)]
        self.clock, self.cooldown_s, self.witnesses = clock, cooldown_s, witnesses
        self.health = {lane: Health() for lane in self.lanes}
        self.fatal: NoRoute | None = None
        self._twin = {lane: next((o for o in self.lanes if o.endpoint == lane.endpoint
                                  and o.transport == "requests"), lane) for lane in self.lanes}
        self._proven: set[str] = set()  # identities with a success in this run
        self._tried: dict[str, set[Lane]] = {}  # fresh identity -> lanes it failed on
        self._blamed: dict[str, list[Blame]] = {}  # identity -> lane failures since an answer
        self._answered = False
        self._lock = threading.Lock()

    # -- choosing --------------------------------------------------------------------------

    def _usable(self, lane: Lane) -> bool:
        h = self.health[lane]
        if h.state != OK:
            return False
        if self.auto and lane.transport == "browser" and not h.ok:
            twin = self.health[self._twin[lane]]
            return bool(twin.witnesses) or twin.state == REFUSED
        return True

    def choose(self, identity: str) -> Lane:
        """The lane for the next request of ``identity`` (a proxy key).

        Raises:
            NoRoute: every lane is refused or unreachable (:attr:`fatal`).
        """
        with self._lock:
            if self.fatal is not None:
                raise self.fatal
            lanes = [lane for lane in self.lanes if self._usable(lane)]
            if identity not in self._proven:  # a fresh IP tries the lanes it did not fail on
                tried = self._tried.get(identity, set())
                lanes = [lane for lane in lanes if lane not in tried] or lanes
            now = self.clock.now()
            warm = [lane for lane in lanes if self.health[lane].cool_until <= now] or lanes
            return max(warm, key=lambda lane: (self.health[lane].share, -lane.rank))

    # -- outcomes --------------------------------------------------------------------------

    def succeeded(self, lane: Lane, identity: str) -> None:
        """``identity`` got an answer on ``lane``: it is proven, the lane's witnesses gone."""
        with self._lock:
            h = self.health[lane]
            h.ok += 1
            h.witnesses.clear()
            self._proven.add(identity)
            self._tried.pop(identity, None)
            self._blamed.pop(identity, None)
            self._answered = True

    def failed(self, lane: Lane, identity: str, error: UpstreamError) -> UpstreamError:
        """Record a failure; returns the error to raise (``error`` itself, or the route's
        refinement: :class:`Refused`, or an :class:`Unreachable` demoted to a plain
        :class:`ConnectionFailed` once the upstream has answered in this run)."""
        if isinstance(error, ProxyDead | Blocked | Captcha):  # the identity's own end
            self.forgive(identity)
            return error
        if not counts_against_lane(error):
            return error
        with self._lock:
            h = self.health[lane]
            h.failed += 1
            before, h.cool_until = h.cool_until, self.clock.now() + self.cooldown_s
            if identity in self._proven:  # a fresh one's failures are witnesses (below)
                self._blamed.setdefault(identity, []).append(
                    Blame(lane, before, h.cool_until))
            if isinstance(error, Unreachable):
                return self._unreachable(lane, error)
            if type(error) is not ConnectionFailed or identity in self._proven:
                return error
            return self._witnessed(lane, identity, error)

    def forgive(self, identity: str) -> None:
        """``identity``, which had answered in this run, ended with no answer since the lanes
        last blamed it: its proxy died (refused a new connection), it was banned (403/429, a
        captcha, connections closed on it), or its worker let it go. Those failures were
        most likely that end, not the lanes', and are taken back (count and cool-down). An
        IP kept until it dies (learn pacing) fails its last request so, and a banned one has
        its connections closed; blaming the route would send every worker down the pool
        each time a batch of IPs expires or a probe is refused. A lane really failing keeps
        the blame of the other identities it fails for, and a fresh IP's failures stay the
        witnesses a refusing lane is known by."""
        with self._lock:
            for blame in reversed(self._blamed.pop(identity, [])):
                h = self.health[blame.lane]
                h.failed = max(0, h.failed - 1)
                if h.cool_until == blame.cool_set:
                    h.cool_until = blame.cool_before

    def _unreachable(self, lane: Lane, error: Unreachable) -> UpstreamError:
        if self._answered:  # it worked before: an outage, for the breaker to judge
            return ConnectionFailed(str(error))
        h = self.health[lane]
        h.state, h.why = UNREACHABLE, str(error)
        logger.warning("Upstream pool: %s is unreachable: %s", lane.name, error)
        self._check_fatal()
        return error

    def _witnessed(self, lane: Lane, identity: str, error: ConnectionFailed) -> UpstreamError:
        """A fresh ``identity`` was closed on by ``lane``: a witness against the lane."""
        h = self.health[lane]
        h.witnesses.add(identity)
        self._tried.setdefault(identity, set()).add(lane)
        # A lane that answered in this run is not refusing this client: its fresh IPs being
        # closed on now is an outage (the breaker's) or noise, never a reason to end the run.
        if len(h.witnesses) >= self.witnesses and not h.ok:
            h.state = REFUSED
            h.why = f"{len(h.witnesses)} fresh IPs closed on before any answer"
            logger.warning("Upstream pool: %s refuses this client: %s", lane.name, h.why)
            self._check_fatal()
        if self.fatal is not None:
            return error
        left = [o for o in self.lanes if self._usable(o) and o not in self._tried[identity]]
        if not left:
            return error  # failed everywhere: the IP itself may be refused (usual policy)
        return Refused(f"{error} (route refused a fresh IP; next: {left[0].name})")

    def _check_fatal(self) -> None:
        if any(self._usable(lane) for lane in self.lanes):
            return
        tried = tuple(f"{lane.name}: {self.health[lane].state}" for lane in self.lanes
                      if self.health[lane].state != OK)
        if {self.health[lane].state for lane in self.lanes} - {OK} == {UNREACHABLE}:
            hosts = ", ".join(sorted({lane.endpoint.host for lane in self.lanes}))
            whys = [self.health[lane].why for lane in self.lanes if self.health[lane].why]
            if whys and all("not trusted" in why for why in whys):
                self.fatal = UpstreamUnreachable(whys[0], tried)
            else:
                self.fatal = UpstreamUnreachable(
                    f"no upstream host resolves or takes a connection ({hosts}); check "
                    "upstreams/upstream_url and the network or proxy", tried)
        else:
            self.fatal = RoutesRefused(self._refusal_message(), tried)
        logger.error("Upstream pool: %s", self.fatal)

    def _refusal_message(self) -> str:
        ips = set().union(*(h.witnesses for h in self.health.values()))
        transports = sorted({lane.transport for lane in self.lanes})
        advice = ["another route or host (upstreams)"]
        if "browser" not in transports:
            advice.append("the browser transport (transport = browser or auto, "
                          f"{BROWSER_EXTRA})" if not browser_available()
                          else "the browser transport (transport = auto or browser)")
        advice.append("mainland residential IPs (a datacenter or foreign exit is refused "
                      "whatever it sends)")
        return (f"every upstream route refused this client: {len(ips)} fresh IPs were closed "
                f"on before any answer on {len(self.lanes)} lanes "
                f"({', '.join(lane.name for lane in self.lanes)}); a new IP of the same kind "
                f"will not help; try {'; '.join(advice)}")

    # -- reporting -------------------------------------------------------------------------

    def snapshot(self) -> list[dict[str, Any]]:
        """One row per lane tried or usable: host, route, transport, state, counts, share and
        the cool-down left (for the run summary, ``/status`` and ``boardsync probe``)."""
        now = self.clock.now()
        with self._lock:
            return [{"host": lane.endpoint.host, "route": lane.endpoint.route,
                     "transport": lane.transport, "state": h.state, "ok": h.ok,
                     "failed": h.failed, "share": round(h.share, 3),
                     "cooling_s": round(max(0.0, h.cool_until - now), 1)}
                    for lane, h in self.health.items()
                    if h.ok or h.failed or h.state != OK]


def endpoints_from(urls: Iterable[str], key: str = "upstreams") -> list[Endpoint]:
    """Endpoints from configured URLs (each validated)."""
    return [endpoint(url, key) for url in urls]


def build_pool(settings: Settings, *, clock: Clock = SYSTEM) -> Pool:
    """The pool of a run: ``settings.endpoints()`` x ``settings.transport``, cooling down
    ``upstream_cooldown`` seconds after a failure."""
    key = "upstream_url" if settings.upstream_url else "upstreams"
    return Pool(endpoints_from(settings.endpoints(), key), transport=settings.transport,
                clock=clock, cooldown_s=settings.upstream_cooldown)
