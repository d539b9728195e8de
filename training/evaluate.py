"""Strict IOB2 span metrics (seqeval) computed on whole documents at character level.

Scoring characters rather than model tokens makes every tagger comparable — the BERT model, the
rule baseline, a model with another tokenizer — and equals exact span matching: an entity counts
only when start, end and label are all right.
"""
from __future__ import annotations

from collections.abc import Sequence

from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

from inference.bio import spans_to_tags
from inference.schema import LABELS, Entity


def char_tags(text: str, entities: Sequence[Entity]) -> list[str]:
    offsets = [(i, i + 1) for i in range(len(text))]
    tags, _ = spans_to_tags(offsets, entities)
    return tags


def span_metrics(texts: Sequence[str], gold: Sequence[Sequence[Entity]], predicted: Sequence[Sequence[Entity]]) -> dict:
    """{label: {precision, recall, f1, support}} for every label plus "micro"."""
    y_true = [char_tags(t, g) for t, g in zip(texts, gold)]
    y_pred = [char_tags(t, p) for t, p in zip(texts, predicted)]
    report = classification_report(y_true, y_pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    metrics = {}
    for label in (*LABELS.names, "micro avg"):
        row = report.get(label, {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0})
        metrics["micro" if label == "micro avg" else label] = {
            "precision": round(float(row["precision"]), 4),
            "recall": round(float(row["recall"]), 4),
            "f1": round(float(row["f1-score"]), 4),
            "support": int(row["support"]),
        }
    return metrics


def format_table(metrics: dict, title: str = "") -> str:
    lines = [title] if title else []
    lines.append(f"{'label':15s} {'P':>6s} {'R':>6s} {'F1':>6s} {'n':>5s}")
    for label, row in metrics.items():
        lines.append(f"{label:15s} {row['precision']:6.3f} {row['recall']:6.3f} {row['f1']:6.3f} {row['support']:5d}")
    return "\n".join(lines)
