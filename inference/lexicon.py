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
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .schema import Entity

# The labels whose boundaries are words: numbers and dates end inside words all the time (29个项目).
CONSTRAINED_LABELS = ("REGION", "ORG")
# Towns, villages and communities: the gazetteer lacks villages and renamed towns, so a name with
# one of these heads (two characters or more before it) is accepted as it stands.
_LOCAL_NAME = re.compile(r"[\u4e00-\u9fff]{2,14}(?:村|社区|居委会|嘎查|屯|镇|乡|街道|苏木)")
# Divisions renamed or re-levelled since (那曲地区 → 那曲市, 水城县 → 水城区): the name before the
# level word still parses. Reports from 1996 on use the names of their time.
_OLD_LEVEL = re.compile(r"(.{2,}?)(?:地区|县|区|市|旗|盟|州)$")


@lru_cache(maxsize=1)
def _segmenter():
    import logging

    import jieba

    from .gazetteer import surface_forms

    jieba.setLogLevel(logging.WARNING)  # the "Building prefix dict" lines are noise in batch runs
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    for name, _level in surface_forms():
        tokenizer.add_word(name, freq=max(tokenizer.suggest_freq(name), 1000))
    return tokenizer


def word_starts(text: str) -> np.ndarray:
    """starts[i] is True where a word begins at character i (traditional script read as simplified)."""
    from .gazetteer import to_simplified

    starts = np.zeros(len(text) + 1, dtype=bool)
    starts[len(text)] = True
    position = 0
    for word in _segmenter().cut(to_simplified(text), HMM=False):
        starts[position] = True
        position += len(word)
    return starts


def token_mid_word(offsets, text: str) -> np.ndarray:
    """For each token: True when it starts inside a word (so an entity may not begin, nor end before it)."""
    starts = word_starts(text)
    return np.array([not starts[s] for s, _ in offsets], dtype=bool)


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
