"""The board directory ``sidemenu_new.json``: a second witness of which boards exist.

Why read it: the ``clist`` lists are the only source of the boards, and a list that comes
back short (a soft ban, a glitch) would be applied as deletions. The directory is one static
file that names every board with its kind and, for industry, its level
(``EASTMONEY_API.md`` section 13), so one request per run tells a short list from a real
change, gives the industry levels without one list per level, and names the boards that exist
without a quote (BK1362).

Shape: ``{"bklist": [{"market": 90, "code": "BK0169", "name": "…", "pinyin": "…", "type": 1,
"flag": 0}, …]}``; ``type`` 1 region, 2 industry, 3 concept; ``flag`` the industry level
1/2/3 (0 otherwise). Rows of another market, of an unknown type or with a malformed code are
skipped (the file also serves the site's menu); a body that is not this shape, or holds no
board at all, is :class:`~boardsync.errors.InvalidResponse`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from ..errors import Blocked, Captcha, HTTPStatusError, InvalidResponse, UpstreamError
from ..models import LEVELS, Board, is_board_code
from .client import ProxyLike, UpstreamClient, proxy_key
from .parse import _is_captcha

logger = logging.getLogger(__name__)

#: The real directory (the quote site's own side menu reads it).
DIRECTORY_URL = "https://quote.eastmoney.com/center/api/sidemenu_new.json"
#: ``type`` of a directory row -> board kind.
KIND_BY_TYPE = {1: "region", 2: "industry", 3: "concept"}


@dataclass(frozen=True, slots=True)
class Entry:
    """One board as the directory names it; ``level`` 1-3 for industry, else None."""

    code: str
    name: str
    kind: str
    level: int | None

    def board(self) -> Board:
        """The entry as a :class:`Board` the directory witnesses."""
        return Board(self.code, self.name, self.kind, level=self.level, witnessed=True)


def _entry(row: Any) -> Entry | None:
    """One ``bklist`` row, or None for a row that is not a board of market 90."""
    if not isinstance(row, dict) or row.get("market") != 90:
        return None
    kind_type, flag = row.get("type"), row.get("flag")
    kind = (KIND_BY_TYPE.get(kind_type)
            if isinstance(kind_type, int) and not isinstance(kind_type, bool) else None)
    code, name = row.get("code"), row.get("name")
    if kind is None or not is_board_code(code) or not isinstance(name, str):
        return None
    level = flag if kind == "industry" and isinstance(flag, int) and flag in LEVELS else None
    return Entry(str(code), name.strip() or "-", kind, level)


def parse_directory(body: bytes | str) -> dict[str, Entry]:
    """``{code: Entry}`` of every board the directory lists (pure).

    Raises:
        InvalidResponse: not UTF-8 JSON, no ``bklist`` list, or not one board in it.
    """
    try:
        text = body.decode("utf-8-sig") if isinstance(body, bytes) else body
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise InvalidResponse(f"board directory is not JSON: {str(body[:60])!r}") from e
    rows = data.get("bklist") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise InvalidResponse("board directory has no 'bklist' list")
    entries = {e.code: e for e in map(_entry, rows) if e is not None}
    if not entries:
        raise InvalidResponse(f"board directory lists no board ({len(rows)} rows)")
    return entries


def get_body(client: UpstreamClient, url: str, proxy: ProxyLike | None) -> bytes:
    """One GET of ``url`` through ``client``'s sessions, headers, TLS and error translation.

    The directory goes through the same client as the lists (same proxies, TLS bundle and
    error classes), so a refusal or a ban of it is judged like any other request.

    Raises: what :meth:`UpstreamClient.get_page` raises for the transport and the status;
        an HTML page is :class:`~boardsync.errors.Captcha` or ``InvalidResponse``.
    """
    key = proxy_key(proxy)
    proxy_url = proxy.url if proxy is not None else None
    via = f"{url} via {key}"
    try:
        reply = client.transport("requests").send(
            url, params={}, headers=client.headers, key=key, proxy_url=proxy_url,
            timeout=client.timeout, verify=client.verify, via=via)
    except UpstreamError as e:
        raise client.blame(e, proxy) from e.__cause__
    if reply.status != 200:
        cls = Blocked if reply.status in (403, 429) else HTTPStatusError
        raise client.blame(cls(f"HTTP {reply.status} from {via}", status=reply.status), proxy)
    head = reply.body[:4000].decode("utf-8", "replace").lstrip()
    if head.startswith("<"):
        cls_html = Captcha if _is_captcha(head) else InvalidResponse
        raise client.blame(cls_html(f"HTML instead of the directory: {head[:60]!r}"), proxy)
    return reply.body
