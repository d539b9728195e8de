"""A regex + gazetteer rule tagger: what an analyst would write instead of training a model.

It is the baseline every trained model is compared with (`eastwest cv`), and it labels silver
text for augmentation. Numbers come from patterns over Arabic, full-width, Chinese and mixed
numerals; regions from the gazetteer's surface forms by longest match, with nested chains
(甘肃省 + 定西市 + 渭源县) merged into one span; organisations from a region or place-like
prefix followed by an organisation suffix.
"""
from __future__ import annotations

import re
from functools import cached_property

from .gazetteer import Gazetteer
from .schema import Entity

_DIGITS = r"[0-9０-９]+(?:[.．][0-9０-９]+)?"
_HANZI_NUM = r"[零〇一二两兩三四五六七八九十百千万萬亿億]+"
_NUM = rf"(?:{_DIGITS}|{_HANZI_NUM})"
_MORE = r"[余多餘]?"
_MAGNITUDE = r"(?:[十百千万萬亿億]+)?"

MONEY = re.compile(rf"{_NUM}{_MORE}{_MAGNITUDE}{_MORE}(?:(?:{_DIGITS}|{_HANZI_NUM})[万萬])?(?:元|美元|港元|欧元)")
PEOPLE = re.compile(rf"{_NUM}{_MORE}{_MAGNITUDE}{_MORE}(?:人次|名|人|户|戶|位)")
PROJECT_AFTER = re.compile(rf"(?<=[项項]目)({_NUM}{_MORE}[个個项項])")
PROJECT_BEFORE = re.compile(rf"({_NUM}{_MORE}[个個项項])(?=[^，。；,;]{{0,8}}?[项項]目)")
DATE = re.compile(
    r"[0-9０-９]{4}[-/][0-9０-９]{1,2}[-/][0-9０-９]{1,2}(?:\s[0-9]{1,2}:[0-9]{2}(?::[0-9]{2})?)?"
    r"|(?:[0-9０-９]{4}|[〇零一二三四五六七八九]{4})年(?:度|[0-9０-９]{1,2}月(?:[0-9０-９]{1,2}[日号])?)?"
    r"|[0-9０-９]{1,2}月[0-9０-９]{1,2}[日号]"
    r"|(?<![0-9０-９])[0-9０-９]{1,2}月(?!份)"
)
ORG_SUFFIX = re.compile(
    r"(?:有限责任公司|有限公司|股份公司|集团|公司|人民医院|医院|中学|小学|大学|学院|学校|职教中心|"
    r"委员会|办公室|乡村振兴局|发改委|人社局|商务局|农业农村局|教育局|卫健委|红十字会|妇联|工商联|"
    r"协会|商会|银行|日报|电视台|融媒体中心|网)"
)
ORG_AFTER_REGION = re.compile(r"[\u4e00-\u9fff]{0,8}?" + ORG_SUFFIX.pattern)
LEVEL_ORG = re.compile(r"[省市县区縣區](?:委|政府|乡村振兴局|發改委|发改委|人社局)")
CENTRAL_ORG = re.compile(r"党中央|国务院|国家乡村振兴局|农业农村部|中组部")
_NOT_A_COUNT = {"一名", "一位", "一人", "一户"}


class RuleTagger:
    """`tag(text) -> list[Entity]`, flat and sorted; longer matches win over shorter ones."""

    @cached_property
    def _regions(self) -> tuple[dict[str, set[int]], Gazetteer]:
        gazetteer = Gazetteer.load()
        lengths: dict[str, set[int]] = {}
        self._names = set()
        for surface, _level in gazetteer.surface_forms():
            self._names.add(surface)
            lengths.setdefault(surface[0], set()).add(len(surface))
        return lengths, gazetteer

    def _region_spans(self, text: str) -> list[tuple[int, int]]:
        from .gazetteer import to_simplified

        lengths, gazetteer = self._regions
        simple = to_simplified(text)
        spans, i = [], 0
        while i < len(simple):
            hit = next((n for n in sorted(lengths.get(simple[i], ()), reverse=True) if simple[i : i + n] in self._names), 0)
            if hit:
                spans.append((i, i + hit))
                i += hit
            else:
                i += 1
        merged: list[tuple[int, int]] = []
        for start, end in spans:  # a chain is one span when the gazetteer reads it as one place
            if merged and merged[-1][1] == start and gazetteer.resolve(simple[merged[-1][0] : end]) is not None:
                merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        return merged

    def tag(self, text: str) -> list[Entity]:
        candidates: list[tuple[int, int, str]] = []
        regions = self._region_spans(text)
        candidates += [(s, e, "REGION") for s, e in regions]
        for s, e in regions:  # 会宁县人民医院: a region followed by an organisation name
            m = ORG_AFTER_REGION.match(text, e)
            if m:
                candidates.append((s, m.end(), "ORG"))
        candidates += [(m.start(), m.end(), "ORG") for p in (LEVEL_ORG, CENTRAL_ORG) for m in p.finditer(text)]
        candidates += [(m.start(), m.end(), "MONEY") for m in MONEY.finditer(text)]
        candidates += [(m.start(), m.end(), "PEOPLE_COUNT") for m in PEOPLE.finditer(text) if m.group() not in _NOT_A_COUNT]
        candidates += [(m.start(1), m.end(1), "PROJECT_COUNT") for p in (PROJECT_AFTER, PROJECT_BEFORE) for m in p.finditer(text)]
        candidates += [(m.start(), m.end(), "DATE") for m in DATE.finditer(text)]
        # longest first; a candidate overlapping an accepted one is dropped
        taken: list[tuple[int, int, str]] = []
        for s, e, label in sorted(candidates, key=lambda c: (-(c[1] - c[0]), c[0])):
            if all(e <= ts or s >= te for ts, te, _ in taken):
                taken.append((s, e, label))
        return [Entity(s, e, label, text[s:e]) for s, e, label in sorted(taken)]
