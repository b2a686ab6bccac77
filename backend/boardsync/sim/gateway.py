"""The proxy gateway: one real HTTP forward proxy per issued IP, plus a rotating tunnel.

Each issued IP is a distinct loopback port with a fake public identity (e.g. ``58.x.y.z``).
A request sent to it with an absolute URI is forwarded over HTTP keep-alive to the upstream
with that identity in a header the upstream trusts only together with this run's secret.
Replies are relayed byte for byte, including their failures: if the upstream closes without
answering, the client's connection is closed too; a truncated body stays truncated.
Expired IPs stop listening (connection refused); dead-on-arrival IPs never listen.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import logging
import random
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .httpd import DROP, Conn, Listener, Reply, Request, abort
from .state import SimState
from .upstream import GATEWAY_HEADER, IDENTITY_HEADER

logger = logging.getLogger(__name__)

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authorization", "proxy-connection",
                        "proxy-authenticate", "te", "trailer", "transfer-encoding", "upgrade",
                        GATEWAY_HEADER, IDENTITY_HEADER})
#: First octets of Chinese residential/ISP address blocks, for believable fake exit identities.
FIRST_OCTETS = (27, 36, 39, 42, 49, 58, 59, 60, 61, 101, 106, 110, 111, 112, 113, 114, 115, 116,
                117, 118, 119, 120, 121, 122, 123, 124, 125, 171, 175, 180, 182, 183, 218, 221,
                222, 223)


def fake_identity(rng: random.Random) -> str:
    """A plausible public IPv4 address (never loopback or private)."""
    return (f"{rng.choice(FIRST_OCTETS)}.{rng.randrange(256)}.{rng.randrange(256)}."
            f"{rng.randrange(1, 255)}")


@dataclass(frozen=True, slots=True)
class UpstreamLink:
    """A client connection's keep-alive connection to the upstream (kept in ``Conn.data``)."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


def _link_of(conn: Conn) -> UpstreamLink | None:
    link = conn.data.get("upstream")
    return link if isinstance(link, UpstreamLink) else None


@dataclass
class IssuedIP:
    """One proxy IP handed out by the extraction API."""

    index: int
    identity: str
    issued_at: float  # simulated seconds
    expires_at: float
    doa: bool
    bad: bool
    rng: random.Random
    port: int = 0
    listener: Listener | None = None
    placeholder: socket.socket | None = None
    expired: bool = False
    requests: int = 0
    handles: list[asyncio.TimerHandle] = field(default_factory=list)


def hold_port(port: int) -> socket.socket | None:
    """Bind ``port`` without listening, so connects to it are refused and nobody reuses it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    return sock


class Gateway:
    """Forwarding logic shared by the per-IP listeners and the tunnel listener."""

    def __init__(self, state: SimState, upstream_port: int, tunnel_auth: tuple[str, str],
                 tracker: set[asyncio.Task[None]]) -> None:
        self.state = state
        self.upstream_port = upstream_port
        self.tunnel_auth = tunnel_auth
        self.tracker = tracker
        self.ips: dict[int, IssuedIP] = {}  # by port
        self.held: list[socket.socket] = []
        self.tunnel: Listener | None = None
        self._tunnel_ids: dict[int, str] = {}

    # -- issued IPs -----------------------------------------------------------------------
    async def open_ip(self, ip: IssuedIP) -> None:
        """Give ``ip`` its port: a listener, or a bound-but-closed socket when dead on arrival."""
        if ip.doa:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            ip.port = sock.getsockname()[1]
            ip.placeholder = sock
            self.held.append(sock)
        else:
            async def handler(request: Request, conn: Conn, ip: IssuedIP = ip) -> Reply:
                return await self.handle_ip(ip, request, conn)

            ip.listener = Listener(f"ip-{ip.index}", handler, tracker=self.tracker)
            ip.port = await ip.listener.start()
            loop = asyncio.get_running_loop()
            delay = self.state.real(max(0.0, ip.expires_at - self.state.now()))
            ip.handles.append(loop.call_later(delay, self._expire_soon, ip))
        self.ips[ip.port] = ip

    def _expire_soon(self, ip: IssuedIP) -> None:
        task = asyncio.ensure_future(self.expire(ip))
        self.tracker.add(task)
        task.add_done_callback(self.tracker.discard)

    async def expire(self, ip: IssuedIP) -> None:
        """Close ``ip``'s listener and its connections; its port now refuses connections."""
        if ip.expired:
            return
        ip.expired = True
        with self.state.lock:
            self.state.counters.ips_expired += 1
        if ip.listener is not None:
            await ip.listener.close()
            ip.listener = None
            held = hold_port(ip.port)
            if held is not None:
                self.held.append(held)
        logger.debug("Gateway: IP %s (port %d) expired", ip.identity, ip.port)

    async def handle_ip(self, ip: IssuedIP, request: Request, conn: Conn) -> Reply:
        st = self.state
        if ip.expired or st.now() >= ip.expires_at:
            with st.lock:
                st.counters.gateway_refused += 1
            if not ip.expired:
                await self.expire(ip)
            return DROP
        with st.lock:
            st.counters.gateway_requests += 1
            ip.requests += 1
            failed = ip.bad and ip.rng.random() < st.scenario.ip_bad_fault_rate
            if failed:
                st.counters.faults["proxy_reset"] += 1
        if failed:
            return DROP
        return await self.forward(request, conn, ip.identity)

    # -- tunnel ---------------------------------------------------------------------------
    def tunnel_identity(self, now: float | None = None) -> str:
        """The tunnel's exit identity at simulated time ``now`` (changes every rotate period)."""
        t = self.state.now() if now is None else now
        period = self.state.scenario.tunnel_rotate_s
        epoch = int(t // period) if period > 0 else 0
        ident = self._tunnel_ids.get(epoch)
        if ident is None:
            ident = self._tunnel_ids[epoch] = fake_identity(
                random.Random(f"{self.state.seed}:tunnel:{epoch}"))
        return ident

    def _authorized(self, request: Request) -> bool:
        value = request.headers.get("proxy-authorization", "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(token).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (user, password) == self.tunnel_auth

    async def handle_tunnel(self, request: Request, conn: Conn) -> Reply:
        st = self.state
        if not self._authorized(request):
            with st.lock:
                st.counters.gateway_auth_failed += 1
            return Reply(407, b"Proxy Authentication Failed", "text/plain",
                         headers={"Proxy-Authenticate": 'Basic realm="tunnel"'})
        with st.lock:
            st.counters.gateway_requests += 1
            st.counters.tunnel_requests += 1
        return await self.forward(request, conn, self.tunnel_identity())

    # -- forwarding -----------------------------------------------------------------------
    async def forward(self, request: Request, conn: Conn, identity: str) -> Reply:
        """Send ``request`` to the upstream as ``identity`` and relay the reply verbatim."""
        if request.method == "CONNECT":
            return Reply(405, b"CONNECT not supported", "text/plain", close=True)
        parts = urlsplit(request.target)
        if parts.scheme != "http" or not parts.hostname:
            return Reply(400, b"absolute http:// URI required", "text/plain")
        if parts.hostname not in ("127.0.0.1", "localhost") or (
                parts.port or 80) != self.upstream_port:
            return Reply(503, b"Proxy Connect Error", "text/plain")
        link = _link_of(conn)
        if link is None:
            try:
                link = UpstreamLink(*await asyncio.open_connection("127.0.0.1",
                                                                   self.upstream_port))
            except OSError:
                return Reply(503, b"Proxy Connect Error", "text/plain")
            conn.data["upstream"] = link
            conn.on_close.append(functools.partial(abort, link.writer))
        reader, writer = link.reader, link.writer
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        lines = [f"{request.method} {path} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in request.headers.items() if k not in HOP_BY_HOP]
        lines += [f"{IDENTITY_HEADER}: {identity}", f"{GATEWAY_HEADER}: {self.state.secret}",
                  "connection: keep-alive"]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body)
        try:
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            self._drop_link(conn)
            return DROP
        length = 0
        upstream_close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip() or 0)
            elif name == b"connection" and value.strip().lower() == b"close":
                upstream_close = True
        try:
            body = await reader.readexactly(length)
        except asyncio.IncompleteReadError as e:
            self._drop_link(conn)
            return Reply(mode="raw", body=head + e.partial, close=True)
        except ConnectionError:
            self._drop_link(conn)
            return Reply(mode="raw", body=head, close=True)
        if upstream_close:
            self._drop_link(conn)
        return Reply(mode="raw", body=head + body, close=not request.keep_alive)

    @staticmethod
    def _drop_link(conn: Conn) -> None:
        link = _link_of(conn)
        conn.data.pop("upstream", None)
        if link is not None:
            abort(link.writer)

    async def close(self) -> None:
        for ip in self.ips.values():
            for handle in ip.handles:
                handle.cancel()
            if ip.listener is not None:
                await ip.listener.close()
        if self.tunnel is not None:
            await self.tunnel.close()
        for sock in self.held:
            sock.close()
        self.held.clear()
