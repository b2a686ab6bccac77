"""One simulated host's front door: route, health, client fingerprint, then the upstream.

Every named host (``push2``, ``29.push2`` ...) listens on a port of its own and answers
through a ``HostFront``: it picks the route from the path, applies the scenario's health for
that (host, route) (``hosts.py``), judges the client's class from its ClientHello and headers
(``tls.py``) and only then lets the shared ``Upstream`` (exit identity, rate limits, faults,
data) answer. Refusals happen here, before the rate
limits see the request, as a WAF in front of the real servers would.
"""

from __future__ import annotations

import random

from .hosts import DIRECTORY_PATH, ROUTE_OF_PATH, RouteTable
from .httpd import DROP, Conn, Reply, Request
from .levels import directory_json
from .state import SimState
from .tls import client_class
from .upstream import HTML_404, Upstream


class HostFront:
    """The request handler of host ``name`` (runs on the simulator's event loop)."""

    def __init__(self, state: SimState, upstream: Upstream, name: str,
                 routes: RouteTable) -> None:
        self.state = state
        self.upstream = upstream
        self.name = name
        self.routes = routes
        self.rng = random.Random(f"{state.seed}:host:{name}")

    async def handle(self, request: Request, conn: Conn) -> Reply:
        st = self.state
        path = request.path
        cls = client_class(conn.hello, request.headers, tls=conn.tls)
        route = ROUTE_OF_PATH.get(path) if self.name != "quote" else None
        if route is None:
            if path == DIRECTORY_PATH and self.name == "quote":
                return self.directory_reply()
            with st.lock:
                st.counters.not_found += 1
            return Reply(404, HTML_404, "text/html")
        key = f"{self.name}/{route}"
        health = self.routes.health(self.name, route)
        with st.lock:
            c = st.counters
            c.requests_by_route[key] += 1
            c.requests_by_fingerprint[cls] += 1
            if conn.hello is not None:
                c.requests_by_fingerprint["ja3:" + conn.hello.ja3_hash()] += 1
            refused = health.refuses(cls) or (
                health.kind == "intermittent" and self.rng.random() >= health.share)
            if refused:
                c.refused_by_route[key] += 1
        if refused:
            return DROP
        return await self.upstream.handle(request, conn, lag_s=health.lag_s)

    def directory_reply(self) -> Reply:
        """The static board directory (a file on a CDN host: no rate limit, no faults)."""
        st = self.state
        with st.lock:
            st.counters.requests_by_route["quote/directory"] += 1
            body = directory_json(st.market)
        return Reply(200, body, "application/json; charset=utf-8")
