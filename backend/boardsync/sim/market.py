"""The simulated market: stocks, boards, memberships, live prices and day-to-day churn.

Counts are constructed exactly (board sizes are drawn, then corrected to the scenario's totals)
before members are assigned, so the reference totals hold for every seed. Prices move as a
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
from .scenario import Scenario

logger = logging.getLogger(__name__)


#: Real industry codes and names (East Money old scheme) beyond the 50 in the real capture.
EXTRA_INDUSTRIES: tuple[tuple[str, str], ...] = (
    ("BK0475", "银行"), ("BK0473", "证券"), ("BK0477", "酿酒行业"), ("BK0438", "食品饮料"),
    ("BK0456", "家电行业"), ("BK0481", "汽车零部件"), ("BK1029", "汽车整车"),
    ("BK0447", "互联网服务"), ("BK0737", "软件开发"), ("BK0486", "文化传媒"), ("BK1046", "游戏"),
    ("BK0736", "通信服务"), ("BK0480", "航天航空"), ("BK0545", "通用设备"),
    ("BK0739", "工程机械"), ("BK0726", "工程咨询服务"), ("BK0476", "木业家具"),
    ("BK0436", "纺织服装"), ("BK0440", "家用轻工"), ("BK0485", "旅游酒店"),
    ("BK0458", "仪器仪表"), ("BK1031", "光伏设备"), ("BK1032", "风电设备"), ("BK1033", "电池"),
    ("BK1034", "电源设备"), ("BK1035", "美容护理"), ("BK1038", "光学光电子"), ("BK1040", "中药"),
    ("BK1043", "专业服务"), ("BK1044", "生物制品"), ("BK0450", "航运港口"),
    ("BK0421", "铁路公路"), ("BK0732", "贵金属"), ("BK0735", "安防设备"),
    ("BK1017", "采掘行业"), ("BK1019", "化学原料"), ("BK0910", "专用设备"),
    ("BK1047", "计算机设备"), ("BK1048", "电子化学品Ⅱ"),
)

CONCEPT_NAMES: tuple[str, ...] = (
    "深股通", "沪股通", "MSCI中国", "标准普尔", "富时罗素", "HS300_", "上证180_", "中证500",
    "创业板综", "深成500", "机构重仓", "预盈预增", "昨日涨停", "昨日连板", "专精特新", "国企改革",
    "新能源车", "锂电池", "光伏概念", "储能", "氢能源", "风能", "核能核电", "特高压", "充电桩",
    "半导体概念", "芯片概念", "第三代半导体", "国产芯片", "存储芯片", "汽车芯片", "人工智能",
    "ChatGPT概念", "算力概念", "CPO概念", "数据中心", "云计算", "大数据", "东数西算", "信创",
    "国产软件", "网络安全", "区块链", "数字货币", "元宇宙概念", "虚拟现实", "5G概念", "6G概念",
    "物联网", "工业互联", "机器人概念", "人形机器人", "减速器", "无人机", "低空经济", "卫星导航",
    "军工", "航母概念", "大飞机", "医疗器械概念", "创新药", "CRO", "中药概念",
    "疫苗", "医美概念", "养老概念", "体育产业", "在线教育", "网络游戏", "短剧互动游戏", "影视概念",
    "电商概念", "跨境电商", "统一大市场", "一带一路", "京津冀", "粤港澳大湾区", "长江三角",
    "雄安新区", "海南自贸", "成渝特区", "西部大开发", "乡村振兴", "转基因", "种业", "猪肉概念",
    "白酒", "预制菜概念", "啤酒概念", "化妆品", "宠物经济", "装配建筑", "基建", "REITs概念",
    "稀土永磁", "小金属概念", "黄金概念", "有机硅", "氟化工", "磷化工", "钠离子电池", "固态电池",
    "钒电池", "PCB", "消费电子概念", "苹果概念", "华为概念", "小米汽车", "鸿蒙概念", "汽车热管理",
    "无人驾驶", "车联网", "智能电网", "虚拟电厂", "超导概念", "可控核聚变", "碳交易", "垃圾分类",
    "污水处理", "土壤修复", "节能环保", "融资融券",
)

NAME_HEADS = "华中国东南西北新宏天金海通光电科信达安恒泰长盛鑫瑞德利康美永兴汇源嘉成博远明亿联创"
NAME_TAILS = ("股份", "科技", "电子", "药业", "集团", "能源", "材料", "智能", "控股", "实业",
              "电气", "精工", "生物", "传媒", "新材", "重工", "信息", "环境", "食品", "化工")
REGIONS = ("北京", "上海", "天津", "重庆", "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏",
           "浙江", "安徽", "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "海南", "四川",
           "贵州", "云南", "陕西", "甘肃", "青海", "内蒙古", "广西", "西藏", "宁夏", "新疆")

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
        self._build_stocks(rng)
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

    def _refresh_board_stats(self) -> None:
        # Up/down counts and leaders from the quotes at the day's open (t=0): cheap and stable.
        for code, board in self.boards.items():
            pcts = sorted((self.stocks[c].quote.pct(0.0), c) for c in self.members[code])
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
    def advance_day(self) -> dict[str, object]:
        """Next trading day: stocks join and leave boards, one board appears, one is deleted.

        Returns ``{"joined": {board: set}, "left": {board: set}, "added_boards": [code],
        "deleted_boards": [code]}``; the new truth is the old one with ``joined`` added and
        ``left`` removed per board (an added board's members are all in ``joined``), minus the
        deleted boards.
        """
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
        live = sorted(self.boards)
        stocks = sorted(self.stocks)
        for _ in range(s.churn_joins):
            board = rng.choice(live)
            candidates = [c for c in rng.sample(stocks, 20) if c not in self.members[board]
                          and c not in left.get(board, ())]
            if candidates:
                joined.setdefault(board, set()).add(candidates[0])
                self.members[board].add(candidates[0])
                self._sorted.pop(board, None)
        for _ in range(s.churn_leaves):
            board = rng.choice(live)
            pool = sorted(self.members[board] - joined.get(board, set()))
            if len(pool) > 1:
                code = rng.choice(pool)
                left.setdefault(board, set()).add(code)
                self.members[board].discard(code)
                self._sorted.pop(board, None)
        used = {int(c[2:]) for c in self.boards} | {int(c[2:]) for c in deleted}
        new_code = f"BK{max(used) + 1:04d}"
        new_members = set(rng.sample(stocks, rng.randint(15, 60)))
        self._add_board(rng, new_code, f"新概念{self.day}", "concept", new_members)
        joined[new_code] = set(new_members)
        self._refresh_board_stats()
        logger.info("Market: day %d, %d joins, %d leaves, added %s, deleted %s", self.day,
                    sum(map(len, joined.values())), sum(map(len, left.values())), new_code,
                    deleted)
        return {"joined": joined, "left": left, "added_boards": [new_code],
                "deleted_boards": deleted}
