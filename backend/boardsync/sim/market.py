"""The simulated market: stocks, boards, memberships, live prices and day-to-day churn.

Counts are constructed exactly (board sizes are drawn, then corrected to the scenario's totals)
before members are assigned, so the reference totals hold for every seed. A scenario with
``industry_levels`` gets the 2026 scheme instead (``levels.py``: three nested industry levels,
per-period concepts, a revamp day, directory-only boards); one without draws exactly what it
drew before that scheme existed (``tests/test_sim_market_today.py`` pins it). Prices move as a
smooth function of simulated time, so a list sorted by change % reorders itself while a
client pages through it, as the real one does in trading hours.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field
from importlib import resources

from ..models import Board
from .names import CONCEPT_NAMES, EXTRA_INDUSTRIES, NAME_HEADS, NAME_TAILS, REGIONS
from .scenario import Scenario

logger = logging.getLogger(__name__)


#: (share of listed stocks, code ranges) per exchange segment; f13 is 1 for 6xxxxx, else 0.
SEGMENTS: tuple[tuple[float, tuple[tuple[int, int], ...]], ...] = (
    (0.31, ((600000, 606000),)),
    (0.11, ((688000, 690000),)),
    (0.28, ((1, 4000),)),
    (0.25, ((300001, 302000),)),
    (0.05, ((830000, 840000), (870000, 874000), (920000, 921000))),
)


@dataclass(slots=True)
class Quote:
    """A smoothly moving quote: change % = base + amp * sin(2 pi t / period + phase)."""

    prev_close: float
    base_pct: float
    amp_pct: float
    period_s: float
    phase: float
    limit_pct: float = 10.0

    def pct(self, t: float) -> float:
        """Change % at simulated time ``t`` (within the daily limit)."""
        value = self.base_pct + self.amp_pct * math.sin(2 * math.pi * t / self.period_s
                                                         + self.phase)
        return max(-self.limit_pct, min(self.limit_pct, value))


@dataclass(slots=True)
class Stock:
    code: str
    name: str
    market: int
    quote: Quote
    shares: float  # total shares, for market cap and volume


@dataclass(slots=True)
class BoardInfo:
    code: str
    name: str
    kind: str
    quote: Quote
    up: int = 0
    down: int = 0
    leader: str = ""
    laggard: str = ""
    extra: dict[str, float] = field(default_factory=dict)


def real_industries() -> list[tuple[str, str]]:
    """Industry (code, name) pairs: the real ones bundled with the package, then known ones.

    Read from package data only, never from a path beside the checkout, so the market is the
    same for a given seed wherever boardsync is installed.
    """
    text = (resources.files("boardsync") / "scenarios" / "industries.txt").read_text("utf-8")
    named: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            code, name = line.split(",", 1)
            named.setdefault(code, name)
    for code, name in EXTRA_INDUSTRIES:
        named.setdefault(code, name)
    return list(named.items())


def draw_sizes(rng: random.Random, n: int, total: int, lo: int, hi: int,
               sigma: float) -> list[int]:
    """``n`` heavy-tailed sizes within ``[lo, hi]`` that add up to exactly ``total``.

    Example: n=3, total=10, lo=1 -> weights (0.2, 0.5, 0.3) round to (2, 5, 3) = 10.
    """
    if n == 0:
        return []
    if not lo * n <= total <= hi * n:
        raise ValueError(f"cannot split {total} into {n} sizes within [{lo}, {hi}]")
    weights = [rng.lognormvariate(0.0, sigma) for _ in range(n)]
    scale = total / sum(weights)
    sizes = [min(hi, max(lo, round(w * scale))) for w in weights]
    diff = total - sum(sizes)
    order = list(range(n))
    while diff:
        rng.shuffle(order)
        step = 1 if diff > 0 else -1
        for i in order:
            if diff == 0:
                break
            if lo <= sizes[i] + step <= hi:
                sizes[i] += step
                diff -= step
    return sizes


class Market:
    """Boards, stocks and memberships for one simulated day; mutated only by ``advance_day``."""

    def __init__(self, scenario: Scenario, seed: int) -> None:
        self.scenario = scenario
        self.seed = seed
        self.day = 0
        rng = random.Random(f"{seed}:market")
        self.stocks: dict[str, Stock] = {}
        self.boards: dict[str, BoardInfo] = {}
        self.members: dict[str, set[str]] = {}
        self._sorted: dict[str, list[str]] = {}
        self._kind_sorted: dict[str, list[str]] = {}
        # The 2026 scheme's state (``levels.py``); empty for a single-level market.
        self.levels: dict[str, int] = {}  # industry board -> level 1..3 (directory-only too)
        self.parent: dict[str, str] = {}  # industry board -> the board one level up
        self.unquoted: dict[str, BoardInfo] = {}  # in the directory, not in lists or members
        self.period: dict[str, int] = {}  # per-period concept board -> its period index
        self.retired: set[str] = set()  # codes the 2026 scheme removed (never reused)
        self._build_stocks(rng)
        if scenario.industry_levels:
            from .levels import build  # levels imports this module: one-way at load time

            build(self, rng)
        else:
            self._build_industries(rng)
            self._build_concepts(rng)
            self._build_regions(rng)
        self._refresh_board_stats()

    # -- construction ---------------------------------------------------------------------
    def _quote(self, rng: random.Random, price_lo: float, price_hi: float,
               limit: float = 10.0) -> Quote:
        s = self.scenario
        return Quote(prev_close=round(math.exp(rng.uniform(math.log(price_lo),
                                                           math.log(price_hi))), 2),
                     base_pct=rng.gauss(0.2, 1.5), amp_pct=rng.uniform(0.3, 3.0),
                     period_s=rng.uniform(s.price_period_min_s, s.price_period_max_s),
                     phase=rng.uniform(0, 2 * math.pi), limit_pct=limit)

    def _build_stocks(self, rng: random.Random) -> None:
        n = self.scenario.stocks
        counts = [int(n * share) for share, _ in SEGMENTS]
        counts[2] += n - sum(counts)
        names: set[str] = set()
        codes: list[str] = []
        for count, (_, ranges) in zip(counts, SEGMENTS, strict=True):
            pool = [c for lo, hi in ranges for c in range(lo, hi)]
            codes.extend(f"{c:06d}" for c in rng.sample(pool, count))
        for code in sorted(codes):
            while True:
                name = "".join(rng.sample(NAME_HEADS, 2)) + rng.choice(NAME_TAILS)
                if rng.random() < 0.15:
                    name = "".join(rng.sample(NAME_HEADS, 4))
                if name not in names:
                    names.add(name)
                    break
            limit = 20.0 if code.startswith(("30", "68")) else (
                30.0 if code.startswith(("83", "87", "92")) else 10.0)
            self.stocks[code] = Stock(code=code, name=name, market=1 if code[0] == "6" else 0,
                                      quote=self._quote(rng, 2.0, 300.0, limit),
                                      shares=round(math.exp(rng.uniform(18, 23)), -4))

    def _add_board(self, rng: random.Random, code: str, name: str, kind: str,
                   members: set[str]) -> None:
        self.boards[code] = BoardInfo(code=code, name=name, kind=kind,
                                      quote=self._quote(rng, 500.0, 40000.0, 10.0))
        self.members[code] = members
        self._sorted.pop(code, None)
        self._kind_sorted.pop(kind, None)

    def _free_codes(self, rng: random.Random, count: int, lo: int, hi: int) -> list[str]:
        taken = set(self.boards) | {self.scenario.largest_board}
        pool = [f"BK{i:04d}" for i in range(lo, hi) if f"BK{i:04d}" not in taken]
        return sorted(rng.sample(pool, count))

    def _build_industries(self, rng: random.Random) -> None:
        s = self.scenario
        named = real_industries()[: s.industry_boards]
        extra = s.industry_boards - len(named)
        taken = {c for c, _ in named} | {s.largest_board}
        pool = [f"BK{i:04d}" for i in range(1050, 1100) if f"BK{i:04d}" not in taken]
        named += [(code, f"行业{i + 1:02d}") for i, code in enumerate(rng.sample(pool, extra))]
        sizes = draw_sizes(rng, s.industry_boards, s.industry_memberships, 5, 400, 0.7)
        # Every stock gets one industry; the surplus memberships are second industries.
        extras = [0] * len(sizes)
        for _ in range(s.industry_memberships - s.stocks):
            while True:
                i = rng.randrange(len(sizes))
                if sizes[i] - extras[i] > 1:
                    extras[i] += 1
                    break
        stocks = sorted(self.stocks)
        rng.shuffle(stocks)
        at = 0
        for (code, name), size, extra_n in zip(named, sizes, extras, strict=True):
            primary = set(stocks[at: at + size - extra_n])
            at += size - extra_n
            others = [c for c in rng.sample(stocks, min(len(stocks), extra_n + size))
                      if c not in primary][:extra_n]
            self._add_board(rng, code, name, "industry", primary | set(others))

    def _build_concepts(self, rng: random.Random) -> None:
        s = self.scenario
        if s.concept_boards == 0:
            return
        rest = s.concept_boards - 1
        codes = self._free_codes(rng, rest, 480, 1200) if rest else []
        taken_codes = set(codes)
        if s.largest_board in self.boards or s.largest_board in taken_codes:
            raise ValueError(f"largest_board {s.largest_board} collides with another board")
        names = [n for n in CONCEPT_NAMES if n != "融资融券" and not n.endswith("_")]
        rng.shuffle(names)
        while len(names) < rest:
            names.append(f"{rng.choice(names[:40])}{len(names)}")
        names = names[:rest]  # a small market uses fewer names than the list holds
        sizes = draw_sizes(rng, rest, s.concept_memberships - s.largest_board_size, 3,
                           min(2500, s.largest_board_size, s.stocks), 1.1)
        stocks = sorted(self.stocks)
        self._add_board(rng, s.largest_board, "融资融券", "concept",
                        set(rng.sample(stocks, s.largest_board_size)))
        for code, name, size in zip(codes, names, sizes, strict=True):
            self._add_board(rng, code, name, "concept", set(rng.sample(stocks, size)))

    def _build_regions(self, rng: random.Random) -> None:
        n = self.scenario.region_boards
        if n == 0:
            return
        codes = [f"BK{145 + i:04d}" for i in range(n)]
        stocks = sorted(self.stocks)
        groups: list[set[str]] = [set() for _ in range(n)]
        for i, code in enumerate(stocks):
            groups[(i * 7919 + rng.randrange(n)) % n].add(code)
        for i, code in enumerate(codes):
            name = f"{REGIONS[i % len(REGIONS)]}板块" + ("" if i < len(REGIONS) else str(i))
            self._add_board(rng, code, name, "region", groups[i])

    def _remove_board(self, code: str) -> BoardInfo:
        board = self.boards.pop(code)
        del self.members[code]
        self._sorted.pop(code, None)
        self._kind_sorted.pop(board.kind, None)
        return board

    def _refresh_board_stats(self) -> None:
        # Up/down counts and leaders from the quotes at the day's open (t=0): cheap and stable.
        # Each stock's open change is computed once, not once per board it belongs to.
        open_pct = {code: st.quote.pct(0.0) for code, st in self.stocks.items()}
        for code, board in self.boards.items():
            pcts = sorted((open_pct[c], c) for c in self.members[code])
            board.up = sum(1 for p, _ in pcts if p > 0)
            board.down = sum(1 for p, _ in pcts if p < 0)
            board.leader = pcts[-1][1] if pcts else ""
            board.laggard = pcts[0][1] if pcts else ""

    # -- reads ----------------------------------------------------------------------------
    def sorted_members(self, board_code: str) -> list[str]:
        """Member codes of a live board, ascending (cached until the board changes)."""
        cached = self._sorted.get(board_code)
        if cached is None:
            cached = self._sorted[board_code] = sorted(self.members[board_code])
        return cached

    def boards_of_kind(self, kind: str) -> list[str]:
        """Live board codes of ``kind``, ascending."""
        cached = self._kind_sorted.get(kind)
        if cached is None:
            cached = self._kind_sorted[kind] = sorted(
                c for c, b in self.boards.items() if b.kind == kind)
        return cached

    def level_of(self, code: str) -> int | None:
        """Industry level (1, 2 or 3) of an industry board, directory-only ones included;
        ``None`` for other boards, unknown codes and every board of a single-level market."""
        return self.levels.get(code)

    def boards_of_level(self, level: int) -> list[str]:
        """Listed industry board codes of ``level``, ascending (what ``m:90 s:2**level``
        selects); empty on a single-level market."""
        return [c for c in self.boards_of_kind("industry") if self.levels.get(c) == level]

    def directory_rows(self) -> list[dict[str, object]]:
        """The board directory's ``bklist`` rows (``sidemenu_new.json``; see ``levels.py``)."""
        from .levels import directory_rows  # see __init__

        return directory_rows(self)

    def truth(self) -> dict[str, frozenset[str]]:
        """``{board code: member codes}`` for every live board."""
        return {code: frozenset(m) for code, m in self.members.items()}

    def board_list(self) -> list[Board]:
        """Every live board as a ``models.Board`` (size hint = the list's ``f104 + f105``),
        by kind then code."""
        order = {"industry": 0, "concept": 1, "region": 2}
        return [Board(b.code, b.name, b.kind, b.up + b.down) for b in sorted(
            self.boards.values(), key=lambda b: (order.get(b.kind, 9), b.code))]

    def totals(self) -> dict[str, int]:
        """Board and membership counts per kind (for logs and the admin endpoint)."""
        out: dict[str, int] = {}
        for b in self.boards.values():
            out[f"{b.kind}_boards"] = out.get(f"{b.kind}_boards", 0) + 1
            out[f"{b.kind}_memberships"] = (out.get(f"{b.kind}_memberships", 0)
                                            + len(self.members[b.code]))
        out["boards"] = len(self.boards)
        out["memberships"] = sum(len(m) for m in self.members.values())
        return out

    # -- churn ----------------------------------------------------------------------------
    def churn(self, rng: random.Random, live: list[str], joined: dict[str, set[str]],
              left: dict[str, set[str]]) -> None:
        """A day's stocks joining and leaving boards of ``live`` (``churn_joins`` /
        ``churn_leaves`` draws, each board at most once either way a day)."""
        s = self.scenario
        stocks = sorted(self.stocks)
        for _ in range(s.churn_joins):
            board = rng.choice(live)
            fresh = [c for c in rng.sample(stocks, 20) if c not in self.members[board]
                     and c not in left.get(board, ())]
            if fresh:
                joined.setdefault(board, set()).add(fresh[0])
                self.members[board].add(fresh[0])
                self._sorted.pop(board, None)
        for _ in range(s.churn_leaves):
            board = rng.choice(live)
            pool = sorted(self.members[board] - joined.get(board, set()))
            if len(pool) > 1:
                code = rng.choice(pool)
                left.setdefault(board, set()).add(code)
                self.members[board].discard(code)
                self._sorted.pop(board, None)

    def advance_day(self) -> dict[str, object]:
        """Next trading day: stocks join and leave boards, one board appears, one is deleted.

        Returns ``{"joined": {board: set}, "left": {board: set}, "added_boards": [code],
        "deleted_boards": [code]}``; the new truth is the old one with ``joined`` added and
        ``left`` removed per board (an added board's members are all in ``joined``), minus the
        deleted boards. A 2026-scheme market adds its own keys (``levels.advance``).
        """
        if self.scenario.industry_levels:
            from .levels import advance  # see __init__

            return advance(self)
        self.day += 1
        s = self.scenario
        rng = random.Random(f"{self.seed}:day:{self.day}")
        joined: dict[str, set[str]] = {}
        left: dict[str, set[str]] = {}
        deletable = sorted(c for c, b in self.boards.items()
                           if b.kind == "concept" and c != s.largest_board)
        deleted: list[str] = []
        if deletable:
            victim = rng.choice(deletable)
            deleted.append(victim)
            kind = self.boards.pop(victim).kind
            del self.members[victim]
            self._sorted.pop(victim, None)
            self._kind_sorted.pop(kind, None)
        self.churn(rng, sorted(self.boards), joined, left)
        used = {int(c[2:]) for c in self.boards} | {int(c[2:]) for c in deleted}
        new_code = f"BK{max(used) + 1:04d}"
        new_members = set(rng.sample(sorted(self.stocks), rng.randint(15, 60)))
        self._add_board(rng, new_code, f"新概念{self.day}", "concept", new_members)
        joined[new_code] = set(new_members)
        self._refresh_board_stats()
        logger.info("Market: day %d, %d joins, %d leaves, added %s, deleted %s", self.day,
                    sum(map(len, joined.values())), sum(map(len, left.values())), new_code,
                    deleted)
        return {"joined": joined, "left": left, "added_boards": [new_code],
                "deleted_boards": deleted}
