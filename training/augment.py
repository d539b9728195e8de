"""Data augmentation: new training documents from gold ones, so the model sees places, numbers
and scripts beyond the five seed articles (which pair Tianjin/Qingdao with Gansu only).

Each augmented copy rewrites the gold document segment by segment, so its spans stay exact:
- REGION mentions are replaced, consistently within a document, by divisions drawn from the whole
  gazetteer, written as a full name, a short form or a nested chain; an ORG that begins with a
  replaced place name gets the same new name;
- MONEY / PROJECT_COUNT / PEOPLE_COUNT keep their unit but get a new numeral (Arabic, full-width,
  Chinese or decimal); DATE gets new years, months and days in the same written form;
- a copy may be converted to traditional characters (OpenCC s2t), segment by segment.
"""
from __future__ import annotations

import random
import re
from functools import lru_cache

import cn2an
import opencc

from eastwest.inference.gazetteer import Gazetteer, short_forms
from eastwest.inference.schema import Entity

from .annotations import AnnotatedDoc
from .config import AugmentConfig

_NUMERAL = re.compile(r"^[0-9０-９.．零〇一二两兩三四五六七八九十百千]+")
_FULL_WIDTH = str.maketrans("0123456789.", "０１２３４５６７８９．")
_LEVEL_WEIGHTS = {"province": 0.15, "prefecture": 0.25, "county": 0.45, "town": 0.15}


@lru_cache(maxsize=1)
def _regions_by_level() -> dict[str, list]:
    by_level: dict[str, list] = {}
    for region in Gazetteer.load().by_code.values():
        by_level.setdefault(region.level, []).append(region)
    return by_level


@lru_cache(maxsize=1)
def _s2t() -> opencc.OpenCC:
    return opencc.OpenCC("s2t")


def random_region_surface(rng: random.Random) -> str:
    levels = list(_LEVEL_WEIGHTS)
    region = rng.choice(_regions_by_level()[rng.choices(levels, weights=list(_LEVEL_WEIGHTS.values()))[0]])
    style = rng.random()
    if style < 0.35 and region.level != "province":
        lineage = Gazetteer.load().lineage(region)
        start = rng.randrange(len(lineage) - 1)
        return "".join(r.name for r in lineage[start:])
    forms = short_forms(region.name, region.level)
    if style < 0.7 and forms:
        return rng.choice(forms)
    return region.name


def random_numeral(rng: random.Random) -> str:
    """A new numeral in one of the written forms seen in reports."""
    value = rng.choice([rng.randint(1, 9), rng.randint(10, 99), rng.randint(100, 9999), rng.randint(10000, 999999)])
    form = rng.random()
    if form < 0.15:
        return cn2an.an2cn(value)
    if form < 0.3 and value < 1000:
        return f"{value / 10:.1f}".rstrip("0").rstrip(".") if value % 10 else str(value)
    if form < 0.4:
        return str(value).translate(_FULL_WIDTH)
    if form < 0.5:
        return f"{rng.randint(1, 999)}.{rng.randint(1, 99)}"
    return str(value)


def random_date(rng: random.Random, original: str) -> str:
    """The same written form with a new year, month and day."""
    year, month, day = rng.randint(2013, 2026), rng.randint(1, 12), rng.randint(1, 28)

    def swap(m: re.Match) -> str:
        digits = m.group()
        if len(digits) == 4:
            return str(year)
        if m.end() < len(original) and original[m.end()] in "日号" or m.start() > 7:
            return str(day).zfill(len(digits)) if len(digits) == 2 else str(day)
        return str(month).zfill(len(digits)) if len(digits) == 2 else str(month)

    return re.sub(r"[0-9]+", swap, original) if re.search(r"[0-9]", original) else original


def _rewrite(entity: Entity, rng: random.Random, regions: dict[str, str], cfg: AugmentConfig) -> str:
    text = entity.text
    if entity.label == "REGION":
        if text not in regions:
            regions[text] = random_region_surface(rng) if rng.random() < cfg.regions else text
        return regions[text]
    if entity.label == "ORG":
        prefix = next((p for p in sorted(regions, key=len, reverse=True) if text.startswith(p)), None)
        return regions[prefix] + text[len(prefix) :] if prefix else text
    if rng.random() >= cfg.numbers:
        return text
    if entity.label == "DATE":
        return random_date(rng, text)
    m = _NUMERAL.match(text)
    return random_numeral(rng) + text[m.end() :] if m else text


def augment_document(doc: AnnotatedDoc, rng: random.Random, cfg: AugmentConfig, copy_index: int) -> AnnotatedDoc:
    traditional = rng.random() < cfg.traditional
    convert = _s2t().convert if traditional else (lambda s: s)
    regions: dict[str, str] = {}
    pieces, entities, pos, cursor = [], [], 0, 0
    for entity in sorted(doc.entities, key=lambda e: e.start):
        gap = convert(doc.text[cursor : entity.start])
        new = convert(_rewrite(entity, rng, regions, cfg))
        pieces += [gap, new]
        pos += len(gap)
        entities.append(Entity(pos, pos + len(new), entity.label, new))
        pos += len(new)
        cursor = entity.end
    pieces.append(convert(doc.text[cursor:]))
    return AnnotatedDoc(f"{doc.id}#aug{copy_index}", "".join(pieces), entities, doc.source)


def augment_documents(docs: list[AnnotatedDoc], cfg: AugmentConfig) -> list[AnnotatedDoc]:
    rng = random.Random(cfg.seed)
    return [augment_document(doc, rng, cfg, i) for doc in docs for i in range(cfg.copies)]
