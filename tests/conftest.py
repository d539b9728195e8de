"""Shared fixtures: the real gold export and small real things built in the test session."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GOLD = REPO / "annotations" / "gold.json"
SEEDS = REPO.parent / "shared" / "seeds"


@pytest.fixture(scope="session")
def gold_tasks() -> list:
    return json.loads(GOLD.read_text(encoding="utf-8"))


@pytest.fixture
def tasks(gold_tasks) -> list:
    """A private copy of the gold tasks for tests that corrupt them."""
    return copy.deepcopy(gold_tasks)


@pytest.fixture(scope="session")
def gold_docs():
    from training.annotations import load_exports

    report = load_exports([GOLD])
    assert report.ok, report.errors
    return report.docs


def build_char_tokenizer(texts):
    """A character-level fast tokenizer over the characters of `texts` (BERT special tokens)."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted({ch for text in texts for ch in text if not ch.isspace()})
    vocab = {tok: i for i, tok in enumerate(specials + chars)}
    backend = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex("."), behavior="isolated")]
    )
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]"
    )


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory, gold_docs):
    """A tiny randomly initialised BERT encoder + char tokenizer, saved like a hub model folder."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = build_char_tokenizer([d.text for d in gold_docs] + ["０１２３４５６７８９"])
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_base_dir):
    """A tiny token classifier trained briefly on two gold articles by the real training code."""
    from training.config import load_config
    from training.train import run_training

    out = tmp_path_factory.mktemp("tiny-model") / "model"
    config = load_config(None, [
        f"model.base={tiny_base_dir}", "data.eval_documents=[002_ad6c2b88aab27273.txt]",
        "data.train=[annotations/gold.json]", "train.epochs=8", "train.batch_size=16", "train.learning_rate=0.005",
        f"output.dir={out}", "data.window=64", "data.stride=16", "data.tag_stride=8",
    ])
    run_training(config, progress=False)
    return out
