"""A fake ``clist`` upstream for the upstream tests: canned bodies and a real loopback server.

No mocks: the client talks to a tiny ``http.server`` on 127.0.0.1:0 (canned bodies, closed
connections, stalls). Stalls wait on an ``Event`` that :meth:`Upstream.close` sets, so no
test sleeps.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from boardsync.upstream import infer_market


def envelope(data: object, rc: int = 0) -> bytes:
    """A ``clist`` body with ``data`` and the metadata keys the real upstream sends."""
    return json.dumps({"rc": rc, "rt": 6, "svr": 1, "lt": 1, "full": 1, "dlmkts": "",
                       "data": data}, ensure_ascii=False).encode()


def member_rows(codes: list[str]) -> list[dict[str, Any]]:
    """Member rows as the upstream sends them (``f12`` code, ``f13`` market, ``f14`` name)."""
    return [{"f12": c, "f13": infer_market(c), "f14": f"股票{c}"} for c in codes]


@dataclass
class Reply:
    """What the canned server does: send ``status``/``body``, or ``close``/``hang``/``stall``."""

    body: bytes = b""
    status: int = 200
    action: str = "send"
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[dict[str, str]], Reply]


class Upstream:
    """A ``ThreadingHTTPServer`` on 127.0.0.1:0 answering with ``handler(query)``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.queries: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.release = threading.Event()
        upstream = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else delayed ACKs add ~40 ms per request

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                upstream.queries.append(query)
                upstream.paths.append(parts.path)
                reply = upstream.handler(query)
                if reply.action == "close":
                    self.close_connection = True
                    return
                if reply.action == "hang":
                    upstream.release.wait(5.0)
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                if reply.action == "stall":  # headers, half the body, then silence
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body[: len(reply.body) // 2])
                    self.wfile.flush()
                    upstream.release.wait(5.0)
                    self.close_connection = True
                    return
                if reply.action == "short":  # promise more bytes than sent, then close
                    self.send_header("Content-Length", str(len(reply.body) + 100))
                    self.end_headers()
                    self.wfile.write(reply.body)
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,),
                                       name="upstream", daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class P:
    """A proxy-like: key and url (None = direct)."""

    key: str
    url: str | None


DIRECT = P("direct", None)
CODES = [f"{i:06d}" for i in range(1, 231)]  # 230 members


def paged(codes: list[str], *, cap: int = 50, total: int | None = None, np_object: bool = False,
          jsonp: bool = False) -> Handler:
    """An upstream serving ``codes`` in pages of ``min(pz, cap)``; data null past the end."""

    def handler(q: dict[str, str]) -> Reply:
        size = min(int(q["pz"]), cap)
        pn = int(q["pn"])
        rows = member_rows(codes[(pn - 1) * size : pn * size])
        if not rows:
            return Reply(envelope(None))
        diff: object = {str(i): r for i, r in enumerate(rows)} if np_object else rows
        body = envelope({"total": len(codes) if total is None else total, "diff": diff})
        if jsonp:
            body = b"jQuery1123_1761565635682(" + body + b");"
        return Reply(body)

    return handler
