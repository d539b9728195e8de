"""Annotated documents → token-classification examples (a `datasets.Dataset`).

Each document is tokenised once, whole, with character offsets; its spans become IOB2 tags per
token (inference/bio.py); the token sequence is then cut into overlapping windows
(inference/windows.py) so no text is dropped however long the report. Special tokens get label
-100 (ignored by the loss). Spans whose boundary falls inside a token are counted and returned.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from datasets import Dataset

from eastwest.inference.bio import Misalignment, spans_to_tags
from eastwest.inference.lexicon import token_word_types
from eastwest.inference.schema import LABELS
from eastwest.inference.windows import encode_text, window_bounds

from eastwest.inference.errors import TrainingError

from .annotations import AnnotatedDoc

IGNORE = -100


@dataclass
class ConversionReport:
    windows: int = 0
    tokens: int = 0
    misaligned: list[tuple[str, Misalignment]] = field(default_factory=list)

    def summary(self) -> str:
        return f"{self.windows} windows, {self.tokens} tokens, {len(self.misaligned)} spans with a boundary inside a token"


def special_ids(tokenizer) -> tuple[int, int]:
    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise ValueError(f"tokenizer {tokenizer.name_or_path!r} has no [CLS]/[SEP] tokens: only BERT-style encoders are supported")
    return tokenizer.cls_token_id, tokenizer.sep_token_id


def doc_windows(doc: AnnotatedDoc, tokenizer, window: int, stride: int, report: ConversionReport,
                word_features: bool = False) -> list[dict]:
    """Windows of one document: `window` counts the [CLS]/[SEP] tokens too. With `word_features`,
    each window has token_type_ids from the lexicon (type 0 on [CLS]/[SEP])."""
    cls_id, sep_id = special_ids(tokenizer)
    ids, offsets = encode_text(tokenizer, doc.text)
    types = token_word_types(offsets, doc.text) if word_features else None
    tags, misaligned = spans_to_tags(offsets, doc.entities)
    report.misaligned += [(doc.id, m) for m in misaligned]
    report.tokens += len(ids)
    tag_ids = [LABELS.label2id[t] for t in tags]
    rows = []
    for start, end in window_bounds(len(ids), window - 2, stride):
        row = {
            "doc_id": doc.id,
            "window_start": start,
            "input_ids": [cls_id] + ids[start:end] + [sep_id],
            "labels": [IGNORE] + tag_ids[start:end] + [IGNORE],
        }
        if types is not None:
            row["token_type_ids"] = [0] + types[start:end] + [0]
        rows.append(row)
    report.windows += len(rows)
    return rows


def build_dataset(docs: Iterable[AnnotatedDoc], tokenizer, window: int, stride: int,
                  word_features: bool = False) -> tuple[Dataset, ConversionReport]:
    report = ConversionReport()
    rows = [row for doc in docs for row in doc_windows(doc, tokenizer, window, stride, report, word_features)]
    if not rows:
        raise ValueError("no training examples: the annotation files contain no annotated tasks")
    columns = {key: [row[key] for row in rows] for key in rows[0]}
    columns["attention_mask"] = [[1] * len(ids) for ids in columns["input_ids"]]
    return Dataset.from_dict(columns), report


def split_by_document(docs: Sequence[AnnotatedDoc], held_out: Iterable[str]) -> tuple[list[AnnotatedDoc], list[AnnotatedDoc]]:
    """Train/eval split at document level: a document is never in both."""
    held = set(held_out)
    unknown = held - {d.id for d in docs}
    if unknown:
        raise TrainingError(f"data.eval_documents: documents not in the data: {sorted(unknown)}")
    return [d for d in docs if d.id not in held], [d for d in docs if d.id in held]
