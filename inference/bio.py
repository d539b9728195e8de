"""IOB2 over tokens whose character offsets are known.

The tokenizer decides the tokens; these functions only move between character spans and
per-token tags. A span boundary that falls inside a token cannot be represented: it is returned
to the caller as a misalignment, never shifted silently.
"""
from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from .schema import Entity

Offsets = Sequence[tuple[int, int]]


@dataclass(frozen=True)
class Misalignment:
    start: int
    end: int
    label: str
    token: tuple[int, int]


def spans_to_tags(offsets: Offsets, spans: Sequence[Entity]) -> tuple[list[str], list[Misalignment]]:
    """Tag each token B-/I-/O from character spans (sorted or not, non-overlapping)."""
    tags = ["O"] * len(offsets)
    misaligned: list[Misalignment] = []
    starts = [s for s, _ in offsets]
    for span in sorted(spans, key=lambda e: e.start):
        first = bisect.bisect_right(starts, span.start) - 1
        first = max(first, 0)
        inside = False
        for i in range(first, len(offsets)):
            tok_start, tok_end = offsets[i]
            if tok_start >= span.end:
                break
            if tok_end <= span.start:
                continue
            if tok_start < span.start or tok_end > span.end:
                misaligned.append(Misalignment(span.start, span.end, span.label, (tok_start, tok_end)))
            tags[i] = ("I-" if inside else "B-") + span.label
            inside = True
    return tags, misaligned


def tags_to_spans(
    tags: Sequence[str],
    offsets: Offsets,
    text: str,
    scores: Sequence[float] | None = None,
) -> list[Entity]:
    """Decode IOB2 tags into character spans.

    Repairs rather than drops: an I-X that does not continue an X entity starts one. A B-X right
    after an X entity starts a new entity, so adjacent mentions stay separate. The score of an
    entity is the mean of its tokens' scores.
    """
    entities: list[Entity] = []
    label, start, end, token_scores = None, 0, 0, []

    def close() -> None:
        if label is not None:
            score = sum(token_scores) / len(token_scores) if token_scores else 1.0
            entities.append(Entity(start, end, label, text[start:end], round(float(score), 4)))

    for i, tag in enumerate(tags):
        prefix, _, name = tag.partition("-")
        if prefix == "I" and name == label:
            end = offsets[i][1]
            if scores is not None:
                token_scores.append(scores[i])
            continue
        close()
        label = None
        if prefix in ("B", "I"):
            label, start, end = name, offsets[i][0], offsets[i][1]
            token_scores = [scores[i]] if scores is not None else []
    close()
    return entities


def allowed_transitions(tags: Sequence[str]) -> list[list[bool]]:
    """allowed[i][j]: may tag j follow tag i in strict IOB2? I-X only continues B-X or I-X."""
    def ok(prev: str, nxt: str) -> bool:
        if not nxt.startswith("I-"):
            return True
        return prev in (f"B-{nxt[2:]}", nxt)

    return [[ok(p, n) for n in tags] for p in tags]


def boundary_penalties(tags: Sequence[str], labels: Sequence[str], penalty: float) -> tuple:
    """(start, end) penalty arrays for a lexicon constraint, charged at tokens that begin inside a word.

    start[j]: tag j begins a `labels` entity there (B-X). end[i][j]: moving from tag i to tag j
    there ends a `labels` entity inside the word (i is B-X or I-X, j is not I-X).
    """
    import numpy as np

    start = np.array([penalty if t[:2] == "B-" and t[2:] in labels else 0.0 for t in tags], dtype=np.float32)
    end = np.array([[penalty if p[2:] in labels and p[:2] in ("B-", "I-") and n != "I-" + p[2:] else 0.0
                     for n in tags] for p in tags], dtype=np.float32)
    return start, end


def viterbi_decode(probs, tags: Sequence[str]) -> tuple[list[str], list[float]]:
    """The most probable tag sequence that is valid IOB2, from per-token distributions.

    `probs` is a (tokens, tags) array or tensor whose columns follow `tags`. Greedy argmax can
    produce sequences such as B-PEOPLE_COUNT I-PROJECT_COUNT, which no repair turns into the right
    span; here such paths are simply impossible, and the model's own probabilities choose between
    the valid readings. Returns the tags and each chosen tag's probability.
    """
    return viterbi_decode_many([probs], tags)[0]


def viterbi_decode_many(sequences: Sequence, tags: Sequence[str], mid_word: Sequence | None = None,
                        penalties: tuple | None = None) -> list[tuple[list[str], list[float]]]:
    """`viterbi_decode` of every sequence, all sequences advanced together one token at a time.

    A numpy step costs about the same for one sequence as for sixty, so decoding a chunk of
    documents together takes as many steps as its longest document rather than the sum of all
    their lengths (10 seed reports: 0.43 s one by one, a tenth of the model's time). Sequences
    run longest first, so the ones still running at step t are always a prefix of the batch.

    With `mid_word` (per sequence, a boolean per token: it begins inside a word) and `penalties`
    from `boundary_penalties`, entity boundaries inside words cost extra (inference/lexicon.py).
    """
    import numpy as np

    arrays = [q.float().numpy() if hasattr(q, "numpy") else np.asarray(q, dtype=np.float32) for q in sequences]
    results: list[tuple[list[str], list[float]]] = [([], [])] * len(arrays)
    order = sorted((i for i, a in enumerate(arrays) if len(a)), key=lambda i: -len(arrays[i]))
    # Groups of similar length: every sequence is padded to its group's longest, so a group only
    # takes sequences at least half that long (one 5 MB report beside short ones stays alone).
    group: list[int] = []
    for i in order:
        if group and 2 * len(arrays[i]) < len(arrays[group[0]]):
            _viterbi_group(arrays, group, tags, results, mid_word, penalties)
            group = []
        group.append(i)
    if group:
        _viterbi_group(arrays, group, tags, results, mid_word, penalties)
    return results


def _viterbi_group(arrays: list, group: list[int], tags: Sequence[str], results: list, mid_word=None,
                   penalties=None) -> None:
    """Decode arrays[i] for i in `group` (longest first) into results[i]."""
    import numpy as np

    width = len(tags)
    lengths = np.array([len(arrays[i]) for i in group])
    longest = int(lengths[0])
    log_p = np.zeros((len(group), longest, width), dtype=np.float32)
    for row, i in enumerate(group):
        log_p[row, : lengths[row]] = np.log(np.maximum(arrays[i], 1e-12))
    transition = np.where(np.array(allowed_transitions(tags)), 0.0, -np.inf).astype(np.float32)
    inside = np.zeros((len(group), longest), dtype=np.float32)  # 1.0 where a token begins inside a word
    start_cost, end_cost = penalties if penalties is not None else (np.zeros(width, np.float32), np.zeros((width, width), np.float32))
    if mid_word is not None:
        for row, i in enumerate(group):
            inside[row, : lengths[row]] = mid_word[i]
        log_p -= inside[:, :, None] * start_cost
    score = np.where([t.startswith("I-") for t in tags], -np.inf, log_p[:, 0]).astype(np.float32)
    back = np.zeros((len(group), longest, width), dtype=np.int16)
    running = len(group)
    for t in range(1, longest):
        while lengths[running - 1] <= t:  # sequences that have ended keep their final scores
            running -= 1
        candidates = score[:running, :, None] + transition  # [seq, previous tag, next tag]
        if mid_word is not None:
            candidates = candidates - inside[:running, t, None, None] * end_cost
        best_previous = candidates.argmax(1)
        back[:running, t] = best_previous
        score[:running] = np.take_along_axis(candidates, best_previous[:, None, :], 1)[:, 0] + log_p[:running, t]
    # Walk back: at t > its last token a sequence just carries its final tag along.
    paths = np.zeros((len(group), longest), dtype=np.int64)
    current = score.argmax(1)
    rows = np.arange(len(group))
    for t in range(longest - 1, -1, -1):
        paths[:, t] = current
        if t:
            current = np.where(t <= lengths - 1, back[rows, t, current], current)
    for row, i in enumerate(group):
        path = paths[row, : lengths[row]]
        results[i] = ([tags[k] for k in path], arrays[i][np.arange(lengths[row]), path].tolist())
