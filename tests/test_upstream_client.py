"""The upstream client over real loopback sockets: one request, errors translated, and the
convenience fetches (:func:`fetch_members`, :func:`fetch_board_list`) driving a pager.

No mocks: the client talks to :class:`upstream_fakes.Upstream` on 127.0.0.1:0 and to the
simulator. The pager's rules are stepped without sockets in ``test_paging.py``; here the same
rules are checked end to end once each.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from boardsync.errors import (
    BadRequest,
    Blocked,
    ConfigError,
    ConnectionFailed,
    EmptyData,
    FetchTimeout,
    HTTPStatusError,
    IncompleteData,
    InvalidResponse,
    ProxyDead,
    UpstreamError,
)
from boardsync.sim import Simulator, load_scenario
from boardsync.upstream import (
    CLIST_PATH,
    BoardListResult,
    MembersResult,
    Pager,
    Query,
    Step,
    UpstreamClient,
    board_list_query,
    fetch_board_list,
    fetch_members,
    members_query,
)
from helpers import T0, FakeClock, closed_port, pause
from upstream_fakes import CODES, DIRECT, Handler, P, Reply, Upstream, envelope, member_rows, paged


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


def client_for(up: Upstream, **kw: Any) -> UpstreamClient:
    kw.setdefault("timeout", (1.0, 2.0))
    return UpstreamClient(up.url, **kw)


def run(client: UpstreamClient, query: Query[Any], proxy: P, *,
        pace: Callable[[], None] = lambda: None,
        again: Callable[[UpstreamError, int], bool] = lambda e, n: False,
        ) -> tuple[Pager[Any], int]:
    """Drive a pager the way the worker does: pace, ask, and ask a failed page again while
    ``again(error, failures)`` says so. Returns the finished pager and the requests sent."""
    pager: Pager[Any] = Pager(query)
    sent = failures = 0
    while True:
        pace()
        sent += 1
        try:
            step = pager.take(client.get_page(query, pager.page, proxy))
        except UpstreamError as e:
            client.blame(e, proxy)
            failures += 1
            if again(e, failures):
                continue
            raise
        failures = 0
        if step is Step.DONE:
            return pager, sent
        if step is Step.INCOMPLETE:
            raise client.blame(IncompleteData(pager.reason), proxy)


def test_client_construction_validates_base_url() -> None:
    assert UpstreamClient("http://127.0.0.1:1").url == "http://127.0.0.1:1" + CLIST_PATH
    assert UpstreamClient("http://h/webguest/api/qt/clist/get").url.endswith("/webguest/api/qt/"
                                                                              "clist/get")
    assert UpstreamClient("http://u:pw@h:1").safe_url == "http://h:1" + CLIST_PATH
    with pytest.raises(ConfigError):
        UpstreamClient("ftp://h")
    with pytest.raises(ConfigError):
        UpstreamClient("http://h", page_size=0)


# --- paging end to end ----------------------------------------------------------------------


def test_pagination_uses_the_rows_the_server_returns_not_pz(serve: Any) -> None:
    up = serve(paged(CODES, cap=50))
    with client_for(up) as client:
        result = fetch_members(client, "BK0475", DIRECT)
    assert isinstance(result, MembersResult)
    assert [m.code for m in result.members] == CODES
    assert (result.total, result.requests, result.pages) == (230, 5, 5)  # ceil(230/50)
    q = up.queries[0]
    assert up.paths[0] == CLIST_PATH
    assert (q["pz"], q["po"], q["np"], q["fltt"], q["invt"], q["fid"]) == (
        "100", "1", "1", "2", "2", "f12")
    assert q["fs"] == "b:BK0475 f:!50" and q["fields"] == "f12,f13,f14" and "ut" not in q
    assert [int(q["pn"]) for q in up.queries] == [1, 2, 3, 4, 5]
    assert list(result) == list(result.members) and len(result) == 230


def test_ut_is_sent_when_set(serve: Any) -> None:
    up = serve(paged(CODES[:10]))
    with client_for(up, ut="fa5fd1943c7b386f172d6893dbfba10b") as client:
        client.get_page(members_query("BK0475"), 1, DIRECT)
    assert up.queries[0]["ut"] == "fa5fd1943c7b386f172d6893dbfba10b"


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
        result = fetch_board_list(client, "industry", DIRECT)
    assert isinstance(result, BoardListResult)
    assert [b.code for b in result.boards] == codes
    assert all(b.kind == "industry" for b in result) and result.requests == 2


def test_np_object_members_and_jsonp_members(serve: Any) -> None:
    for handler in (paged(CODES[:120], np_object=True), paged(CODES[:120], jsonp=True)):
        up = serve(handler)
        with client_for(up) as client:
            assert [m.code for m in fetch_members(client, "BK0001", DIRECT)] == CODES[:120]


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
        result = fetch_members(client, "BK0475", DIRECT)
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
        result = fetch_members(client, "BK0475", DIRECT)
    assert len(result) == 100 and result.requests == 3


def test_short_total_is_incomplete(serve: Any) -> None:
    up = serve(paged(CODES[:100], cap=50, total=120))
    with client_for(up) as client, pytest.raises(IncompleteData) as info:
        fetch_members(client, "BK0475", DIRECT)
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
        result = fetch_members(client, "BK0475", DIRECT)
    assert [m.code for m in result] == CODES[:120]
    assert seen == [1, 2, 2, 3]


def test_more_distinct_codes_than_total_is_incomplete(serve: Any) -> None:
    def handler(q: dict[str, str]) -> Reply:
        pn = int(q["pn"])
        chunk = CODES[:50] if pn == 1 else CODES[50:101]
        return Reply(envelope({"total": 100, "diff": member_rows(chunk)}))

    up = serve(handler)
    with client_for(up) as client, pytest.raises(IncompleteData):
        fetch_members(client, "BK0475", DIRECT)


def test_total_changing_while_paging_is_incomplete(serve: Any) -> None:
    def handler(q: dict[str, str]) -> Reply:
        pn = int(q["pn"])
        return Reply(envelope({"total": 100 + pn, "diff": member_rows(CODES[:50])}))

    up = serve(handler)
    with client_for(up) as client, pytest.raises(IncompleteData, match="changed"):
        fetch_members(client, "BK0475", DIRECT)


def test_data_null_on_page_1_is_empty_data_and_zero_total_is_empty(serve: Any) -> None:
    up = serve(lambda q: Reply(envelope(None)))
    with client_for(up) as client, pytest.raises(EmptyData):
        fetch_members(client, "BK0571", DIRECT)
    up2 = serve(lambda q: Reply(envelope({"total": 0, "diff": []})))
    with client_for(up2) as client:
        assert fetch_members(client, "BK0571", DIRECT).members == ()
    up3 = serve(lambda q: Reply(envelope({"total": 7, "diff": []})))
    with client_for(up3) as client, pytest.raises(EmptyData):
        fetch_members(client, "BK0571", DIRECT)


def test_absurd_page_count_is_refused(serve: Any) -> None:
    up = serve(lambda q: Reply(envelope({"total": 5000, "diff": member_rows(CODES[:1])})))
    with client_for(up) as client, pytest.raises(InvalidResponse, match="pages") as info:
        fetch_members(client, "BK0475", DIRECT, max_pages=200)
    assert info.value.proxy == "direct" and info.value.url == up.url + CLIST_PATH
    assert len(up.queries) == 1


@pytest.mark.parametrize("code", ["BK047", "bk0475", "BK0475&pz=1", "", "000001", "BK04750"])
def test_bad_board_code_never_reaches_a_url(serve: Any, code: str) -> None:
    up = serve(paged(CODES))
    with client_for(up) as client, pytest.raises(BadRequest):
        fetch_members(client, code, DIRECT)
    with client_for(up) as client, pytest.raises(BadRequest):
        fetch_board_list(client, "nope", DIRECT)
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
    with client_for(up) as client, pytest.raises(exc) as info:
        client.get_page(members_query("BK0475"), 1, P("10.0.0.9:8080", None))
    err = info.value
    assert type(err) is exc and err.error_class == error_class
    assert err.proxy == "10.0.0.9:8080" and err.url == up.url + CLIST_PATH
    assert isinstance(err.__cause__, BaseException) or isinstance(err, HTTPStatusError | (
        InvalidResponse))
    assert len(up.queries) == 1
    if isinstance(err, HTTPStatusError):
        assert err.status == reply.status
    if reply.status == 429:
        assert err.retry_after == 7.0


def test_read_timeout_before_headers(serve: Any) -> None:
    up = serve(lambda q: Reply(action="hang"))
    with client_for(up, timeout=(1.0, 0.2)) as client, pytest.raises(FetchTimeout) as info:
        fetch_members(client, "BK0475", DIRECT)
    assert info.value.__cause__ is not None


def test_read_timeout_while_the_body_streams_is_still_a_timeout(serve: Any) -> None:
    up = serve(lambda q: Reply(envelope({"total": 1, "diff": member_rows(["000001"])}),
                               action="stall"))
    with client_for(up, timeout=(1.0, 0.2)) as client, pytest.raises(FetchTimeout):
        fetch_members(client, "BK0475", DIRECT)


def test_retry_after_as_an_http_date_is_read_on_the_injected_clock(serve: Any) -> None:
    when = format_datetime(T0 + timedelta(seconds=30), usegmt=True)
    up = serve(lambda q: Reply(b"slow down", status=429, headers={"Retry-After": when}))
    with client_for(up, clock=FakeClock()) as client, pytest.raises(Blocked) as info:
        client.get_page(members_query("BK0475"), 1, DIRECT)
    assert info.value.retry_after == 30.0


def test_connection_refused_direct_is_connection_failed() -> None:
    client = UpstreamClient(f"http://127.0.0.1:{closed_port()}", timeout=(1.0, 1.0))
    with client, pytest.raises(ConnectionFailed):
        fetch_members(client, "BK0475", DIRECT)


def test_refused_proxy_is_proxy_dead_and_its_password_never_leaks(serve: Any) -> None:
    up = serve(paged(CODES))
    port = closed_port()
    proxy = P(f"127.0.0.1:{port}", f"http://user7:hunter2secret@127.0.0.1:{port}")
    with client_for(up) as client, pytest.raises(ProxyDead) as info:
        fetch_members(client, "BK0475", proxy)
    err = info.value
    assert err.proxy == f"127.0.0.1:{port}"
    assert "hunter2secret" not in str(err) and "hunter2secret" not in repr(err.args)
    assert "hunter2secret" not in (err.url or "")
    assert up.queries == []


def test_requests_go_through_the_proxy_url(serve: Any) -> None:
    """The canned server answers absolute-form proxy requests too: it *is* the proxy here."""
    up = serve(paged(CODES[:30]))
    proxy = P("gw", up.url)
    with UpstreamClient("http://upstream.invalid", timeout=(1.0, 2.0)) as client:
        result = fetch_members(client, "BK0475", proxy)
    assert len(result) == 30 and up.paths == [CLIST_PATH]


def test_sessions_ignore_the_environment_and_forget_cookies_on_a_new_ip(serve: Any) -> None:
    served: list[int] = []

    def handler(q: dict[str, str]) -> Reply:
        served.append(1)
        reply = paged(CODES[:10])(q)
        if len(served) == 1:  # only the first answer sets a cookie
            reply.headers["Set-Cookie"] = "qgqp_b_id=abc; Path=/"
        return reply

    made: list[requests.Session] = []

    def factory() -> requests.Session:
        made.append(requests.Session())
        return made[-1]

    up = serve(handler)
    query = members_query("BK0475")
    with client_for(up, session_factory=factory) as client:
        client.get_page(query, 1, P("a", None))
        assert made[0].trust_env is False and len(made[0].cookies) == 1
        client.get_page(query, 1, P("a", None))
        assert len(made[0].cookies) == 1  # the same IP keeps its cookie
        client.get_page(query, 1, P("b", None))
        assert len(made) == 1 and len(made[0].cookies) == 0


# --- a caller retrying one page in place ------------------------------------------------------


def test_a_failed_page_is_asked_again_in_place(serve: Any) -> None:
    seen: dict[int, int] = {}

    def handler(q: dict[str, str]) -> Reply:
        pn = int(q["pn"])
        seen[pn] = seen.get(pn, 0) + 1
        if pn == 3 and seen[pn] == 1:
            return Reply(action="close")
        if pn == 1 and seen[pn] == 1:
            return Reply(envelope(None))  # soft ban on page 1: EmptyData from the pager
        return paged(CODES)(q)

    up = serve(handler)
    failures: list[tuple[str, int]] = []

    def again(exc: UpstreamError, attempt: int) -> bool:
        failures.append((exc.error_class, attempt))
        return attempt < 2

    with client_for(up) as client:
        pager, sent = run(client, members_query("BK0475"), DIRECT, again=again)
    assert len(pager.items) == 230 and sent == 7
    assert failures == [("empty_data", 1), ("connection", 1)]


def test_a_page_that_keeps_failing_is_raised(serve: Any) -> None:
    up = serve(lambda q: Reply(b"x", status=502))
    attempts: list[int] = []

    def again(exc: UpstreamError, attempt: int) -> bool:
        attempts.append(attempt)
        return attempt < 3

    with client_for(up) as client, pytest.raises(HTTPStatusError):
        run(client, members_query("BK0475"), DIRECT, again=again)
    assert attempts == [1, 2, 3] and len(up.queries) == 3


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

    def again(exc: UpstreamError, attempt: int) -> bool:
        failures.append(f"{exc.error_class}:{exc.proxy}")
        return True

    with client_for(up) as client:
        pager, _ = run(client, members_query("BK0475"), P("k", None), again=again)
    assert failures == ["invalid_json:k"] and len(pager.items) == 230
    assert served == [1, 2, 2, 3, 4, 5]


def test_one_client_is_safe_to_share_between_threads(serve: Any) -> None:
    up = serve(paged(CODES, cap=50))
    results: list[int] = []
    errors: list[BaseException] = []
    with client_for(up) as client:
        def work() -> None:
            try:
                results.append(len(fetch_members(client, "BK0475", DIRECT)))
            except BaseException as e:  # noqa: BLE001 - surfaced below
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert len(client._sessions) == 4  # one session per thread
    assert errors == [] and results == [230] * 4


# --- against the simulator ------------------------------------------------------------------


def fetch_with_retries(fetch: Callable[[], Any], attempts: int = 40) -> Any:
    """Retry every upstream failure but a bad request; the simulator injects faults on purpose."""
    last: BaseException | None = None
    for _ in range(attempts):
        try:
            return fetch()
        except BadRequest:
            raise
        except UpstreamError as e:
            last = e
            pause(0.01)
    raise AssertionError(f"still failing after {attempts} attempts: {last!r}")


def test_simulator_clean_board_lists_and_members_match_truth() -> None:
    """The clean scenario bans only clients that outrun its allowance (1 req/s scaled), so
    pacing at that rate must give the truth without one error (``run`` raises the first)."""
    scale = 0.02
    scenario = load_scenario("clean")
    interval = 1.2 * scale / scenario.rate_per_s
    pace_event = threading.Event()

    def pace() -> None:
        pace_event.wait(interval)

    with Simulator(scenario, time_scale=scale, seed=7) as sim:
        truth = sim.truth()
        boards = sim.boards()
        with UpstreamClient(sim.upstream_url, timeout=(2.0, 5.0)) as client:
            listed: set[str] = set()
            for kind in sorted({b.kind for b in boards}):
                pager, _ = run(client, board_list_query(kind), DIRECT, pace=pace)
                listed |= {b.code for b in pager.items}
            assert listed == {b.code for b in boards}
            by_size = sorted(truth, key=lambda c: len(truth[c]))
            for code in {by_size[0], by_size[len(by_size) // 2], by_size[-1]}:
                pager, sent = run(client, members_query(code), DIRECT, pace=pace)
                assert {m.code for m in pager.items} == set(truth[code])
                assert sent == max(1, -(-len(truth[code]) // 100))  # pz=100 served


def test_simulator_reference_through_the_tunnel_never_leaks_credentials() -> None:
    with Simulator(load_scenario("reference"), time_scale=0.05, seed=7) as sim:
        truth = sim.truth()
        url = sim.tunnel_url
        password = urlsplit(url).password or "\x00never"
        tunnel = P(f"{urlsplit(url).hostname}:{urlsplit(url).port}", url)
        with UpstreamClient(sim.upstream_url, timeout=(2.0, 2.0)) as client:
            for code in sorted(truth)[:5]:
                def fetch(c: str = code) -> Any:
                    try:
                        return fetch_members(client, c, tunnel)
                    except UpstreamError as e:
                        assert password not in str(e) and password not in (e.url or "")
                        raise

                result = fetch_with_retries(fetch)
                assert {m.code for m in result.members} == set(truth[code])


def test_tls_verification_cannot_be_turned_off() -> None:
    with pytest.raises(ConfigError, match="CA bundle"):
        UpstreamClient("https://127.0.0.1:1", verify=False)
    assert UpstreamClient("https://127.0.0.1:1", verify="/etc/ssl/ca.pem").verify == (
        "/etc/ssl/ca.pem")
