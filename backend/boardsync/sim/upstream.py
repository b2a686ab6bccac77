"""The simulated East Money push2 ``/api/qt/clist/get`` endpoint.

Parameters, envelope, key order and failure modes follow ``EASTMONEY_API.md`` and the real
capture in ``fixtures/eastmoney/``: ``pz`` silently capped at 100, ``np=1`` list or an object
keyed "0","1",..., ``fltt=1`` scaled integers, ``fields`` filtering with ``"-"`` for missing
values, f140/f141 right after f128, JSONP via ``cb``, ``data: null`` for unknown boards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

from .antibot import Verdict
from .captcha import CAPTCHA_PAGE, CAPTCHA_TYPE
from .httpd import DROP, Conn, Reply, Request
from .levels import hide_lost
from .market import BoardInfo, Market, Stock
from .state import SimState

logger = logging.getLogger(__name__)

PATHS = frozenset({"/api/qt/clist/get", "/webguest/api/qt/clist/get",
                   "/weblogin/api/qt/clist/get"})
PAGE_CAP = 100
DEFAULT_PZ = 20
DEFAULT_FIELDS = ("f1", "f2", "f3", "f4", "f12", "f13", "f14")
KIND_BY_T = {"2": "industry", "3": "concept", "1": "region"}
#: The 2026 level filters: ``m:90 s:2`` level 1, ``s:4`` level 2, ``s:8`` level 3
#: (EASTMONEY_API.md section 13); honoured only on a levelled market (``today``).
LEVEL_BY_S = {"2": 1, "4": 2, "8": 3}
#: Envelope ``rc`` for the members of a directory board that has no quote (BK1362 in 2026).
RC_UNQUOTED = 100

#: Fields that are prices or percentages: decimals with fltt=2, integers x100 otherwise.
SCALED = frozenset({2, 3, 4, 7, 8, 9, 10, 11, 15, 16, 17, 18, 22, 23, 24, 25, 69, 75, 81, 87,
                    115, 136, 184, 222})
#: Fields the server adds when their companion is requested (real captures).
COMPANIONS = {128: (140, 141), 205: (206,)}

ENVELOPE_HEAD = '{"rc":0,"rt":6,"svr":181669432,"lt":1,"full":1,"dlmkts":"","data":'
FIELD_RE = re.compile(r"^f(\d{1,4})$")
BOARD_FS_RE = re.compile(r"\bb:(BK\d{4})\b")

HTML_BLOCK = ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>访问受限</title></head>"
              "<body><h1>访问受限 Access restricted</h1><p>您的访问过于频繁，请稍后再试。</p>"
              "</body></html>").encode()
HTML_502 = (b"<html><head><title>502 Bad Gateway</title></head><body><center>"
            b"<h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>")
HTML_403 = (b"<html><head><title>403 Forbidden</title></head><body><center>"
            b"<h1>403 Forbidden</h1></center><hr><center>nginx</center></body></html>")
HTML_404 = (b"<html><head><title>404 Not Found</title></head><body><center>"
            b"<h1>404 Not Found</h1></center><hr><center>nginx</center></body></html>")


def field_order(requested: str | None) -> list[int]:
    """Server key order for a ``fields`` parameter.

    Ascending numeric, except f140 and f141 right after f128; f128 brings f140/f141 and f205
    brings f206 even when not requested. Example: ``"f136,f128,f12"`` -> 12, 128, 140, 141, 136.
    """
    names = requested.split(",") if requested else list(DEFAULT_FIELDS)
    nums: set[int] = set()
    for name in names:
        m = FIELD_RE.match(name.strip())
        if m:
            nums.add(int(m.group(1)))
    for key, extra in COMPANIONS.items():
        if key in nums:
            nums.update(extra)
    ordered = sorted(n for n in nums if n not in (140, 141) or 128 not in nums)
    if 128 in nums:
        at = ordered.index(128) + 1
        ordered[at:at] = [140, 141]
    return ordered


def _r2(x: float) -> float:
    return round(x, 2)


class RowRenderer:
    """Field values of stock and board rows at one simulated instant."""

    def __init__(self, market: Market, t: float, epoch: int, scaled: bool) -> None:
        self.market = market
        self.t = t
        self.epoch = epoch
        self.scaled = scaled

    def _out(self, num: int, value: Any) -> Any:
        # fltt=1: every number is an integer, prices/percentages x100 (f1 says 2 decimals);
        # fltt=2: prices/percentages rounded to 2 decimals, amounts stay floats ("...968.0").
        if not isinstance(value, float):
            return value
        if self.scaled:
            return round(value * 100) if num in SCALED else round(value)
        return _r2(value) if num in SCALED else value

    def stock_fields(self, st: Stock) -> dict[int, Any]:
        """Every field of a stock row (before ``fltt`` formatting); missing ones are absent."""
        q = st.quote
        pct = q.pct(self.t)
        prev = q.prev_close
        price = prev * (1 + pct / 100)
        turnover = q.amp_pct * 0.9 + 0.2
        volume = float(round(st.shares * turnover / 100 / 100 / 20))
        return {
            1: 2, 2: price, 3: pct, 4: price - prev, 5: volume,
            6: float(round(volume * 100 * price)), 7: abs(pct) * 1.3 + 0.5, 8: turnover,
            9: prev * 2.1 + 4.0, 10: 0.6 + q.amp_pct / 3, 11: pct / 20, 12: st.code,
            13: st.market, 14: st.name,
            15: max(price, prev * (1 + (abs(q.base_pct) + q.amp_pct) / 100)),
            16: min(price, prev * (1 - q.amp_pct / 200)), 17: prev * (1 + q.base_pct / 300),
            18: prev, 20: float(round(st.shares * price)),
            21: float(round(st.shares * price * 0.8)), 22: pct / 50, 23: 1.0 + q.amp_pct,
            24: q.base_pct * 6, 25: q.base_pct * 9, 62: float(round(st.shares * pct * 3.0, -2)),
            115: prev * 2.1 + 5.0, 124: self.epoch, 152: 2,
        }

    def board_fields(self, b: BoardInfo) -> dict[int, Any]:
        """Every field of a board row (before ``fltt`` formatting); missing ones are absent."""
        q = b.quote
        pct = q.pct(self.t)
        prev = q.prev_close
        level = prev * (1 + pct / 100)
        size = len(self.market.members.get(b.code, ()))
        out: dict[int, Any] = {
            1: 2, 2: level, 3: pct, 4: level - prev, 5: float(size * 250000),
            6: float(size * 1.7e8), 7: abs(pct) * 1.2 + 0.6, 8: q.amp_pct * 0.7 + 0.3,
            12: b.code, 13: 90, 14: b.name, 15: max(level, prev * (1 + q.amp_pct / 100)),
            16: min(level, prev * (1 - q.amp_pct / 200)), 17: prev * (1 + q.base_pct / 300),
            18: prev, 20: float(size * 2.3e10), 21: float(size * 2.3e10 * 0.8), 22: pct / 50,
            24: q.base_pct * 6, 25: q.base_pct * 9, 104: b.up, 105: b.down,
            106: max(0, size - b.up - b.down), 124: self.epoch, 152: 2,
        }
        for num, share in ((62, 1.0), (66, 1.1), (72, -0.1), (78, -0.7), (84, -0.3)):
            out[num] = float(round(size * pct * 1.3e6 * share))
        for num, share in ((69, 0.8), (75, -0.1), (81, -0.5), (87, -0.2), (184, 0.7)):
            out[num] = pct * share
        leader = self.market.stocks.get(b.leader)
        if leader is not None:
            out[128] = out[204] = leader.name
            out[140] = out[205] = leader.code
            out[141] = out[206] = leader.market
            out[136] = leader.quote.pct(self.t)
        laggard = self.market.stocks.get(b.laggard)
        if laggard is not None:
            out.update({207: laggard.name, 208: laggard.code, 209: laggard.market,
                        222: laggard.quote.pct(self.t)})
        return out

    def row(self, values: dict[int, Any], order: list[int]) -> dict[str, Any]:
        out = self._out
        return {f"f{n}": out(n, values.get(n, "-")) for n in order}


def list_codes(market: Market, fs: str) -> list[str] | None:
    """Board codes a list ``fs`` selects, ascending; ``None`` when it names no board list.

    Comma-separated alternatives are united (``m:90+t:2+f:!50,m:90+t:3+f:!50``). Within one
    alternative, ``t:`` kinds are united, ``s:`` levels are united, and an alternative naming
    both keeps the boards that match both. On a single-level market ``s:`` tokens are
    ignored, so ``m:90 s:2`` alone is no list there (``data: null``), as before levels.
    """
    levelled = bool(market.levels)
    codes: set[str] = set()
    named = False
    for alt in fs.split(","):
        tokens = set(alt.split())
        if "m:90" not in tokens:
            continue
        kinds = [KIND_BY_T[tok[2:]] for tok in tokens
                 if tok.startswith("t:") and tok[2:] in KIND_BY_T]
        levels = [LEVEL_BY_S[tok[2:]] for tok in tokens
                  if levelled and tok.startswith("s:") and tok[2:] in LEVEL_BY_S]
        if not kinds and not levels:
            continue
        named = True
        by_kind = {c for kind in kinds for c in market.boards_of_kind(kind)}
        by_level = {c for level in levels for c in market.boards_of_level(level)}
        codes |= (by_kind & by_level) if kinds and levels else (by_kind | by_level)
    return sorted(codes) if named else None


def _int(params: dict[str, str], key: str, default: int) -> int:
    try:
        return int(params.get(key, default))
    except ValueError:
        return default


def json_type(params: dict[str, str]) -> str:
    """The Content-Type of a JSON answer: JavaScript when JSONP (``cb``) was asked for."""
    if params.get("cb"):
        return "application/javascript; charset=UTF-8"
    return "application/json; charset=UTF-8"


def _sort_key(value: Any) -> tuple[int, Any]:
    # "-" (missing) sorts after every number, like the real lists put suspended stocks last.
    if isinstance(value, (int, float)):
        return (0, value)
    return (1, str(value))


class Upstream:
    """Request handler for the upstream listener (runs on the simulator's event loop)."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    def identity_of(self, request: Request) -> str:
        """The exit identity, read from the peer address as a real upstream does: a proxy
        exit's loopback source address maps back to its name (``exits.py``); a direct
        client is its own address. No header can claim another identity."""
        return self.state.exits.name_of(request.peer)

    async def handle(self, request: Request, conn: Conn | None = None, *,
                     lag_s: float = 0.0) -> Reply:
        """Answer one ``clist`` request; ``lag_s`` delays quotes (a stale host), not members.

        An admitted request stays in flight for the concurrency cap until this returns
        (latency and hangs included), whatever the reply.
        """
        st = self.state
        if request.path not in PATHS:
            with st.lock:
                st.counters.not_found += 1
            return Reply(404, HTML_404, "text/html")
        params = request.query
        fs = params.get("fs", "").replace("+", " ")
        m = BOARD_FS_RE.search(fs)
        board = m.group(1) if m else None
        ident = self.identity_of(request)
        with st.lock:
            outage = st.outage
            verdict = self._judge(ident, board)
        if verdict is None:
            return DROP if outage == "reset" else Reply(502, HTML_502, "text/html")
        if verdict.banned:
            return await self._refuse(verdict, ident, params)
        try:
            return await self._serve(verdict, params, fs, board, lag_s)
        finally:
            with st.lock:
                st.antibot.release(ident)

    def _judge(self, ident: str, board: str | None) -> Verdict | None:
        """Count the request and judge it (caller holds the lock); None during an outage."""
        st = self.state
        c = st.counters
        c.requests += 1
        c.requests_by_identity[ident] += 1
        c.identities_by_board.setdefault(board or "list", set()).add(ident)
        if board is not None:
            c.requests_by_board[board] += 1
        else:
            c.list_requests += 1
        if st.outage is not None:
            c.faults[f"outage_{st.outage}"] += 1
            return None
        verdict = st.antibot.judge(ident, st.now(), is_members=board is not None)
        if verdict.banned:
            signal = verdict.signal or "close"
            c.banned_requests += 1
            c.bans += verdict.ban_new
            c.banned_by_signal[signal] += 1
            c.bans_by_signal[signal] += verdict.ban_new
            if signal == "close":
                c.banned_closed += 1
            elif signal == "403":
                c.banned_403 += 1
        elif verdict.fault is not None:
            c.faults[verdict.fault] += 1
        return verdict

    async def _refuse(self, verdict: Verdict, ident: str, params: dict[str, str]) -> Reply:
        """A banned request's answer. Close and 403 come at once (as calibrated); the two
        200 signals come after the request's latency, like a page, so only the body differs."""
        st = self.state
        if verdict.ban_new:
            logger.debug("Upstream: identity %s banned for %.0f s (%s; signal %s)", ident,
                         st.scenario.ban_s, verdict.rule, verdict.signal)
        if verdict.signal == "403":
            return Reply(403, HTML_403, "text/html")
        if verdict.signal not in ("null_data", "captcha"):
            return DROP
        if verdict.latency_s > 0:
            await asyncio.sleep(st.real(verdict.latency_s))
        if verdict.signal == "captcha":
            return Reply(200, CAPTCHA_PAGE, CAPTCHA_TYPE)
        return Reply(200, self.encode(None, params), json_type(params))

    async def _serve(self, verdict: Verdict, params: dict[str, str], fs: str,
                     board: str | None, lag_s: float) -> Reply:
        """An admitted request's answer: the page after its latency, or its random fault."""
        st = self.state
        if verdict.latency_s > 0:
            await asyncio.sleep(st.real(verdict.latency_s))
        fault = verdict.fault
        if fault == "reset":
            return DROP
        if fault == "hang":
            await asyncio.sleep(st.real(st.scenario.hang_s))
            return DROP
        if fault == "http_502":
            return Reply(502, HTML_502, "text/html")
        if fault == "html":
            return Reply(200, HTML_BLOCK, "text/html; charset=utf-8")
        with st.lock:
            data = None if fault == "null_data" else self.page(params, fs, board, lag_s=lag_s)
        body = self.encode(data, params, rc=self.rc_of(board, data))
        return Reply(200, body, json_type(params),
                     mode="truncate" if fault == "truncated" else "send")

    def rc_of(self, board: str | None, data: dict[str, Any] | None) -> int:
        """The envelope's ``rc``: ``RC_UNQUOTED`` for a null answer about a directory-only
        board (it has no quote), else 0 (an unknown board is ``rc 0, data null``, as before)."""
        if data is not None or board is None:
            return 0
        with self.state.lock:
            return RC_UNQUOTED if board in self.state.market.unquoted else 0

    def encode(self, data: dict[str, Any] | None, params: dict[str, str], *,
               rc: int = 0) -> bytes:
        """The body: ``ENVELOPE_HEAD`` (with ``rc`` when not 0), ``data``, JSONP when ``cb``."""
        head = ENVELOPE_HEAD if rc == 0 else ENVELOPE_HEAD.replace('"rc":0', f'"rc":{rc}', 1)
        text = head + json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "}"
        cb = params.get("cb")
        if cb:
            text = f"{cb}({text});"
        return text.encode("utf-8")

    def page(self, params: dict[str, str], fs: str, board: str | None, *,
             lag_s: float = 0.0) -> dict[str, Any] | None:
        """The ``data`` object for one request (``None`` = ``data: null``); caller holds lock.

        ``lag_s``: quotes as they were that many simulated seconds ago (``push2delay``).
        """
        st = self.state
        market = st.market
        t = st.now() - lag_s
        renderer = RowRenderer(market, t, int(st.wall().timestamp()), params.get("fltt") != "2")
        if board is not None:
            if board not in market.boards:
                return None
            codes = market.sorted_members(board)
            fraction = st.shrink.get(board)
            if fraction is not None:
                codes = codes[: int(len(codes) * fraction)]
            stocks = market.stocks

            def fields_of(code: str) -> dict[int, Any]:
                return renderer.stock_fields(stocks[code])

            def pct_of(code: str) -> float:
                return stocks[code].quote.pct(t)
        else:
            listed = list_codes(market, fs)
            if listed is None:
                return None
            codes = hide_lost(market, listed, st.list_loss) if st.list_loss else listed
            boards = market.boards

            def fields_of(code: str) -> dict[int, Any]:
                return renderer.board_fields(boards[code])

            def pct_of(code: str) -> float:
                return boards[code].quote.pct(t)
        total = len(codes)
        fid = params.get("fid", "f3")
        desc = params.get("po", "1") != "0"
        fm = FIELD_RE.match(fid)
        fnum = int(fm.group(1)) if fm else 12
        if fnum == 12:
            ordered = codes[::-1] if desc else codes
        elif fnum == 3:  # the common live sort, without building whole rows
            ordered = sorted(codes, key=lambda c: (pct_of(c), c), reverse=desc)
        else:
            ordered = sorted(codes, key=lambda c: (_sort_key(fields_of(c).get(fnum, "-")), c),
                             reverse=desc)
        pz = min(PAGE_CAP, max(1, _int(params, "pz", DEFAULT_PZ)))
        pn = max(1, _int(params, "pn", 1))
        chunk = ordered[(pn - 1) * pz: pn * pz]
        if not chunk and pn > 1 and st.scenario.past_end == "null":
            return None
        order = field_order(params.get("fields"))
        rows = [renderer.row(fields_of(code), order) for code in chunk]
        diff: Any = rows if params.get("np") == "1" else {str(i): r for i, r in enumerate(rows)}
        return {"total": total, "diff": diff}
