"""The East Money push2 ``clist`` upstream: parse a page, judge a fetch, send one request.

Four concepts, one module each, so each is tested alone:

* :mod:`.parse` - bytes -> :class:`Page`, and one row -> :class:`Board` / :class:`Member`
  (pure; fuzzed);
* :mod:`.paging` - :class:`Pager`, which judges the pages of one fetch with no I/O, so the
  caller (the worker) owns pacing and retries;
* :mod:`.shared` - :class:`SharedPager`, the same judgement over pages that several workers
  claim at once (a big board's, a list's);
* :mod:`.client` - :class:`UpstreamClient`, one request on the lane the pool picks;
* :mod:`.pool` - :class:`Pool`, endpoints x transports with measured health, refusals;
* :mod:`.transport` - ``requests`` and curl_cffi's browser impersonation, the one place
  that touches either (their exceptions translated alike);
* :mod:`.web` - each route's parameters (the web page's ``ut``, ``dect``, ``wbp2u``);
* :mod:`.fetch` - :func:`fetch_members` / :func:`fetch_board_list`, a whole fetch without
  retries, and the result types.
"""

from __future__ import annotations

from .client import (
    CLIST_PATH,
    DEFAULT_BASE_URL,
    DEFAULT_PAGE_SIZE,
    DEFAULT_REFERER,
    DEFAULT_TIMEOUT,
    DEFAULT_USER_AGENT,
    ProxyLike,
    UpstreamClient,
    client_for,
    proxy_key,
)
from .directory import DIRECTORY_URL, Entry, get_body, parse_directory
from .fetch import BoardListResult, MembersResult, drive, fetch_board_list, fetch_members
from .paging import (
    BOARD_FIELDS,
    DEFAULT_EXTRA_PAGES,
    DEFAULT_MAX_PAGES,
    MEMBER_FIELDS,
    HasCode,
    Pager,
    Query,
    Step,
    board_list_query,
    members_query,
)
from .parse import MAX_TOTAL, Page, infer_market, parse_board_row, parse_member_row, parse_page
from .pool import DEFAULT_UPSTREAMS, Endpoint, Lane, Pool, build_pool, endpoint
from .shared import SharedPager
from .transport import TRANSPORTS, browser_available, make_transport

__all__ = [
    "DEFAULT_UPSTREAMS",
    "TRANSPORTS",
    "Endpoint",
    "Lane",
    "Pool",
    "browser_available",
    "build_pool",
    "client_for",
    "endpoint",
    "make_transport",
    "BOARD_FIELDS",
    "CLIST_PATH",
    "DEFAULT_BASE_URL",
    "DIRECTORY_URL",
    "Entry",
    "DEFAULT_EXTRA_PAGES",
    "DEFAULT_MAX_PAGES",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_REFERER",
    "DEFAULT_TIMEOUT",
    "DEFAULT_USER_AGENT",
    "MAX_TOTAL",
    "MEMBER_FIELDS",
    "BoardListResult",
    "MembersResult",
    "Page",
    "HasCode",
    "Pager",
    "SharedPager",
    "ProxyLike",
    "Query",
    "Step",
    "UpstreamClient",
    "board_list_query",
    "drive",
    "fetch_board_list",
    "fetch_members",
    "get_body",
    "infer_market",
    "members_query",
    "parse_board_row",
    "parse_directory",
    "parse_member_row",
    "parse_page",
    "proxy_key",
]
