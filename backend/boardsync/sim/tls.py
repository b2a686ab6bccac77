"""The simulated upstream's HTTPS: a test CA made at start, and each client's TLS fingerprint.

East Money serves HTTPS, and in 2026 some of its routes refuse clients by fingerprint: the
TLS ClientHello of Python's ``ssl`` (what ``requests``/urllib3 send) is refused where a
browser's is accepted (``EASTMONEY_API.md`` section 13). To model that, the simulator reads
each connection's ClientHello before the handshake (a peek, so the handshake still sees every
byte) and reduces it to a JA3-style string: ``version,ciphers,extensions,groups,formats`` in
decimal, GREASE values removed.

The class a rule refuses is coarse on purpose, as a WAF's is: ``browser`` when the hello
carries GREASE values (RFC 8701; every Chromium and Firefox sends them, OpenSSL, and
so Python, never does) and the User-Agent is a browser's, else ``library``. Exact JA3
strings are kept too (counters, the admin API), so a test can see what each client sent.

The certificate comes from ``trustme`` (the ``tls`` extra): a throwaway CA whose bundle the
client is given as its CA-bundle setting, so verification stays on, as against the real host.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .hosts import HOSTS, real_name

#: Bytes of a TLS record header: type, version, length.
RECORD_HEAD = 5
HANDSHAKE = 0x16
CLIENT_HELLO = 0x01
EXT_SNI, EXT_GROUPS, EXT_FORMATS, EXT_VERSIONS = 0, 10, 11, 43
#: How long a new connection may take to send its ClientHello.
HELLO_TIMEOUT_S = 10.0


def is_grease(value: int) -> bool:
    """RFC 8701 GREASE values: 0x0A0A, 0x1A1A, ... 0xFAFA."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


@dataclass(frozen=True, slots=True)
class Hello:
    """The parts of a ClientHello a fingerprint is made of."""

    version: int
    ciphers: tuple[int, ...]
    extensions: tuple[int, ...]
    groups: tuple[int, ...]
    formats: tuple[int, ...]
    sni: str = ""
    grease: bool = False

    def ja3(self) -> str:
        """``771,4865-4866-...,0-11-10-...,29-23-24,0`` (GREASE removed, as JA3 does)."""
        def join(values: Iterable[int]) -> str:
            return "-".join(str(v) for v in values if not is_grease(v))

        return ",".join((str(self.version), join(self.ciphers), join(self.extensions),
                         join(self.groups), join(self.formats)))

    def ja3_hash(self) -> str:
        """The MD5 of :meth:`ja3`, the usual short form."""
        return hashlib.md5(self.ja3().encode("ascii"), usedforsecurity=False).hexdigest()


class _Cursor:
    """Reads big-endian fields from a byte string; ``ValueError`` past the end."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise ValueError("truncated ClientHello")
        out = self.data[self.at: self.at + n]
        self.at += n
        return out

    def number(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, length_bytes: int) -> bytes:
        return self.take(self.number(length_bytes))


def _u16s(data: bytes) -> tuple[int, ...]:
    return tuple(int.from_bytes(data[i: i + 2], "big") for i in range(0, len(data) - 1, 2))


def _sni(data: bytes) -> str:
    names = _Cursor(_Cursor(data).vector(2))
    while names.at < len(names.data):
        kind, name = names.number(1), names.vector(2)
        if kind == 0:
            return name.decode("ascii", "replace")
    return ""


def parse_client_hello(record: bytes) -> Hello | None:
    """The fingerprint of the first TLS record of a connection; None if it is no ClientHello."""
    try:
        head = _Cursor(record)
        if head.number(1) != HANDSHAKE:
            return None
        head.take(2)
        body = _Cursor(head.vector(2))
        if body.number(1) != CLIENT_HELLO:
            return None
        hello = _Cursor(body.vector(3))
        version = hello.number(2)
        hello.take(32)  # random
        hello.vector(1)  # session id
        ciphers = _u16s(hello.vector(2))
        hello.vector(1)  # compression methods
        extensions: list[int] = []
        groups: tuple[int, ...] = ()
        formats: tuple[int, ...] = ()
        sni = ""
        if hello.at < len(hello.data):
            exts = _Cursor(hello.vector(2))
            while exts.at < len(exts.data):
                kind, data = exts.number(2), exts.vector(2)
                extensions.append(kind)
                if kind == EXT_GROUPS:
                    groups = _u16s(_Cursor(data).vector(2))
                elif kind == EXT_FORMATS:
                    formats = tuple(_Cursor(data).vector(1))
                elif kind == EXT_SNI:
                    sni = _sni(data)
    except ValueError:
        return None
    grease = any(is_grease(v) for v in (*ciphers, *extensions, *groups))
    return Hello(version, ciphers, tuple(extensions), groups, formats, sni, grease)


def is_browser_agent(headers: Mapping[str, str]) -> bool:
    """A browser's User-Agent starts ``Mozilla/5.0``; libraries send their own name or none."""
    return headers.get("user-agent", "").startswith("Mozilla/5.0")


def client_class(hello: Hello | None, headers: Mapping[str, str], *, tls: bool = False) -> str:
    """``browser`` or ``library``: a GREASE-carrying ClientHello (over TLS) and a browser
    User-Agent make a browser; anything else is a library (an unparseable hello too)."""
    if (tls or hello is not None) and (hello is None or not hello.grease):
        return "library"
    return "browser" if is_browser_agent(headers) else "library"


async def peek_hello(sock: socket.socket, timeout_s: float = HELLO_TIMEOUT_S) -> bytes:
    """The first TLS record on a new connection, read with ``MSG_PEEK`` so the handshake
    still sees it; ``b""`` when the client closes or sends nothing in time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        try:
            data = sock.recv(RECORD_HEAD + 2 ** 14, socket.MSG_PEEK)
        except BlockingIOError:
            data = None
        except OSError:
            return b""
        if data == b"":
            return b""
        if data and len(data) >= RECORD_HEAD and (
                data[0] != HANDSHAKE
                or len(data) >= RECORD_HEAD + int.from_bytes(data[3:5], "big")):
            return data
        # Nothing yet, or a record cut across segments: wait for more without spinning.
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(sock.fileno(), wake)
        try:
            await asyncio.wait_for(ready, max(0.0, deadline - loop.time()))
        except TimeoutError:
            return b""
        finally:
            loop.remove_reader(sock.fileno())
        if data:
            await asyncio.sleep(0.002)
    return b""


class TestCA:
    """A throwaway CA and a certificate for every simulated host name, loopback included.

    ``ca_bundle`` is a PEM file of the CA (for the client's CA-bundle setting), removed by
    :meth:`close`. Raises ``ConfigError`` when ``trustme`` is not installed.
    """

    __test__ = False  # not a pytest class

    def __init__(self, names: Iterable[str] = ()) -> None:
        try:
            import trustme
        except ImportError as e:
            raise ConfigError("the simulator's HTTPS needs trustme: "
                              "pip install 'boardsync[tls]' (or serve plain HTTP)") from e
        self._ca = trustme.CA(organization_name="boardsync simulator test CA")
        hosts = [real_name(h) for h in HOSTS] + list(names)
        self._cert = self._ca.issue_cert(*hosts, "localhost", "127.0.0.1")
        self._dir = tempfile.TemporaryDirectory(prefix="boardsync-sim-ca-")
        self.ca_bundle = str(Path(self._dir.name) / "ca.pem")
        self._ca.cert_pem.write_to_path(self.ca_bundle)

    def server_context(self) -> ssl.SSLContext:
        """A server context with the hosts' certificate, HTTP/1.1 only."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(ctx)
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def close(self) -> None:
        self._dir.cleanup()
