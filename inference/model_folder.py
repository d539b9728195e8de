"""What a model folder must hold, and which folder a command means: the one check every loader uses.

A model folder (what `eastwest train` writes, and `models/default`) holds `config.json`,
`tokenizer.json` and the weights (`model.safetensors`, or `pytorch_model.bin`), and may hold its
own `model.int8.onnx` (`eastwest export-onnx`; otherwise the ONNX backend builds one into the
cache). The default folder is the shipped model: `models/default` in a checkout, or the same
folder inside the installed package. Tagging reads the config and the tokenizer here, without
transformers (a second of start-up saved).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from .errors import ModelFolderError

from .schema import PACKAGE_ROOT

DEFAULT_MODEL_DIR = PACKAGE_ROOT / "models" / "default"
MODEL_ENV = "EASTWEST_MODEL"
REQUIRED_FILES = ("config.json", "tokenizer.json")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
INT8_NAME = "model.int8.onnx"


def model_dir_for(model: str | Path | None) -> Path:
    """The folder a `--model` option (or None) means: it, else $EASTWEST_MODEL, else the shipped model."""
    return Path(model or os.environ.get(MODEL_ENV) or DEFAULT_MODEL_DIR)


def check_model_folder(model_dir: Path, backend: str | None = "torch") -> None:
    """A ModelFolderError naming the folder and everything missing from it for `backend`: "torch"
    (the weights) or None (config and tokenizer only: the ONNX loader checks its own file)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelFolderError(f"model folder {model_dir} does not exist")
    missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
    if backend == "torch" and not any((model_dir / name).is_file() for name in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    if missing:
        raise ModelFolderError(f"model folder {model_dir} is missing {', '.join(missing)}")


def weights_file(model_dir: Path) -> Path:
    """The torch weights file of a checked folder."""
    check_model_folder(model_dir)
    return next(Path(model_dir) / name for name in WEIGHT_FILES if (Path(model_dir) / name).is_file())


def weights_digest(model_dir: Path, hex_digits: int = 12) -> str:
    """The first hex digits of the SHA-256 of the weights: a folder retrained in place differs."""
    return file_digest(weights_file(model_dir), hex_digits)


def file_digest(path: Path, hex_digits: int = 12) -> str:
    """SHA-256 of a file, once per process for an unchanged file (one tag run asks several times)."""
    stat = os.stat(path)
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key][:hex_digits]


_DIGESTS: dict[tuple, str] = {}


@dataclass(frozen=True)
class FolderTokenizer:
    """The folder's fast tokenizer read with the `tokenizers` library alone: what tagging uses of
    a transformers tokenizer (`windows.encode_text` calls `backend_tokenizer`), without importing
    transformers, which costs more than a second at start-up."""

    backend_tokenizer: object  # tokenizers.Tokenizer
    cls_token_id: int
    sep_token_id: int
    pad_token_id: int


def load_tokenizer(model_dir: Path) -> FolderTokenizer:
    from tokenizers import Tokenizer

    model_dir = Path(model_dir)
    settings_path = model_dir / "tokenizer_config.json"
    try:
        settings = json.loads(settings_path.read_text(encoding="utf-8")) if settings_path.is_file() else {}
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    except Exception as exc:  # noqa: BLE001 - tokenizers raises plain Exceptions for a damaged file
        raise ModelFolderError(f"model folder {model_dir}: unreadable tokenizer ({type(exc).__name__}: {exc})") from None
    ids = {}
    for role, fallback in (("cls_token", "[CLS]"), ("sep_token", "[SEP]"), ("pad_token", "[PAD]")):
        token = settings.get(role) or fallback
        token = token.get("content") if isinstance(token, dict) else token
        ids[role] = tokenizer.token_to_id(token)
        if ids[role] is None:
            raise ModelFolderError(f"model folder {model_dir}: the tokenizer has no {role} {token!r}")
    return FolderTokenizer(tokenizer, ids["cls_token"], ids["sep_token"], ids["pad_token"])


def load_config(model_dir: Path) -> SimpleNamespace:
    """config.json as attributes (id2label with int keys, eastwest, …), without transformers."""
    path = Path(model_dir) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFolderError(f"{path}: not a readable model config ({exc})") from None
    config["id2label"] = {int(i): tag for i, tag in config.get("id2label", {}).items()}
    return SimpleNamespace(**config)
