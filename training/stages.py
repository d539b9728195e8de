"""Cached training stages: silver text, then the written corpus, then the gold fine-tune.

A stage trains from a base folder on documents that contain no gold (seed) text, so one cached
result serves every cross-validation fold and every later run with the same settings. The cache
folder is `models/cache/<name>-<hash>/`, the hash over everything that decides the stage (its
`key`), and it is written to a temporary sibling and renamed, so a crash never leaves half a stage.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from eastwest.inference.errors import TrainingError
from eastwest.inference.schema import REPO_ROOT

from .annotations import AnnotatedDoc
from .prepared import Prepared

CACHE_DIR = REPO_ROOT / "models" / "cache"


def folder_key(path: str) -> str:
    """A model folder as stage keys name it: relative to the checkout when it lies inside it, so a
    clone elsewhere or a git worktree (with models/cache linked) computes the same keys and reuses
    the same stages; a hub id or an outside folder as given. Not resolved: a linked models/cache
    must still read as models/cache."""
    absolute = Path(path).absolute()
    if not absolute.exists():
        return str(path)
    try:
        return absolute.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(absolute)


def exports_key(paths: list[str]) -> dict:
    """Annotation exports as stage keys name them: each path with the SHA-256 of its content, so
    new annotations make a new stage."""
    from .config import resolve_path

    return {p: hashlib.sha256(resolve_path(p).read_bytes()).hexdigest() for p in paths}


def train_key(config) -> dict:
    """The training settings a stage shares with the gold fine-tune (a stage has its own epochs)."""
    return {k: v for k, v in config.to_dict()["train"].items() if k not in ("epochs", "logging_steps")}


def word_features_key(config) -> dict:
    """The word-feature scheme, as part of a stage key; absent when off, so stages trained
    before word features existed keep their cache folders."""
    from eastwest.inference.lexicon import WORD_FEATURES_VERSION

    return {"word_features": WORD_FEATURES_VERSION} if config.model.word_features else {}


def add_word_feature_types(model) -> None:
    """Enlarge the token-type embedding to the lexicon's word-feature types (inference/lexicon.py).

    Every new row starts as a copy of type 0, the one the pretrained encoder was trained with, so
    the model computes exactly what it did before; training moves the rows apart. A base that
    already has the types (a cached stage trained with them) is left alone."""
    import torch

    from eastwest.inference.lexicon import WORD_FEATURE_TYPES, WORD_FEATURES_VERSION

    embeddings = getattr(getattr(model, model.base_model_prefix, None), "embeddings", None)
    old = getattr(embeddings, "token_type_embeddings", None)
    if old is None:
        raise TrainingError(f"model.word_features needs a BERT-style encoder with token-type embeddings; "
                            f"{type(model).__name__} has none")
    if old.num_embeddings < WORD_FEATURE_TYPES:
        new = torch.nn.Embedding(WORD_FEATURE_TYPES, old.embedding_dim, dtype=old.weight.dtype)
        with torch.no_grad():
            new.weight.copy_(old.weight[0].expand_as(new.weight))
        embeddings.token_type_embeddings = new
        model.config.type_vocab_size = WORD_FEATURE_TYPES
    model.config.eastwest = {**(getattr(model.config, "eastwest", None) or {}), "word_features": WORD_FEATURES_VERSION}


def cached_stage(prepared: Prepared, base_path: str, name: str, key: dict, documents: Callable[[], list[AnnotatedDoc]],
                 epochs: float, progress: bool = True, *, fit: Callable, teacher: str = "") -> str:
    """The folder of stage `name` trained from `base_path` on `documents()`: cached, or trained now
    with `fit` (training.train.fit, which calls the stages: it hands itself down); with `teacher`, a
    model folder, the stage learns that teacher's distributions beside the documents' labels."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    folder = CACHE_DIR / f"{name}-{digest}"
    if (folder / "stage.json").is_file():
        print(f"{name} stage: cached {folder}", flush=True)
        return str(folder)
    docs = documents()
    counts = Counter(e.label for doc in docs for e in doc.entities)
    print(f"{name} stage: {len(docs)} documents, {sum(len(d.text) for d in docs):,} characters, "
          f"spans {dict(sorted(counts.items()))}", flush=True)
    stage_config = copy.deepcopy(prepared.config)
    stage_config.augment.copies = 0
    stage_config.mlm.documents = 0  # the earlier stages are behind it: base_path is where they ended
    stage_config.silver.documents = 0
    stage_config.written.exports = []
    stage_config.distill.teacher = teacher
    stage_config.distill.stage = False  # this is the stage; base_path already holds any teacher layers
    stage_config.distill.init_from_teacher = False
    stage_config.train.epochs = epochs
    stage = dataclasses.replace(prepared, config=stage_config, base_path=base_path, train_docs=docs, eval_docs=[])
    trainer, model = fit(stage, progress)
    if trainer.is_world_process_zero():
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        prepared.tokenizer.save_pretrained(tmp)
        summary = {"key": key, "documents": len(docs), "spans": dict(sorted(counts.items()))}
        (tmp / "stage.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        print(f"{name} stage written to {folder}", flush=True)
    trainer.accelerator.wait_for_everyone()  # under torchrun, every process then loads the same folder
    return str(folder)
