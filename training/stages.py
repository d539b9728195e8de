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
from eastwest.inference.schema import REPO_ROOT

from .annotations import AnnotatedDoc
from .prepared import Prepared

CACHE_DIR = REPO_ROOT / "models" / "cache"


def word_features_key(config) -> dict:
    """The word-feature scheme, as part of a stage key; absent when off, so stages trained
    before word features existed keep their cache folders."""
    from eastwest.inference.lexicon import WORD_FEATURES_VERSION

    return {"word_features": WORD_FEATURES_VERSION} if config.model.word_features else {}


def cached_stage(prepared: Prepared, base_path: str, name: str, key: dict, documents: Callable[[], list[AnnotatedDoc]],
                 epochs: float, progress: bool = True, *, fit: Callable) -> str:
    """The folder of stage `name` trained from `base_path` on `documents()`: cached, or trained now
    with `fit` (training.train.fit, which calls the stages: it hands itself down)."""
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
    stage_config.silver.documents = 0
    stage_config.written.exports = []
    stage_config.distill.teacher = ""
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
