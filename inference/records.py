"""Turn a report and its entities into one structured record: who helps whom, and the figures.

`build_record(text, entities)` returns
    {"partners": [{"helper": {...}, "recipient": {...}, "score", "evidence"}],
     "facts": [{label, start, end, text, value, unit, qualifier, date, category, regions, sentence, …}],
     "published": "YYYY-MM-DD" or None, "published_at": the full date-time or None}
Every derived value carries the character span it came from, and the result is plain JSON.

Partners are read from the text, not from geography: direction cues (A帮扶B, A援建的B, 由A结对帮扶B,
在A的帮扶下, A向B选派 …) vote for a pair and its direction; plain pairings (A与B, A和B,
天津和平·甘肃会宁) vote for the pair only, since word order does not tell who helps (和平区与会宁县
结对, but also 会宁县与和平区结对); how often and how early a place is named decides the pair when
no cue does. Whether a side lies in the usual helping (eastern) or helped (western, plus
恩施/延边/湘西) areas only breaks ties of direction, and the first-named side breaks the rest. Before counting, the mentions of
one place are merged: 天津市和平区, 和平区 and 和平 resolve to one division, and a province or city
whose only mentioned subdivision is 和平区 (天津, 天津市) is counted as 和平区 too.
"""
from __future__ import annotations

import bisect
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import yaml

from inference.gazetteer import Gazetteer, Region, to_simplified
from inference.normalize import normalize, parse_date
from inference.schema import CONFIG_DIR, Entity

CATEGORIES_FILE = CONFIG_DIR / "categories.yaml"
FACT_LABELS = ("MONEY", "PROJECT_COUNT", "PEOPLE_COUNT")
_SENTENCE_END = re.compile(r"[。！？；!?;\n]")

# Provinces (code prefixes) that usually give help, and areas that usually receive it.
_HELPER_AREAS = ("11", "12", "31", "32", "33", "35", "37", "44", "21")  # 京津沪苏浙闽鲁粤, 大连
_RECIPIENT_AREAS = ("15", "45", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "4228", "2224", "4331")

# A cue verb right before the recipient; the helper is the nearest other place before the verb.
_HELP_VERB = re.compile(r"(结对帮扶|对口帮扶|对口支援|对口协作|帮扶|援建|支援|扶持|帮助|援助)(?:了|的)?$")
_HELPED_BY = re.compile(r"^(?:的)?[^，,。]{0,8}?(?:帮扶|援建|支援|帮助|援助|支持)下")  # 在A的倾心帮扶下
# A向B选派/捐赠…: the giving side is named first. Weak, as the helped side also sends people.
_SENDS_AFTER = re.compile(r"^(?:选派|派出|派遣|输送|捐赠|捐助|捐款|提供|援助|投入)")
_PAIRED = re.compile(r"^[与和同及、·・]$")
_VERB_REACH = 25
_HEADLINE_CHARS = 400

_WEIGHT_DIRECTED = 3.0
_WEIGHT_SENDS = 1.0
_WEIGHT_PAIRED = 1.0
_GEOGRAPHY_BONUS = 0.25


@dataclass
class _Mention:
    entity: Entity
    region: Region
    sentence: int
    place: str = ""  # code of the merged place this mention counts for


@dataclass
class _Pair:
    score: float = 0.0
    direction: Counter = field(default_factory=Counter)  # (helper, recipient) → votes
    evidence: list = field(default_factory=list)


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
def load_categories() -> tuple[str, list[dict]]:
    """(default category, [{name, priority, triggers}]) from configs/categories.yaml."""
    data = yaml.safe_load(CATEGORIES_FILE.read_text(encoding="utf-8"))
    return str(data["default"]), list(data["categories"])


def categorise(text: str, sentence: tuple[int, int], start: int, end: int) -> dict:
    """Category of the figure at [start, end): the nearest trigger in its sentence wins.

    See configs/categories.yaml for the rules (contained matches dropped, a trigger after the
    figure counts double distance, ties to the longer trigger, then to the lower priority).
    """
    default, categories = load_categories()
    s0, s1 = sentence
    sent = to_simplified(text[s0:s1])
    matches = [
        (s0 + m.start(), s0 + m.end(), cat["name"], cat["priority"], trigger)
        for cat in categories
        for trigger in cat["triggers"]
        for m in re.finditer(re.escape(trigger), sent)
    ]
    matches = [
        m for m in matches
        if not any(o[0] <= m[0] and m[1] <= o[1] and o[1] - o[0] > m[1] - m[0] for o in matches)
        and not (start <= m[0] < end)
    ]
    if not matches:
        return {"category": default, "trigger": None}

    def key(m):
        distance = start - m[1] if m[1] <= start else 2 * (m[0] - end)
        return (distance, -(m[1] - m[0]), m[3])

    best = min(matches, key=key)
    return {"category": best[2], "trigger": {"text": text[best[0]:best[1]], "start": best[0], "end": best[1]}}


# --- partners ----------------------------------------------------------------------------------

def _region_dict(region: Region) -> dict:
    return {"name": region.name, "full_name": region.full_name, "code": region.code,
            "province": region.province, "level": region.level}


def _merge_places(mentions: list[_Mention], gazetteer: Gazetteer) -> None:
    """Point each mention at the most specific place consistent with it (sets `place`).

    A place whose mentioned subdivisions form one line (天津 ⊃ 和平区) is merged into the deepest;
    when they branch, into the branch with more than half of those mentions, else it stays.
    """
    counts = Counter(m.region.code for m in mentions)
    regions = {m.region.code: m.region for m in mentions}

    def below(code: str) -> list[str]:
        return [c for c in regions if gazetteer.is_ancestor(regions[code], regions[c])]

    def target(code: str) -> str:
        lower = below(code)
        leaves = [c for c in lower if not below(c)]
        if not leaves:
            return code
        weight = {leaf: sum(counts[c] for c in lower if c == leaf or gazetteer.is_ancestor(regions[c], regions[leaf]))
                  for leaf in leaves}
        best = max(leaves, key=lambda c: (weight[c], c))
        return best if len(leaves) == 1 or weight[best] * 2 > sum(counts[c] for c in lower) else code

    merged = {code: target(code) for code in regions}
    for m in mentions:
        m.place = merged[m.region.code]


def _in_area(region: Region, areas: Iterable[str]) -> bool:
    return any(region.code.startswith(a) for a in areas)


def _collect_cues(text: str, mentions: list[_Mention], pairs: dict, helper_votes: Counter) -> None:
    """Scan neighbouring mentions in each sentence for direction and pairing cues."""
    for i, b in enumerate(mentions):
        same_sentence = [a for a in mentions[:i] if a.sentence == b.sentence]
        if same_sentence:
            a = same_sentence[-1]
            between = to_simplified(text[a.entity.end: b.entity.start])
            if a.place != b.place and _PAIRED.match(between):
                _vote(pairs, a, b, _WEIGHT_PAIRED, 0.0, "paired", b.entity.end, text)
            if a.place != b.place and between == "向" and _SENDS_AFTER.match(
                to_simplified(text[b.entity.end: b.entity.end + 4])
            ):
                _vote(pairs, a, b, _WEIGHT_SENDS, _WEIGHT_SENDS, "sends to", b.entity.end + 2, text)
        before = to_simplified(text[max(0, b.entity.start - _VERB_REACH): b.entity.start])
        verb = _HELP_VERB.search(before)
        if verb:
            verb_start = b.entity.start - len(before) + verb.start()
            helpers = [a for a in mentions[:i]
                       if a.sentence == b.sentence and a.place != b.place and a.entity.end <= verb_start]
            if helpers:
                a = helpers[-1]
                _vote(pairs, a, b, _WEIGHT_DIRECTED, _WEIGHT_DIRECTED, "helps", b.entity.end, text)
        after = to_simplified(text[b.entity.end: b.entity.end + 14])
        helped_by = _HELPED_BY.match(after)
        if helped_by:
            helper_votes[b.place] += 1
            cue_end = b.entity.end + helped_by.end()
            following = [c for c in mentions[i + 1:] if c.sentence == b.sentence and c.place != b.place
                         and c.entity.start - cue_end <= 4]
            if following:
                _vote(pairs, b, following[0], _WEIGHT_DIRECTED, _WEIGHT_DIRECTED, "helped by",
                      following[0].entity.end, text)


def _vote(pairs: dict, helper: _Mention, recipient: _Mention, weight: float, direction: float,
          cue: str, end: int, text: str) -> None:
    """Record one cue: `weight` for the pair, `direction` for helper → recipient, and its text span."""
    pair = pairs[frozenset((helper.place, recipient.place))]
    pair.score += weight
    pair.direction[(helper.place, recipient.place)] += direction
    start = min(helper.entity.start, recipient.entity.start)
    pair.evidence.append({"cue": cue, "text": text[start:end], "start": start, "end": end})


def find_partners(text: str, mentions: list[_Mention], gazetteer: Gazetteer) -> list[dict]:
    """The helper → recipient pair(s) the report is about (see the module docstring)."""
    mentions = [m for m in mentions if m.region.level != "town"]
    if not mentions:
        return []
    _merge_places(mentions, gazetteer)
    places = {m.place: gazetteer.by_code[m.place] for m in mentions}
    prominence = Counter()
    first_seen = {}
    for m in mentions:
        prominence[m.place] += 2 if m.entity.start < _HEADLINE_CHARS else 1
        first_seen.setdefault(m.place, m.entity.start)
    pairs: dict = defaultdict(_Pair)
    helper_votes: Counter = Counter()
    _collect_cues(text, mentions, pairs, helper_votes)

    def related(x: str, y: str) -> bool:
        return x == y or gazetteer.is_ancestor(places[x], places[y]) or gazetteer.is_ancestor(places[y], places[x])

    candidates = {k: p for k, p in pairs.items() if len(k) == 2 and not related(*k)}
    if not candidates:
        ranked = sorted(places, key=lambda c: (-prominence[c], first_seen[c]))
        for x in ranked:
            y = next((y for y in ranked if not related(x, y)), None)
            if y is not None:
                candidates = {frozenset((x, y)): _Pair()}
                break
    chosen: list[tuple[frozenset, _Pair]] = []
    ranked_pairs = sorted(candidates.items(), key=lambda kv: (
        -kv[1].score, -sum(prominence[c] for c in kv[0]), min(first_seen[c] for c in kv[0])))
    for key, pair in ranked_pairs:
        if not chosen or (pair.score >= 0.5 * chosen[0][1].score and pair.score >= 2
                          and not any(related(x, y) for x in key for k, _ in chosen for y in k)):
            chosen.append((key, pair))
    return [_orient(key, pair, places, helper_votes, first_seen) for key, pair in chosen]


def _orient(key: frozenset, pair: _Pair, places: dict, helper_votes: Counter, first_seen: dict) -> dict:
    """Decide which side helps: cue votes, then helper votes, then geography, then who is named first."""
    x, y = sorted(key, key=lambda c: first_seen[c])

    def support(h: str, r: str) -> float:
        geography = _GEOGRAPHY_BONUS * (_in_area(places[h], _HELPER_AREAS) + _in_area(places[r], _RECIPIENT_AREAS))
        return pair.direction[(h, r)] + helper_votes[h] + geography

    helper, recipient = (x, y) if support(x, y) >= support(y, x) else (y, x)
    return {"helper": _region_dict(places[helper]), "recipient": _region_dict(places[recipient]),
            "score": pair.score, "evidence": pair.evidence}


# --- the record --------------------------------------------------------------------------------

def build_record(text: str, entities: list[Entity]) -> dict:
    """Partners, facts and publication date of one report (see the module docstring)."""
    gazetteer = Gazetteer.load()
    entities = sorted(entities, key=lambda e: (e.start, e.end))
    sentences = split_sentences(text)
    starts = [s for s, _ in sentences]

    def sentence_of(e: Entity) -> int:
        return max(0, bisect.bisect_right(starts, e.start) - 1)

    context = [e.text for e in entities if e.label == "REGION"]
    normalized = [normalize(e, text, context) if e.label == "REGION" else normalize(e, text) for e in entities]
    by_sentence = defaultdict(list)
    for e, n in zip(entities, normalized):
        by_sentence[sentence_of(e)].append((e, n))

    mentions = [
        _Mention(e, gazetteer.by_code[n["code"]], sentence_of(e))
        for e, n in zip(entities, normalized) if e.label == "REGION" and n["value"] is not None
    ]
    facts = [_fact(e, n, text, sentences[sentence_of(e)], by_sentence[sentence_of(e)])
             for e, n in zip(entities, normalized) if e.label in FACT_LABELS]
    published_at = find_published(text)
    return {
        "partners": find_partners(text, mentions, gazetteer),
        "facts": facts,
        "published": published_at[:10] if published_at and published_at[:1] != "-" else None,
        "published_at": published_at,
    }


def _fact(entity: Entity, norm: dict, text: str, sentence: tuple[int, int], neighbours: list) -> dict:
    dates = [(e, n) for e, n in neighbours if e.label == "DATE" and n["value"] is not None]
    date = min(dates, key=lambda d: (max(d[0].start - entity.end, entity.start - d[0].end), d[0].start > entity.start),
               default=None)
    fact = {
        "label": entity.label, "start": entity.start, "end": entity.end, "text": entity.text,
        "value": norm["value"], "unit": norm["unit"], "qualifier": norm["qualifier"],
        "qualifier_text": norm["qualifier_text"], "qualifiers": norm["qualifiers"],
        "date": date[1]["value"] if date else None,
        "date_span": [date[0].start, date[0].end] if date else None,
        **categorise(text, sentence, entity.start, entity.end),
        "regions": [{"text": e.text, "start": e.start, "end": e.end, **_region_fields(n)}
                    for e, n in neighbours if e.label == "REGION" and n["value"] is not None],
        "sentence": list(sentence),
    }
    if "currency" in norm:
        fact["currency"] = norm["currency"]
    if "problem" in norm:
        fact["problem"] = norm["problem"]
    return fact


def _region_fields(norm: dict) -> dict:
    return {k: norm[k] for k in ("name", "full_name", "code", "level", "province")}
