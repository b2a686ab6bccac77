"""The proxy gateway: one real HTTP forward proxy per issued IP, plus a rotating tunnel.

Each issued IP is a distinct loopback port with a fake public identity (e.g. ``58.x.y.z``)
and a loopback source address of its own (``exits.py``), which the gateway binds its outgoing
sockets to, so the upstream reads the exit identity from the peer address, as a real one does.
A request with an absolute ``http://`` URI is forwarded over HTTP keep-alive; ``CONNECT
host:443`` opens a byte tunnel (HTTPS end to end, the gateway sees no plaintext). Hosts are
reached by their real names (``29.push2.eastmoney.com``) or by their loopback ports.
Replies are relayed byte for byte, including their failures: if the upstream closes without
answering, the client's connection is closed too; a truncated body stays truncated.
Expired IPs stop listening (connection refused, open tunnels cut); dead-on-arrival IPs never
listen.
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

from .hosts import short_name
from .httpd import DROP, HIJACKED, Conn, Listener, Reply, Request, abort
from .state import SimState

logger = logging.getLogger(__name__)

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authorization", "proxy-connection",
                        "proxy-authenticate", "te", "trailer", "transfer-encoding", "upgrade"})
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


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes from ``reader`` to ``writer`` until EOF or an error, then close ``writer``."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        abort(writer)


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

    def __init__(self, state: SimState, http_ports: dict[str, int],
                 https_ports: dict[str, int], tunnel_auth: tuple[str, str],
                 tracker: set[asyncio.Task[None]]) -> None:
        self.state = state
        self.http_ports = http_ports
        self.https_ports = https_ports
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
    def resolve(self, host: str, port: int | None, *, tls: bool) -> int | None:
        """The loopback port serving ``host:port``: a simulated host by its real name (on 443
        for a tunnel, 80 for a plain request) or by its own loopback port; None otherwise."""
        ports = self.https_ports if tls else self.http_ports
        short = short_name(host)
        if short is not None:
            return ports.get(short) if port in (None, 443 if tls else 80) else None
        if host in ("127.0.0.1", "localhost") and port in ports.values():
            return port
        return None

    async def forward(self, request: Request, conn: Conn, identity: str) -> Reply:
        """Send ``request`` to the upstream from ``identity``'s address; relay the reply."""
        if request.method == "CONNECT":
            return await self.tunnel_to(request, conn, identity)
        parts = urlsplit(request.target)
        if parts.scheme != "http" or not parts.hostname:
            return Reply(400, b"absolute http:// URI required", "text/plain")
        port = self.resolve(parts.hostname, parts.port, tls=False)
        if port is None:
            return Reply(503, b"Proxy Connect Error", "text/plain")
        source = self.state.exits.address_for(identity)
        key = f"upstream:{port}:{source}"
        link = conn.data.get(key)
        if not isinstance(link, UpstreamLink):
            try:
                link = UpstreamLink(*await asyncio.open_connection(
                    "127.0.0.1", port, local_addr=(source, 0)))
            except OSError:
                return Reply(503, b"Proxy Connect Error", "text/plain")
            conn.data[key] = link
            conn.on_close.append(functools.partial(abort, link.writer))
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        lines = [f"{request.method} {path} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in request.headers.items() if k not in HOP_BY_HOP]
        lines.append("connection: keep-alive")
        return await self._relay(conn, key, link,
                                 ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
                                 + request.body, request.keep_alive)

    async def _relay(self, conn: Conn, key: str, link: UpstreamLink, data: bytes,
                     keep_alive: bool) -> Reply:
        """Write one request on ``link`` and read its reply whole, failures included."""
        reader, writer = link.reader, link.writer
        writer.write(data)
        try:
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            self._drop_link(conn, key)
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
            self._drop_link(conn, key)
            return Reply(mode="raw", body=head + e.partial, close=True)
        except ConnectionError:
            self._drop_link(conn, key)
            return Reply(mode="raw", body=head, close=True)
        if upstream_close:
            self._drop_link(conn, key)
        return Reply(mode="raw", body=head + body, close=not keep_alive)

    async def tunnel_to(self, request: Request, conn: Conn, identity: str) -> Reply:
        """``CONNECT host:443``: open a TCP tunnel from ``identity``'s address and pipe bytes
        both ways until either side closes, as a real provider's gateway does."""
        host, _, port_text = request.target.rpartition(":")
        port = self.resolve(host.strip("[]"), int(port_text) if port_text.isdigit() else None,
                            tls=True)
        if port is None or conn.reader is None or conn.writer is None:
            return Reply(502, b"Proxy Connect Error", "text/plain", close=True)
        try:
            up_reader, up_writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(self.state.exits.address_for(identity), 0))
        except OSError:
            return Reply(502, b"Proxy Connect Error", "text/plain", close=True)
        conn.on_close.append(functools.partial(abort, up_writer))
        with self.state.lock:
            self.state.counters.gateway_tunnels += 1
        conn.writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(pipe(conn.reader, up_writer), pipe(up_reader, conn.writer))
        return HIJACKED

    @staticmethod
    def _drop_link(conn: Conn, key: str) -> None:
        link = conn.data.pop(key, None)
        if isinstance(link, UpstreamLink):
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
