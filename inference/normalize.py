"""Normalise entity spans to values: amounts in yuan, counts, ISO dates, gazetteer regions.

`normalize(entity, text)` never raises on a bad span: it returns `value: None` and a `problem`
string, so one odd figure cannot stop a whole report. Amounts are computed with Decimal (a float
would turn 14439.1万 into 144390999.99…) and returned as int, or as a string when not whole, so
the result is always JSON-serialisable.

Qualifiers. A figure's qualifier may stand inside the span (130余名, 2億餘元, 220多万) or just
outside it (超200人, 近20家, 累计…1288万元, 4500元以上); both are mapped to a small fixed
vocabulary (QUALIFIERS) and the raw text with its offsets is kept, so none is lost. `qualifier` is
the most telling one: a magnitude word (more than, nearly, about, …) before an aggregation word
(cumulative, total, reached).

Counts. The unit is the classifier in the span (人, 名, 户, 人次, 个, 项 …), None without one
(220多万贫困人口: records.py reads the noun after it); a span cut inside 项目 (29个项|目) is read as
29个, with a `note`.

Dates follow ISO 8601 with reduced precision: 2021年 → "2021", 2021年4月 → "2021-04",
2020年6月2日 → "2020-06-02", 2024-02-13 15:50 → "2024-02-13T15:50", a range 2017—2020年 →
"2017/2020". A date without a year keeps the ISO truncated form (7月7日 → "--07-07", 10月 → "--10",
22日 → "---22"); when a four-digit year is written earlier in the same line, it is reported as
`year` and the completed date as `inferred` ("2020-07-07"). Two-digit years (20-08-12) are 20xx.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import date
from decimal import Decimal, InvalidOperation

from eastwest.inference.gazetteer import Gazetteer, Region, to_simplified
from eastwest.inference.schema import Entity

QUALIFIERS = (
    "more than", "nearly", "about", "at least", "less than", "at most", "as many as",
    "reached", "cumulative", "total",
)
_MAGNITUDE = frozenset(QUALIFIERS[:7])

# Inside the span, between numeral and unit (LABELS.md keeps these in the span).
_INNER = {"余": "more than", "多": "more than", "逾": "more than", "几": "more than", "来": "about"}
# Immediately before the span; several may stack (累计超 → cumulative, more than).
_BEFORE = {
    "超过": "more than", "超出": "more than", "超": "more than", "逾": "more than", "突破": "more than",
    "将近": "nearly", "接近": "nearly", "近": "nearly",
    "大约": "about", "约为": "about", "约": "about", "大概": "about",
    "至少": "at least", "不少于": "at least", "不低于": "at least",
    "不足": "less than", "不到": "less than", "少于": "less than",
    "多达": "as many as", "高达": "reached", "达到": "reached", "达": "reached",
    "累计": "cumulative", "累积": "cumulative",
    "共计": "total", "合计": "total", "总计": "total", "一共": "total", "总共": "total", "共": "total",
}
# Immediately after the span.
_AFTER = {
    "以上": "at least", "左右": "about", "上下": "about", "之多": "as many as",
    "以下": "at most", "以内": "at most", "余": "more than", "多": "more than",
}
# Aggregation words that scope over a whole clause: 累计投入财政帮扶资金3.3亿元.
_CLAUSE_SCOPE = re.compile(r"累计|累积|共计|合计|总计|共(?![同建享赢产识商有性])")
_CLAUSE_BREAK = re.compile(r"[，,。；;！!？?\n：:]")

_CURRENCIES = (
    ("美元", "USD"), ("美金", "USD"), ("欧元", "EUR"), ("英镑", "GBP"), ("日元", "JPY"),
    ("港元", "HKD"), ("港币", "HKD"), ("澳元", "AUD"), ("元", "CNY"), ("块", "CNY"),
)
_CLASSIFIERS = ("人次", "人", "名", "户", "位", "个", "项", "家", "对", "次")
_BIG_UNITS = {"万亿": Decimal(10) ** 12, "亿": Decimal(10) ** 8, "万": Decimal(10) ** 4}
_SMALL_UNITS = {"十": 10, "百": 100, "千": 1000}
_NUMBER_TOKEN = re.compile(r"(\d+(?:,\d{3})*(?:\.\d+)?)|(万亿|亿|万)|([零〇一二两三四五六七八九十百千]+)")


def _prep(s: str) -> str:
    """Full-width → half-width (NFKC), traditional → simplified, no spaces."""
    return re.sub(r"\s+", "", to_simplified(unicodedata.normalize("NFKC", s)))


def parse_number(s: str) -> Decimal:
    """A numeral with optional 万/亿 multipliers: 14439.1万, 1亿2000万, 五千万, 两, 1.2万亿, 万.

    Arabic digits are read exactly as Decimal; runs of Chinese numerals go through cn2an.
    Raises ValueError on anything else.
    """
    s = _prep(s)
    if not s:
        raise ValueError("no numeral")
    total, pending, last_big, pos = Decimal(0), None, None, 0
    for m in _NUMBER_TOKEN.finditer(s):
        if m.start() != pos:
            break
        pos = m.end()
        arabic, big, chinese = m.groups()
        if arabic:
            if pending is not None:
                raise ValueError(f"two numbers in a row in {s!r}")
            pending = Decimal(arabic.replace(",", ""))
        elif chinese:
            if pending is not None and chinese in _SMALL_UNITS:  # 3千
                pending *= _SMALL_UNITS[chinese]
            elif pending is None:
                # 八万零二百: after 万/亿 a leading 零 only marks the empty places (cn2an fails on it)
                run = chinese[1:] if last_big is not None and chinese[0] in "零〇" and len(chinese) > 1 else chinese
                run = "一" + run if run[0] in "百千" else run  # 百余名: a bare 百/千 is one hundred/thousand
                try:
                    pending = Decimal(int(_cn2an(run)))
                except Exception as exc:  # cn2an raises KeyError/IndexError on some malformed runs
                    raise ValueError(f"not a numeral: {s!r} ({type(exc).__name__} in cn2an)") from None
            else:
                raise ValueError(f"two numbers in a row in {s!r}")
        else:
            unit = _BIG_UNITS[big]
            pending = Decimal(1) if pending is None else pending  # 万人 = 1万人
            if last_big is not None and unit > last_big:  # 五千万亿
                total = (total + pending) * unit
            else:
                total += pending * unit
            last_big, pending = unit, None
    if pos != len(s):
        raise ValueError(f"not a numeral: {s!r}")
    return total + (pending or 0)


def _json_number(value: Decimal) -> int | str:
    return int(value) if value == value.to_integral_value() else format(value.normalize(), "f")


# --- qualifiers ------------------------------------------------------------------------------

def _qualifiers(entity: Entity, text: str, inner: list[tuple[str, int]]) -> dict:
    """Qualifier fields for a figure: inner ones, then adjacent before/after, then clause scope."""
    found = [(_INNER[q], q, entity.start + i) for q, i in inner]
    before = to_simplified(text[max(0, entity.start - 8): entity.start])
    end = len(before)
    while end:
        word = next((w for w in sorted(_BEFORE, key=len, reverse=True) if before[:end].endswith(w)), None)
        if word is None:
            break
        end -= len(word)
        found.append((_BEFORE[word], word, entity.start - len(before) + end))
    if entity.text[:1] in "万千百亿" and before.endswith("上"):  # 上万人
        found.append(("more than", "上", entity.start - 1))
    after = to_simplified(text[entity.end: entity.end + 2])
    word = next((w for w in sorted(_AFTER, key=len, reverse=True) if after.startswith(w)), None)
    if word:
        found.append((_AFTER[word], word, entity.end))
    if not any(q[0] in ("cumulative", "total") for q in found):
        found.extend(_clause_scope(entity, text))
    chosen = next((q for q in found if q[0] in _MAGNITUDE), found[0] if found else None)
    return {
        "qualifier": chosen[0] if chosen else None,
        "qualifier_text": chosen[1] if chosen else None,
        "qualifiers": [
            {"qualifier": q, "text": raw, "start": start, "end": start + len(raw)} for q, raw, start in found
        ],
    }


def _clause_scope(entity: Entity, text: str) -> list[tuple[str, str, int]]:
    """累计/共计/合计… earlier in the same clause, with no other numeral in between."""
    lo = max(0, entity.start - 40)
    window = to_simplified(text[lo: entity.start])
    breaks = list(_CLAUSE_BREAK.finditer(window))
    clause_start = breaks[-1].end() if breaks else 0
    clause = window[clause_start:]
    matches = list(_CLAUSE_SCOPE.finditer(clause))
    if not matches or re.search(r"\d|[一二两三四五六七八九十百千万亿]", clause[matches[-1].end():]):
        return []
    m = matches[-1]
    word = m.group()
    return [("cumulative" if word.startswith("累") else "total", word, lo + clause_start + m.start())]


def _strip_inner(s: str) -> tuple[str, list[str]]:
    """Split 余/多/逾/几/来 out of a numeral: (numeral, the qualifier characters in order)."""
    return "".join(ch for ch in s if ch not in _INNER), [ch for ch in s if ch in _INNER]


def _inner_offsets(entity_text: str, chars: list[str]) -> list[tuple[str, int]]:
    """Each inner qualifier with its offset in the raw span text (traditional 餘 counts as 余)."""
    simplified = to_simplified(entity_text)
    out, pos = [], 0
    for ch in chars:
        idx = simplified.find(ch, pos)
        out.append((ch, max(idx, 0)))
        pos = idx + 1
    return out


# --- per-label normalisers ---------------------------------------------------------------------

def _money(entity: Entity, text: str) -> dict:
    s = _prep(entity.text)
    currency = "CNY" if "人民币" in s else None
    s = re.sub(r"^人民币|人民币$", "", s)
    for word, code in _CURRENCIES:
        m = re.search(re.escape(word) + r"[余多]?$", s)
        if m:
            currency, s = code, s[: m.start()] + s[m.start() + len(word):]
            break
    result = {"currency": currency or "CNY", "unit": "yuan" if currency in (None, "CNY") else currency}
    numeral, inner = _strip_inner(s)
    result.update(_qualifiers(entity, text, _inner_offsets(entity.text, inner)))
    if currency is None:
        result["note"] = "no currency unit in the span; yuan assumed"
    return _with_value(result, numeral)


def _count(entity: Entity, text: str) -> dict:
    s = _prep(entity.text)
    result = {}
    if s.endswith("个项") and _prep(text[entity.end: entity.end + 1]) == "目":
        s = s[:-1]  # 29个项|目: a span cut inside 项目 still counts 29个
        result["note"] = "span ends inside 项目"
    unit = next((c for c in _CLASSIFIERS if s.endswith(c)), None)
    if unit:
        s = s[: -len(unit)]
    numeral, inner = _strip_inner(s)
    result["unit"] = unit
    result.update(_qualifiers(entity, text, _inner_offsets(entity.text, inner)))
    return _with_value(result, numeral)


def _with_value(result: dict, numeral: str) -> dict:
    try:
        value = parse_number(numeral)
    except (ValueError, InvalidOperation) as exc:
        return {**result, "value": None, "problem": f"unparseable amount: {exc}"}
    return {**result, "value": _json_number(value)}


_CN_DIGIT = {c: str(i) for i, c in enumerate("〇一二三四五六七八九")} | {"零": "0"}
_YEAR = r"(\d{4}|\d{2}|[〇零一二三四五六七八九]{4})"
_SMALL = r"(\d{1,2}|[一二三四五六七八九十]{1,3})"
_TIME = r"(?:[T ]?(\d{1,2})[:时](\d{2})(?:[:分](\d{2})秒?)?分?)?"
_NUMERIC_DATE = re.compile(rf"^{_YEAR}[-/.]{_SMALL}(?:[-/.]{_SMALL})?/?{_TIME}$")
_CHINESE_DATE = re.compile(rf"^(?:{_YEAR} ?年(度)? ?)?(?:{_SMALL} ?月份? ?)?(?:{_SMALL} ?[日号])?{_TIME}$")
_YEAR_RANGE = re.compile(r"^(\d{4})年?[-—–~至到](\d{4})年度?$")


def _to_int(s: str) -> int:
    return int(s) if s.isdigit() else int(_cn2an(s))


def parse_date(raw: str) -> str:
    """ISO 8601 (reduced precision) for a DATE span; ValueError if it is not a calendar date."""
    s = re.sub(r"\s+", " ", to_simplified(unicodedata.normalize("NFKC", raw))).strip().rstrip("/")
    if m := _YEAR_RANGE.match(s):
        return f"{m.group(1)}/{m.group(2)}"
    m = _NUMERIC_DATE.match(s)
    if m:
        year, month, day, hh, mm, ss = m.groups()
    else:
        m = _CHINESE_DATE.match(s)
        if not m or not any(m.group(i) for i in (1, 3, 4)):
            raise ValueError(f"not a calendar date: {raw!r}")
        year, _, month, day, hh, mm, ss = m.groups()
    if year and not year.isdigit():
        year = "".join(_CN_DIGIT[c] for c in year)
    y = None if year is None else int(year) + (2000 if len(year) == 2 else 0)
    mo = None if month is None else _to_int(month)
    d = None if day is None else _to_int(day)
    if mo is not None and not 1 <= mo <= 12 or d is not None and not 1 <= d <= 31:
        raise ValueError(f"month or day out of range: {raw!r}")
    if y is not None and mo is not None and d is not None:
        date(y, mo, d)  # raises ValueError on 2月30日
    if y is not None:
        iso = f"{y:04d}" + (f"-{mo:02d}" if mo else "") + (f"-{d:02d}" if mo and d else "")
    else:
        iso = "-" + (f"-{mo:02d}" if mo else "-") + (f"-{d:02d}" if d else "")
    if hh is not None:
        iso += f"T{int(hh):02d}:{mm}" + (f":{ss}" if ss else "")
    return iso


def _date(entity: Entity, text: str) -> dict:
    try:
        value = parse_date(entity.text)
    except ValueError as exc:
        return {"value": None, "problem": str(exc)}
    result = {"value": value}
    if value.startswith("--") and not value.startswith("---"):
        line_start = text.rfind("\n", 0, entity.start) + 1
        years = re.findall(r"(\d{4})\s*(?:年|[-/.]\d)", _prep(text[line_start: entity.start]))
        if years:
            result["year"] = int(years[-1])
            result["inferred"] = years[-1] + value[1:]
    return result


def _region(entity: Entity, text: str, context: Iterable[str | Region] | None) -> dict:
    gazetteer = Gazetteer.load()
    places = gazetteer.context_from_text(text) if context is None else context
    region = gazetteer.resolve(entity.text, places)
    if region is None:
        return {"value": None, "problem": f"not in the gazetteer: {entity.text!r}"}
    return {"value": region.full_name, **region.to_dict()}


def normalize(entity: Entity, text: str, context: Iterable[str | Region] | None = None) -> dict:
    """Normalised fields for one entity of `text`; always has label, text, start, end and value.

    `context` (REGION only): the other places of the report, as surfaces or Regions, used to
    pick between same-named divisions; by default the provinces and prefectures named in `text`.
    """
    base = {"label": entity.label, "text": entity.text, "start": entity.start, "end": entity.end}
    if entity.label == "MONEY":
        fields = _money(entity, text)
    elif entity.label in ("PROJECT_COUNT", "PEOPLE_COUNT"):
        fields = _count(entity, text)
    elif entity.label == "DATE":
        fields = _date(entity, text)
    elif entity.label == "REGION":
        fields = _region(entity, text, context)
    elif entity.label == "ORG":
        fields = {"value": entity.text}
    else:
        fields = {"value": None, "problem": f"unknown label {entity.label!r}"}
    return {**base, **fields}


def _cn2an(numeral: str):
    import cn2an  # a fifth of a second to import: only reports with Chinese numerals pay it

    return cn2an.cn2an(numeral, "normal")
