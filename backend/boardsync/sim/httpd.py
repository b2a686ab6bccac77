"""A small asyncio HTTP/1.1 server: keep-alive, Content-Length bodies, and misbehaviour on demand.

Hand-written rather than ``http.server`` because the simulator must be able to close a
connection without answering, hang, or send a truncated body, and to run hundreds of listeners
on one event loop. Only what the simulator's clients send is supported: no chunked request
bodies, no pipelining guarantees beyond in-order processing. With an ``ssl`` context a listener
serves HTTPS, reading each connection's ClientHello first (``tls.peek_hello``) so handlers can
judge the client's fingerprint.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from .tls import Hello, parse_client_hello, peek_hello

logger = logging.getLogger(__name__)

REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 407: "Proxy Authentication Required",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
MAX_HEAD = 64 * 1024


@dataclass(slots=True)
class Request:
    """One parsed request. ``target`` is as sent (absolute URI when sent to a proxy)."""

    method: str
    target: str
    version: str
    headers: dict[str, str]
    body: bytes
    peer: str
    raw_head: bytes = b""

    @property
    def path(self) -> str:
        return urlsplit(self.target).path or "/"

    @property
    def query(self) -> dict[str, str]:
        """Query parameters (last one wins), ``+`` decoded as a space like browsers do."""
        return dict(parse_qsl(urlsplit(self.target).query, keep_blank_values=True))

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return conn == "keep-alive"
        return conn != "close"


@dataclass(slots=True)
class Reply:
    """What to do with a request.

    ``mode``: ``"send"`` a normal response; ``"drop"`` close without any response;
    ``"truncate"`` send the head with the full Content-Length but only half the body, then
    close; ``"raw"`` write ``body`` verbatim (already a full HTTP response or a part of one)
    and close if ``close``; ``"hijacked"`` the handler has used the connection itself (a
    ``CONNECT`` tunnel) and it is over: close it.
    """

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)
    mode: str = "send"
    close: bool = False

    def encode(self, keep_alive: bool) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {REASONS.get(self.status, 'Unknown')}",
                 f"Content-Type: {self.content_type}",
                 f"Content-Length: {len(self.body)}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        lines.append("Connection: keep-alive" if keep_alive and not self.close
                     else "Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


DROP = Reply(mode="drop")


HIJACKED = Reply(mode="hijacked")


@dataclass(slots=True)
class Conn:
    """Per-connection context a handler may use (the gateway keeps its upstream link here).

    ``hello`` is the client's TLS ClientHello on an HTTPS listener (None on plain HTTP or when
    unparseable); ``reader``/``writer`` let a handler take the connection over (``CONNECT``).
    """

    peer: str
    data: dict[str, object] = field(default_factory=dict)
    on_close: list[Callable[[], None]] = field(default_factory=list)
    hello: Hello | None = None
    tls: bool = False
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None


Handler = Callable[[Request, Conn], Awaitable[Reply]]


async def read_request(reader: asyncio.StreamReader, peer: str) -> Request | None:
    """Read one request; ``None`` on a clean EOF or a malformed head (caller closes)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    try:
        text = head.decode("latin-1")
        first, *rest = text.split("\r\n")
        method, target, version = first.split(" ", 2)
    except ValueError:
        return None
    headers: dict[str, str] = {}
    for line in rest:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = b""
    length = headers.get("content-length")
    if length:
        try:
            body = await reader.readexactly(int(length))
        except (ValueError, asyncio.IncompleteReadError, ConnectionError):
            return None
    return Request(method=method, target=target, version=version.strip(), headers=headers,
                   body=body, peer=peer, raw_head=head)


def abort(writer: asyncio.StreamWriter) -> None:
    """Close the connection at once (no response)."""
    try:
        writer.close()
    except (ConnectionError, RuntimeError):
        pass


class Listener:
    """One listening socket on the shared loop, serving ``handler`` with keep-alive."""

    def __init__(self, name: str, handler: Handler, *, host: str = "127.0.0.1",
                 port: int = 0, tracker: set[asyncio.Task[None]] | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.name = name
        self.tls = tls
        self._sock: socket.socket | None = None
        self._acceptor: asyncio.Task[None] | None = None
        self.handler = handler
        self.host = host
        self.requested_port = port
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.tracker = tracker if tracker is not None else set()
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.requested_port))
        sock.listen(256)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        if self.tls is None:
            self.server = await asyncio.start_server(self._serve, sock=sock, limit=MAX_HEAD)
        else:
            self._sock = sock
            self._acceptor = asyncio.ensure_future(self._accept_tls(sock))
        return self.port

    async def _accept_tls(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                client, _ = await loop.sock_accept(sock)
            except asyncio.CancelledError:
                return
            except OSError as e:
                if sock.fileno() < 0:
                    return  # the listener was closed
                # Out of descriptors or a connection reset while queued: keep accepting (a
                # dead accept loop would leave clients hanging in the backlog).
                logger.warning("Listener %s: accept failed: %s", self.name, e)
                await asyncio.sleep(0.05)
                continue
            task = asyncio.ensure_future(self._start_tls(client))
            self.tracker.add(task)
            task.add_done_callback(self.tracker.discard)

    async def _start_tls(self, client: socket.socket) -> None:
        """Peek the ClientHello, then hand the socket to asyncio's TLS and serve it."""
        assert self.tls is not None
        loop = asyncio.get_running_loop()
        client.setblocking(False)
        try:
            hello = parse_client_hello(await peek_hello(client))
        except BaseException:  # cancelled at shutdown: never leak the socket
            client.close()
            raise
        reader = asyncio.StreamReader(limit=MAX_HEAD)
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol, client, ssl=self.tls, ssl_handshake_timeout=10.0)
        except (OSError, ssl.SSLError, TimeoutError, asyncio.CancelledError):
            client.close()
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        await self._serve(reader, writer, hello=hello, tls=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                     hello: Hello | None = None, tls: bool = False) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.tracker.add(task)
        self.writers.add(writer)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = (writer.get_extra_info("peername") or ("?", 0))[0]
        conn = Conn(peer, hello=hello, tls=tls, reader=reader, writer=writer)
        try:
            while True:
                request = await read_request(reader, peer)
                if request is None:
                    break
                reply = await self.handler(request, conn)
                if reply.mode in ("drop", "hijacked"):
                    break
                if reply.mode == "truncate":
                    whole = reply.encode(keep_alive=False)
                    cut = len(whole) - len(reply.body) // 2 - 1
                    writer.write(whole[:cut])
                    await writer.drain()
                    break
                if reply.mode == "raw":
                    writer.write(reply.body)
                    await writer.drain()
                    if reply.close:
                        break
                    continue
                keep = request.keep_alive and not reply.close
                writer.write(reply.encode(keep))
                await writer.drain()
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # Only the simulator's shutdown cancels; ending quietly avoids asyncio 3.11's
            # "exception in callback" noise from stream tasks that end cancelled.
            pass
        except Exception:
            logger.exception("Listener %s: handler crashed", self.name)
        finally:
            for callback in conn.on_close:
                callback()
            self.writers.discard(writer)
            abort(writer)
            if task is not None:
                self.tracker.discard(task)

    async def close(self, *, drop_connections: bool = True) -> None:
        """Stop listening (new connects are refused) and, by default, drop open connections."""
        if self.server is not None:
            self.server.close()
            self.server = None
        if self._acceptor is not None:
            self._acceptor.cancel()
            self._acceptor = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if drop_connections:
            for writer in list(self.writers):
                abort(writer)
