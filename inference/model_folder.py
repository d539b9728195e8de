"""What a model folder must hold, and which folder a command means: the one check every loader uses.

A model folder (what `eastwest train` writes, and `models/default`) holds `config.json`,
`tokenizer.json` and the weights (`model.safetensors`, or `pytorch_model.bin`), and for the ONNX
backend `model.int8.onnx` (made by `eastwest export-onnx`). The default folder is the shipped
model: `models/default` in a checkout, or the same folder inside the installed package.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .errors import ModelFolderError, OnnxError

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
    (the weights), "onnx" (the int8 model) or None (config and tokenizer only)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelFolderError(f"model folder {model_dir} does not exist")
    missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
    if backend == "torch" and not any((model_dir / name).is_file() for name in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    if missing:
        raise ModelFolderError(f"model folder {model_dir} is missing {', '.join(missing)}")
    if backend == "onnx" and not (model_dir / INT8_NAME).is_file():
        raise OnnxError(f"model folder {model_dir} has no {INT8_NAME}; create it with: eastwest export-onnx {model_dir}")


def weights_file(model_dir: Path, backend: str = "torch") -> Path:
    """The weights file `backend` loads from a checked folder."""
    check_model_folder(model_dir, backend)
    if backend == "onnx":
        return Path(model_dir) / INT8_NAME
    return next(Path(model_dir) / name for name in WEIGHT_FILES if (Path(model_dir) / name).is_file())


def weights_digest(model_dir: Path, backend: str = "torch", hex_digits: int = 12) -> str:
    """The first hex digits of the SHA-256 of the weights: a folder retrained in place differs."""
    digest = hashlib.sha256()
    with open(weights_file(model_dir, backend), "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()[:hex_digits]
