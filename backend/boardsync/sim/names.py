"""Names the simulated market draws from: real board names where they are known, made-up
stock names, the provinces, and the 2026 scheme's level-1 industries and report periods.

Kept apart from ``market.py`` so the market's logic fits one screen of review; the tables
are data, not behaviour. Nothing here is random: the market's seeded draws pick from them.
"""

from __future__ import annotations

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

#: The 31 level-1 industries of East Money's 2026 scheme (the Shenwan-style first level the
#: field report counts 31 of; the names are the common first-level names, used for realism).
LEVEL1_NAMES: tuple[str, ...] = (
    "农林牧渔", "基础化工", "钢铁", "有色金属", "电子", "汽车", "家用电器", "食品饮料",
    "纺织服饰", "轻工制造", "医药生物", "公用事业", "交通运输", "房地产", "商贸零售",
    "社会服务", "银行", "非银金融", "综合", "建筑材料", "建筑装饰", "电力设备", "机械设备",
    "国防军工", "计算机", "传媒", "通信", "煤炭", "石油石化", "环保", "美容护理",
)

#: Names of the directory's industry boards that have no quote: BK1362 is the real one
#: (a level-3 board, listed by sidemenu_new.json but absent from the clist lists, 2026-09).
UNQUOTED_NAMES: tuple[str, ...] = ("其他多元金融",)

#: Outcome words of the per-period earnings-forecast concept boards (BK1749-BK1752 were
#: "2026中报预增/扭亏/首亏/预减"); the first four are the real ones, the rest pad.
PERIOD_OUTCOMES: tuple[str, ...] = ("预增", "扭亏", "首亏", "预减", "略增", "续盈", "略减", "增亏")
_PERIOD_REPORTS: tuple[str, ...] = ("中报", "三季报", "年报", "一季报")


def period_label(index: int) -> str:
    """The report period ``index`` periods after 2026's interim report.

    Example: 0 -> "2026中报", 2 -> "2026年报", 3 -> "2027一季报" (a year's annual report comes
    before the next year's first quarter), 4 -> "2027中报".
    """
    return f"{2026 + (index + 1) // 4}{_PERIOD_REPORTS[index % 4]}"


def period_board_name(index: int, outcome: int) -> str:
    """``"2026中报预增"`` for period 0, outcome 0; outcomes past the table get a number."""
    word = PERIOD_OUTCOMES[outcome % len(PERIOD_OUTCOMES)]
    extra = outcome // len(PERIOD_OUTCOMES)
    return f"{period_label(index)}{word}{extra + 1 if extra else ''}"
