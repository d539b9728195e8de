"""The label set and the entity type shared by annotation, training and inference.

`configs/labels.yaml` is the one place labels are defined; everything here is derived from it.
An `Entity` is the contract between components: character offsets into the document text
(Python string indices, end exclusive), exactly as Label Studio stores them.
"""
from __future__ import annotations

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
