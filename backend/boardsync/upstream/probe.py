"""``boardsync probe``'s library half: one request per (host, route, transport), what answers.

Why: which hosts, routes and transports East Money serves depends on the network and changes
(``EASTMONEY_API.md`` §13: "probe, never assume"); before a run, or when a run ended refused,
an operator wants to see it in one table. Each lane gets one page-1 request of the industry
list through the same IP (so only the lane differs), with the run's timeouts and TLS checks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ..clock import SYSTEM, Clock
from ..config import Settings
from ..errors import HTTPStatusError, NoRoute, UpstreamError
from .client import ProxyLike, UpstreamClient
from .paging import board_list_query
from .pool import Endpoint, Pool, endpoints_from
from .transport import browser_available

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProbeRow:
    """What one lane did with one request: ``outcome`` is ``ok`` or the error class."""

    host: str
    route: str
    transport: str
    outcome: str
    status: int | None
    total: int | None
    seconds: float
    detail: str


def probe(endpoints: Sequence[Endpoint], transports: Sequence[str], proxy: ProxyLike | None,
          *, timeout: tuple[float, float], verify: bool | str, clock: Clock = SYSTEM,
          pause_s: float = 0.0) -> list[ProbeRow]:
    """Send one request per (endpoint, transport) through ``proxy``; never raises for a lane.

    ``pause_s`` is waited before each request but the first: back to back, twenty requests
    on one IP would trip the upstream's rate limit and the table would show the ban.

    Raises:
        ConfigError: a transport that cannot be built (``browser`` without curl_cffi).
    """
    rows: list[ProbeRow] = []
    query = board_list_query("industry")
    for ep in endpoints:
        for name in transports:
            client = UpstreamClient(pool=Pool([ep], transport=name, clock=clock,
                                              witnesses=10**9), timeout=timeout,
                                    clock=clock, verify=verify)
            if rows:
                clock.sleep(pause_s)
            started = clock.now()
            try:
                with client:
                    page = client.get_page(query, 1, proxy)
                row = ProbeRow(ep.host, ep.route, name, "ok", 200, page.total,
                               clock.now() - started, "")
            except (UpstreamError, NoRoute) as e:
                status = e.status if isinstance(e, HTTPStatusError) else None
                row = ProbeRow(ep.host, ep.route, name, e.error_class, status, None,
                               clock.now() - started, str(e).split(": ", 1)[-1][:80])
            logger.info("Probe: %s/%s (%s): %s", row.host, row.route, name, row.outcome)
            rows.append(row)
    return rows


def probe_settings(settings: Settings, *, clock: Clock = SYSTEM) -> list[ProbeRow]:
    """:func:`probe` over the settings' pool and transports (``auto``: requests and, where
    installed, the browser) through one IP of the configured proxy source (one bought IP at
    most; it is released after)."""
    from ..proxy.factory import build_proxy_manager  # same layer; only the probe needs it

    names = {"auto": ("requests", "browser") if browser_available() else ("requests",),
             "requests": ("requests",), "browser": ("browser",)}[settings.transport]
    proxies = build_proxy_manager(settings, clock=clock, workers=1)
    proxy = proxies.acquire()
    try:
        return probe(endpoints_from(settings.endpoints()), names, proxy,
                     timeout=(settings.connect_timeout, settings.read_timeout),
                     verify=settings.ca_bundle or True, clock=clock,
                     pause_s=settings.req_delay_max)
    finally:
        proxies.release(proxy)
