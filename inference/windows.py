"""Cutting a token sequence of any length into overlapping model windows.

Training and inference share this so that what the model learns on is what it is run on.
Windows overlap by `stride` tokens; at inference each token takes the prediction of the window in
which it sits furthest from an edge (most context on both sides).
"""
from __future__ import annotations

import numpy as np


def window_bounds(n_tokens: int, window: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) token ranges of length <= window covering 0..n_tokens, consecutive ones
    overlapping by `stride` tokens. An empty sequence still gets one (empty) window."""
    if window <= 0:
        raise ValueError(f"window must be positive, got {window}")
    if not 0 <= stride < window:
        raise ValueError(f"stride must be in [0, window), got stride={stride}, window={window}")
    bounds = []
    start = 0
    while True:
        end = min(start + window, n_tokens)
        bounds.append((start, end))
        if end >= n_tokens:
            return bounds
        start = end - stride


def most_central_window(bounds: list[tuple[int, int]], n_tokens: int) -> np.ndarray:
    """For every token, the index of the window where its distance to the nearer edge is largest
    (the earlier window on a tie)."""
    best = np.zeros(n_tokens, dtype=np.int64)
    best_margin = np.full(n_tokens, -1, dtype=np.int64)
    for w, (start, end) in enumerate(bounds):
        positions = np.arange(start, end)
        margin = np.minimum(positions - start, end - 1 - positions)
        better = margin > best_margin[start:end]
        best[start:end][better] = w
        best_margin[start:end][better] = margin[better]
    return best


def encode_text(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids and character offsets of `text`, no special tokens, no truncation.

    Goes to the Rust tokenizer directly: the Python wrapper would warn about (and some versions
    truncate) sequences longer than the model, and long documents are the normal case here.
    """
    encoding = tokenizer.backend_tokenizer.encode(text, add_special_tokens=False)
    return list(encoding.ids), [tuple(o) for o in encoding.offsets]


def pad_batch(rows, pad_id: int, type_rows=None, cls_id: int | None = None, sep_id: int | None = None,
              width: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of token ids → right-padded (input_ids, attention_mask, token_type_ids), int64 arrays
    (numpy, so that the ONNX path never imports torch; `torch.from_numpy` shares their memory).

    The one padding loop of the Tagger's batches, the ONNX export's check batch and the teacher's
    pass in distillation. With `cls_id`/`sep_id` each row is wrapped as [CLS] ids [SEP] (rows from
    `encode_text`); without, rows are taken as they are (they already hold their special tokens).
    `type_rows` (word features), when given, holds one row of type ids per row of ids (or None for
    a row without) and goes where the row's ids go; special tokens and padding get type 0.
    `width` defaults to the longest row (with its special tokens)."""
    wrap = cls_id is not None
    extra = 2 if wrap else 0
    if width is None:
        width = max((len(r) for r in rows), default=0) + extra
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    attention = np.zeros((len(rows), width), dtype=np.int64)
    types = np.zeros((len(rows), width), dtype=np.int64)
    first = 1 if wrap else 0
    for row, ids in enumerate(rows):
        n = len(ids) + extra
        input_ids[row, :n] = [cls_id, *ids, sep_id] if wrap else list(ids)
        attention[row, :n] = 1
        if type_rows is not None and type_rows[row] is not None:
            types[row, first : first + len(ids)] = list(type_rows[row])
    return input_ids, attention, types
