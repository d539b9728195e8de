"""Every error a user can cause, in one place, below everything else.

`EastwestError` is what the `eastwest` command catches: it prints `eastwest: error: <message>` on
one line and exits with status 2, never a traceback. Each subclass names the part of the system
that found the problem; the message names the file, key, task or option. Anything else that
escapes is a bug and keeps its traceback.
"""
from __future__ import annotations


class EastwestError(Exception):
    """An error in what the user asked for or gave (a file, an option, a config, a model folder)."""


class UserError(EastwestError):
    """A bad option or a request that cannot be met (the CLI and the Label Studio loop)."""


class ConfigError(EastwestError):
    """A training config with an unknown key, a wrong type or a bad value (training/config.py)."""


class AnnotationError(EastwestError):
    """A Label Studio export that cannot be read (training/annotations.py)."""


class TrainingError(EastwestError):
    """Training data, a base model or a setting that training cannot use (training/train.py, cv.py …)."""


class ModelFolderError(EastwestError):
    """A model folder that cannot be used; the message names the folder and what is missing."""


class OnnxError(ModelFolderError):
    """An ONNX model that is missing, cannot be exported, or disagrees with its PyTorch source."""


class OutputError(EastwestError):
    """An output that cannot be used: held by another running process, or not a file written here."""


class BackendError(EastwestError):
    """A setup problem of the Label Studio ML backend (model, config, address): `eastwest serve-ls`."""


class RayEngineError(EastwestError):
    """`--engine ray` cannot run the job as asked."""
