"""The label set and the entity type shared by annotation, training and inference.

`configs/labels.yaml` is the one place labels are defined; everything here is derived from it.
An `Entity` is the contract between components: character offsets into the document text
(Python string indices, end exclusive), exactly as Label Studio stores them.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import quoteattr

import yaml

# The folder holding configs/ and models/ beside inference/ and training/: the checkout, or the
# installed `eastwest` package (pyproject.toml maps the folders into it the same way).
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
REPO_ROOT = PACKAGE_ROOT  # training resolves relative paths in configs against it
CONFIG_DIR = PACKAGE_ROOT / "configs"
CACHE_ENV = "EASTWEST_CACHE"


def cache_root() -> Path:
    """Where built artefacts are kept between runs (the int8 model, the word table):
    $EASTWEST_CACHE, else $XDG_CACHE_HOME/eastwest, else ~/.cache/eastwest."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "eastwest"
LABELS_FILE = CONFIG_DIR / "labels.yaml"


@dataclass(frozen=True)
class Label:
    name: str
    color: str
    description: str


@dataclass(frozen=True)
class LabelSet:
    labels: tuple[Label, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(label.name for label in self.labels)

    @property
    def tags(self) -> tuple[str, ...]:
        """IOB2 tags in id order: O first, then B-/I- per label in file order."""
        return ("O",) + tuple(f"{p}-{name}" for name in self.names for p in ("B", "I"))

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.tags))

    @property
    def label2id(self) -> dict[str, int]:
        return {tag: i for i, tag in enumerate(self.tags)}

    def label_config_xml(self) -> str:
        """Label Studio labeling config for character-span annotation of `data.text`."""
        lines = ['<View>', '  <Labels name="label" toName="text">']
        for label in self.labels:
            lines.append(f'    <Label value={quoteattr(label.name)} background={quoteattr(label.color)}/>')
        lines += ['  </Labels>', '  <Text name="text" value="$text"/>', '</View>', '']
        return "\n".join(lines)


@lru_cache(maxsize=None)
def load_label_set(path: str | Path = LABELS_FILE) -> LabelSet:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    labels = tuple(Label(str(d["name"]), str(d["color"]), str(d["description"])) for d in data["labels"])
    names = [label.name for label in labels]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: duplicate label names in {names}")
    return LabelSet(labels)


LABELS = load_label_set()


@dataclass
class Entity:
    start: int
    end: int
    label: str
    text: str
    score: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SpanCheck:
    """What `check_spans` found: the good spans as entities (sorted), one line per problem
    ("span [start:end] ..."), and one line per whitespace trim."""
    entities: list[Entity]
    problems: list[str]
    fixes: list[str]


def _utf16_hint(text: str, start: int, end: int, expected: str) -> str:
    encoded = text.encode("utf-16-le")
    if encoded[2 * start : 2 * end].decode("utf-16-le", errors="replace") == expected:
        return " (the offsets fit UTF-16 code units: the export was shifted by emoji/astral characters)"
    return ""


def check_spans(text: str, spans, labels: Iterable[str] | None = None, whitespace: str = "error",
                overlaps: bool = True) -> SpanCheck:
    """The one span validator: each (start, end, label, surface) of `text` checked in turn.

    A span's offsets must lie in the text (0 <= start < end <= len), its label in the label set
    (`labels`, default configs/labels.yaml), its surface (None: not given) equal text[start:end].
    `whitespace` at a span's edge: "error", "trim" (trimmed, reported in `fixes`) or "allow";
    `overlaps` adds one problem per overlapping pair. A span with a problem is left out of the
    entities. Callers put their own "file: task N: " before each problem line."""
    known = tuple(labels) if labels is not None else LABELS.names
    entities: list[Entity] = []
    problems: list[str] = []
    fixes: list[str] = []
    for start, end, label, given in spans:
        span = f"[{start}:{end}]"
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
            problems.append(f"span {span} is out of range for a text of {len(text)} characters")
            continue
        if not isinstance(label, str) or label not in known:
            problems.append(f"span {span} has unknown label {label!r} (known: {', '.join(known)})")
            continue
        surface = text[start:end]
        if given is not None and given != surface:
            problems.append(f"span {span} says {given!r} but the text there is {surface!r} (value.text != text[start:end])"
                            + _utf16_hint(text, start, end, given))
            continue
        if whitespace != "allow" and surface != surface.strip():
            if whitespace != "trim":
                problems.append(f"span {span} {surface!r} has whitespace at its edge (use --fix-whitespace to trim)")
                continue
            new_start = start + len(surface) - len(surface.lstrip())
            new_end = end - (len(surface) - len(surface.rstrip()))
            if new_start >= new_end:
                problems.append(f"span {span} is only whitespace")
                continue
            fixes.append(f"span {span} trimmed to [{new_start}:{new_end}]")
            start, end = new_start, new_end
        entities.append(Entity(start, end, label, text[start:end]))
    entities.sort(key=lambda e: (e.start, e.end))
    if overlaps:
        reach = None  # the entity so far that ends last: b may overlap it without overlapping its neighbour
        for b in entities:
            if reach is not None and b.start < reach.end:
                problems.append(f"spans [{reach.start}:{reach.end}] {reach.label} and [{b.start}:{b.end}] {b.label} overlap")
            if reach is None or b.end > reach.end:
                reach = b
    return SpanCheck(entities, problems, fixes)
