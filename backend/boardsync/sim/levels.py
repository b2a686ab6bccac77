"""The 2026 board universe (``EASTMONEY_API.md`` section 13): nested industry levels,
per-period concept boards, a revamp day, and the board directory.

Facts it is sized to (litchi-head field report, 2026-09-04): the industry list
``m:90 t:2 f:!50`` returns 496 boards mixing 31 level-1, 128 level-2 and 337 level-3 ones
(``s:2`` / ``s:4`` / ``s:8`` select a level); concepts 504, regions 31; industry and concept
codes are disjoint; the directory ``sidemenu_new.json`` lists one industry board more (BK1362,
level 3) whose quote answers ``rc=100, data=null``; per-period concepts such as
BK1749-BK1752 "2026中报预增/扭亏/首亏/预减" appear with new codes.

Inferred, not observed, and built that way here:

- every stock is in exactly one board of each level and the levels nest (each level-3 board
  inside one level-2, each level-2 inside one level-1), as a classification does. Leaf sizes
  are lognormal and parents add their children up, which gives the heavy tail;
- industry codes come from BK1200-BK1748, level 1 lowest and level 3 highest (the level-3
  codes seen are BK16xx); concepts from BK0480-BK1199; every new board (a period's concepts,
  a revamp's codes, the daily new concept) takes the next code above every code ever used,
  and a removed code is never reused;
- a period's concept boards live for ``PERIOD_DAYS`` simulated days, then end while the next
  period's start; on the revamp day every listed board of ``revamp_level`` ends and a new
  code starts with the same name, members and place in the tree;
- industry memberships change only by reclassification (a stock moves to another level-3
  board, and its level-2/level-1 boards follow), so the one-board-per-level rule holds on
  every day; the daily join/leave churn touches concept boards only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random

from .market import BoardInfo, Market, draw_sizes
from .names import CONCEPT_NAMES, LEVEL1_NAMES, UNQUOTED_NAMES, period_board_name

logger = logging.getLogger(__name__)

#: Code ranges (``BK`` numbers, end exclusive) the industry levels and the concepts draw from.
INDUSTRY_CODES = (1200, 1749)
CONCEPT_CODES = (480, 1200)
#: The real directory-only board; the first unquoted board takes its code and name.
UNQUOTED_CODE = "BK1362"
#: Simulated days one report period's concept boards live.
PERIOD_DAYS = 2
#: Fewest members of a leaf industry board (when there are stocks enough).
LEAF_MIN = 3
#: Stocks reclassified to another level-3 board (with its parents) per simulated day.
INDUSTRY_MOVES = 3
#: ``type`` of a directory row per board kind (the page script's 1 region, 2 industry,
#: 3 concept).
DIRECTORY_TYPE = {"region": 1, "industry": 2, "concept": 3}
_LEVEL_MARK = ("", "Ⅱ", "Ⅲ")


def build(m: Market, rng: random.Random) -> None:
    """Industries (levelled), concepts (with the first period's boards), then regions."""
    _build_industries(m, rng)
    _build_concepts(m, rng)
    m._build_regions(rng)


# -- industries ----------------------------------------------------------------------------

def _industry_codes(rng: random.Random, m: Market) -> tuple[list[list[str]], list[str]]:
    """Codes per level (ascending, level 1 lowest) and the directory-only boards' codes."""
    s = m.scenario
    counts = s.industry_levels
    unquoted = s.directory_unquoted
    need = sum(counts) + max(0, unquoted - 1)
    skip = {s.largest_board, UNQUOTED_CODE}
    span = INDUSTRY_CODES[1] - INDUSTRY_CODES[0] - len(skip)
    hi = INDUSTRY_CODES[1] if need <= span else INDUSTRY_CODES[0] + 2 * need  # a big custom one
    pool = [f"BK{i:04d}" for i in range(INDUSTRY_CODES[0], hi) if f"BK{i:04d}" not in skip]
    codes = sorted(rng.sample(pool, need))
    by_level, at = [], 0
    for n in counts:
        by_level.append(codes[at: at + n])
        at += n
    return by_level, ([UNQUOTED_CODE] if unquoted else []) + codes[at:]


def _child_name(parent: str, depth: int, k: int) -> str:
    """Level-2 names end in "Ⅱ", level-3 in "Ⅲ"; "-k" / "k" keep siblings' names unique.

    Example: under 电子 the level-2 boards are 电子Ⅱ, 电子2Ⅱ; under 电子Ⅱ the level-3 ones are
    电子Ⅲ, 电子-2Ⅲ (and under 电子2Ⅱ, 电子2Ⅲ), so no two boards share a name.
    """
    base = parent.removesuffix(_LEVEL_MARK[depth - 1]) if depth > 1 else parent
    sep = "-" if depth > 1 else ""
    return f"{base}{sep + str(k + 1) if k else ''}{_LEVEL_MARK[depth]}"


def _build_industries(m: Market, rng: random.Random) -> None:
    s = m.scenario
    counts = s.industry_levels
    codes, unquoted = _industry_codes(rng, m)
    fanout = [draw_sizes(rng, counts[d], counts[d + 1], 1, counts[d + 1], 0.6)
              for d in range(len(counts) - 1)]
    smallest = LEAF_MIN if s.stocks >= LEAF_MIN * counts[-1] else 1
    leaf_sizes = draw_sizes(rng, counts[-1], s.stocks, smallest, s.stocks, 0.9)
    stocks = sorted(m.stocks)
    rng.shuffle(stocks)
    members: list[list[set[str]]] = [[] for _ in counts]
    at = 0
    for size in leaf_sizes:
        members[-1].append(set(stocks[at: at + size]))
        at += size
    for d in range(len(counts) - 2, -1, -1):
        children = iter(members[d + 1])
        members[d] = [set().union(*(next(children) for _ in range(k))) for k in fanout[d]]
    names = [[LEVEL1_NAMES[i] if i < len(LEVEL1_NAMES) else f"行业{i + 1}"
              for i in range(counts[0])]]
    for d in range(1, len(counts)):
        level_names: list[str] = []
        for p, k in enumerate(fanout[d - 1]):
            for child in range(k):
                m.parent[codes[d][len(level_names)]] = codes[d - 1][p]
                level_names.append(_child_name(names[d - 1][p], d, child))
        names.append(level_names)
    for d, level_codes in enumerate(codes):
        for code, name, mem in zip(level_codes, names[d], members[d], strict=True):
            m._add_board(rng, code, name, "industry", mem)
            m.levels[code] = d + 1
    for i, code in enumerate(unquoted):
        name = UNQUOTED_NAMES[i] if i < len(UNQUOTED_NAMES) else f"未报价行业{i + 1}"
        m.unquoted[code] = BoardInfo(code=code, name=name, kind="industry",
                                     quote=m._quote(rng, 500.0, 40000.0))
        m.levels[code] = len(counts)
        if len(codes) > 1:
            m.parent[code] = rng.choice(codes[-2])


# -- concepts ------------------------------------------------------------------------------

def _build_concepts(m: Market, rng: random.Random) -> None:
    s = m.scenario
    if s.concept_boards == 0:
        return
    rest = s.concept_boards - 1 - s.period_concepts
    taken = set(m.boards) | set(m.unquoted) | {s.largest_board}
    pool = [f"BK{i:04d}" for i in range(*CONCEPT_CODES) if f"BK{i:04d}" not in taken]
    if rest > len(pool):
        raise ValueError(f"{rest} concept boards do not fit BK{CONCEPT_CODES[0]:04d}-"
                         f"BK{CONCEPT_CODES[1] - 1:04d}")
    codes = sorted(rng.sample(pool, rest))
    names = [n for n in CONCEPT_NAMES if n != "融资融券" and not n.endswith("_")]
    rng.shuffle(names)
    while len(names) < rest:
        names.append(f"{rng.choice(names[:40])}{len(names)}")
    period_sizes = [rng.randint(20, 300) for _ in range(s.period_concepts)]
    sizes = draw_sizes(rng, rest, s.concept_memberships - s.largest_board_size
                       - sum(period_sizes), 3, min(2500, s.largest_board_size, s.stocks), 1.1)
    stocks = sorted(m.stocks)
    m._add_board(rng, s.largest_board, "融资融券", "concept",
                 set(rng.sample(stocks, s.largest_board_size)))
    for code, name, size in zip(codes, names, sizes, strict=True):
        m._add_board(rng, code, name, "concept", set(rng.sample(stocks, size)))
    _start_period(m, rng, 0, period_sizes)


def _next_code(m: Market) -> int:
    """The number above every code live, directory-only or ever removed."""
    return 1 + max(int(c[2:]) for group in (m.boards, m.unquoted, m.retired) for c in group)


def _start_period(m: Market, rng: random.Random, index: int, sizes: list[int]) -> list[str]:
    """Add period ``index``'s concept boards (one per outcome) on fresh codes; their codes."""
    base = _next_code(m)
    stocks = sorted(m.stocks)
    started = []
    for k, size in enumerate(sizes):
        code = f"BK{base + k:04d}"
        m._add_board(rng, code, period_board_name(index, k), "concept",
                     set(rng.sample(stocks, size)))
        m.period[code] = index
        started.append(code)
    return started


def _end(m: Market, code: str) -> None:
    m._remove_board(code)
    m.retired.add(code)
    m.levels.pop(code, None)
    m.parent.pop(code, None)
    m.period.pop(code, None)


# -- a day -----------------------------------------------------------------------------------

def advance(m: Market) -> dict[str, object]:
    """Next trading day of a 2026-scheme market.

    Returns the keys ``Market.advance_day`` documents (``joined``, ``left``,
    ``added_boards``, ``deleted_boards``: every board started or ended, whatever the reason)
    plus ``period_started`` / ``period_ended`` (the per-period concept boards) and
    ``revamped`` (``{old code: new code}``, empty except on the revamp day).
    """
    m.day += 1
    s = m.scenario
    rng = random.Random(f"{m.seed}:day:{m.day}")
    joined: dict[str, set[str]] = {}
    left: dict[str, set[str]] = {}
    deleted: list[str] = []
    ordinary = sorted(c for c, b in m.boards.items() if b.kind == "concept"
                      and c != s.largest_board and c not in m.period)
    if ordinary:
        deleted.append(rng.choice(ordinary))
        _end(m, deleted[0])
    _churn_concepts(m, rng, joined, left)
    _move_stocks(m, rng, joined, left)
    started: list[str] = []
    ended: list[str] = []
    if s.period_concepts and m.day % PERIOD_DAYS == 0:
        ended = sorted(m.period)
        for code in ended:
            _end(m, code)
        started = _start_period(m, rng, m.day // PERIOD_DAYS,
                                [rng.randint(20, 300) for _ in range(s.period_concepts)])
    revamped = _revamp(m, rng) if m.day == s.revamp_day else {}
    new_code = f"BK{_next_code(m):04d}"
    m._add_board(rng, new_code, f"新概念{m.day}", "concept",
                 set(rng.sample(sorted(m.stocks), rng.randint(15, 60))))
    added = started + list(revamped.values()) + [new_code]
    deleted += ended + list(revamped)
    for code in deleted:
        joined.pop(code, None)
        left.pop(code, None)
    for code in added:
        joined[code] = set(m.members[code])
    m._refresh_board_stats()
    logger.info("Market: day %d, %d joins, %d leaves, %d boards started, %d ended "
                "(%d revamped)", m.day, sum(map(len, joined.values())),
                sum(map(len, left.values())), len(added), len(deleted), len(revamped))
    return {"joined": joined, "left": left, "added_boards": added, "deleted_boards": deleted,
            "period_started": started, "period_ended": ended, "revamped": revamped}


def _churn_concepts(m: Market, rng: random.Random, joined: dict[str, set[str]],
                    left: dict[str, set[str]]) -> None:
    """Stocks join and leave concept boards (the old scheme's churn, concepts only)."""
    m.churn(rng, m.boards_of_kind("concept"), joined, left)


def _chain(m: Market, code: str) -> list[str]:
    """``code`` and its ancestors, deepest first."""
    out = [code]
    while out[-1] in m.parent:
        out.append(m.parent[out[-1]])
    return out


def _move_stocks(m: Market, rng: random.Random, joined: dict[str, set[str]],
                 left: dict[str, set[str]]) -> None:
    """Reclassify a few stocks to another leaf; each level's board changes only if it differs
    (a move within one level-2 board leaves level 2 and level 1 as they were)."""
    leaves = m.boards_of_level(len(m.scenario.industry_levels))
    if len(leaves) < 2:
        return
    for _ in range(INDUSTRY_MOVES):
        src, dst = rng.sample(leaves, 2)
        if len(m.members[src]) < 2:
            continue
        stock = rng.choice(sorted(m.members[src]))
        pairs = [(a, b) for a, b in zip(_chain(m, src), _chain(m, dst), strict=True) if a != b]
        if any(stock in joined.get(a, ()) or stock in left.get(b, ()) for a, b in pairs):
            continue  # undoing today's change would not show as a join and a leave
        for a, b in pairs:
            m.members[a].discard(stock)
            m.members[b].add(stock)
            left.setdefault(a, set()).add(stock)
            joined.setdefault(b, set()).add(stock)
            m._sorted.pop(a, None)
            m._sorted.pop(b, None)


def _revamp(m: Market, rng: random.Random) -> dict[str, str]:
    """Replace every listed board of ``revamp_level`` by a new code: same name, members and
    parent, and its children move under the new code. Directory-only boards keep theirs."""
    level = m.scenario.revamp_level
    base = _next_code(m)
    mapping: dict[str, str] = {}
    for i, old in enumerate(m.boards_of_level(level)):
        new = f"BK{base + i:04d}"
        parent = m.parent.get(old)
        members = set(m.members[old])
        name = m.boards[old].name
        _end(m, old)
        m._add_board(rng, new, name, "industry", members)
        m.levels[new] = level
        if parent is not None:
            m.parent[new] = parent
        mapping[old] = new
    for child, parent in list(m.parent.items()):
        if parent in mapping:
            m.parent[child] = mapping[parent]
    return mapping


# -- the directory -----------------------------------------------------------------------------

def _initials(name: str) -> str:
    # Not real pinyin (no table for it here): one capital per character, as real initials
    # are ("四川板块" has "SCBK"), so a client sees the field's shape, not its content.
    return "".join(ch.upper() if ch.isascii() and ch.isalnum() else chr(65 + ord(ch) % 26)
                   for ch in name)


def directory_rows(m: Market) -> list[dict[str, object]]:
    """``bklist`` rows of ``sidemenu_new.json``: every listed board plus the directory-only
    ones, by type (region, industry, concept) then code.

    Row keys in the real order: ``market`` (90), ``code``, ``name``, ``pinyin``, ``type``
    (1 region, 2 industry, 3 concept) and ``flag`` (an industry board's level 1/2/3; 0 for
    concepts, regions and a single-level market's industries).

    Evidence: a 2026 C# client in the code index (``EastMoneySideMenuBoardListProvider``,
    repository not identifiable) documents one real row with these six keys in this order
    and the meanings of ``type`` and ``flag``; litchi-head's report (2026-09-04) says the page
    script names the types and that ``flag`` 1/2/3 is the level, and its client checks
    ``market == 90`` and ``type``; SayuStock's client reads ``bklist`` rows' ``type``,
    ``name`` and ``code``. Inferred or made up: the rows' order, ``pinyin``'s values, and
    that the file holds nothing else a board client needs.
    """
    rows: list[dict[str, object]] = []
    for kind, type_ in DIRECTORY_TYPE.items():
        codes = set(m.boards_of_kind(kind))
        if kind == "industry":
            codes |= set(m.unquoted)
        for code in sorted(codes):
            board = m.boards.get(code) or m.unquoted[code]
            rows.append({"market": 90, "code": code, "name": board.name,
                         "pinyin": _initials(board.name), "type": type_,
                         "flag": m.levels.get(code, 0)})
    return rows


def directory_json(m: Market) -> bytes:
    """The body of ``GET /center/api/sidemenu_new.json``: ``{"bklist": [rows]}``.

    The real file is static (no ``rc`` envelope, no ``total``); other top-level keys it may
    carry (the menu tree) are left out, since no client of the board data reads them.
    """
    return json.dumps({"bklist": directory_rows(m)}, ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")


def hide_lost(market: Market, codes: list[str], loss: dict[str, float]) -> list[str]:
    """``codes`` without the share ``loss[kind]`` of each kind's boards (a list that comes
    back short while the boards still answer: a soft ban or a glitch of the list). Which
    boards are hidden is fixed by their codes (a hash order), so every page agrees."""
    hidden: set[str] = set()
    for kind, share in loss.items():
        of_kind = sorted(market.boards_of_kind(kind),
                         key=lambda c: hashlib.sha256(c.encode()).digest())
        hidden.update(of_kind[: int(len(of_kind) * share)])
    return [c for c in codes if c not in hidden]
