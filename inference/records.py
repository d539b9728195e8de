"""Turn a report and its entities into one structured record: who helps whom, and the figures.

`build_record(text, entities)` returns
    {"partners": [{"helper": {...}, "recipient": {...}, "level", "score", "evidence", "pairing"}],
     "facts": [{label, start, end, text, value, unit, qualifier, date, category, kind, regions, …}],
     "not_facts": [{label, start, end, text, reason}],
     "published": "YYYY-MM-DD" or None, "published_at": the full date-time or None}
as plain JSON, key for key what `record_types.Record` defines (published as schema/record.schema.json;
the tests validate real records against it). Every derived value carries the character span it came from.

Partners. Who is east and who is west is data, not guesswork: configs/pairings.yaml lists the
national East–West pairings and the counterpart-support (对口支援) pairings with their years, each
province's role, and the words that name a pairing (闽宁, 沪遵 …) or a side (援黔, 赴沪 …). The text
supplies the places and the cues: direction cues (A帮扶B, A援建的B, 由A结对帮扶B, 在A的帮扶下,
A向B选派 …), plain pairings (A与B, 天津和平·甘肃会宁; word order does not tell who helps) and the
pairing words, which name both places and, when listed, which one helps. The mentions of one place
are merged first (天津 counts as 和平区 when 和平区 is the only part of it named, and more often).
A pair is a candidate when a cue joins its places or the data pairs their provinces. A direction
is emitted when the text states it in so many words (A帮扶B with A right before the verb; a listed
pairing word), towards a place that is not helper-side; else only when the data supports it: the
data pairs the two areas or their provinces and the helper is not a recipient-side place (甘肃,
遵义, 恩施 …). A place of a province on both sides (重庆, 陕西, 湖北, 河北, 吉林, 湖南) helps only
the areas the data pairs it with (重庆→昌都, never 重庆→成都 or 武汉→恩施), and two places of one
province are never paired without the words. Candidates rank by cue weight plus data support, then
by how often their less named side is named, then by where the text first states them. The record
lists the most specific pair the text supports first (a county pair inside a pairing word's
province pair; the pairing the data puts a word's places under: 甬黔 with 兴仁市 and 普安县 →
宁波市→黔西南州), then the province pair it belongs to when the data or the text pairs the two
provinces as wholes (浙江→四川, not 北京→河北 for 北京→张家口), then every further pair the text
states about as firmly, each with its province pair.
Places in datelines (新华社成都5月2日电), bylines (the byline itself: 记者 李明 报道), source and
copyright lines and link lists under a page's 推荐/相关 headings are never partners; nor is the host
of an event (在北京举办的…) when it is a third place, its province paired by the data with none
other the report names. A host that is a partner (天津市和平区在会宁县举办展销会) stays a place, but
the host phrase is no cue.

Facts. A figure's category comes from the words that govern it: the list item that holds it
(劳务协作类项目4个, 29个项目, 1.07亿元产业扶贫资金), falling back to the nearest trigger in its sentence;
a part (其中…, 其中，…, 其中：…) takes its whole's category. Its date comes from its own clause, or
from a time phrase that opens the sentence (2022年，…; 2017年以来，…). Money that is not a transfer
(a price, an income, an output value) says so in `kind`, and an amount per unit (每亩, 人均, 户均,
12元/公斤) in `per`; a count written without a classifier takes its unit from the noun after it
(1600萬網友 → 人). Figures inside a short quoted name (“百名企业家渭源行”) are not facts: they go to
`not_facts`.
"""
from __future__ import annotations

import bisect
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import islice, takewhile

import yaml

from eastwest.inference.gazetteer import LEVELS, Gazetteer, Region, to_simplified
from eastwest.inference.normalize import normalize, parse_date
from eastwest.inference.record_types import FACT_LABELS
from eastwest.inference.schema import CONFIG_DIR, Entity

CATEGORIES_FILE = CONFIG_DIR / "categories.yaml"
PAIRINGS_FILE = CONFIG_DIR / "pairings.yaml"
_SENTENCE_END = re.compile(r"[。！？；!?;\n]")
_CLAUSE_BREAK = re.compile(r"[，,；;。！？!?\n]")
_ITEM_BREAK = re.compile(r"[，,；;。！？!?\n、：:]")

# A cue verb right before the recipient; the helper is the nearest other place before the verb.
_HELP_VERB = re.compile(r"(结对帮扶|对口帮扶|对口支援|对口协作|帮扶|援建|支援|扶持|帮助|援助)(?:了|的)?$")
_HELPED_BY = re.compile(r"^(?:的)?[^，,。]{0,8}?(?:帮扶|援建|支援|帮助|援助|支持)下")  # 在A的倾心帮扶下
# A向B选派/捐赠…: the giving side is named first. Weak, as the helped side also sends people.
_SENDS_AFTER = re.compile(r"^(?:选派|派出|派遣|输送|捐赠|捐助|捐款|提供|援助|投入)")
_PAIRED = re.compile(r"^[与和同及·・—－–-]$")
# Places in one list (北京、上海、天津等省市 / 张家口市和保定市) share a cue; 、 lists, it does not pair:
# 江宁区与洛南县、雨花台区与丹凤县 pairs 洛南县 with no 雨花台区.
_JOINED = re.compile(r"^[与和同及、]$")
_RESPECTIVELY = "分别"
# "In so many words": the helper stands right before the verb (和平区帮扶会宁县, 由A结对帮扶B).
_EXPLICIT_GAP = re.compile(r"^[^，,。；;！？!?]{0,4}$")
_VERB_REACH = 25
# A verb's helper is among the last places named before it in its sentence; looking further back
# only reaches earlier clauses, and would make a sentence of n places cost n².
_HELPER_REACH = 16
_HEADLINE_CHARS = 400
# A pair the data alone suggests (no cue) is formed from the places each province names most: a
# report's partners are among those, and a long report naming hundreds of places would otherwise
# make every helper-side place a candidate with every recipient-side one.
_DATA_PLACES = 8

_WEIGHT_DIRECTED = 3.0
_WEIGHT_SENDS = 1.0
_WEIGHT_PAIRED = 1.0
_DATA_BONUS = {2: 2.0, 1: 1.0, 0: 0.0}  # the data pairs the two areas / only their provinces

# Page parts whose places are not partners.
_DATELINE_AFTER = re.compile(r"^\s*(?:\d{1,2}月)?(?:\d{1,2}日)?\s*[电讯](?=$|[\s(（:：【]|记者)")
_DATELINE_BEFORE = re.compile(r"^[^，,。；;！？!?\s]{0,12}$")
# How far back a dateline's line may start: 12 characters of agency and place (above), with room for
# indentation and an opening bracket. A mention further into its line is no dateline.
_DATELINE_REACH = 40
# Lines of page furniture, excluded whole. 记者 and 通讯员 are not here: a line that starts with them may
# be article text (记者从会宁县获悉，…) or a byline followed by the lead (记者 李明 报道 近日，…).
_SOURCE_LINE = re.compile(
    r"^[\s|｜•·]*(?:来源|信息来源|稿件来源|文章来源|版权|copyright|©|主办|承办|协办|技术支持|备案|责任编辑|编辑"
    r"|作者|摄影|校对|审核|监制|总监审|监审|网站标识码|联系电话|地址|邮编)(?P<next>.?)",
    re.IGNORECASE,
)
_FURNITURE_WORD = re.compile(r"编辑[:：\s]|作者[:：\s]|来源[:：]|版权所有|供稿")  # anywhere in a short line
_SHORT_LINE = 60
# A byline, excluded as far as it goes: 记者/通讯员 and the names after it, each name ending at a space,
# a bracket, 报道 or the line end, then any place + 报道 (记者 李明 通讯员 王芳 兰州报道; 本报记者李明报道).
# 记者从会宁县获悉 is no byline: 从会宁县 does not end there.
_BYLINE_NAME = r"[^\s，,。；;！？!?:：、()（）]{1,4}"
_BYLINE = re.compile(
    rf"(?:记者|通讯员)[ \t\u3000:：]*{_BYLINE_NAME}(?:[ \t\u3000]+{_BYLINE_NAME})*(?=[\s)）:：]|报道|$)"
    r"(?:[ \t\u3000]*[^\s，,。；;！？!?:：、()（）]{0,6}?报道)?",
    re.MULTILINE,
)
_BYLINE_PAREN = re.compile(r"[(（][^()（）\n]{0,40}?(?:记者|通讯员|编辑)[^()（）\n]{0,40}[)）]")
_FURNITURE_HEADING = re.compile(
    r"^\s*(?:精彩推荐|相关链接|相关新闻|相关阅读|相关文章|推荐阅读|推荐新闻|延伸阅读|热点推荐|热门推荐|热点新闻"
    r"|即时播报|猜你喜欢|友情链接|关注我们|分享到|打印本页|关闭窗口)\s*[:：]?\s*$"
)
_HOST_BEFORE = re.compile(r"(?:在|于)$")
_HOST_AFTER = re.compile(r"^[^，,。；;！？!?\n]{0,20}?(?:举办|举行|召开|开幕|闭幕|落幕|揭幕)")
_HOST_OF = re.compile(r"^(?:市|省)?(?:举办|举行|召开)的")

# Facts.
_ENUMERATION_END = re.compile(r"等等?$")  # 产业开发、劳务协作…等29个项目: the head noun follows the figure
# A part: 其中 opens the figure's list item (其中脱贫人口2286人), or is an item of its own right before
# it (其中，脱贫人口2286人; 其中：2020年投入735万元).
_PART_OF = re.compile(r"^其中")
_PART_OF_ALONE = re.compile(r"(?:^|[，,；;、])其中[，,:：]$")
_SINCE_BEFORE = ("自", "从")
_SINCE_AFTER = ("以来", "开始", "至今", "以后", "起")
_UNTIL_BEFORE = ("截止到", "截至", "截止")
_DATE_OPENERS = _SINCE_BEFORE + _UNTIL_BEFORE + ("于", "在", "到")  # words a date clause may start with
# 每亩补贴400元 → 亩; 人均增收2000元 → 人 (人均, 户均, 亩均 name their unit themselves).
_PER = re.compile(r"每(亩|人|户|公斤|千克|斤|吨|头|只|株|棵|平方米|年|月|天)|(人|户|亩)均")
_PER_NEXT_TO = re.compile(r"一(亩|公斤|千克|斤|吨)$")  # 按一公斤1元的价格
_PER_PERIOD = re.compile(r"(月|年)(?:均)?(?:收入|工资|薪)")  # 平均月收入4500元
_PER_AFTER = re.compile(r"^/(亩|人|户|公斤|千克|斤|吨)")  # 12元/公斤
_QUOTES = {"“": "”", "《": "》", "「": "」", "\"": "\""}
# Nouns for people that stand in for a classifier (220多万贫困人口, 1600萬網友; LABELS.md), longest first.
_PEOPLE_NOUNS = tuple(sorted(
    "人口 贫困人口 脱贫人口 网友 群众 农民 农户 贫困户 脱贫户 家庭 劳动力 学生 游客 村民 居民 患者 儿童 妇女 "
    "老人 党员 干部 教师 医生 人才 员工 工人 职工 农牧民 牧民".split(), key=len, reverse=True))
_NAME_CHARS = 20


@dataclass
class _Mention:
    entity: Entity
    region: Region
    sentence: int
    place: str = ""  # code of the merged place this mention counts for
    abbreviation: bool = False  # a pairing word or one-character name, not a REGION span
    host: bool = False  # where an event is held (在会宁县举办…): a place, but the phrase is no cue


@dataclass
class _Pair:
    score: float = 0.0
    direction: Counter = field(default_factory=Counter)  # (helper, recipient) → votes
    explicit: Counter = field(default_factory=Counter)  # (helper, recipient) → votes in so many words
    evidence: list = field(default_factory=list)
    named: bool = False  # a cue joins two named places, not only a pairing word


# --- sentences, published date ------------------------------------------------------------------

def split_sentences(text: str) -> list[tuple[int, int]]:
    """[start, end) spans of sentences, split on 。！？；!?; and newlines, whitespace trimmed."""
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text + "\n"):
        s, e = start, m.start()
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            spans.append((s, e))
        start = m.end()
    return spans


_DATE_LINE = re.compile(r"(发布时间|发布日期|发表时间|时间|日期|来源|生成日期)\s*[:：]")
_DATE_LINE_RANK = {"发布时间": 0, "发布日期": 0, "发表时间": 0, "时间": 1, "日期": 1, "来源": 2, "生成日期": 3}
_LINE_DATE = re.compile(
    r"(?<!\d)(?:\d{4}|\d{2})[-/.年]\d{1,2}[-/.月]\d{1,2}日?/?(?:\s*\d{1,2}:\d{2}(?::\d{2})?)?"
)


def find_published(text: str) -> str | None:
    """The date-time on the report's date line (发布时间:…, 时间:…, a 来源 line with a date), ISO."""
    best = None
    for line in text.splitlines():
        simplified = to_simplified(line)
        keys = _DATE_LINE.findall(simplified)
        date_match = _LINE_DATE.search(simplified)
        if not keys or not date_match or len(line) > 200:
            continue
        rank = min(_DATE_LINE_RANK[k] for k in keys)
        try:
            value = parse_date(date_match.group())
        except ValueError:
            continue
        if best is None or rank < best[0]:
            best = (rank, value)
    return best[1] if best else None


# --- categories ------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def load_categories() -> tuple[str, tuple, tuple]:
    """(default category, triggers, money-kind words) from configs/categories.yaml, each word as
    (its pattern, its category or kind, priority, generic); a kind's priority is its place in the file."""
    data = yaml.safe_load(CATEGORIES_FILE.read_text(encoding="utf-8"))
    generic = frozenset(data["generic_triggers"])
    triggers = tuple((re.compile(re.escape(t)), c["name"], c["priority"], t in generic)
                     for c in data["categories"] for t in c["triggers"])
    kinds = tuple((re.compile(re.escape(w)), k["kind"], i, False)
                  for i, k in enumerate(data["money_kinds"]) for w in k["words"])
    return str(data["default"]), triggers, kinds


@dataclass(frozen=True)
class _Word:
    """A category trigger or money-kind word found in a sentence."""

    start: int
    end: int
    name: str  # the category or the kind
    priority: int  # the lower wins a tie
    generic: bool = False  # a head noun that fits any project (项目)


def _find(text: str, sentence: tuple[int, int], lexicon: tuple) -> list[_Word]:
    """Every (pattern, name, priority, generic) of `lexicon` in the simplified sentence, less the
    matches inside a longer match (社会帮扶资金 hides its 帮扶资金)."""
    s0, s1 = sentence
    sent = to_simplified(text[s0:s1])
    found = [_Word(s0 + m.start(), s0 + m.end(), name, priority, generic)
             for pattern, name, priority, generic in lexicon for m in pattern.finditer(sent)]
    return [w for w in found
            if not any(o.start <= w.start and w.end <= o.end and o.end - o.start > w.end - w.start for o in found)]


def sentence_words(text: str, sentence: tuple[int, int]) -> tuple[list[_Word], list[_Word]]:
    """The category triggers and the money-kind words of a sentence, found once for all its figures."""
    _, triggers, kinds = load_categories()
    return _find(text, sentence, triggers), _find(text, sentence, kinds)


def _nearest(words: list[_Word], start: int, end: int) -> _Word | None:
    """The word nearest the figure at [start, end). A word after it counts double distance (a report
    names what it counts before the number more often than after); a tie goes to the longer word,
    then to the lower priority."""
    def key(w: _Word) -> tuple:
        distance = start - w.end if w.end <= start else 2 * max(0, w.start - end)
        return distance, w.start - w.end, w.priority
    return min(words, key=key, default=None)


def _item(text: str, sentence: tuple[int, int], start: int, end: int) -> tuple[int, int]:
    """The list item holding [start, end): the sentence cut at commas, enumeration commas and colons."""
    s0, s1 = sentence
    left = [m.end() for m in _ITEM_BREAK.finditer(text, s0, start)]
    right = _ITEM_BREAK.search(text, end, s1)
    return (left[-1] if left else s0), (right.start() if right else s1)


def categorise(text: str, item: tuple[int, int], triggers: list[_Word], start: int, end: int, floor: int = 0,
               whole_sentence: bool = True) -> dict:
    """Category of the figure at [start, end), from the words that govern it.

    `item` is the list item that holds the figure (`_item`) and `triggers` its sentence's
    (`sentence_words`). The governing words are the item, after any earlier figure of the same
    item (`floor`). The nearest trigger before the figure names what it counts or funds, unless it
    is a generic head (项目): then a more specific trigger further left in the item wins
    (劳务协作类项目4个 → 劳务协作). With none before, the nearest trigger after it (29个项目,
    1.07亿元产业扶贫资金). An enumeration ending in 等 before the figure only qualifies the noun
    after it (产业开发、劳务协作…等29个项目 → 项目). With no trigger in the item, the nearest trigger of
    the sentence wins (`_nearest`), unless `whole_sentence` is False.
    """
    default = load_categories()[0]
    # the figure's own characters are no trigger (29个项 cut from 项目 keeps 项目)
    triggers = [w for w in triggers if not (start <= w.start and w.end <= end)]
    i0, i1 = item
    lo = max(i0, floor)
    if _ENUMERATION_END.search(to_simplified(text[lo:start])):
        lo = start
    in_item = [w for w in triggers if lo <= w.start and w.end <= start or start <= w.start and end < w.end <= i1]
    if in_item:
        pool = [w for w in in_item if w.end <= start] or in_item
        best = _nearest([w for w in pool if not w.generic] or pool, start, end)
    else:
        best = _nearest(triggers, start, end) if whole_sentence else None
    if best is None:
        return {"category": default, "trigger": None}
    return {"category": best.name, "trigger": {"text": text[best.start:best.end], "start": best.start, "end": best.end}}


def money_kind(text: str, item: tuple[int, int], kinds: list[_Word], start: int, end: int) -> dict:
    """What an amount is (`kind`: transfer, price, income, output value) and what it is per (`per`).

    The nearest kind word of the figure's list item decides (价格, 收入, 产值 … in
    configs/categories.yaml; `kinds` are its sentence's); none means a transfer. `per` is the unit
    of a per-unit amount: 每亩补贴400元 → 亩, 人均增收 → 人, 月收入 → 月, 12元/公斤 → 公斤; None for a total.
    """
    i0, i1 = item
    before, after = to_simplified(text[i0:start]), to_simplified(text[end:i1])
    per = _PER_AFTER.match(after)
    per_unit = per.group(1) if per else None
    if per_unit is None:
        for pattern in (_PER, _PER_PERIOD):
            hits = list(pattern.finditer(before))
            if hits:
                per_unit = next(unit for unit in hits[-1].groups() if unit)
                break
    if per_unit is None and (m := _PER_NEXT_TO.search(before)):
        per_unit = m.group(1)
    word = _nearest([w for w in kinds if i0 <= w.start and w.end <= start or end <= w.start and w.end <= i1],
                    start, end)
    kind = word.name if word else "price" if per else "transfer"
    return {"kind": kind, "per": per_unit}


# --- pairings data ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pairing:
    """One pairing of configs/pairings.yaml: `helper` helps `recipient` from year `start` to `end`."""

    helper: Region
    recipient: Region
    programme: str
    start: int
    end: int | None
    source: str

    def in_force(self, year: int) -> bool:
        return self.start <= year and (self.end is None or year <= self.end)

    def to_dict(self) -> dict:
        return {"helper": self.helper.full_name, "recipient": self.recipient.full_name,
                "programme": self.programme, "from": self.start, "to": self.end, "source": self.source}


class Pairings:
    """configs/pairings.yaml resolved through the gazetteer: sides, matches and abbreviations."""

    def __init__(self, data: dict, gazetteer: Gazetteer):
        self.gazetteer = gazetteer
        self.sources = dict(data["sources"])
        self.roles = {self._place(name).code: role for name, role in data["roles"].items()}
        self.pairings = tuple(
            Pairing(self._place(p["helper"]), self._place(p["recipient"]), p["programme"], int(p["from"]),
                    None if p.get("to") is None else int(p["to"]), p["source"])
            for p in data["pairings"]
        )
        # a pairing can only fit two places of its own two provinces: index it by them
        self._by_provinces = defaultdict(list)
        for p in self.pairings:
            self._by_provinces[(self.province(p.helper).code, self.province(p.recipient).code)].append(p)
        # (province code, side) for each province that takes a side as a whole: its role is that side
        # alone, or a pairing names the province itself on it (山东→重庆市; 河北 is helped only in
        # its 张家口, 保定 and 承德)
        self._wholes = {(code, role) for code, role in self.roles.items() if role != "both"}
        self._wholes |= {(region.code, side) for p in self.pairings
                         for region, side in ((p.helper, "helper"), (p.recipient, "recipient"))
                         if region.level == "province"}
        self.compounds = {word: (self._place(h), self._place(r)) for word, (h, r) in data["compounds"].items()}
        self.singles = {char: tuple(self._place(n) for n in names) for char, names in data["singles"].items()}
        self.contexts = list(data["contexts"])
        self.follow_words = tuple(data["follow_words"])
        self.compound_follow = tuple(data["compound_follow"])
        self._check()

    def _place(self, name: str) -> Region:
        found = self.gazetteer.candidates(name)
        if len(found) != 1:
            raise ValueError(f"{PAIRINGS_FILE}: {name!r} names {len(found)} divisions, not one")
        return found[0]

    def _check(self) -> None:
        """Every pairing's sides agree with `roles`, every role is used, every source is named, every
        pairing word names two areas a pairing joins, every one-character name a place that takes part.

        `roles` could be derived from the pairings; it is kept beside them as a cross-check, so that a
        pairing written the wrong way round (a recipient as helper) contradicts it and is refused.
        """
        problems = []
        used = defaultdict(set)
        for p in self.pairings:
            for region, side in ((p.helper, "helper"), (p.recipient, "recipient")):
                province = self.province(region).code
                used[province].add(side)
                if self.roles.get(province) not in (side, "both"):
                    problems.append(f"{p.helper.full_name}→{p.recipient.full_name}: {region.province} is not a {side}")
            if p.source not in self.sources:
                problems.append(f"{p.helper.full_name}→{p.recipient.full_name}: unknown source {p.source!r}")
        for code, role in self.roles.items():
            expected = {"helper", "recipient"} if role == "both" else {role}
            if not expected <= used[code]:
                problems.append(f"{self.gazetteer.by_code[code].name}: role {role} but no such pairing")
        for word, (helper, recipient) in self.compounds.items():
            if self.match(helper, recipient, None)[0] != 2:
                problems.append(f"{word}: no pairing joins {helper.full_name} and {recipient.full_name}")
        for char, regions in self.singles.items():
            problems += [f"{char}: {r.full_name} takes part in no pairing" for r in regions if not self.side(r)]
        if problems:
            raise ValueError(f"{PAIRINGS_FILE}: " + "; ".join(problems))

    @lru_cache(maxsize=None)
    def _codes(self, code: str) -> frozenset[str]:
        return frozenset(r.code for r in self.gazetteer.lineage(self.gazetteer.by_code[code]))

    def within(self, region: Region, area: Region) -> bool:
        """`region` is `area` or lies inside it."""
        return area.code in self._codes(region.code)

    def province(self, region: Region) -> Region:
        return self.gazetteer.by_code[region.code[:2] + "0000"]

    def provinces_paired(self) -> set[tuple[str, str]]:
        """(helper province code, recipient province code) of every pairing."""
        return set(self._by_provinces)

    def on_both_sides(self, region: Region) -> bool:
        """`region` lies in a province that helps and is helped (重庆, 陕西, 湖北 …): it helps only the
        areas a pairing joins it with."""
        return self.roles.get(self.province(region).code) == "both"

    def wholes_paired(self, helper: Region, recipient: Region) -> bool:
        """The data pairs the two provinces as wholes: a pairing joins them, the helper helps as a
        whole and the recipient is helped as a whole (浙江→四川, 山东→重庆; not 北京→河北 or 杭州's
        浙江→湖北, where only 张家口 or 恩施 is helped)."""
        return ((helper.code, recipient.code) in self._by_provinces
                and (helper.code, "helper") in self._wholes and (recipient.code, "recipient") in self._wholes)

    @lru_cache(maxsize=None)
    def side(self, region: Region) -> frozenset[str]:
        """{"helper"}, {"recipient"}, both or neither: the roles of the deepest listed areas holding it.

        恩施 lies in 湖北 (a helper of 山南) and in 恩施州 (helped by 杭州): the deeper area decides.
        A place in no listed area takes its province's role (西藏自治区 as a whole).
        """
        holding = [(side.depth, role) for p in self.pairings
                   for side, role in ((p.helper, "helper"), (p.recipient, "recipient")) if self.within(region, side)]
        if holding:
            deepest = max(d for d, _ in holding)
            return frozenset(role for d, role in holding if d == deepest)
        role = self.roles.get(self.province(region).code)
        return frozenset({"helper", "recipient"} if role == "both" else {role} if role else ())

    def match(self, helper: Region, recipient: Region, year: int | None) -> tuple[int, Pairing | None]:
        """How far the data supports helper → recipient: 2 and the pairing, 1 (provinces only), or 0.

        2: a pairing's areas hold the two places or lie inside them (天津市和平区 → 会宁县 under
        天津市 → 甘肃省; 广东省 → 贵州省 under 广州市 → 黔南州). Of several, one
        in force in `year` wins, then one holding both places, then the most specific, then the latest.
        1: some pairing joins the two provinces, not these areas (厦门市思明区 → 兰州市).
        """
        return self._match(helper.code, recipient.code, year)

    @lru_cache(maxsize=65536)
    def _match(self, helper_code: str, recipient_code: str, year: int | None) -> tuple[int, Pairing | None]:
        helper, recipient = self.gazetteer.by_code[helper_code], self.gazetteer.by_code[recipient_code]
        fitting = self._by_provinces.get((helper_code[:2] + "0000", recipient_code[:2] + "0000"), [])
        best = None
        for p in fitting:
            h_in, h_over = self.within(helper, p.helper), self.within(p.helper, helper)
            r_in, r_over = self.within(recipient, p.recipient), self.within(p.recipient, recipient)
            if (h_in or h_over) and (r_in or r_over):
                key = (year is None or p.in_force(year), h_in and r_in, p.helper.depth + p.recipient.depth, p.start)
                if best is None or key > best[0]:
                    best = (key, p)
        return (2, best[1]) if best else (1 if fitting else 0, None)


@lru_cache(maxsize=1)
def load_pairings() -> Pairings:
    """configs/pairings.yaml, resolved and checked; built once per process."""
    return Pairings(yaml.safe_load(PAIRINGS_FILE.read_text(encoding="utf-8")), Gazetteer.load())


# --- places that are not partners ----------------------------------------------------------------

class _Zones:
    """Spans of text whose places are not partners, merged and sorted, so that a mention is looked up
    by bisection rather than against every span."""

    def __init__(self, spans: list[tuple[int, int]]):
        merged: list[list[int]] = []
        for s, e in sorted(spans):
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        self.spans = [(s, e) for s, e in merged]
        self._starts = [s for s, _ in merged]

    def hold(self, start: int, end: int) -> bool:
        i = bisect.bisect_right(self._starts, start) - 1
        return i >= 0 and end <= self.spans[i][1]


def _excluded_zones(text: str, simplified: str) -> _Zones:
    """Bylines, source and copyright lines, and link lists under a furniture heading.

    A line of page furniture goes whole (来源：…, a short line with 编辑：or 供稿); a byline only as
    far as it goes (记者 李明 报道, （记者 王芳）), as article text may share its line.
    """
    zones, offset, in_block = [], 0, False
    for line in text.splitlines(keepends=True):
        start, end = offset, offset + len(line)
        offset = end
        stripped = simplified[start:end].strip()
        if _FURNITURE_HEADING.match(stripped):
            in_block = True
        elif in_block and "。" in stripped and len(stripped) >= 40:
            in_block = False
        source = _SOURCE_LINE.match(stripped)
        if (in_block
                or source and (source.group("next") in ":：|｜ \t" or len(stripped) <= _SHORT_LINE)
                or len(stripped) <= _SHORT_LINE and _FURNITURE_WORD.search(stripped)):
            zones.append((start, end))
    zones += [m.span() for pattern in (_BYLINE, _BYLINE_PAREN) for m in pattern.finditer(simplified)]
    return _Zones(zones)


def _in_dateline(text: str, e: Entity) -> bool:
    """The mention opens its line and 电/讯 follows it, maybe after a date (新华社成都5月2日电)."""
    reach = max(0, e.start - _DATELINE_REACH)
    newline = text.rfind("\n", reach, e.start)
    if newline < 0 and reach > 0:
        return False  # its line starts too far back
    before = to_simplified(text[newline + 1:e.start]).strip().lstrip("(（【[")
    return bool(_DATELINE_BEFORE.match(before) and _DATELINE_AFTER.match(to_simplified(text[e.end:e.end + 24])))


def _hosts_event(text: str, e: Entity) -> bool:
    """在会宁县举办…, 广州举办的…: the mention names where an event is held."""
    after = to_simplified(text[e.end:e.end + 24])
    return bool(_HOST_BEFORE.search(to_simplified(text[max(0, e.start - 1):e.start])) and _HOST_AFTER.match(after)
                or _HOST_OF.match(after))


def _without_third_places(mentions: list[_Mention], pairings: Pairings) -> list[_Mention]:
    """`mentions` less the hosts of events that are third places: a host whose province the data
    pairs with none of the other places' provinces (粤桂 fair held in 北京). A host that is a
    partner (天津市和平区在会宁县举办展销会) stays."""
    paired = pairings.provinces_paired()
    others = {pairings.province(m.region).code for m in mentions if not m.host}

    def partner(m: _Mention) -> bool:
        own = pairings.province(m.region).code
        return any((own, o) in paired or (o, own) in paired for o in others)

    return [m for m in mentions if not m.host or partner(m)]


# --- abbreviations ---------------------------------------------------------------------------------

def _abbreviations(text: str, simplified: str, entities: list[Entity], mentions: list[_Mention], sentence_of,
                   zones: _Zones, pairings: Pairings) -> list[tuple[str, list[_Mention], str]]:
    """Pairing words and one-character names in the text, as (kind, mentions, side) triples.

    kind "listed" (a word of `compounds`: helper mention first), "formed" (two characters that each
    stand for a place the report names, 城渭, followed by a cooperation word) or "single" (援黔, 赴沪 …;
    side "recipient" for 援X). Nothing inside a REGION span, a byline, source line or link list counts.
    """
    blocked = bytearray(len(text) + 1)
    for s, e in [(e.start, e.end) for e in entities if e.label == "REGION"] + zones.spans:
        blocked[s:e] = b"\x01" * (e - s)

    def free(s: int, e: int) -> bool:
        return not any(blocked[s:e])

    def mention(region: Region, s: int, e: int) -> _Mention:
        return _Mention(Entity(s, e, "ABBREVIATION", text[s:e]), region, sentence_of(s), abbreviation=True)

    listed = [(m.span(), sides) for word, sides in pairings.compounds.items() for m in re.finditer(word, simplified)
              if free(*m.span())]
    named = {m.region for m in mentions} | {r for _, sides in listed for r in sides}
    provinces = {pairings.province(r).code for r in named}

    def resolve(char: str) -> Region | None:
        options = pairings.singles.get(char, ())
        if len(options) > 1:
            options = tuple(r for r in options if pairings.province(r).code in provinces)
        return options[0] if len(options) == 1 else None

    first_chars = defaultdict(set)
    for m in mentions:
        first_chars[to_simplified(m.entity.text)[0]].add(m.region)

    def places_for(char: str) -> set[Region]:
        """The places the report names that a character of a formed word may stand for: by their first
        character (渭 for 渭源县, not also for a place named inside it) or their one-character name (渝 only when the report
        names 重庆市 itself: 川渝合作 alone pairs nothing)."""
        found = first_chars[char] | ({resolve(char)} & named)
        return {r for r in found if not any(pairings.within(r, o) and o != r for o in found)}

    found = [("listed", [mention(helper, *span), mention(recipient, *span)], "either")
             for span, (helper, recipient) in listed]
    # every two characters followed by a cooperation word (overlapping: a lookahead)
    followed = re.compile("(?=(..)(?:" + "|".join(map(re.escape, pairings.compound_follow)) + "))")
    for m in followed.finditer(simplified):
        i, pair_word = m.start(), m.group(1)
        if pair_word in pairings.compounds or not free(i, i + 2):
            continue
        first, second = places_for(pair_word[0]), places_for(pair_word[1])
        if len(first) == 1 and len(second) == 1 and first != second:
            found.append(("formed", [mention(first.pop(), i, i + 2), mention(second.pop(), i, i + 2)], "either"))
    for context in pairings.contexts:
        mark = context.get("before") or context["after"]
        for m in re.finditer(re.escape(mark), simplified):
            at = m.end() if "before" in context else m.start() - 1
            if at < 0 or at >= len(simplified) or not free(at, at + 1):
                continue
            if "before" in context and m.start() > 0 and simplified[m.start() - 1] in context.get("not_after", ()):
                continue
            if context.get("follow") and not simplified.startswith(pairings.follow_words, at + 1):
                continue
            region = resolve(simplified[at])
            if region is not None:
                s, e = min(at, m.start()), max(at + 1, m.end())
                found.append(("single", [mention(region, s, e)], context["side"]))
    return found


# --- partners ----------------------------------------------------------------------------------

def _region_dict(region: Region) -> dict:
    return {"name": region.name, "full_name": region.full_name, "code": region.code,
            "province": region.province, "level": region.level}


def _merge_places(mentions: list[_Mention], gazetteer: Gazetteer) -> None:
    """Point each mention at the most specific place consistent with it (sets `place`).

    A place counts as the mentioned place below it that holds every other mentioned place below
    it (天津 ⊃ 和平区: 天津 is 和平区; 贵州 ⊃ 黔西南州 ⊃ 兴仁市, 普安县: 贵州 is 黔西南州) when that line
    is named more often than the place itself (黔南州 named twice stays 黔南州 beside one 荔波县 given
    as an example; 浙江 and 宁波 named once each in a list stay two places). Where its subdivisions
    branch, it counts as the branch with more than half of the mentions below it, a mention
    counting for a branch only when it lies on that branch alone; else it stays itself. A pairing
    word stays at the level it names (津甘 is 天津市 and 甘肃省), so its evidence stays with the
    province pair.
    """
    named = [m for m in mentions if not m.abbreviation]
    counts = Counter(m.region.code for m in named)
    regions = {m.region.code: m.region for m in named}
    # the named places below each named place and the named line above each, from each one's
    # lineage: linear in the places, where comparing every two would be quadratic
    below, line = defaultdict(list), {}
    for code, region in regions.items():
        line[code] = {r.code for r in gazetteer.lineage(region)} & regions.keys()
        for ancestor in line[code] - {code}:
            below[ancestor].append(code)

    def target(code: str) -> str:
        lower = below[code]
        if not lower:
            return code
        top = next((c for c in lower if len(below[c]) == len(lower) - 1), None)  # on every line below
        if top is not None:
            return target(top) if counts[top] + sum(counts[c] for c in below[top]) > counts[code] else code
        leaves = {c for c in lower if not below[c]}
        alone = Counter()  # leaf → mentions of the places that lie on its line alone
        for c in lower:
            own = [leaf for leaf in [c, *below[c]] if leaf in leaves]
            if len(own) == 1:
                alone[own[0]] += counts[c]
        best = max((c for c in lower if c in leaves), key=lambda c: (alone[c], c))
        return best if alone[best] * 2 > sum(counts[c] for c in lower) else code

    merged = {code: target(code) for code in regions}
    for m in mentions:
        m.place = m.region.code if m.abbreviation else merged[m.region.code]


def _collect_cues(text: str, mentions: list[_Mention], pairs: dict, helper_votes: Counter,
                  places: dict, pairings: Pairings) -> None:
    """Scan neighbouring mentions in each sentence for direction and pairing cues.

    The helper of a cue verb is the nearest place before it that the data pairs with the
    recipient, else the nearest that is not a recipient-side place, else the nearest place. Places
    listed with the helper or the recipient (和/与/、) share the cue (北京市与江苏省共同对口支援拉萨市;
    北京市帮扶张家口市和保定市): two lists of equal length joined by 分别 pair item by item; else only
    the combinations the data pairs get it (北京、上海、天津等省市对口支援玉树、果洛、黄南等州:
    北京→玉树, 上海→果洛, 天津→黄南), or the nearest two places when the data pairs none.
    """
    def joined(a: _Mention, b: _Mention) -> bool:
        return a.sentence == b.sentence and bool(_JOINED.match(to_simplified(text[a.entity.end:b.entity.start])))

    def side(m: _Mention) -> frozenset:
        return pairings.side(places[m.place])

    def paired_by_data(h: _Mention, r: _Mention) -> Pairing | None:
        strength, pairing = pairings.match(places[h.place], places[r.place], None)
        return pairing if strength == 2 else None

    groups, run = {}, []  # id of a mention → the run of mentions joined to it by 和/与/、, in order
    for m in mentions:
        if not (run and joined(run[-1], m)):
            run = []
        run.append(m)  # one list per run, shared by its members
        groups[id(m)] = run
    by_sentence = defaultdict(list)
    for m in mentions:
        by_sentence[m.sentence].append(m)
    for sentence in by_sentence.values():
        for i, b in enumerate(sentence):
            if i:
                a = sentence[i - 1]
                between = to_simplified(text[a.entity.end: b.entity.start])
                if a.place != b.place and _PAIRED.match(between):
                    _vote(pairs, a, b, _WEIGHT_PAIRED, 0.0, "paired", b.entity.end, text)
                sends = _SENDS_AFTER.match(to_simplified(text[b.entity.end: b.entity.end + 4]))
                if a.place != b.place and between == "向" and sends:
                    _vote(pairs, a, b, _WEIGHT_SENDS, _WEIGHT_SENDS, "sends to", b.entity.end + sends.end(), text)
            before = to_simplified(text[max(0, b.entity.start - _VERB_REACH): b.entity.start])
            verb = _HELP_VERB.search(before)
            if verb:
                verb_start = b.entity.start - len(before) + verb.start()
                helpers = [a for a in reversed(sentence[max(0, i - _HELPER_REACH):i])  # nearest first
                           if a.place != b.place and a.entity.end <= verb_start]
                if helpers:
                    a = next((a for a in helpers if paired_by_data(a, b)),
                             next((a for a in helpers if side(a) != {"recipient"}), helpers[0]))
                    explicit = bool(_EXPLICIT_GAP.match(to_simplified(text[a.entity.end:verb_start])))
                    givers = [h for h in groups[id(a)]
                              if h.entity.end <= verb_start and side(h) != {"recipient"}] or [a]
                    takers = [r for r in groups[id(b)]
                              if r.entity.start >= b.entity.start and side(r) != {"helper"}] or [b]
                    if len(givers) == len(takers) > 1 and _RESPECTIVELY in text[a.entity.end:verb_start]:
                        combos = list(zip(givers, takers))  # 集美区、同安区分别帮扶积石山县、和政县
                    else:
                        combos = [(h, r) for h in givers for r in takers if h.place != r.place]
                    if len(combos) > 1:
                        combos = _data_combos(combos, paired_by_data) or [(a, b)]
                    for h, r in combos:
                        _vote(pairs, h, r, _WEIGHT_DIRECTED, _WEIGHT_DIRECTED, "helps", r.entity.end, text, explicit)
            helped_by = _HELPED_BY.match(to_simplified(text[b.entity.end: b.entity.end + 14]))
            if helped_by:
                helper_votes[b.place] += 1
                cue_end = b.entity.end + helped_by.end()
                # the helped place follows the cue closely, so the next few mentions are enough to look at
                close = takewhile(lambda c: c.entity.start - cue_end <= 4, islice(sentence, i + 1, None))
                following = next((c for c in close if c.place != b.place), None)
                if following is not None:
                    _vote(pairs, b, following, _WEIGHT_DIRECTED, _WEIGHT_DIRECTED, "helped by",
                          following.entity.end, text, explicit=True)


def _data_combos(combos: list, paired_by_data) -> list:
    """The helper–recipient combinations of two lists that the data pairs, each recipient keeping
    only its most specific pairings (江苏 pairs with all of 青海 since 2021, but 北京 with 玉树)."""
    found = [(h, r, p) for h, r in combos if (p := paired_by_data(h, r))]
    best = defaultdict(int)
    for _, r, p in found:
        best[id(r)] = max(best[id(r)], p.helper.depth + p.recipient.depth)
    return [(h, r) for h, r, p in found if p.helper.depth + p.recipient.depth == best[id(r)]]


def _vote(pairs: dict, helper: _Mention, recipient: _Mention, weight: float, direction: float,
          cue: str, end: int, text: str, explicit: bool = False) -> None:
    """Record one cue: `weight` for the pair, `direction` for helper → recipient, and its text span."""
    pair = pairs[frozenset((helper.place, recipient.place))]
    pair.score += weight
    pair.named = True
    pair.direction[(helper.place, recipient.place)] += direction
    pair.explicit[(helper.place, recipient.place)] += explicit
    start = min(helper.entity.start, recipient.entity.start)
    pair.evidence.append({"cue": cue, "text": text[start:end], "start": start, "end": end})


def _abbreviation_cues(found: list, pairs: dict, recipient_votes: Counter) -> None:
    """A listed pairing word votes helper → recipient; a formed one pairs; 援X marks X as helped."""
    for kind, ms, side in found:
        if kind == "single":
            if side == "recipient":
                recipient_votes[ms[0].place] += 1
            continue
        a, b = ms
        if a.place == b.place:
            continue
        pair = pairs[frozenset((a.place, b.place))]
        if kind == "listed":
            pair.score += _WEIGHT_DIRECTED
            pair.direction[(a.place, b.place)] += _WEIGHT_DIRECTED
            pair.explicit[(a.place, b.place)] += 1
        else:
            pair.score += _WEIGHT_PAIRED
        pair.evidence.append({"cue": "abbreviation", "text": a.entity.text, "start": a.entity.start,
                              "end": a.entity.end})


@dataclass
class _Candidate:
    helper: str
    recipient: str
    text_score: float
    total: float
    strength: int
    pairing: Pairing | None
    evidence: list
    named: bool


def find_partners(text: str, mentions: list[_Mention], gazetteer: Gazetteer, pairings: Pairings,
                  abbreviations: list, year_at) -> list[dict]:
    """The helper → recipient pairs the report states, most specific first (see the module docstring).

    `year_at(position)` is the year a statement at `position` speaks of, for choosing between
    pairings of different years (the report's date when its sentence has none).
    """
    if not mentions:
        return []
    _merge_places(mentions, gazetteer)
    places = {m.place: gazetteer.by_code[m.place] for m in mentions}
    prominence, first_seen = Counter(), {}
    first_by_place, first_by_region = {}, {}  # code → the first REGION span naming it
    for m in sorted(mentions, key=lambda m: m.entity.start):
        prominence[m.place] += 2 if m.entity.start < _HEADLINE_CHARS else 1
        first_seen.setdefault(m.place, m.entity.start)
        if not m.abbreviation:
            first_by_place.setdefault(m.place, m)
            first_by_region.setdefault(m.region.code, m)
    pairs: dict = defaultdict(_Pair)
    helper_votes: Counter = Counter()
    recipient_votes: Counter = Counter()
    _collect_cues(text, [m for m in mentions if not m.abbreviation and not m.host], pairs, helper_votes, places,
                  pairings)
    _abbreviation_cues(abbreviations, pairs, recipient_votes)

    def within(x: str, y: str) -> bool:
        return pairings.within(places[x], places[y])

    def related(x: str, y: str) -> bool:
        return within(x, y) or within(y, x)

    # a pair needs a cue, or two provinces the data pairs: then only the places each names most
    by_province = defaultdict(list)
    for x in sorted(places, key=lambda x: (-prominence[x], first_seen[x])):
        by_province[x[:2]].append(x)
    worth = {k for k in pairs if len(k) == 2} | {
        frozenset((x, y)) for hp, rp in pairings.provinces_paired()
        for x in by_province[hp[:2]][:_DATA_PLACES] for y in by_province[rp[:2]][:_DATA_PLACES]}
    candidates = []
    for x, y in (sorted(k, key=first_seen.get) for k in sorted(worth, key=lambda k: sorted(map(first_seen.get, k)))):
        if x != y and not related(x, y):
            pair = pairs.get(frozenset((x, y))) or _Pair()
            year = year_at(min((e["start"] for e in pair.evidence), default=None))
            candidate = _candidate(x, y, pair, places, pairings, year,
                                   helper_votes, recipient_votes)
            if candidate is not None:
                candidates.append(candidate)

    def group(c: _Candidate) -> frozenset:
        """Its two provinces: only candidates of the same two can lie inside or overlap each other."""
        return frozenset((c.helper[:2], c.recipient[:2]))

    by_group = defaultdict(list)
    for c in candidates:
        by_group[group(c)].append(c)

    def rank(c: _Candidate) -> tuple:
        stated = min((e["start"] for e in c.evidence), default=max(first_seen[c.helper], first_seen[c.recipient]))
        # a pair is as prominent as its less named side: a helper named in every line of a list
        # does not make each of its pairs the report's main one
        return (-c.total, -min(prominence[c.helper], prominence[c.recipient]), stated)

    def inside(a: _Candidate, b: _Candidate) -> bool:
        return within(a.helper, b.helper) and within(a.recipient, b.recipient)

    def nested(a: _Candidate, b: _Candidate) -> bool:
        return (related(a.helper, b.helper) and related(a.recipient, b.recipient)
                or related(a.helper, b.recipient) and related(a.recipient, b.helper))

    # places the text pairs with another place: a place paired with 黔南 (广州—黔南) is not 粤桂's 广东
    busy = {x for f in candidates if f.text_score > 0 for x in (f.helper, f.recipient)}

    def refine(c: _Candidate) -> _Candidate:
        """The most specific pair inside `c` the text supports: one with a cue of its own (奉贤区→正安县
        in a 沪遵 report); when only a pairing word supports `c`, one the data pairs that holds every
        other such pair (甬黔 and 黔西南州, 兴仁市, 普安县 → 宁波市→黔西南州; 沪遵 and three counties
        of 遵义 stay 上海市→遵义市), else the areas of the one pairing all of them fall under (甬黔 and
        兴仁市, 普安县 → 宁波市→黔西南州)."""
        finer = [f for f in by_group[group(c)] if f is not c and inside(f, c)]
        stated = [f for f in finer if f.text_score > 0]
        if stated:
            return refine(min(stated, key=rank))
        if c.named:
            return c
        paired = [f for f in finer
                  if f.strength == 2 and not ({f.helper, f.recipient} - {c.helper, c.recipient}) & busy]
        top = [f for f in paired if all(inside(o, f) for o in paired)]
        if top:
            return refine(top[0])
        common = {f.pairing for f in paired}
        return _narrowed(c, common.pop(), places, pairings) if len(common) == 1 else c

    chosen: list[_Candidate] = []
    chosen_by_group = defaultdict(list)
    for c in sorted(candidates, key=rank):
        if any(nested(c, k) for k in chosen_by_group[group(c)]):
            continue
        if chosen and not (c.text_score > 0 and c.total >= 2 and c.total >= 0.5 * chosen[0].total):
            continue
        c = refine(c)
        if not any(nested(c, k) for k in chosen_by_group[group(c)]):
            chosen.append(c)
            chosen_by_group[group(c)].append(c)

    out, listed = [], set()
    for c in chosen:
        h, r = places[c.helper], places[c.recipient]
        evidence = c.evidence or _named(first_by_place, c.helper, c.recipient)
        out.append(_partner(h, r, c.total, evidence, c.pairing, listed))
        ph, pr = pairings.province(h), pairings.province(r)
        if ph.code == pr.code or (ph.code, pr.code) == (h.code, r.code):
            continue
        coarser = [k for k in by_group[group(c)] if k is not c and inside(c, k)]
        # the province pair, when the data pairs the provinces as wholes or the text pairs them (苏陕)
        if pairings.wholes_paired(ph, pr) or any(
                (k.helper, k.recipient) == (ph.code, pr.code) and k.text_score > 0 for k in coarser):
            spans = [e for k in coarser for e in k.evidence] + _named(first_by_region, ph.code, pr.code)
            year = year_at(min((e["start"] for e in c.evidence), default=None))
            out.append(_partner(ph, pr, c.total, spans, pairings.match(ph, pr, year)[1], listed))
    return [p for p in out if p is not None]


def _narrowed(c: _Candidate, pairing: Pairing, places: dict, pairings: Pairings) -> _Candidate:
    """`c` narrowed to the areas of `pairing` that lie inside its places (adding them to `places`)."""
    helper, recipient = (area if pairings.within(area, places[code]) else places[code]
                         for area, code in ((pairing.helper, c.helper), (pairing.recipient, c.recipient)))
    if (helper.code, recipient.code) == (c.helper, c.recipient):
        return c
    places.update({helper.code: helper, recipient.code: recipient})
    return _Candidate(helper.code, recipient.code, c.text_score, c.total, 2, pairing, c.evidence, c.named)


def _candidate(x: str, y: str, pair: _Pair, places: dict, pairings: Pairings, year: int | None,
               helper_votes: Counter, recipient_votes: Counter) -> _Candidate | None:
    """The pair {x, y} oriented, or None when neither direction may be emitted.

    A direction the text states in so many words may be emitted unless its recipient is a
    helper-side place. Any other needs the data: a pairing joins the two areas or their provinces
    (so two places of one province never qualify), the helper is not a recipient-side place, and a
    helper in a province on both sides (重庆, 湖北 …) helps only the areas a pairing joins it with
    (重庆→昌都; not 重庆→成都, 巫山县→巴东县 or 武汉→恩施).
    """
    options = []
    for h, r in ((x, y), (y, x)):
        strength, pairing = pairings.match(places[h], places[r], year)
        helper_side, recipient_side = pairings.side(places[h]), pairings.side(places[r])
        if pair.explicit[(h, r)] > 0:
            allowed = recipient_side != {"helper"}
        else:
            needed = 2 if pairings.on_both_sides(places[h]) else 1
            allowed = strength >= needed and helper_side != {"recipient"}
        if allowed:
            sides_fit = "helper" in helper_side and "recipient" in recipient_side
            support = (pair.direction[(h, r)] + helper_votes[h] + recipient_votes[r] - helper_votes[r]
                       - recipient_votes[h] + strength + 0.5 * sides_fit)
            options.append((support, -len(options), h, r, strength, pairing))
    if not options:
        return None
    _, _, h, r, strength, pairing = max(options)
    return _Candidate(h, r, pair.score, pair.score + _DATA_BONUS[strength], strength, pairing, pair.evidence,
                      pair.named)


def _named(first: dict, helper: str, recipient: str) -> list[dict]:
    """The first span naming each side (`first`: code → its first mention): the evidence when no cue
    joins them."""
    return [{"cue": "named", "side": side, "text": m.entity.text, "start": m.entity.start, "end": m.entity.end}
            for side, code in (("helper", helper), ("recipient", recipient)) if (m := first.get(code))]


def _partner(helper: Region, recipient: Region, score: float, evidence: list, pairing: Pairing | None,
             listed: set) -> dict | None:
    """One partners entry, or None when the same pair is already listed."""
    if (helper.code, recipient.code) in listed:
        return None
    listed.add((helper.code, recipient.code))
    spans = list({(e["cue"], e["start"], e["end"]): e for e in evidence}.values())
    return {"helper": _region_dict(helper), "recipient": _region_dict(recipient),
            "level": LEVELS[max(helper.depth, recipient.depth) - 1], "score": score,
            "evidence": sorted(spans, key=lambda e: e["start"]),
            "pairing": pairing.to_dict() if pairing else None}


# --- the record --------------------------------------------------------------------------------

def build_record(text: str, entities: list[Entity]) -> dict:
    """Partners, facts and publication date of one report (see the module docstring)."""
    gazetteer = Gazetteer.load()
    pairings = load_pairings()
    entities = sorted(entities, key=lambda e: (e.start, e.end))
    sentences = split_sentences(text)
    starts = [s for s, _ in sentences]

    def sentence_of(position: int) -> int:
        return max(0, bisect.bisect_right(starts, position) - 1)

    normalized = _normalized(text, entities)
    by_sentence = defaultdict(list)
    for e, n in zip(entities, normalized):
        by_sentence[sentence_of(e.start)].append((e, n))

    simplified = to_simplified(text)
    zones = _excluded_zones(text, simplified)
    mentions = []
    for e, n in zip(entities, normalized):
        if e.label != "REGION" or n["value"] is None or zones.hold(e.start, e.end) or _in_dateline(text, e):
            continue
        region = gazetteer.by_code[n["code"]]
        if region.level != "town":  # partners are counties and above; a town would stand for none
            mentions.append(_Mention(e, region, sentence_of(e.start), host=_hosts_event(text, e)))
    abbreviations = _abbreviations(text, simplified, entities, mentions, sentence_of, zones, pairings)
    mentions = _without_third_places(mentions + [m for _, ms, _ in abbreviations for m in ms], pairings)
    published_at = find_published(text)
    published = published_at[:10] if published_at and published_at[:1] != "-" else None
    sentence_years = {}
    for e, n in zip(entities, normalized):
        if e.label == "DATE" and n["value"] and n["value"][:4].isdigit():
            sentence_years.setdefault(sentence_of(e.start), int(n["value"][:4]))

    def year_at(position: int | None) -> int | None:
        """The year of the sentence at `position` (1996年，中央确定…), else of the report."""
        if position is not None and sentence_of(position) in sentence_years:
            return sentence_years[sentence_of(position)]
        return int(published[:4]) if published else None

    facts, not_facts, words = [], [], {}
    for e, n in zip(entities, normalized):
        if e.label not in FACT_LABELS:
            continue
        name = _enclosing_name(text, e)
        if name is not None:
            not_facts.append({"label": e.label, "start": e.start, "end": e.end, "text": e.text,
                              "reason": f"inside the name {name}"})
            continue
        index = sentence_of(e.start)
        if index not in words:
            words[index] = sentence_words(text, sentences[index])
        facts.append(_fact(e, n, text, sentences[index], words[index], by_sentence[index], facts))
    return {
        "partners": find_partners(text, mentions, gazetteer, pairings, abbreviations, year_at),
        "facts": facts,
        "not_facts": not_facts,
        "published": published,
        "published_at": published_at,
    }


def _normalized(text: str, entities: list[Entity]) -> list[dict]:
    """Each entity normalised, a place against the report's other places. A surface is resolved once:
    its result does not depend on where it stands, and resolving is linear in the report's places."""
    context = [e.text for e in entities if e.label == "REGION"]
    places = {}
    out = []
    for e in entities:
        if e.label != "REGION":
            out.append(normalize(e, text))
            continue
        if e.text not in places:
            places[e.text] = normalize(e, text, context)
        out.append({**places[e.text], "start": e.start, "end": e.end})
    return out


def _enclosing_name(text: str, e: Entity) -> str | None:
    """The short quoted name (“百名企业家渭源行”) a figure written without digits stands in, or None."""
    if re.search(r"[0-9０-９]", e.text):
        return None
    line_start = text.rfind("\n", 0, e.start) + 1
    for open_quote, close_quote in _QUOTES.items():
        left = text.rfind(open_quote, line_start, e.start)
        opened = (text.count(open_quote, line_start, e.start) % 2 == 1 if open_quote == close_quote
                  else text.rfind(close_quote, left + 1, e.start) < 0)
        if left < 0 or not opened:
            continue
        right = text.find(close_quote, e.end)
        if right < 0:
            continue
        name = text[left + 1:right]
        if len(name) <= _NAME_CHARS and not _CLAUSE_BREAK.search(name):
            return text[left:right + 1]
    return None


def _fact(entity: Entity, norm: dict, text: str, sentence: tuple[int, int], words: tuple, neighbours: list,
          earlier: list[dict]) -> dict:
    """One fact; `words` are its sentence's triggers and kind words, `earlier` the facts before it."""
    triggers, kinds = words
    item = _item(text, sentence, entity.start, entity.end)
    floor = max((e.end for e, _ in neighbours if e.label in FACT_LABELS and item[0] < e.end <= entity.start),
                default=0)
    kind = money_kind(text, item, kinds, entity.start, entity.end) if entity.label == "MONEY" else {}
    # a price, income or output value is not described by the assistance words of its sentence
    category = categorise(text, item, triggers, entity.start, entity.end, floor,
                          whole_sentence=kind.get("kind", "transfer") == "transfer")
    part_of = None
    if (_PART_OF.match(to_simplified(text[item[0]:entity.start]))
            or _PART_OF_ALONE.search(to_simplified(text[max(sentence[0], item[0] - 4):item[0]]))):
        in_sentence = takewhile(lambda f: f["start"] >= sentence[0], reversed(earlier))
        whole = next((f for f in in_sentence if f["label"] == entity.label), None)
        if whole is not None:
            category = {"category": whole["category"], "trigger": whole["trigger"]}
            part_of = {"text": whole["text"], "start": whole["start"], "end": whole["end"]}
    date, date_span = _fact_date(text, sentence, entity, neighbours)
    fact = {
        "label": entity.label, "start": entity.start, "end": entity.end, "text": entity.text,
        "value": norm["value"], "unit": norm["unit"], "qualifier": norm["qualifier"],
        "qualifier_text": norm["qualifier_text"], "qualifiers": norm["qualifiers"],
        "date": date, "date_span": date_span,
        **category,
        "part_of": part_of,
        "regions": [{"text": e.text, "start": e.start, "end": e.end, **_region_fields(n)}
                    for e, n in neighbours if e.label == "REGION" and n["value"] is not None],
        "sentence": list(sentence),
    }
    fact.update(kind)
    if entity.label != "MONEY" and norm["unit"] is None and norm["value"] is not None:
        fact.update(_unit_from_noun(text, entity.end))
    for key in ("currency", "problem", "note"):
        if key in norm:
            fact[key] = norm[key]
    return fact


def _unit_from_noun(text: str, end: int) -> dict:
    """A count without a classifier counts the people or households the noun after it names."""
    after = to_simplified(text[end:end + max(map(len, _PEOPLE_NOUNS))])
    noun = next((n for n in _PEOPLE_NOUNS if after.startswith(n)), None)
    if noun is None:
        return {}
    return {"unit": "户" if noun.endswith("户") or noun == "家庭" else "人",
            "unit_from": {"text": text[end:end + len(noun)], "start": end, "end": end + len(noun)}}


def _fact_date(text: str, sentence: tuple[int, int], entity: Entity, neighbours: list) -> tuple:
    """(date, [start, end] of the words it was read from) for a figure, or (None, None).

    The clause holding the figure dates it. Failing that, the nearest earlier clause of the
    sentence that holds a date does, if it opens with that date (2022年，…; 2017年以来，…;
    2023年和平区帮扶…，实施…29个项目): a date opening a sentence frames what follows it, a date
    inside another clause belongs to that clause's figure (…1288万元，其中2020年…735万元).
    自/以来/起/至今 next to the date make an open interval (2017/..), 截至 a closed one (../2023).
    """
    dates = [(e, n) for e, n in neighbours if e.label == "DATE" and n["value"] is not None]
    s0, s1 = sentence
    cuts = [s0] + [m.end() for m in _CLAUSE_BREAK.finditer(text, s0, s1)] + [s1 + 1]
    clauses = [(a, b - 1) for a, b in zip(cuts, cuts[1:])]
    here = next((i for i, (a, b) in enumerate(clauses) if a <= entity.start <= b), len(clauses) - 1)
    own = [(e, n) for e, n in dates if clauses[here][0] <= e.start and e.end <= clauses[here][1]]
    if own:
        e, n = min(own, key=lambda d: (max(d[0].start - entity.end, entity.start - d[0].end),
                                       d[0].start > entity.start))
        return _dated(text, e, n, clauses[here])
    for a, b in reversed(clauses[:here]):
        inside = [(e, n) for e, n in dates if a <= e.start and e.end <= b]
        if inside:
            e, n = inside[0]
            lead = to_simplified(text[a:e.start]).strip()
            return _dated(text, e, n, (a, b)) if lead in ("",) + _DATE_OPENERS else (None, None)
    return None, None


def _dated(text: str, e: Entity, n: dict, clause: tuple[int, int]) -> tuple[str, list[int]]:
    """The date of a DATE span, made an interval by 自…以来 / 截至… next to it, with the words' span."""
    before, after = to_simplified(text[clause[0]:e.start]), to_simplified(text[e.end:clause[1]])
    opener = next((w for w in _SINCE_BEFORE + _UNTIL_BEFORE if before.endswith(w)), "")
    closer = next((w for w in _SINCE_AFTER if after.startswith(w)), "")
    value = n["value"]
    if "/" in value:  # already a range (2017—2020年)
        return value, [e.start, e.end]
    if closer or opener in _SINCE_BEFORE:
        value = f"{value}/.."
    elif opener:
        value = f"../{value}"
    return value, [e.start - len(opener), e.end + len(closer)]


def _region_fields(norm: dict) -> dict:
    return {k: norm[k] for k in ("name", "full_name", "code", "level", "province")}
