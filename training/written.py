"""The written corpus stage: reports the team wrote and annotated twice (annotations/written/).

The five seed articles are all one pairing (Tianjin and Qingdao districts helping Gansu counties);
the written reports cover every other pairing, every form a report takes and the hard cases of the
guidelines. They train a stage of their own between the silver stage and the gold fine-tune, cached
like it (stages.py): they hold no seed text, so every cross-validation fold reuses the stage and the
seed articles stay the only thing scored.
"""
from __future__ import annotations

from eastwest.inference.errors import TrainingError

from .annotations import AnnotatedDoc, load_exports
from .config import resolve_path
from .prepared import Prepared
from .stages import cached_stage, exports_key, folder_key, train_key, word_features_key


def load_written(config) -> list[AnnotatedDoc]:
    paths = [resolve_path(p) for p in config.written.exports]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise TrainingError(f"written.exports not found: {', '.join(missing)}")
    report = load_exports(paths)
    if not report.ok:
        raise TrainingError(f"{len(report.errors)} annotation error(s) in written.exports, first: {report.errors[0]}")
    return report.docs


def ensure_written_stage(prepared: Prepared, base_path: str, progress: bool = True, *, fit) -> str:
    """Path of the written-corpus stage trained from `base_path` (the silver stage or the base model)."""
    config = prepared.config
    key = {
        "base": folder_key(base_path),
        "layers": config.model.layers,
        "random_init": config.model.random_init,
        **word_features_key(config),
        "exports": exports_key(config.written.exports),
        "epochs": config.written.epochs,
        "window": config.data.window,
        "stride": config.data.stride,
        "train": train_key(config),
    }
    return cached_stage(prepared, base_path, "written", key, lambda: load_written(config), config.written.epochs, progress, fit=fit)
