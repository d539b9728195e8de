"""eastwest-ner: Chinese reports on East–West cooperation in, verifiable structured records out.

    from eastwest.inference import Tagger
    tagger = Tagger.load()                  # the shipped model in models/default (or a folder)
    doc = tagger.tag(report_text)           # a Document
    doc.entities                            # [Entity(start, end, label, text, score)], exact spans
    doc.record                              # {"partners": [...], "facts": [...], "published": ...}
    for doc in tagger.tag_many(texts, batch_size=32): ...   # lazy, batched, in order

How the pieces fit (each module does one job; imports only go up this list, from a module to the
ones above it — `lint-imports` checks it, with the layers in pyproject.toml):

    errors.py             every error a user can cause; the CLI prints EastwestError as one line, exit 2
    configs/labels.yaml   the label set; schema.py derives tags, id2label and the Label Studio config
    schema.py             Label set and `Entity`: character offsets are the contract everywhere
    gazetteer.py          offline administrative divisions: names, short forms, chains, traditional
    rules.py              regex + gazetteer baseline tagger (what the model is compared with)
    record_types.py       the record as a type (pydantic): the one definition behind records.py's
                          dicts, schema/*.schema.json and the CSV/Parquet fact columns
    windows.py            any-length token sequences → overlapping model windows (shared with training)
    lexicon.py            word boundaries (jieba + gazetteer names) and place parsing for decoding;
                          the same words and the rules' patterns as the encoder's word features
    normalize.py          entity → value: yuan as exact integers, counts and units, ISO dates, regions
    bio.py                character spans ↔ IOB2 tags per token; Viterbi decoding of valid IOB2
    model_folder.py       what a model folder holds and which one a command means (the one check);
                          its config and tokenizer read without transformers
    devices.py            `--device` checked before anything loads; what `--precision auto` means
    onnx_backend.py       int8 ONNX export and CPU path (no torch); `backend="auto"`: the int8 model
                          built once into the cache and measured against torch on this machine
    records.py            one record per report: who helps whom (partners, configs/pairings.yaml) and
                          every figure (facts)
    tagger.py             Tagger / Document: batching, windows, most-central vote, decoding;
                          bf16 where the hardware does it natively (precision="auto")
    html.py               `eastwest show`: one tagged report as a standalone HTML page
    article.py            the article text of an HTML page (boilerplate out; benchmarks/bench_html.py)
    readers.py, writers.py  batch inputs (dirs, archives, encodings, HTML, Parquet) and resumable outputs
    batch.py              `eastwest tag`: prefetching reader thread, worker processes, progress
    ray_engine.py         `eastwest tag --engine ray`: the same job on Ray Data, for clusters

Training lives in the sibling package `eastwest.training` (training/: Label Studio exports →
fine-tuned model folder, then the Label Studio loop), above all of these; on top of everything:

    cli.py                the `eastwest` command (tag, show, validate, train, cv, ls, serve-ls …)

The folders configs/ and models/ travel with the package (pyproject.toml maps inference/,
training/, configs/ and models/ into the one namespace `eastwest`), so `schema.PACKAGE_ROOT` finds
them the same way in a checkout and in an installed wheel.
"""
from __future__ import annotations

from .schema import LABELS, Entity

__all__ = ["LABELS", "Document", "Entity", "Tagger", "build_record", "normalize"]


def __getattr__(name: str):
    # the model and the gazetteer load only when the API that needs them is first touched, so the
    # CLI's light commands (validate, labels) start fast.
    if name in ("Tagger", "Document"):
        from . import tagger

        return getattr(tagger, name)
    if name == "build_record":
        from .records import build_record

        return build_record
    if name == "normalize":
        from .normalize import normalize

        return normalize
    raise AttributeError(f"module 'eastwest.inference' has no attribute {name!r}")
