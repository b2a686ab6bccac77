"""``Simulator``: the upstream, the provider, the gateway and the admin API on one event loop.

One asyncio loop in a background thread hosts every listener, so latency and hangs cost an
``asyncio.sleep`` rather than a thread, and hundreds of proxy listeners are cheap.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import ssl
import threading
from typing import Any

from ..clock import SYSTEM, Clock
from ..models import Board
from .front import HostFront
from .gateway import Gateway
from .hosts import CLIST_HOSTS, DIRECTORY_PATH, HOSTS, ROUTES, RouteTable, real_name
from .httpd import Conn, Listener, Reply, Request
from .provider import Provider
from .scenario import Scenario, load_scenario
from .state import SimState
from .tls import TestCA
from .upstream import Upstream

logger = logging.getLogger(__name__)

OUTAGE_KINDS = ("502", "reset")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


class Simulator:
    """The whole simulated world on ephemeral loopback ports.

    Args:
        scenario: a ``Scenario`` or the name/path ``load_scenario`` accepts.
        time_scale: multiplies every simulated duration (0.05 = 20x faster); must be > 0.
        seed: makes the market, the identities and every fault draw reproducible.
        host: where to listen (loopback by default; proxies always advertise 127.0.0.1).
        port: the upstream's port (0 = any free one); the other listeners take free ports.
        clock: where every part reads time (simulated seconds are its monotonic time divided
            by ``time_scale``; served timestamps are its wall time). Latency, hangs and IP
            expiry are scheduled on the event loop, whose timers run in real time.

    Use as a context manager, or call ``start()`` and ``stop()``.
    """

    def __init__(self, scenario: Scenario | str = "reference", *, time_scale: float = 1.0,
                 seed: int = 7, host: str = "127.0.0.1", port: int = 0,
                 clock: Clock = SYSTEM, tls: bool = False) -> None:
        self.scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        self.time_scale = float(time_scale)
        self.seed = seed
        self.host = host
        self._port = port
        self.api_key = secrets.token_hex(8)
        self._tunnel_auth = ("sim", secrets.token_hex(6))
        self.state = SimState(self.scenario, seed, self.time_scale, clock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._listeners: list[Listener] = []
        self.upstream = Upstream(self.state)
        self.routes = RouteTable(self.scenario.routes)
        self.tls = tls
        self._ca: TestCA | None = None
        self.ca_bundle: str | None = None
        self.gateway: Gateway | None = None
        self.provider: Provider | None = None
        self.upstream_url = self.extract_url = self.tunnel_url = self.admin_url = ""
        self.directory_url = ""
        self.http_urls: dict[str, str] = {}
        self.https_urls: dict[str, str] = {}

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> Simulator:
        """Start the loop thread and every listener; returns ``self`` once they accept."""
        if self._thread is not None:
            return self
        if not self.state.exits.aliases:
            logger.warning("Simulator: this host cannot bind loopback addresses other than "
                           "127.0.0.1, so every proxy exit looks like one identity upstream")
        if self.tls and self._ca is None:
            self._ca = TestCA()
            self.ca_bundle = self._ca.ca_bundle
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="sim-loop", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._astart(), loop).result(timeout=30)
        except BaseException:
            self.stop()
            raise
        logger.info("Simulator %s: upstream %s, extract %s, tunnel port %s, scale %s, seed %s",
                    self.scenario.name, self.upstream_url, self.extract_url,
                    self.tunnel_url.rsplit(":", 1)[-1], self.time_scale, self.seed)
        return self

    async def _astart(self) -> None:
        host = self.host
        http_ports = await self._start_hosts(None)
        https_ports = (await self._start_hosts(self._ca.server_context())
                       if self._ca is not None else {})
        self.http_urls = {name: f"http://{host}:{p}" for name, p in http_ports.items()}
        self.https_urls = {name: f"https://{host}:{p}" for name, p in https_ports.items()}
        self.upstream_url = (self.https_urls or self.http_urls)["push2"]
        #: the board directory on the quote host, as ``upstream_url`` (HTTPS when served)
        self.directory_url = (self.https_urls or self.http_urls)["quote"] + DIRECTORY_PATH
        self.gateway = Gateway(self.state, http_ports, https_ports, self._tunnel_auth,
                               self._tasks)
        self.provider = Provider(self.state, self.gateway, self.api_key)
        prov = Listener("provider", self.provider.handle, host=host, tracker=self._tasks)
        admin = Listener("admin", self._admin, host=host, tracker=self._tasks)
        tunnel = Listener("tunnel", self.gateway.handle_tunnel, host=host, tracker=self._tasks)
        self.gateway.tunnel = tunnel
        self._listeners += [prov, admin, tunnel]
        self.extract_url = f"http://{host}:{await prov.start()}/get"
        self.admin_url = f"http://{host}:{await admin.start()}"
        user, password = self._tunnel_auth
        self.tunnel_url = f"http://{user}:{password}@{host}:{await tunnel.start()}"

    async def _start_hosts(self, tls: ssl.SSLContext | None) -> dict[str, int]:
        """One listener per named host (``hosts.HOSTS``); ``push2`` on the requested port."""
        ports: dict[str, int] = {}
        for name in HOSTS:
            front = HostFront(self.state, self.upstream, name, self.routes)
            wanted = self._port if name == "push2" and (tls is not None or not self.tls) else 0
            listener = Listener(f"{name}-{'https' if tls else 'http'}", front.handle,
                                host=self.host, port=wanted, tracker=self._tasks, tls=tls)
            self._listeners.append(listener)
            ports[name] = await listener.start()
        return ports

    def upstreams(self, *, routes: tuple[str, ...] = tuple(ROUTES),
                  https: bool | None = None) -> list[str]:
        """Endpoint URLs of every ``clist`` (host, route), as a client configures them:
        ``https://127.0.0.1:PORT/api/qt/clist/get`` ... (https when served, unless told)."""
        use_https = self.tls if https is None else https
        urls = self.https_urls if use_https else self.http_urls
        return [urls[h] + ROUTES[r] for h in CLIST_HOSTS for r in routes]

    def stop(self) -> None:
        """Close every listener and connection (hangs included) and end the loop thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._astop(), loop).result(timeout=10)
            except Exception:  # noqa: BLE001 - stopping must not raise over the caller's error
                logger.exception("Simulator: error while stopping")
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        if not loop.is_running():
            loop.close()
        self._loop = self._thread = None
        if self._ca is not None:
            self._ca.close()
            self._ca = None

    async def _astop(self) -> None:
        for listener in self._listeners:
            await listener.close()
        if self.gateway is not None:
            await self.gateway.close()
        current = asyncio.current_task()
        pending = [t for t in self._tasks if t is not current and not t.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- truth and counters ---------------------------------------------------------------
    def truth(self) -> dict[str, frozenset[str]]:
        """``{board code: member stock codes}`` for every board served today."""
        with self.state.lock:
            return self.state.market.truth()

    def boards(self) -> list[Board]:
        """Every board served today (industry, concept, region)."""
        with self.state.lock:
            return self.state.market.board_list()

    def counters(self) -> dict[str, Any]:
        """Requests, bans, faults by class, extraction and gateway counts (a snapshot)."""
        with self.state.lock:
            out = self.state.counters.snapshot()
            out["sim_time_s"] = round(self.state.now(), 3)
            out["day"] = self.state.market.day
            out["banned_identities_now"] = sorted(
                name for name in self.state.antibot.identities
                if self.state.antibot.is_banned(name, self.state.now()))
        return out

    def tunnel_identity(self) -> str:
        """The tunnel's current exit identity."""
        assert self.gateway is not None, "simulator not started"
        with self.state.lock:
            return self.gateway.tunnel_identity()

    def issued_ips(self) -> list[dict[str, Any]]:
        """Every IP the provider issued: port, identity, dead-on-arrival, bad, expired."""
        assert self.provider is not None, "simulator not started"
        with self.state.lock:
            return [{"port": ip.port, "identity": ip.identity, "doa": ip.doa, "bad": ip.bad,
                     "expired": ip.expired, "requests": ip.requests,
                     "expires_at_sim_s": ip.expires_at} for ip in self.provider.issued]

    def rules(self) -> dict[str, Any]:
        """The world's rules: the scenario's knobs, each (host, route)'s health, the scale."""
        return {"scenario": self.scenario.to_dict(), "routes": self.routes.describe(),
                "time_scale": self.time_scale, "seed": self.seed, "tls": self.tls}

    def hosts(self) -> dict[str, dict[str, str]]:
        """``{host: {"name": real name, "http": url, "https": url}}`` for every named host."""
        return {h: {"name": real_name(h), "http": self.http_urls.get(h, ""),
                    "https": self.https_urls.get(h, "")} for h in HOSTS}

    # -- control --------------------------------------------------------------------------
    def advance_day(self) -> dict[str, Any]:
        """Churn the market to the next day (and start a new quota day); returns the churn."""
        with self.state.lock:
            report = self.state.market.advance_day()
            if self.provider is not None:
                self.provider.new_day()
            self.state.shrink.clear()
            self.state.list_loss.clear()
        return report

    def set_outage(self, kind: str | None) -> None:
        """Every upstream request gets ``"502"`` or a ``"reset"`` for every client; None ends."""
        if kind is not None and kind not in OUTAGE_KINDS:
            raise ValueError(f"outage kind must be one of {OUTAGE_KINDS} or None")
        with self.state.lock:
            self.state.outage = kind
        logger.info("Simulator: outage %s", kind or "over")

    def set_shrink(self, board_code: str, fraction: float | None) -> None:
        """Serve only ``fraction`` of ``board_code``'s members (total included); None clears."""
        with self.state.lock:
            if fraction is None:
                self.state.shrink.pop(board_code, None)
            else:
                if not 0 <= fraction <= 1:
                    raise ValueError("fraction must be within [0, 1]")
                self.state.shrink[board_code] = float(fraction)

    def set_list_loss(self, kind: str, fraction: float | None) -> None:
        """The board lists of ``kind`` leave out ``fraction`` of its boards (their members
        still answer, the directory still lists them); None clears. Cleared by a new day."""
        with self.state.lock:
            if fraction is None:
                self.state.list_loss.pop(kind, None)
            else:
                if not 0 <= fraction <= 1:
                    raise ValueError("fraction must be within [0, 1]")
                self.state.list_loss[kind] = float(fraction)

    # -- admin API ------------------------------------------------------------------------
    async def _admin(self, request: Request, conn: Conn) -> Reply:
        path, method = request.path, request.method
        try:
            if method == "GET" and path == "/truth":
                return self._reply(self.truth())
            if method == "GET" and path == "/counters":
                return self._reply(self.counters())
            if method == "GET" and path == "/boards":
                return self._reply([[b.code, b.name, b.kind] for b in self.boards()])
            if method == "GET" and path == "/rules":
                return self._reply(self.rules())
            if method == "GET" and path == "/hosts":
                return self._reply(self.hosts())
            if method == "GET" and path == "/scenario":
                return self._reply(self.scenario.to_dict() | {"time_scale": self.time_scale,
                                                              "seed": self.seed})
            if method == "POST" and path == "/advance-day":
                return self._reply(self.advance_day())
            if method == "POST" and path == "/mode":
                body = json.loads(request.body or b"{}")
                if "outage" in body:
                    self.set_outage(body["outage"])
                shrink = body.get("shrink")
                if shrink:
                    self.set_shrink(shrink["board"], shrink.get("fraction"))
                loss = body.get("list_loss")
                if loss:
                    self.set_list_loss(loss["kind"], loss.get("fraction"))
                mode = {"outage": self.state.outage, "shrink": self.state.shrink}
                if self.state.list_loss:
                    mode["list_loss"] = self.state.list_loss
                return self._reply(mode)
            if method == "GET" and path == "/":
                return self._reply({"endpoints": ["GET /truth", "GET /counters", "GET /boards",
                                                  "GET /rules", "GET /hosts", "GET /scenario",
                                                  "POST /advance-day", "POST /mode"]})
        except (ValueError, KeyError, TypeError) as e:
            return Reply(400, json.dumps({"error": str(e)}).encode())
        return Reply(404, b'{"error":"not found"}')

    @staticmethod
    def _reply(obj: Any) -> Reply:
        return Reply(200, json.dumps(_jsonable(obj), ensure_ascii=False).encode("utf-8"))
