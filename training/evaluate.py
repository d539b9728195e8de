"""Strict IOB2 span metrics (seqeval) computed on whole documents at character level.

Scoring characters rather than model tokens makes every tagger comparable — the BERT model, the
rule baseline, a model with another tokenizer — and equals exact span matching: an entity counts
only when start, end and label are all right.
"""
from __future__ import annotations

from collections.abc import Sequence

from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

from eastwest.inference.bio import spans_to_tags
from eastwest.inference.schema import LABELS, Entity


def char_tags(text: str, entities: Sequence[Entity]) -> list[str]:
    offsets = [(i, i + 1) for i in range(len(text))]
    tags, _ = spans_to_tags(offsets, entities)
    return tags


def span_metrics(texts: Sequence[str], gold: Sequence[Sequence[Entity]], predicted: Sequence[Sequence[Entity]]) -> dict:
    """{label: {precision, recall, f1, support, tp, fp, fn}} for every label plus "micro".

    The counts let scores over several documents or folds be pooled (`pooled_metrics`): with a
    handful of spans per label per article, an F1 per fold says little, and a label an article
    does not mention has no F1 at all."""
    y_true = [char_tags(t, g) for t, g in zip(texts, gold)]
    y_pred = [char_tags(t, p) for t, p in zip(texts, predicted)]
    report = classification_report(y_true, y_pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    gold_spans = {(d, *s) for d, (t, g) in enumerate(zip(y_true, texts)) for s in _spans(t)}
    pred_spans = {(d, *s) for d, t in enumerate(y_pred) for s in _spans(t)}
    metrics = {}
    for label in (*LABELS.names, "micro avg"):
        row = report.get(label, {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0})
        wanted = (lambda s: True) if label == "micro avg" else (lambda s, label=label: s[3] == label)
        g, p = {s for s in gold_spans if wanted(s)}, {s for s in pred_spans if wanted(s)}
        metrics["micro" if label == "micro avg" else label] = {
            "precision": round(float(row["precision"]), 4),
            "recall": round(float(row["recall"]), 4),
            "f1": round(float(row["f1-score"]), 4),
            "support": int(row["support"]),
            "tp": len(g & p), "fp": len(p - g), "fn": len(g - p),
        }
    return metrics


def _spans(tags: list[str]) -> list[tuple[int, int, str]]:
    """(start, end, label) of the strict IOB2 entities of a tag sequence (tags are valid here)."""
    spans, start, label = [], None, None
    for i, tag in enumerate([*tags, "O"]):
        if start is not None and not (tag.startswith("I-") and tag[2:] == label):
            spans.append((start, i, label))
            start = None
        if tag.startswith("B-"):
            start, label = i, tag[2:]
    return spans


def pooled_metrics(tables: Sequence[dict]) -> dict:
    """One table from several span_metrics tables, by summing their counts (as if one document)."""
    out = {}
    for label in tables[0]:
        tp, fp, fn = (sum(t[label][k] for t in tables) for k in ("tp", "fp", "fn"))
        precision, recall = tp / (tp + fp) if tp + fp else 0.0, tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        out[label] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
                      "support": tp + fn, "tp": tp, "fp": fp, "fn": fn}
    return out


def format_table(metrics: dict, title: str = "") -> str:
    lines = [title] if title else []
    lines.append(f"{'label':15s} {'P':>6s} {'R':>6s} {'F1':>6s} {'n':>5s}")
    for label, row in metrics.items():
        lines.append(f"{label:15s} {row['precision']:6.3f} {row['recall']:6.3f} {row['f1']:6.3f} {row['support']:5d}")
    return "\n".join(lines)
