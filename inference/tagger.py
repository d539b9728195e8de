"""The Tagger: any-length text in, exact character spans and a structured record out.

A document is tokenised once; its token sequence is cut into overlapping windows (windows.py);
windows from many documents are batched together, longest first, so padding stays small; each
token keeps the prediction of the window where it is most central; IOB2 tags are decoded into
character spans (bio.py). Nothing is truncated.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from .bio import boundary_penalties, tags_to_spans, viterbi_decode_many
from .lexicon import (CONSTRAINED_LABELS, WORD_FEATURES_VERSION, LexiconConstraint, segment, token_mid_word,
                      token_word_types)
from .schema import Entity
from .windows import encode_text, most_central_window, pad_batch, window_bounds

from .devices import pick_device, pick_precision
from .errors import ModelFolderError, OnnxError
from .model_folder import DEFAULT_MODEL_DIR, REQUIRED_FILES, WEIGHT_FILES, check_model_folder, load_tokenizer, model_dir_for  # noqa: F401
from .onnx_backend import OnnxTokenClassifier

# viterbi: the most probable valid IOB2 sequence (bio.viterbi_decode); greedy: per-token argmax,
# invalid sequences repaired by tags_to_spans. Viterbi is the default: see README, decoding.
DECODINGS = ("viterbi", "greedy")
_FROM_MODEL = object()  # lexicon=: whatever the model folder's config says


@dataclass
class Document:
    text: str
    entities: list[Entity]
    id: str | None = None
    source: str | None = None

    @cached_property
    def record(self) -> dict:
        from .records import build_record  # normalisation tables load on first use only

        return build_record(self.text, self.entities)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "source": self.source,
            "text": self.text,
            "entities": [e.to_dict() for e in self.entities],
            "record": self.record,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)


@dataclass
class TokenPredictions:
    """What the model said about each token of one text (offsets into the text, tag, max prob,
    and the full distribution, for uncertainty measures such as active learning's)."""

    offsets: list[tuple[int, int]]
    tags: list[str]
    scores: list[float]
    probs: np.ndarray = field(repr=False)  # (tokens, tags) float32


@dataclass
class _Window:
    doc: int
    token_start: int
    ids: list[int]
    types: list[int] | None = None  # word-feature token_type_ids (lexicon.py), when the model takes them
    probs: np.ndarray | None = field(default=None, repr=False)  # (tokens, tags), special tokens stripped


class Tagger:
    def __init__(self, model, tokenizer, window: int | None = None, stride: int | None = None, device: str | None = None,
                 decoding: str = "viterbi", lexicon: LexiconConstraint | None = _FROM_MODEL, precision: str = "auto"):
        if decoding not in DECODINGS:
            raise ValueError(f"unknown decoding {decoding!r}: use {' or '.join(DECODINGS)}")
        self.decoding = decoding
        if isinstance(model, OnnxTokenClassifier):  # brings its own arithmetic (int8 weights); CPU only
            if device not in (None, "cpu"):
                raise OnnxError(f"the onnx backend runs on the CPU only, not on {device}; use --backend torch for GPUs")
            self.device, self.precision, self.model = "cpu", "int8" if model.path.name.endswith(".int8.onnx") else "fp32", model
        else:
            self.device = pick_device(device)
            self.precision = pick_precision(precision, self.device)
            self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        trained = getattr(model.config, "eastwest", None) or {}
        self.window = window or trained.get("window", 256)
        self.stride = stride if stride is not None else trained.get("stride", self.window // 4)
        # word boundaries and the gazetteer in decoding (lexicon.py): the model folder records
        # whether its model was measured with them; None turns them off
        if lexicon is _FROM_MODEL:
            lexicon = LexiconConstraint(**trained["lexicon"]) if trained.get("lexicon") else None
        self.lexicon = lexicon
        self.word_features = trained.get("word_features")
        if self.word_features not in (None, WORD_FEATURES_VERSION):
            raise ModelFolderError(f"the model was trained with word features {self.word_features!r}; this version "
                                   f"of eastwest computes {WORD_FEATURES_VERSION!r} only")
        self.id2label = {int(i): tag for i, tag in model.config.id2label.items()}
        self.tag_order = [self.id2label[i] for i in range(len(self.id2label))]
        self.cls_id, self.sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
        self.pad_id = tokenizer.pad_token_id or 0

    @classmethod
    def load(cls, model_dir: str | Path | None = None, device: str | None = None, backend: str = "auto",
             threads: int | None = None, **kwargs) -> Tagger:
        """Load a model folder (None → $EASTWEST_MODEL or the shipped default model).

        backend "torch": the PyTorch weights (fp32, or bf16 by `precision`); "onnx": the int8 ONNX
        model on CPU (the folder's model.int8.onnx, or one built once into the cache); "auto": the
        faster of the two on this machine, as measured when the cache was built (onnx_backend.py);
        an explicit `precision` (fp32, bf16) means torch. `threads`: intra-op threads (None: every
        usable core)."""
        from .onnx_backend import BACKENDS, int8_model, load_onnx_model, resolve_backend

        if backend not in BACKENDS:
            raise ModelFolderError(f"unknown backend {backend!r}: use {', '.join(BACKENDS)}")
        model_dir = model_dir_for(model_dir)
        backend = resolve_backend(backend, model_dir, device, kwargs.get("precision", "auto"))
        if backend == "onnx":
            path = int8_model(model_dir)
            model = load_onnx_model(model_dir, path, threads=threads)
        else:
            check_model_folder(model_dir)
            import torch
            from transformers import AutoModelForTokenClassification
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # a per-load weights bar is noise in batch runs
            if threads:
                torch.set_num_threads(threads)
            model = AutoModelForTokenClassification.from_pretrained(model_dir, dtype=torch.float32)
        return cls(model, load_tokenizer(model_dir), device=device, **kwargs)

    def tag(self, text: str) -> Document:
        if not isinstance(text, str):  # else the tokenizers library fails deep inside with a puzzling TypeError
            raise TypeError(f"Tagger.tag takes the text of a report (str), not {type(text).__name__}")
        return next(self.tag_many([text]))

    def tag_many(self, texts: Iterable[str], batch_size: int = 32, docs_per_chunk: int = 64) -> Iterator[Document]:
        """Tag texts lazily and in order; windows of up to `docs_per_chunk` documents share batches."""
        for text, tokens in self.predict_tokens(texts, batch_size, docs_per_chunk):
            entities = tags_to_spans(tokens.tags, tokens.offsets, text, tokens.scores)
            if self.lexicon is not None:
                entities = self.lexicon.filter_regions(entities)
            yield Document(text, entities)

    def predict_tokens(
        self, texts: Iterable[str], batch_size: int = 32, docs_per_chunk: int = 64
    ) -> Iterator[tuple[str, TokenPredictions]]:
        """Per-token tags and probabilities for each text: one prediction per token, exactly."""
        chunk: list[str] = []
        for text in texts:
            chunk.append(text)
            if len(chunk) == docs_per_chunk:
                yield from zip(chunk, self._predict_chunk(chunk, batch_size))
                chunk = []
        if chunk:
            yield from zip(chunk, self._predict_chunk(chunk, batch_size))

    def _predict_chunk(self, texts: list[str], batch_size: int) -> list[TokenPredictions]:
        encoded = [encode_text(self.tokenizer, text) for text in texts]
        constrained = self.decoding == "viterbi" and self.lexicon is not None
        # one segmentation per text serves both the word features and the constrained decoding
        words = [segment(text) for text in texts] if (constrained or self.word_features) else [None] * len(texts)
        windows: list[_Window] = []
        bounds_per_doc = []
        for d, (ids, offsets) in enumerate(encoded):
            bounds = window_bounds(len(ids), self.window - 2, self.stride) if ids else []
            bounds_per_doc.append(bounds)
            types = token_word_types(offsets, texts[d], words[d]) if self.word_features else None
            windows += [_Window(d, s, ids[s:e], types[s:e] if types is not None else None) for s, e in bounds]
        self._run(windows, batch_size)
        by_doc: dict[int, list[_Window]] = {}
        for w in windows:  # still in window order within each document
            by_doc.setdefault(w.doc, []).append(w)
        width = len(self.tag_order)
        doc_probs = []
        for d, (ids, _) in enumerate(encoded):
            # Each token's row from the window where it is most central: one gather over the
            # document's windows stacked into (window, position, tag).
            doc_windows = by_doc.get(d, [])
            stacked = np.zeros((len(doc_windows), self.window, width), dtype=np.float32)
            for k, w in enumerate(doc_windows):
                stacked[k, : len(w.probs)] = w.probs
            choice = most_central_window(bounds_per_doc[d], len(ids))
            starts = np.array([w.token_start for w in doc_windows], dtype=np.int64)
            doc_probs.append(stacked[choice, np.arange(len(ids)) - starts[choice]] if len(ids) else
                             np.zeros((0, width), dtype=np.float32))
        if constrained:
            mid_word = [token_mid_word(offsets, text, w) for text, (_, offsets), w in zip(texts, encoded, words)]
            penalties = boundary_penalties(self.tag_order, CONSTRAINED_LABELS, self.lexicon.penalty)
            decoded = viterbi_decode_many(doc_probs, self.tag_order, mid_word, penalties)
        elif self.decoding == "viterbi":
            decoded = viterbi_decode_many(doc_probs, self.tag_order)
        else:
            decoded = [([self.tag_order[i] for i in p.argmax(-1)], p.max(-1).tolist()) for p in doc_probs]
        return [TokenPredictions(offsets, tags, scores, probs)
                for (_, offsets), (tags, scores), probs in zip(encoded, decoded, doc_probs)]

    def _run(self, windows: list[_Window], batch_size: int) -> None:
        """Fill each window's per-token probabilities (special tokens stripped).

        The int8 ONNX model quantises its activations with one scale per call, so a window batched
        with others would come out slightly differently than alone: each window runs on its own,
        and a document's entities never depend on the documents beside it. On this project's CPU
        that is no slower (16 full windows: 25,600 tokens/s one by one, 18,800 in one call)."""
        order = sorted(windows, key=lambda w: len(w.ids), reverse=True)
        size = 1 if isinstance(self.model, OnnxTokenClassifier) else batch_size
        for i in range(0, len(order), size):
            batch = order[i : i + size]
            input_ids, attention, types = pad_batch([w.ids for w in batch], self.pad_id, [w.types for w in batch],
                                                    self.cls_id, self.sep_id)
            types = types if self.word_features else None
            if isinstance(self.model, OnnxTokenClassifier):
                logits = self.model.logits(input_ids, attention, types)
                exp = np.exp(logits - logits.max(-1, keepdims=True))
                probs = exp / exp.sum(-1, keepdims=True)
            else:
                probs = self._torch_probs(input_ids, attention, types)
            for row, w in enumerate(batch):
                w.probs = probs[row, 1 : len(w.ids) + 1]

    def _torch_probs(self, input_ids: np.ndarray, attention: np.ndarray, types: np.ndarray | None) -> np.ndarray:
        import torch

        inputs = {"input_ids": input_ids, "attention_mask": attention}
        if types is not None:
            inputs["token_type_ids"] = types
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            logits = self.model(**{k: torch.from_numpy(v).to(self.device) for k, v in inputs.items()}).logits
        return logits.float().softmax(-1).cpu().numpy()
