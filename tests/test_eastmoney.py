"""The East Money client: the parser on real captures, and the client over real loopback sockets.

No mocks: the client talks to a tiny ``http.server`` started on 127.0.0.1:0 inside the test
(canned bodies, closed connections, stalls), and, once :mod:`boardsync.sim` is importable,
to the simulator. Stalls wait on an ``Event`` that teardown sets, so no test sleeps.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from boardsync.classify import classify
from boardsync.eastmoney import (
    CLIST_PATH,
    BoardListResult,
    EastMoneyClient,
    MembersResult,
    Page,
    infer_market,
    parse_board_row,
    parse_member_row,
    parse_page,
    redact_url,
)
from boardsync.errors import (
    BadRequest,
    Blocked,
    ConfigError,
    ConnectionFailed,
    EmptyData,
    FetchTimeout,
    HTTPStatusError,
    IncompleteData,
    Interrupted,
    InvalidResponse,
    ProxyDead,
    UpstreamError,
)
from boardsync.models import Board, Member

FIXTURES = Path(__file__).parent / "fixtures" / "eastmoney"
JSONP_86 = FIXTURES / "industry_board_fundflow_list_p1_of_86_jsonp_candlescyther.json"
ROW_FLTT1 = FIXTURES / "industry_board_list_row_fltt1_fundpulse.json"

try:  # the simulator is written concurrently; these tests start running once it lands
    from boardsync.sim import Simulator, load_scenario

    HAVE_SIM = True
except ImportError:
    HAVE_SIM = False
needs_sim = pytest.mark.skipif(not HAVE_SIM, reason="boardsync.sim is not importable yet")


# --- the parser on real captures --------------------------------------------------------


def test_real_jsonp_board_list_page_1_of_86() -> None:
    page = parse_page(JSONP_86.read_bytes())
    assert page.total == 86
    assert len(page.rows) == 50
    boards = [parse_board_row(row, "industry") for row in page.rows]
    assert boards[0] == Board("BK0459", "电子元件", "industry")
    assert len({b.code for b in boards}) == 50
    assert all(b.code.startswith("BK") and b.name for b in boards)


def test_real_fltt1_row_parses_by_key_not_position() -> None:
    row = json.loads(ROW_FLTT1.read_text(encoding="utf-8"))
    # f140/f141 come before f136 in server order: a positional parser would be wrong here.
    assert list(row).index("f140") < list(row).index("f136")
    assert parse_board_row(row, "industry") == Board("BK0457", "电网设备", "industry")
    shuffled = dict(reversed(list(row.items())))
    assert parse_board_row(shuffled, "industry") == Board("BK0457", "电网设备", "industry")


def test_real_capture_as_plain_json_and_with_whitespace_around_jsonp() -> None:
    raw = JSONP_86.read_text(encoding="utf-8")
    inner = raw[raw.index("(") + 1 : raw.rindex(")")]
    assert parse_page(inner.encode()).total == 86
    spaced = "  \n" + raw.replace("(", " (", 1) + " \r\n"
    assert len(parse_page(spaced.encode()).rows) == 50
    no_semicolon = raw.rstrip().removesuffix(";")
    assert parse_page(no_semicolon.encode()).total == 86
    assert parse_page(("\ufeff" + raw).encode()).total == 86  # a BOM is tolerated


# --- the parser on synthetic pages --------------------------------------------------------


def envelope(data: object, rc: int = 0) -> bytes:
    return json.dumps({"rc": rc, "rt": 6, "svr": 1, "lt": 1, "full": 1, "dlmkts": "",
                       "data": data}, ensure_ascii=False).encode()


def member_rows(codes: list[str]) -> list[dict[str, Any]]:
    return [{"f12": c, "f13": infer_market(c), "f14": f"股票{c}"} for c in codes]


def test_diff_as_object_is_ordered_by_integer_key() -> None:
    rows = member_rows(["000001", "000002", "600000"] + [f"3000{i:02d}" for i in range(9)])
    diff = {str(i): row for i, row in enumerate(rows)}
    shuffled = dict(sorted(diff.items()))  # "0","1","10","11","2",... lexicographic
    page = parse_page(envelope({"total": 12, "diff": shuffled}))
    assert [r["f12"] for r in page.rows] == [r["f12"] for r in rows]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   \n",
        b"<html><body>verify</body></html>",
        b'{"rc":0,"data":{"total":5,"diff":[{"f12":"000001"',  # truncated
        b"\xff\xfe\x00garbage",
        b"[1,2,3]",
        b'{"rc":0}',
        b'{"rc":"0","data":null}',
        b'{"rc":0,"data":[]}',
        b'{"rc":0,"data":{"total":-1,"diff":[]}}',
        b'{"rc":0,"data":{"total":100001,"diff":[]}}',
        b'{"rc":0,"data":{"total":"86","diff":[]}}',
        b'{"rc":0,"data":{"total":8.6,"diff":[]}}',
        b'{"rc":0,"data":{"total":true,"diff":[]}}',
        b'{"rc":0,"data":{"diff":[]}}',
        b'{"rc":0,"data":{"total":1,"diff":"x"}}',
        b'{"rc":0,"data":{"total":1,"diff":[1]}}',
        b'{"rc":0,"data":{"total":1,"diff":{"a":{}}}}',
        b'{"rc":102,"data":{"total":1,"diff":[]}}',
        b'cb({"rc":0,"data":null}) trailing',
        b'cb({"rc":0,"data":null}',
        b"[" * 100_000,
    ],
)
def test_malformed_bodies_are_invalid_response(body: bytes) -> None:
    with pytest.raises(InvalidResponse):
        parse_page(body)


def test_data_null_and_rc_nonzero_with_null_data() -> None:
    assert parse_page(envelope(None)) == Page(total=None, rows=())
    assert parse_page(envelope(None, rc=102)) == Page(total=None, rows=(), rc=102)
    assert parse_page(envelope({"total": 0, "diff": None})) == Page(total=0, rows=())


def test_member_row_tolerates_dashes_and_infers_market() -> None:
    assert parse_member_row({"f12": "600519", "f13": "-", "f14": "贵州茅台"}) == Member(
        "600519", "贵州茅台", 1)
    assert parse_member_row({"f12": "000001", "f14": "-"}) == Member("000001", "-", 0)
    assert parse_member_row({"f12": "920106", "f13": 0, "f14": None}) == Member("920106", "-", 0)
    assert parse_member_row({"f12": "300750", "f13": "0", "f14": " 宁德时代 "}).name == "宁德时代"
    assert infer_market("688981") == 1 and infer_market("900901") == 1
    assert infer_market("830799") == 0 and infer_market("002594") == 0


@pytest.mark.parametrize(
    "row",
    [
        None,
        [],
        {},
        {"f12": 1, "f14": "x"},  # integer code: leading zeros already lost
        {"f12": "60051", "f14": "x"},
        {"f12": "BK0475", "f14": "x"},
        {"f12": "600519", "f14": 5},
        {"f12": "600519", "f14": "a\x00b"},
        {"f12": "600519", "f13": True},
        {"f12": "600519", "f13": -1},
        {"f12": "600519", "f13": [1]},
    ],
)
def test_bad_member_rows_are_invalid_response(row: object) -> None:
    with pytest.raises(InvalidResponse):
        parse_member_row(row)


def test_board_row_validation() -> None:
    with pytest.raises(InvalidResponse):
        parse_board_row({"f12": "600519", "f14": "x"}, "industry")
    with pytest.raises(BadRequest):
        parse_board_row({"f12": "BK0475", "f14": "银行"}, "sector")
    assert parse_board_row({"f12": "BK0475", "f14": "-"}, "concept") == Board(
        "BK0475", "-", "concept")


def test_board_size_hint_from_rising_and_falling_counts() -> None:
    row = json.loads(ROW_FLTT1.read_text(encoding="utf-8"))
    assert parse_board_row(row, "industry").size_hint == 118 + 21
    base = {"f12": "BK0475", "f14": "银行"}
    assert parse_board_row(base | {"f104": 30, "f105": 12}, "industry").size_hint == 42
    # Only a scheduling hint: odd values are ignored, never an error.
    for odd in ({}, {"f104": "-", "f105": "-"}, {"f104": 3}, {"f104": True, "f105": 1},
                {"f104": -1, "f105": 5}, {"f104": 2.5, "f105": 1}, {"f104": 10**9, "f105": 0}):
        assert parse_board_row(base | odd, "industry").size_hint is None, odd


def test_redact_url_strips_userinfo() -> None:
    assert redact_url("http://u:secret@10.0.0.1:8080/x?q=1") == "http://10.0.0.1:8080/x?q=1"
    assert redact_url("https://push2.eastmoney.com") == "https://push2.eastmoney.com"


def test_client_construction_validates_base_url() -> None:
    assert EastMoneyClient("http://127.0.0.1:1").url == "http://127.0.0.1:1" + CLIST_PATH
    assert EastMoneyClient("http://h/webguest/api/qt/clist/get").url.endswith("/webguest/api/qt/"
                                                                               "clist/get")
    with pytest.raises(ConfigError):
        EastMoneyClient("ftp://h")
    with pytest.raises(ConfigError):
        EastMoneyClient("http://h", page_size=0)


# --- a real loopback upstream ----------------------------------------------------------------


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


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], Upstream]]:
    started: list[Upstream] = []

    def start(handler: Handler) -> Upstream:
        up = Upstream(handler)
        started.append(up)
        return up

    yield start
    for up in started:
        up.close()


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


def client_for(up: Upstream, **kw: Any) -> EastMoneyClient:
    kw.setdefault("timeout", (1.0, 2.0))
    return EastMoneyClient(up.url, **kw)


def test_pagination_uses_the_rows_the_server_returns_not_pz(serve: Any) -> None:
    up = serve(paged(CODES, cap=50))
    calls: list[tuple[float, str | None]] = []
    paced: list[int] = []
    with client_for(up, on_request=lambda lat, ec: calls.append((lat, ec))) as client:
        result = client.fetch_members("BK0475", DIRECT, before_request=lambda: paced.append(1))
    assert isinstance(result, MembersResult)
    assert [m.code for m in result.members] == CODES
    assert (result.total, result.requests, result.pages) == (230, 5, 5)  # ceil(230/50)
    assert len(paced) == 5 and len(calls) == 5 and all(ec is None for _, ec in calls)
    q = up.queries[0]
    assert up.paths[0] == CLIST_PATH
    assert (q["pz"], q["po"], q["np"], q["fltt"], q["invt"], q["fid"]) == (
        "100", "1", "1", "2", "2", "f12")
    assert q["fs"] == "b:BK0475 f:!50" and q["fields"] == "f12,f13,f14"
    assert [int(q["pn"]) for q in up.queries] == [1, 2, 3, 4, 5]
    assert list(result) == list(result.members) and len(result) == 230


def test_board_list_np_object_and_jsonp(serve: Any) -> None:
    codes = [f"BK{i:04d}" for i in range(400, 486)]  # 86 industry boards

    def handler(q: dict[str, str]) -> Reply:
        assert q["fs"] == "m:90 t:2 f:!50"
        pn = int(q["pn"])
        rows = [{"f12": c, "f13": 90, "f14": f"板块{c}", "f2": "-", "f3": 1.2}
                for c in codes[(pn - 1) * 50 : pn * 50]]
        body = envelope({"total": 86, "diff": {str(i): r for i, r in enumerate(rows)}})
        return Reply(b"cb_1(" + body + b") ;\n")

    up = serve(handler)
    with client_for(up) as client:
        result = client.fetch_board_list("industry", DIRECT)
    assert isinstance(result, BoardListResult)
    assert [b.code for b in result.boards] == codes
    assert all(b.kind == "industry" for b in result) and result.requests == 2


def test_np_object_members_and_jsonp_members(serve: Any) -> None:
    for handler in (paged(CODES[:120], np_object=True), paged(CODES[:120], jsonp=True)):
        up = serve(handler)
        with client_for(up) as client:
            assert [m.code for m in client.fetch_members("BK0001", DIRECT)] == CODES[:120]


def test_duplicates_across_pages_are_dropped(serve: Any) -> None:
    def handler(q: dict[str, str]) -> Reply:
        pn = int(q["pn"])
        if pn == 1:
            rows = member_rows(CODES[:50])
        elif pn == 2:  # rows shifted: 3 repeats from page 1 and the last 50
            rows = member_rows(CODES[:3] + CODES[50:100])
        else:
            return Reply(envelope(None))
        return Reply(envelope({"total": 100, "diff": rows}))

    up = serve(handler)
    with client_for(up) as client:
        result = client.fetch_members("BK0475", DIRECT)
    assert [m.code for m in result] == CODES[:100]
    assert result.requests == 2


def test_shifted_rows_are_recovered_by_one_extra_page(serve: Any) -> None:
    def handler(q: dict[str, str]) -> Reply:
        pn = int(q["pn"])
        chunks = {1: CODES[:50], 2: CODES[45:95], 3: CODES[95:100]}
        if pn not in chunks:
            return Reply(envelope(None))
        return Reply(envelope({"total": 100, "diff": member_rows(chunks[pn])}))

    up = serve(handler)
    with client_for(up) as client:
        result = client.fetch_members("BK0475", DIRECT)
    assert len(result) == 100 and result.requests == 3


def test_short_total_is_incomplete(serve: Any) -> None:
    up = serve(paged(CODES[:100], cap=50, total=120))
    with client_for(up) as client, pytest.raises(IncompleteData) as info:
        client.fetch_members("BK0475", DIRECT)
    assert "100 distinct codes" in str(info.value) and info.value.proxy == "direct"
    # page 3 was due (ceil(120 / 50)) and came back null: asked once more, then the end
    assert [int(q["pn"]) for q in up.queries] == [1, 2, 3, 3]


def test_one_null_page_mid_paging_is_asked_again_not_the_whole_board(serve: Any) -> None:
    """The upstream's rare ``data: null`` on a page that must hold rows costs one request."""
    seen: list[int] = []
    pages = paged(CODES[:120], cap=50)

    def handler(q: dict[str, str]) -> Reply:
        seen.append(int(q["pn"]))
        if seen == [1, 2]:
            return Reply(envelope(None))
        return pages(q)

    up = serve(handler)
    with client_for(up) as client:
        result = client.fetch_members("BK0475", DIRECT)
    assert [m.code for m in result] == CODES[:120]
    assert seen == [1, 2, 2, 3]


def test_more_distinct_codes_than_total_is_incomplete(serve: Any) -> None:
    def handler(q: dict[str, str]) -> Reply:
        pn = int(q["pn"])
        chunk = CODES[:50] if pn == 1 else CODES[50:101]
        return Reply(envelope({"total": 100, "diff": member_rows(chunk)}))

    up = serve(handler)
    with client_for(up) as client, pytest.raises(IncompleteData):
        client.fetch_members("BK0475", DIRECT)


def test_total_changing_while_paging_is_incomplete(serve: Any) -> None:
    def handler(q: dict[str, str]) -> Reply:
        pn = int(q["pn"])
        return Reply(envelope({"total": 100 + pn, "diff": member_rows(CODES[:50])}))

    up = serve(handler)
    with client_for(up) as client, pytest.raises(IncompleteData, match="changed"):
        client.fetch_members("BK0475", DIRECT)


def test_data_null_on_page_1_is_empty_data_and_zero_total_is_empty(serve: Any) -> None:
    up = serve(lambda q: Reply(envelope(None)))
    with client_for(up) as client, pytest.raises(EmptyData):
        client.fetch_members("BK0571", DIRECT)
    up2 = serve(lambda q: Reply(envelope({"total": 0, "diff": []})))
    with client_for(up2) as client:
        assert client.fetch_members("BK0571", DIRECT).members == ()
    up3 = serve(lambda q: Reply(envelope({"total": 7, "diff": []})))
    with client_for(up3) as client, pytest.raises(EmptyData):
        client.fetch_members("BK0571", DIRECT)


def test_absurd_page_count_is_refused(serve: Any) -> None:
    up = serve(lambda q: Reply(envelope({"total": 5000, "diff": member_rows(CODES[:1])})))
    with client_for(up, max_pages=200) as client, pytest.raises(InvalidResponse, match="pages"):
        client.fetch_members("BK0475", DIRECT)
    assert len(up.queries) == 1


@pytest.mark.parametrize("code", ["BK047", "bk0475", "BK0475&pz=1", "", "000001", "BK04750"])
def test_bad_board_code_never_reaches_a_url(serve: Any, code: str) -> None:
    up = serve(paged(CODES))
    with client_for(up) as client, pytest.raises(BadRequest):
        client.fetch_members(code, DIRECT)
    with client_for(up) as client, pytest.raises(BadRequest):
        client.fetch_board_list("nope", DIRECT)
    assert up.queries == []


@pytest.mark.parametrize(
    ("reply", "exc", "error_class"),
    [
        (Reply(b"<html>denied</html>", status=403), Blocked, "blocked"),
        (Reply(b"slow down", status=429, headers={"Retry-After": "7"}), Blocked, "blocked"),
        (Reply(b"bad gateway", status=502), HTTPStatusError, "http_status"),
        (Reply(b"", status=302, headers={"Location": "http://x/captcha"}), HTTPStatusError,
         "http_status"),
        (Reply(b"<!DOCTYPE html><html>verify</html>"), InvalidResponse, "invalid_json"),
        (Reply(b'{"rc":0,"data":{"total":3,"diff":[{"f12":'), InvalidResponse, "invalid_json"),
        (Reply(b""), InvalidResponse, "invalid_json"),
        (Reply(b"not gzip at all", headers={"Content-Encoding": "gzip"}), InvalidResponse,
         "invalid_json"),
        (Reply(action="close"), ConnectionFailed, "connection"),
        (Reply(b'{"rc":0,"data":null}', action="short"), ConnectionFailed, "connection"),
    ],
)
def test_failures_are_translated(serve: Any, reply: Reply, exc: type[UpstreamError],
                                 error_class: str) -> None:
    up = serve(lambda q: reply)
    calls: list[str | None] = []
    with client_for(up, on_request=lambda lat, ec: calls.append(ec)) as client:
        with pytest.raises(exc) as info:
            client.fetch_members("BK0475", P("10.0.0.9:8080", None))
    err = info.value
    assert type(err) is exc and err.error_class == error_class
    assert err.proxy == "10.0.0.9:8080" and err.url == up.url + CLIST_PATH
    assert isinstance(err.__cause__, BaseException) or isinstance(err, HTTPStatusError | (
        InvalidResponse))
    assert calls == [error_class]
    if isinstance(err, HTTPStatusError):
        assert err.status == reply.status
    if reply.status == 429:
        assert err.retry_after == 7.0


def test_read_timeout_before_headers(serve: Any) -> None:
    up = serve(lambda q: Reply(action="hang"))
    with client_for(up, timeout=(1.0, 0.2)) as client, pytest.raises(FetchTimeout) as info:
        client.fetch_members("BK0475", DIRECT)
    assert info.value.__cause__ is not None


def test_read_timeout_while_the_body_streams_is_still_a_timeout(serve: Any) -> None:
    up = serve(lambda q: Reply(envelope({"total": 1, "diff": member_rows(["000001"])}),
                               action="stall"))
    with client_for(up, timeout=(1.0, 0.2)) as client, pytest.raises(FetchTimeout):
        client.fetch_members("BK0475", DIRECT)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused_direct_is_connection_failed() -> None:
    client = EastMoneyClient(f"http://127.0.0.1:{closed_port()}", timeout=(1.0, 1.0))
    with client, pytest.raises(ConnectionFailed):
        client.fetch_members("BK0475", DIRECT)


def test_refused_proxy_is_proxy_dead_and_its_password_never_leaks(serve: Any) -> None:
    up = serve(paged(CODES))
    port = closed_port()
    proxy = P(f"127.0.0.1:{port}", f"http://user7:hunter2secret@127.0.0.1:{port}")
    with client_for(up) as client, pytest.raises(ProxyDead) as info:
        client.fetch_members("BK0475", proxy)
    err = info.value
    assert err.proxy == f"127.0.0.1:{port}" and classify(err)[1].rotate
    assert "hunter2secret" not in str(err) and "hunter2secret" not in repr(err.args)
    assert "hunter2secret" not in (err.url or "")
    assert up.queries == []


def test_requests_go_through_the_proxy_url(serve: Any) -> None:
    """The canned server answers absolute-form proxy requests too: it *is* the proxy here."""
    up = serve(paged(CODES[:30]))
    proxy = P("gw", up.url)
    with EastMoneyClient("http://upstream.invalid", timeout=(1.0, 2.0)) as client:
        result = client.fetch_members("BK0475", proxy)
    assert len(result) == 30 and up.paths == [CLIST_PATH]


def test_before_request_errors_propagate_untouched(serve: Any) -> None:
    up = serve(paged(CODES))
    n = 0

    def pace() -> None:
        nonlocal n
        n += 1
        if n == 3:
            raise Interrupted("stop requested")

    with client_for(up) as client, pytest.raises(Interrupted):
        client.fetch_members("BK0475", DIRECT, before_request=pace)
    assert len(up.queries) == 2


def test_page_failed_retries_one_page_in_place(serve: Any) -> None:
    seen: dict[int, int] = {}

    def handler(q: dict[str, str]) -> Reply:
        pn = int(q["pn"])
        seen[pn] = seen.get(pn, 0) + 1
        if pn == 3 and seen[pn] == 1:
            return Reply(action="close")
        if pn == 1 and seen[pn] == 1:
            return Reply(envelope(None))  # soft ban on page 1: EmptyData goes through the hook
        return paged(CODES)(q)

    up = serve(handler)
    failures: list[tuple[str, int]] = []

    def page_failed(exc: UpstreamError, attempt: int) -> bool:
        failures.append((exc.error_class, attempt))
        return attempt < 2

    with client_for(up) as client:
        result = client.fetch_members("BK0475", DIRECT, page_failed=page_failed)
    assert len(result) == 230 and result.requests == 7
    assert failures == [("empty_data", 1), ("connection", 1)]


def test_page_failed_false_reraises(serve: Any) -> None:
    up = serve(lambda q: Reply(b"x", status=502))
    attempts: list[int] = []
    with client_for(up) as client, pytest.raises(HTTPStatusError):
        client.fetch_members("BK0475", DIRECT,
                             page_failed=lambda e, a: attempts.append(a) or a < 3)
    assert attempts == [1, 2, 3] and len(up.queries) == 3


def test_a_failing_metrics_hook_does_not_break_the_fetch(serve: Any) -> None:
    up = serve(paged(CODES[:10]))

    def hook(latency: float, error_class: str | None) -> None:
        raise RuntimeError("metrics down")

    with client_for(up, on_request=hook) as client:
        assert len(client.fetch_members("BK0475", DIRECT)) == 10


def test_one_client_is_safe_to_share_between_threads(serve: Any) -> None:
    up = serve(paged(CODES, cap=50))
    results: list[int] = []
    errors: list[BaseException] = []
    with client_for(up) as client:
        def work() -> None:
            try:
                results.append(len(client.fetch_members("BK0475", DIRECT)))
            except BaseException as e:  # noqa: BLE001 - surfaced below
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert len(client._sessions) == 4  # one session per thread
    assert errors == [] and results == [230] * 4


# --- against the simulator (once boardsync.sim lands) ---------------------------------------


def fetch_with_retries(fetch: Callable[[], Any], attempts: int = 40) -> Any:
    """Retry what the classifier says to retry; the simulator injects faults on purpose."""
    last: BaseException | None = None
    for _ in range(attempts):
        try:
            return fetch()
        except UpstreamError as e:
            last = e
            if not classify(e)[1].retry:
                raise
            threading.Event().wait(0.01)
    raise AssertionError(f"still failing after {attempts} attempts: {last!r}")


@needs_sim
def test_simulator_clean_board_lists_and_members_match_truth() -> None:
    """The clean scenario bans only clients that outrun its allowance (1 req/s scaled), so
    pacing at that rate through ``before_request`` must give the truth without one error."""
    scale = 0.02
    scenario = load_scenario("clean")
    interval = 1.2 * scale / scenario.rate_per_s
    errors_seen: list[str] = []
    with Simulator(scenario, time_scale=scale, seed=7) as sim:
        truth = sim.truth()
        boards = sim.boards()
        pace = threading.Event()

        def before_request() -> None:
            pace.wait(interval)

        def hook(latency: float, error_class: str | None) -> None:
            if error_class:
                errors_seen.append(error_class)

        with EastMoneyClient(sim.upstream_url, timeout=(2.0, 5.0), on_request=hook) as client:
            listed: set[str] = set()
            for kind in sorted({b.kind for b in boards}):
                result = client.fetch_board_list(kind, DIRECT, before_request=before_request)
                listed |= {b.code for b in result.boards}
            assert listed == {b.code for b in boards}
            by_size = sorted(truth, key=lambda c: len(truth[c]))
            for code in {by_size[0], by_size[len(by_size) // 2], by_size[-1]}:
                result = client.fetch_members(code, DIRECT, before_request=before_request)
                assert {m.code for m in result.members} == set(truth[code])
                assert result.requests == max(1, -(-len(truth[code]) // 100))  # pz=100 served
    assert errors_seen == []


@needs_sim
def test_simulator_reference_through_the_tunnel_never_leaks_credentials() -> None:
    with Simulator(load_scenario("reference"), time_scale=0.05, seed=7) as sim:
        truth = sim.truth()
        url = sim.tunnel_url
        password = urlsplit(url).password or "\x00never"
        tunnel = P(f"{urlsplit(url).hostname}:{urlsplit(url).port}", url)
        seen: list[str] = []

        def hook(latency: float, error_class: str | None) -> None:
            seen.append(error_class or "ok")

        with EastMoneyClient(sim.upstream_url, timeout=(2.0, 2.0), on_request=hook) as client:
            for code in sorted(truth)[:5]:
                def fetch(c: str = code) -> Any:
                    try:
                        return client.fetch_members(c, tunnel)
                    except UpstreamError as e:
                        assert password not in str(e) and password not in (e.url or "")
                        raise

                result = fetch_with_retries(fetch)
                assert {m.code for m in result.members} == set(truth[code])
        assert "ok" in seen


def test_a_garbled_row_is_a_page_failure_retried_in_place(serve: Any) -> None:
    served: list[int] = []

    def handler(q: dict[str, str]) -> Reply:
        pn = int(q["pn"])
        served.append(pn)
        if pn == 2 and served.count(2) == 1:
            rows = member_rows(CODES[50:99]) + [{"f12": 600000, "f14": "lost zeros"}]
            return Reply(envelope({"total": 230, "diff": rows}))
        return paged(CODES)(q)

    up = serve(handler)
    failures: list[str] = []
    with client_for(up) as client:
        result = client.fetch_members(
            "BK0475", P("k", None),
            page_failed=lambda e, a: failures.append(f"{e.error_class}:{e.proxy}") or True)
    assert failures == ["invalid_json:k"] and len(result) == 230
    assert served == [1, 2, 2, 3, 4, 5]
