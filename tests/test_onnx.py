"""ONNX export, the int8 onnxruntime backend and their CLI, with the tiny model of the test session."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from eastwest.inference.onnx_backend import (
    CHOICE_NAME, FP32_NAME, INT8_NAME, THREADS_ENV, OnnxError, OnnxTokenClassifier, default_threads, export_onnx,
    load_onnx_model, resolve_backend,
)
from eastwest.inference.tagger import Tagger

from .conftest import REPO, SEEDS

# int8 vs torch: at least this share of the seed tokens must get the same tag. Token agreement, not
# span F1, is the criterion: quantisation noise shows up as argmax flips on tokens whose top two
# tags are nearly tied, and over the ~11,000 seed tokens that share is a stable measure, whereas the
# briefly trained tiny model finds few, fragile spans, where one flipped I- tag costs two span
# mismatches. 98% leaves room for the tiny model's many near-ties; a broken quantisation (wrong
# scales, wrong layer) lands far below it.
MIN_INT8_TOKEN_AGREEMENT = 0.98


def _copy_model(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.onnx"))
    return dst


@pytest.fixture(scope="module")
def onnx_dir(tiny_model_dir, tmp_path_factory):
    folder = _copy_model(tiny_model_dir, tmp_path_factory.mktemp("onnx") / "model")
    report = export_onnx(folder)
    assert report.fp32_max_diff < 1e-3
    return folder


@pytest.fixture(scope="module")
def seed_texts():
    return [p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))]


@pytest.fixture(scope="module")
def torch_tagger(tiny_model_dir):
    return Tagger.load(tiny_model_dir, device="cpu", precision="fp32")  # the reference the exports must match


def _spans(tagger, texts):
    return [[(e.start, e.end, e.label) for e in doc.entities] for doc in tagger.tag_many(texts, batch_size=8)]


def test_export_writes_both_files_deterministically(onnx_dir, tmp_path):
    again = export_onnx(onnx_dir, tmp_path)
    for name in (FP32_NAME, INT8_NAME):
        assert (onnx_dir / name).read_bytes() == (again.fp32.parent / name).read_bytes(), f"{name} differs between exports"


def test_fp32_onnx_gives_the_torch_spans(onnx_dir, torch_tagger, seed_texts):
    model = OnnxTokenClassifier(onnx_dir / FP32_NAME, torch_tagger.model.config)
    onnx_tagger = Tagger(model, torch_tagger.tokenizer, device="cpu")
    expected = _spans(torch_tagger, seed_texts)
    assert any(expected), "the tiny model finds something in the seeds"
    assert _spans(onnx_tagger, seed_texts) == expected


def test_int8_backend_agrees_with_torch(onnx_dir, torch_tagger, seed_texts):
    tagger = Tagger.load(onnx_dir, backend="onnx")
    assert isinstance(tagger.model, OnnxTokenClassifier) and tagger.model.path.name == INT8_NAME
    assert (tagger.window, tagger.stride) == (torch_tagger.window, torch_tagger.stride)
    same = total = 0
    for (_, ours), (_, theirs) in zip(tagger.predict_tokens(seed_texts), torch_tagger.predict_tokens(seed_texts)):
        assert ours.offsets == theirs.offsets
        same += sum(a == b for a, b in zip(ours.tags, theirs.tags))
        total += len(theirs.tags)
    assert total > 5000
    assert same / total >= MIN_INT8_TOKEN_AGREEMENT, f"int8 gives the torch tag on only {same / total:.2%} of tokens"
    for doc in tagger.tag_many(seed_texts):
        assert all(doc.text[e.start : e.end] == e.text for e in doc.entities)


def test_onnx_backend_is_cpu_only(onnx_dir):
    with pytest.raises(OnnxError, match="CPU only"):
        Tagger.load(onnx_dir, backend="onnx", device="cuda")


def test_thread_setting_from_the_environment(monkeypatch, onnx_dir):
    monkeypatch.setenv(THREADS_ENV, "1")
    assert default_threads() == 1
    assert load_onnx_model(onnx_dir).threads == 1
    monkeypatch.setenv(THREADS_ENV, "many")
    with pytest.raises(OnnxError, match=THREADS_ENV):
        default_threads()
    monkeypatch.delenv(THREADS_ENV)
    assert default_threads() >= 1


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "eastwest", *args], capture_output=True, text=True, cwd=REPO)


def test_cli_export_then_tag_with_the_onnx_backend(tiny_model_dir, tmp_path):
    folder = _copy_model(tiny_model_dir, tmp_path / "model")
    proc = _cli("export-onnx", str(folder))
    assert proc.returncode == 0, proc.stderr
    assert (folder / FP32_NAME).is_file() and (folder / INT8_NAME).is_file()
    assert "fp32 max diff" in proc.stdout
    seeds = sorted(SEEDS.glob("*.txt"))[:2]
    out = tmp_path / "out.jsonl"
    proc = _cli("tag", "-q", *map(str, seeds), "-o", str(out), "--model", str(folder), "--backend", "onnx")
    assert proc.returncode == 0, proc.stderr
    docs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(d["id"] for d in docs) == sorted(p.name for p in seeds)
    for d in docs:
        assert set(d) >= {"id", "source", "text", "entities", "record"}
        assert all(d["text"][e["start"] : e["end"]] == e["text"] for e in d["entities"])


def test_cli_export_to_another_folder(onnx_dir, tmp_path):
    proc = _cli("export-onnx", str(onnx_dir), "-o", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / INT8_NAME).is_file()


def test_onnx_backend_builds_the_int8_model_once_into_the_cache(tiny_model_dir, tmp_path, monkeypatch):
    """No export step: a folder without model.int8.onnx gets one built into the cache on first use,
    with a progress line, measured against torch; later runs reuse it without a word."""
    monkeypatch.setenv("EASTWEST_CACHE", str(tmp_path / "cache"))
    folder = _copy_model(tiny_model_dir, tmp_path / "model")
    proc = _cli("tag", "-q", str(sorted(SEEDS.glob("*.txt"))[0]), "--model", str(folder), "--backend", "onnx")
    assert proc.returncode == 0, proc.stderr
    assert "building the int8 ONNX model" in proc.stderr and "tokens/s" in proc.stderr
    [built] = [p for p in (tmp_path / "cache" / "onnx").iterdir() if p.is_dir()]  # beside it: its lock file
    assert sorted(p.name for p in built.iterdir()) == [CHOICE_NAME, INT8_NAME]  # the fp32 graph is not kept
    choice = json.loads((built / CHOICE_NAME).read_text())
    assert choice["backend"] in ("onnx", "torch") and set(choice["encoder_tokens_per_s"]) >= {"onnx int8"}
    assert all(rate > 0 for rate in choice["encoder_tokens_per_s"].values())
    first = json.loads(proc.stdout.splitlines()[0])
    assert first["model"]["backend"] == "onnx" and first["model"]["precision"] == "int8"
    stamp = (built / INT8_NAME).stat().st_mtime_ns
    again = _cli("tag", "-q", str(sorted(SEEDS.glob("*.txt"))[0]), "--model", str(folder), "--backend", "onnx")
    assert again.returncode == 0 and "building" not in again.stderr, again.stderr
    assert (built / INT8_NAME).stat().st_mtime_ns == stamp
    assert json.loads(again.stdout.splitlines()[0]) == first
    # auto follows the measured choice; a device or an explicit precision means torch
    assert resolve_backend("auto", folder, None) == choice["backend"]
    assert resolve_backend("auto", folder, "cpu", "fp32") == "torch"
    assert resolve_backend("auto", folder, "cuda") == "torch"
    tagger = Tagger.load(folder)  # auto, settled: the measured backend, nothing rebuilt
    if choice["backend"] == "onnx":
        assert isinstance(tagger.model, OnnxTokenClassifier) and tagger.precision == "int8"
        assert tagger.model.path == built / INT8_NAME
    else:
        assert not isinstance(tagger.model, OnnxTokenClassifier) and tagger.precision in ("fp32", "bf16")
    (built / CHOICE_NAME).write_text("{damaged", encoding="utf-8")  # a damaged choice is measured again
    assert resolve_backend("auto", folder, None) in ("onnx", "torch")
    assert json.loads((built / CHOICE_NAME).read_text())["backend"] in ("onnx", "torch")


def test_the_onnx_path_imports_neither_torch_nor_transformers(onnx_dir):
    """What makes a one-sentence run start fast (benchmarks/bench_startup.py measures it)."""
    script = ("import sys; from eastwest.inference import Tagger; "
              f"doc = Tagger.load({str(onnx_dir)!r}, backend='onnx').tag('天津市和平区帮扶会宁县投入3.3亿元。'); "
              "doc.record; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_folder_without_weights_is_a_one_line_error(tmp_path):
    proc = _cli("tag", "-q", str(sorted(SEEDS.glob("*.txt"))[0]), "--model", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli("export-onnx", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_word_features_model_exports_with_token_type_ids(tiny_word_features_model_dir, tmp_path, seed_texts):
    folder = _copy_model(tiny_word_features_model_dir, tmp_path / "model")
    assert export_onnx(folder).fp32_max_diff < 1e-3
    torch_tagger = Tagger.load(folder, device="cpu", precision="fp32")
    fp32 = OnnxTokenClassifier(folder / FP32_NAME, torch_tagger.model.config)
    assert "token_type_ids" in fp32.input_names
    expected = _spans(torch_tagger, seed_texts[:2])
    assert _spans(Tagger(fp32, torch_tagger.tokenizer, device="cpu"), seed_texts[:2]) == expected
    with pytest.raises(OnnxError, match="takes word features"):  # never silently run without them
        fp32.logits(np.ones((1, 4), dtype=np.int64), np.ones((1, 4), dtype=np.int64))
