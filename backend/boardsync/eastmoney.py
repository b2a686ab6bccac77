"""The East Money push2 ``clist`` client: one HTTP boundary and a pure page parser.

Why it is shaped like this:

* :func:`parse_page`, :func:`parse_board_row` and :func:`parse_member_row` are pure, so the
  parser is tested on real captures and fuzzed with arbitrary bytes; anything malformed is an
  :class:`~boardsync.errors.InvalidResponse`, never a ``KeyError``/``TypeError``.
* :class:`EastMoneyClient` is the only place that touches ``requests``. Every
  ``requests``/``urllib3`` exception is translated here (``raise ... from e``), so the rest of
  boardsync only sees :mod:`boardsync.errors` classes and one classifier decides what to do.

Decisions:

* **Return type.** ``fetch_board_list`` returns :class:`BoardListResult` and ``fetch_members``
  returns :class:`MembersResult` instead of a bare list: both carry the items (``.boards`` /
  ``.members``), the ``total`` the server announced, and ``requests``/``pages`` made, so the
  caller can count requests per board. Both iterate and ``len()`` like the list the
  architecture contract names, so ``list(result)`` still works.
* **Hooks.** ``before_request()`` runs before every HTTP request (the worker's pacing);
  ``page_failed(error, attempt) -> bool`` lets the caller retry one failed page in place
  (after evicting the IP, say) instead of restarting the board; ``on_request(latency_s,
  error_class)`` (set at construction) sees every request, for metrics.
* **Empty body with HTTP 200** is :class:`InvalidResponse` (the HTTP exchange completed; the
  body is what is wrong). An empty *reply* (connection closed before any status line) is
  :class:`ConnectionFailed`. Both rotate the IP and retry, so the choice only affects metrics.
* **``rc != 0``.** With ``data: null`` it is read like ``data: null`` (sibling push2
  endpoints answer ``rc=102, data=null`` for unknown codes, so a deleted board may look like
  this); with non-null data it is :class:`InvalidResponse`. A missing ``rc`` counts as 0 (only
  ``data`` is required: we do not validate undocumented metadata).
* **Market ``f13`` of ``"-"``/missing** is inferred from the code: ``6xxxxx`` and ``900xxx``
  are Shanghai (1); everything else (Shenzhen 0/3/2xxxxx, Beijing 4/8/92xxxx) is 0, which is
  exactly East Money's own ``f13`` split (0 = SZ and BJ, 1 = SH).
* **Names of ``"-"``** are kept verbatim (it is what the upstream shows); a missing or null
  name becomes ``"-"`` too. A name containing NUL is rejected (PostgreSQL text cannot store
  it, and it is never a real name).
* **Counts.** Rows are de-duplicated by code (first occurrence wins). Fewer distinct codes than
  ``data.total`` is :class:`IncompleteData`. More distinct codes than ``total`` is also
  :class:`IncompleteData`: duplicates in the raw rows are expected (rows can shift between
  pages) and are why raw count > total is fine, but more *distinct* codes than the server
  says exist means the membership changed while we paged, so the snapshot is not trustworthy
  and the board is retried whole. A ``total`` that changes between pages is
  :class:`IncompleteData` for the same reason.
* **Over-reported totals.** If the planned pages leave us short and the last page was full,
  up to ``extra_pages`` more pages are fetched until an empty page (what stock-sdk does when
  rows are fewer than ``total``); still short -> :class:`IncompleteData`.
* **Page budget.** A server returning tiny pages with a huge total could make us send
  thousands of requests from one IP; more than ``max_pages`` pages is
  :class:`InvalidResponse` (default 200: the largest board, ~3,700 members, is 37 pages at 100
  rows and 74 at a 50-row cap).
* **Timeouts.** ``timeout=(connect, read)``; the read timeout is per socket read, so a
  server that stalls mid-body is a :class:`FetchTimeout` too (requests reports that one as a
  ``ConnectionError`` wrapping urllib3's ``ReadTimeoutError``; we look through it).
* **Redirects are not followed** (a redirect to a verification page is a block symptom, and
  following it could leave the configured host): 3xx is :class:`HTTPStatusError`.
* **Sessions** are thread-local (one per thread per client), with ``trust_env = False`` so
  ``HTTP(S)_PROXY`` from the environment can never silently route a "direct" request, and
  cookies are cleared whenever the proxy key changes so no cookie links two IPs.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3.exceptions

from .errors import (
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
from .models import KIND_FILTERS, Board, Member, is_board_code, is_stock_code, member_filter

logger = logging.getLogger(__name__)

#: Path of the list endpoint, appended to a base URL that has no path of its own.
CLIST_PATH = "/api/qt/clist/get"
DEFAULT_BASE_URL = "https://push2.eastmoney.com"
#: A current desktop browser; the upstream has been reported to check headers (akshare #7015).
DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/128.0.0.0 Safari/537.36"
)
DEFAULT_REFERER = "https://quote.eastmoney.com/"
#: Page size we ask for; the server silently caps it at 100 (or lower), see ``fetch_*``.
DEFAULT_PAGE_SIZE = 100
#: A ``data.total`` above this is absurd (all A-shares are ~5,500; boards < 1,000).
MAX_TOTAL = 100_000
#: Default bound on pages per fetch (see the module docstring, "Page budget").
DEFAULT_MAX_PAGES = 200
MEMBER_FIELDS = "f12,f13,f14"
BOARD_FIELDS = "f12,f13,f14,f2,f3,f104,f105,f124"

_JSONP_RE = re.compile(r"^[A-Za-z_$][\w$.]*\s*\(")
_USERINFO_RE = re.compile(r"(?<=//)[^/@\s]+@")


# --- parsing (pure) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page:
    """One decoded ``clist`` page.

    ``total is None`` means ``data`` was null (unknown/deleted board, past the last page, or
    a soft ban); ``rows`` are the raw ``diff`` dicts in server order. ``rc`` is kept for logs.
    """

    total: int | None
    rows: tuple[dict[str, Any], ...]
    rc: int = 0


def _invalid(message: str) -> InvalidResponse:
    return InvalidResponse(message)


def _strip_jsonp(text: str) -> str:
    """``cb({...});`` -> ``{...}``: from the first ``(`` to the *last* ``)``.

    The last ``)``, not the first, because names may contain ``)``; only whitespace and one
    optional ``;`` may follow it.
    """
    match = _JSONP_RE.match(text)
    if match is None:
        return text
    end = text.rfind(")")
    if end < match.end():
        raise _invalid("JSONP callback without a closing parenthesis")
    tail = text[end + 1 :].strip()
    if tail not in ("", ";"):
        raise _invalid("unexpected text after the JSONP callback")
    return text[match.end() : end]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_count(value: object) -> bool:
    """An integer in ``[0, MAX_TOTAL]``: what a row or member count can sanely be."""
    return _is_int(value) and 0 <= value <= MAX_TOTAL  # type: ignore[operator]


def parse_page(body: bytes) -> Page:
    """Decode one ``clist`` response body (plain JSON or JSONP) into a :class:`Page`.

    Args:
        body: the raw HTTP body. ``str`` is accepted too (tests, the simulator).

    Returns:
        ``Page(total=None, rows=())`` when ``data`` is null; otherwise the total and the rows,
        with ``diff`` given either as a list (``np=1``) or as an object keyed ``"0"``,
        ``"1"``, ... (``np=2``/no ``np``), which is ordered by the integer key.

    Raises:
        InvalidResponse: empty, non-UTF-8, HTML, truncated or non-JSON bodies; a non-object
            envelope; a missing ``data``; ``rc`` or ``total`` of the wrong type; a negative
            total or one above :data:`MAX_TOTAL`; ``diff`` or rows of the wrong shape.
    """
    if isinstance(body, str):
        text = body
    elif isinstance(body, bytes | bytearray | memoryview):
        try:
            text = bytes(body).decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise _invalid(f"body is not UTF-8: {e.reason} at byte {e.start}") from e
    else:
        raise _invalid(f"body must be bytes, not {type(body).__name__}")
    text = text.strip()
    if not text:
        raise _invalid("empty body")
    if text[0] == "<":
        raise _invalid(f"HTML instead of JSON: {text[:60]!r}")
    text = _strip_jsonp(text).strip()
    try:
        envelope = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise _invalid(f"body is not JSON ({type(e).__name__}): {text[:60]!r}") from e
    if not isinstance(envelope, dict):
        raise _invalid(f"envelope is a {type(envelope).__name__}, not an object")
    rc = envelope.get("rc", 0)
    if not _is_int(rc):
        raise _invalid(f"rc is not an integer: {rc!r}"[:120])
    if "data" not in envelope:
        raise _invalid("envelope has no 'data'")
    data = envelope["data"]
    if data is None:
        return Page(total=None, rows=(), rc=rc)
    if rc != 0:
        raise _invalid(f"rc={rc} with non-null data")
    if not isinstance(data, dict):
        raise _invalid(f"data is a {type(data).__name__}, not an object")
    total = data.get("total")
    if not _is_int(total):
        raise _invalid(f"data.total is not an integer: {total!r}"[:120])
    if not _is_count(total):
        raise _invalid(f"data.total out of range: {total}")
    return Page(total=total, rows=_parse_diff(data.get("diff")), rc=rc)


def _parse_diff(diff: object) -> tuple[dict[str, Any], ...]:
    """``diff`` as a list, or as ``{"0": row, "1": row, ...}`` ordered by int key; null = ()."""
    if diff is None:
        return ()
    if isinstance(diff, list):
        rows = diff
    elif isinstance(diff, dict):
        keyed: list[tuple[int, object]] = []
        for key, row in diff.items():
            if not (key.isascii() and key.isdigit()) or len(key) > 9:
                raise _invalid(f"data.diff object key is not an index: {key[:20]!r}")
            keyed.append((int(key), row))
        keyed.sort(key=lambda item: item[0])
        rows = [row for _, row in keyed]
    else:
        raise _invalid(f"data.diff is a {type(diff).__name__}, not a list or object")
    for row in rows:
        if not isinstance(row, dict):
            raise _invalid(f"data.diff row is a {type(row).__name__}, not an object")
    return tuple(rows)


def _parse_name(row: Mapping[str, Any]) -> str:
    """``f14``: kept verbatim (``"-"`` included); missing/null -> ``"-"``; NUL rejected."""
    name = row.get("f14")
    if name is None:
        return "-"
    if not isinstance(name, str):
        raise _invalid(f"name f14 is not a string: {name!r}"[:120])
    name = name.strip()
    if "\x00" in name:
        raise _invalid("name f14 contains NUL")
    return name or "-"


def infer_market(code: str) -> int:
    """East Money market id from a 6-digit code: 1 (Shanghai) for 6xxxxx/900xxx, else 0.

    0 covers Shenzhen and Beijing, as in the upstream's own ``f13``.
    """
    return 1 if code.startswith("6") or code.startswith("900") else 0


def _parse_market(value: object, code: str) -> int:
    """``f13``: an int 0..999 (or its digit string); ``"-"``/missing -> inferred from code."""
    if value is None or value == "-" or value == "":
        return infer_market(code)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 3:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 999:
        return value
    raise _invalid(f"market f13 is not a market id: {value!r}"[:120])


def parse_member_row(row: object) -> Member:
    """One constituent row -> :class:`Member`, by key (``f12`` code, ``f14`` name, ``f13``).

    Raises:
        InvalidResponse: the row is not an object, the code is not 6 digits (an integer code
            is rejected: its leading zeros are already lost), or the name/market is malformed.
    """
    if not isinstance(row, Mapping):
        raise _invalid(f"member row is a {type(row).__name__}, not an object")
    code = row.get("f12")
    if not is_stock_code(code):
        raise _invalid(f"member code f12 is not a 6-digit string: {code!r}"[:120])
    assert isinstance(code, str)
    return Member(code=code, name=_parse_name(row), market=_parse_market(row.get("f13"), code))


def parse_board_row(row: object, kind: str) -> Board:
    """One board-list row -> :class:`Board` of ``kind``, by key (``f12`` code, ``f14`` name).

    Raises:
        BadRequest: ``kind`` is not one of :data:`~boardsync.models.KIND_FILTERS`.
        InvalidResponse: the row is not an object, the code is not ``BK`` + 4 digits, or the
            name is malformed.
    """
    if kind not in KIND_FILTERS:
        raise BadRequest(f"unknown board kind {kind!r}")
    if not isinstance(row, Mapping):
        raise _invalid(f"board row is a {type(row).__name__}, not an object")
    code = row.get("f12")
    if not is_board_code(code):
        raise _invalid(f"board code f12 is not BK + 4 digits: {code!r}"[:120])
    assert isinstance(code, str)
    return Board(code=code, name=_parse_name(row), kind=kind, size_hint=_size_hint(row))


def _size_hint(row: Mapping[str, object]) -> int | None:
    """``f104 + f105`` (rising + falling members) when both are sane counts, else ``None``.

    Only a scheduling hint, so a missing or odd value is ignored rather than rejected.
    """
    up, down = row.get("f104"), row.get("f105")
    if _is_count(up) and _is_count(down):
        return up + down  # type: ignore[operator]
    return None


# --- results ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MembersResult:
    """All members of one board plus what it cost: ``requests`` sent, ``pages`` with rows."""

    board_code: str
    members: tuple[Member, ...]
    total: int
    requests: int
    pages: int

    def __iter__(self) -> Iterator[Member]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)


@dataclass(frozen=True, slots=True)
class BoardListResult:
    """All boards of one kind plus what it cost: ``requests`` sent, ``pages`` with rows."""

    kind: str
    boards: tuple[Board, ...]
    total: int
    requests: int
    pages: int

    def __iter__(self) -> Iterator[Board]:
        return iter(self.boards)

    def __len__(self) -> int:
        return len(self.boards)


# --- the client -------------------------------------------------------------------------


class ProxyLike(Protocol):
    """What the client needs of a proxy: a loggable ``key`` and a ``url`` (None = direct).

    Read at every request, so a caller may swap the IP between pages (the worker's slot).
    """

    @property
    def key(self) -> str: ...

    @property
    def url(self) -> str | None: ...


def redact_url(url: str) -> str:
    """The URL without ``user:pass@`` (safe for logs and error messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO_RE.sub("***@", url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _scrub(text: str, secret_url: str | None) -> str:
    """Remove a proxy URL's credentials (and any ``//user:pass@``) from exception text."""
    text = _USERINFO_RE.sub("***@", text)
    if secret_url:
        try:
            password = urlsplit(secret_url).password
        except ValueError:
            password = None
        if password and len(password) >= 4:  # shorter ones would garble the message
            text = text.replace(password, "***")
    return text[:300]


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), None when absent or bad."""
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _clist_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"upstream URL must be http(s)://host: {redact_url(base_url)!r}",
                          key="upstream_url")
    if parts.path in ("", "/"):
        return urlunsplit((parts.scheme, parts.netloc, CLIST_PATH, "", ""))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class EastMoneyClient:
    """HTTP client of the ``clist`` endpoint; cheap to create, safe to share between threads.

    Args:
        base_url: ``scheme://host[:port]`` (``/api/qt/clist/get`` is appended) or a full
            endpoint URL with a path (used as is, e.g. a ``/webguest/...`` variant).
        session_factory: makes a ``requests.Session``; one is made lazily per thread.
        timeout: ``(connect, read)`` seconds per request (read = per socket read).
        page_size: the ``pz`` we ask for; the server may return fewer rows per page.
        user_agent/referer: browser-like headers sent with every request.
        ut: optional public page token sent as ``ut``; None = not sent.
        on_request: ``(latency_s, error_class or None)`` after every HTTP request (metrics);
            an exception in the hook is logged and ignored.
        max_pages: refuse fetches that would need more pages (None = no bound).
        extra_pages: pages tried past the planned ones when still short of ``total``.
        now: monotonic clock used for latencies.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        session_factory: Callable[[], requests.Session] = requests.Session,
        timeout: tuple[float, float] = (5.0, 10.0),
        page_size: int = DEFAULT_PAGE_SIZE,
        user_agent: str = DEFAULT_USER_AGENT,
        referer: str = DEFAULT_REFERER,
        ut: str | None = None,
        on_request: Callable[[float, str | None], None] | None = None,
        max_pages: int | None = DEFAULT_MAX_PAGES,
        extra_pages: int = 2,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= page_size <= 1000:
            raise ConfigError(f"page_size must be 1..1000, got {page_size}", key="page_size")
        self.url = _clist_url(base_url)
        self.safe_url = redact_url(self.url)
        self.session_factory = session_factory
        self.timeout = timeout
        self.page_size = page_size
        self.headers = {
            "User-Agent": user_agent,
            "Referer": referer,
            "Accept": "*/*",
            "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8",
        }
        self.ut = ut
        self.on_request = on_request
        self.max_pages = max_pages
        self.extra_pages = max(0, extra_pages)
        self.now = now
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    # -- sessions ------------------------------------------------------------------------

    def _session(self, proxy_key: str) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self.session_factory()
            session.trust_env = False
            self._local.session = session
            self._local.proxy_key = proxy_key
            with self._sessions_lock:
                self._sessions.append(session)
        elif self._local.proxy_key != proxy_key:
            session.cookies.clear()  # a new identity must not carry the old one's cookies
            self._local.proxy_key = proxy_key
        return session

    def close(self) -> None:
        """Close every session this client made (in any thread)."""
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def __enter__(self) -> EastMoneyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one request ---------------------------------------------------------------------

    def get_page(self, params: Mapping[str, str | int], proxy: ProxyLike | None) -> Page:
        """One GET through ``proxy`` (None or ``proxy.url is None`` = direct) -> :class:`Page`.

        Raises:
            FetchTimeout, ProxyDead, ConnectionFailed, Blocked, HTTPStatusError,
            InvalidResponse: see the module docstring; each carries ``proxy`` (the key, never
            the URL), ``url`` (credential-free) and, for statuses, ``retry_after``.
        """
        key = _key(proxy)
        proxy_url = proxy.url if proxy is not None else None
        started = self.now()
        error_class: str | None = None
        try:
            page = self._get_page(params, key, proxy_url)
        except BaseException as e:
            error_class = getattr(e, "error_class", None) or "unexpected"
            raise
        finally:
            self._report(self.now() - started, error_class)
        return page

    def _report(self, latency: float, error_class: str | None) -> None:
        if self.on_request is None:
            return
        try:
            self.on_request(latency, error_class)
        except Exception:  # noqa: BLE001 - metrics must never break a fetch
            logger.exception("EastMoney: on_request hook failed")

    def _get_page(self, params: Mapping[str, str | int], key: str, proxy_url: str | None) -> Page:
        session = self._session(key)
        proxies = {"http": proxy_url, "https": proxy_url} if proxy_url else {}
        ctx: dict[str, Any] = {"proxy": key, "url": self.safe_url}
        try:
            response = session.get(
                self.url,
                params=dict(params),
                headers=self.headers,
                proxies=proxies,
                timeout=self.timeout,
                verify=True,
                allow_redirects=False,
            )
        except Exception as e:  # noqa: BLE001 - translated below, the only boundary
            raise _translate(e, proxy_url, ctx) from e
        status = response.status_code
        body = response.content
        logger.debug("EastMoney: GET %s pn=%s via %s -> %s (%d bytes)", self.safe_url,
                     params.get("pn"), key, status, len(body))
        if status != 200:
            retry_after = _retry_after(response.headers)
            cls = Blocked if status in (403, 429) else HTTPStatusError
            raise cls(f"HTTP {status} from {self.safe_url} via {key}", status=status,
                      retry_after=retry_after, **ctx)
        try:
            return parse_page(body)
        except InvalidResponse as e:
            e.proxy, e.url = key, self.safe_url
            raise

    # -- paging --------------------------------------------------------------------------

    def _base_params(self, fs: str, fields: str) -> dict[str, str | int]:
        params: dict[str, str | int] = {
            "pn": 1,
            "pz": self.page_size,
            "po": 1,
            "np": 1,
            "fltt": 2,
            "invt": 2,
            "fid": "f12",
            "fs": fs,
            "fields": fields,
        }
        if self.ut:
            params["ut"] = self.ut
        return params

    def _fetch_all(
        self,
        what: str,
        fs: str,
        fields: str,
        parse: Callable[[object], Board | Member],
        proxy: ProxyLike | None,
        before_request: Callable[[], None] | None,
        page_failed: Callable[[UpstreamError, int], bool] | None,
    ) -> tuple[list[Any], int, int, int]:
        """Page through one ``fs`` filter; returns (unique items, total, requests, pages).

        Worked example: total 230, the server caps pages at 50 rows -> ceil(230 / 50) = 5
        pages, not ceil(230 / 100) = 3 (which would silently lose 80 rows).
        """
        params = self._base_params(fs, fields)
        requests_made = 0

        def fetch(pn: int) -> tuple[Page, list[Any]]:
            """One page, retried in place while ``page_failed`` says so; rows parsed here so a
            garbled row is a failure of this page (and of this IP), like a garbled body."""
            nonlocal requests_made
            attempt = 0
            while True:
                attempt += 1
                if before_request is not None:
                    before_request()  # the worker's pacing; may raise (stop, quota): propagate
                params["pn"] = pn
                requests_made += 1
                try:
                    page = self.get_page(params, proxy)
                    ctx = {"proxy": _key(proxy), "url": self.safe_url}
                    if pn == 1 and page.total is None:
                        raise EmptyData(f"{what}: data is null on page 1 (rc={page.rc})", **ctx)
                    if pn == 1 and page.total and not page.rows:
                        raise EmptyData(f"{what}: total={page.total} but page 1 has no rows",
                                        **ctx)
                    try:
                        return page, [parse(row) for row in page.rows]
                    except InvalidResponse as e:
                        e.proxy, e.url = ctx["proxy"], ctx["url"]
                        raise
                except UpstreamError as e:
                    if page_failed is None or not page_failed(e, attempt):
                        raise
                    logger.debug("EastMoney: %s page %d: %s; fetching it again (attempt %d)",
                                 what, pn, e.error_class, attempt + 1)

        first, first_items = fetch(1)
        ctx: dict[str, Any] = {"proxy": _key(proxy), "url": self.safe_url}
        total = first.total
        assert total is not None  # fetch(1) raised EmptyData otherwise
        if not first.rows:
            return [], 0, requests_made, 0  # total == 0: an empty board, the caller judges it
        per_page = len(first.rows)
        planned = math.ceil(total / per_page)
        if self.max_pages is not None and planned > self.max_pages:
            raise InvalidResponse(f"{what}: total={total} at {per_page} rows/page needs "
                                  f"{planned} pages (> {self.max_pages})", **ctx)
        items: dict[str, Any] = {}
        raw = 0

        def add(parsed: list[Any]) -> None:
            nonlocal raw
            raw += len(parsed)
            for item in parsed:
                items.setdefault(item.code, item)  # first occurrence wins

        add(first_items)
        pages = 1
        pn = 1
        last_rows = per_page
        limit = planned + self.extra_pages
        while pn < limit:
            if pn >= planned and (len(items) >= total or last_rows < per_page):
                break  # planned pages done and either complete or the last page was short
            pn += 1
            page, parsed = fetch(pn)
            if (page.total is None or not page.rows) and pn <= planned:
                # Empty where rows were due: the upstream's rare null-data glitch (then the
                # page is there when asked again) or a total it cannot serve (then it is empty
                # again). One more ask tells them apart, and the glitch costs one request
                # instead of the whole board; nobody blames the IP either way.
                logger.debug("EastMoney: %s page %d of %d came back empty; asking once more",
                             what, pn, planned)
                page, parsed = fetch(pn)
            if page.total is None or not page.rows:
                break  # past the end (data null or empty diff): stop early
            if page.total != total:
                raise IncompleteData(f"{what}: total changed from {total} to {page.total} "
                                     f"while paging (page {pn})", **ctx)
            add(parsed)
            pages += 1
            last_rows = len(page.rows)
        if raw != len(items):
            logger.debug("EastMoney: %s: %d duplicate rows dropped", what, raw - len(items))
        if len(items) != total:
            short = "short of" if len(items) < total else "more than"
            raise IncompleteData(f"{what}: {len(items)} distinct codes, {short} total={total} "
                                 f"({pages} pages, {raw} rows)", **ctx)
        return list(items.values()), total, requests_made, pages

    def fetch_board_list(
        self,
        kind: str,
        proxy: ProxyLike | None,
        *,
        before_request: Callable[[], None] | None = None,
        page_failed: Callable[[UpstreamError, int], bool] | None = None,
    ) -> BoardListResult:
        """All boards of ``kind`` (industry/concept/region), every page, de-duplicated.

        Args:
            kind: ``industry``, ``concept`` or ``region``.
            proxy: read at every request (a slot may swap the IP between pages).
            before_request: called before every HTTP request (pacing); what it raises
                propagates untouched (e.g. ``Interrupted``, ``QuotaExhausted``).
            page_failed: ``(error, attempt) -> fetch this page again?``, called when one page
                request fails with an :class:`~boardsync.errors.UpstreamError` (``data: null``
                on page 1 counts as such a failure, :class:`EmptyData`); ``attempt`` is 1 for
                the first failure of that page. None = no page-level retry.

        Raises:
            BadRequest: unknown ``kind``.
            EmptyData: ``data`` null (or no rows with a positive total) on page 1.
            IncompleteData: the distinct codes do not add up to ``data.total``.
            UpstreamError: any per-request failure of :meth:`get_page`.
        """
        if kind not in KIND_FILTERS:
            raise BadRequest(f"unknown board kind {kind!r}")
        items, total, n, pages = self._fetch_all(
            f"board list {kind}", KIND_FILTERS[kind], BOARD_FIELDS,
            lambda row: parse_board_row(row, kind), proxy, before_request, page_failed)
        logger.debug("EastMoney: board list %s: %d boards in %d requests", kind, len(items), n)
        return BoardListResult(kind, tuple(items), total, n, pages)

    def fetch_members(
        self,
        board_code: str,
        proxy: ProxyLike | None,
        *,
        before_request: Callable[[], None] | None = None,
        page_failed: Callable[[UpstreamError, int], bool] | None = None,
    ) -> MembersResult:
        """All members of one board, every page, de-duplicated by stock code.

        Args: as :meth:`fetch_board_list`, with ``board_code`` (``BK`` + 4 digits).

        Raises:
            BadRequest: ``board_code`` is not ``BK`` + 4 digits (checked before any request).
            EmptyData: ``data`` null on page 1: deleted board *or* soft ban; the caller tells
                them apart by checking the board list.
            IncompleteData: the distinct codes do not add up to ``data.total``.
            UpstreamError: any per-request failure of :meth:`get_page`.
        """
        if not is_board_code(board_code):
            raise BadRequest(f"not a board code: {str(board_code)[:40]!r}")
        items, total, n, pages = self._fetch_all(
            f"board {board_code}", member_filter(board_code), MEMBER_FIELDS, parse_member_row,
            proxy, before_request, page_failed)
        logger.debug("EastMoney: board %s: %d members in %d requests", board_code, len(items), n)
        return MembersResult(board_code, tuple(items), total, n, pages)


# --- exception translation ----------------------------------------------------------------


def _key(proxy: ProxyLike | None) -> str:
    return proxy.key if proxy is not None else "direct"


def _translate(e: Exception, proxy_url: str | None, ctx: dict[str, Any]) -> UpstreamError:
    """Map one ``requests``/``urllib3``/socket exception to a boardsync error (not raised).

    Order matters: ``ProxyError`` and ``ConnectTimeout`` are ``ConnectionError`` subclasses,
    and a read timeout while the *body* streams surfaces as a ``ConnectionError`` wrapping
    urllib3's ``ReadTimeoutError`` (requests' ``iter_content``), which is still a timeout.
    """
    exc = requests.exceptions
    root = _root_cause(e)
    reason = type(e).__name__ if root is e else f"{type(e).__name__} <- {type(root).__name__}"
    reason = _scrub(f"{reason}: {root}", proxy_url)
    via = f"{ctx['url']} via {ctx['proxy']}"
    if isinstance(e, exc.ProxyError) and _dropped_after_connect(root):
        # We reached the proxy and it closed without an answer: for a plain-HTTP forward
        # proxy that is how an upstream reset or a ban reaches us, so it is a connection
        # failure on this identity (forgiven once), not proof that the proxy is dead.
        return ConnectionFailed(f"connection dropped via {via}: {reason}", **ctx)
    if isinstance(e, exc.ProxyError | exc.InvalidProxyURL):
        return ProxyDead(f"proxy failed for {via}: {reason}", **ctx)
    if isinstance(e, exc.Timeout):
        return FetchTimeout(f"timeout on {via}: {reason}", **ctx)
    if isinstance(e, exc.ConnectionError) and _caused_by_read_timeout(e):
        return FetchTimeout(f"read timeout on {via}: {reason}", **ctx)
    if isinstance(e, exc.ContentDecodingError):
        return InvalidResponse(f"undecodable body from {via}: {reason}", **ctx)
    if isinstance(e, exc.InvalidURL | exc.MissingSchema | exc.InvalidSchema | exc.InvalidHeader):
        return BadRequest(f"bad request to {via}: {reason}", **ctx)
    if isinstance(e, TimeoutError | urllib3.exceptions.TimeoutError):
        return FetchTimeout(f"timeout on {via}: {reason}", **ctx)
    # ConnectionError (refused, reset, RemoteDisconnected, SSL), ChunkedEncodingError, any
    # other RequestException, a raw urllib3/http.client/socket error: a dropped connection.
    return ConnectionFailed(f"connection failed to {via}: {reason}", **ctx)


def _dropped_after_connect(root: BaseException) -> bool:
    """True when the connection was established and then closed or reset without a reply."""
    if isinstance(root, http.client.RemoteDisconnected | ConnectionResetError):
        return True
    return isinstance(root, ConnectionAbortedError | BrokenPipeError)


def _root_cause(e: BaseException) -> BaseException:
    """The innermost exception wrapped in ``e`` (requests -> MaxRetryError -> reason -> ...).

    Its text ("[Errno 111] Connection refused", "Remote end closed connection without
    response") is what an operator needs; the outer layers repeat the URL.
    """
    seen = {id(e)}
    cur = e
    while True:
        nxt = getattr(cur, "reason", None)
        if not isinstance(nxt, BaseException):
            nxt = next((a for a in reversed(cur.args) if isinstance(a, BaseException)), None)
        if nxt is None or id(nxt) in seen:
            return cur
        seen.add(id(nxt))
        cur = nxt


def _caused_by_read_timeout(e: BaseException) -> bool:
    seen: set[int] = set()
    stack: list[object] = [e]
    while stack:
        cur = stack.pop()
        if not isinstance(cur, BaseException) or id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, urllib3.exceptions.ReadTimeoutError | TimeoutError):
            return True
        stack.extend(cur.args)
        stack.extend((cur.__cause__, cur.__context__))
    return False
