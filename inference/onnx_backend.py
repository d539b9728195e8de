"""ONNX Runtime backend: the token classifier exported to ONNX and quantised to int8, on CPU.

    eastwest export-onnx models/default          # writes model.onnx (fp32) and model.int8.onnx
    Tagger.load("models/default", backend="onnx")  # or `eastwest tag --backend onnx …`

Export: the folder's PyTorch model (eager attention, so the traced graph has no data-dependent
branches) goes through torch's TorchScript exporter with dynamic batch and sequence axes; inputs
`input_ids` and `attention_mask` (int64), and `token_type_ids` for a model trained with word
features (lexicon.py); output `logits`. The same inputs give byte-identical
files on every run. Right after export the fp32 graph is run on padded batches of real tokens
and its logits are compared with PyTorch's; the export fails if they differ by more than
`FP32_TOLERANCE`. Then dynamic int8 quantisation (onnxruntime.quantization.quantize_dynamic):
the weights of every MatMul are stored as int8 with one scale per output channel, activations are
quantised per call at run time. Per-channel scales, not one per tensor: leave-one-article-out on
the shipped config's fold models, one scale per tensor lost a point of micro F1 and six of ORG
(0.900, ORG 0.711, against fp32 0.910, ORG 0.771); one per channel lost nothing (0.910, ORG 0.780)
at the same speed (the kept fold models re-scored; `eastwest cv --onnx` scores every fold this way).
The embedding tables stay fp32: a lookup costs nothing to compute, and quantising it would only
add error at the input of every layer. Static (calibrated) quantisation is deliberately not
offered: it is known to wreck NER accuracy.

Threads. Quiet 2-core machine (load < 2), the 6-layer model of that time, 10 seed reports (33,682
chars), Tagger batches of 32 windows (the Tagger now runs int8 windows one by one), medians of 3
interleaved runs:

    onnxruntime int8, 1 intra-op thread:  4,098 chars/s
    onnxruntime int8, 2 intra-op threads: 6,518 chars/s   (1.6x: the default, all usable cores)

Session 1 measured the opposite on the same machine while other jobs kept both cores busy (load
3-7): there a second thread mostly waited for a core and one thread was faster. A batch job owns
its machine's cores, so the default follows the quiet figures: all usable cores (which
`eastwest tag --workers N` divides among the workers). On a machine shared
with other work, `EASTWEST_ONNX_THREADS=1` (0: onnxruntime decides) is the override.

Tagging with this backend never imports torch or transformers (numpy arrays in and out, the
folder's config.json and tokenizer.json read directly: model_folder.py); only the export does.

Fusing each layer into onnxruntime's Attention/SkipLayerNormalization/BiasGelu operators
(onnxruntime.transformers.optimizer) before quantising was measured and not kept: 3,626 and
6,312 chars/s for 1 and 2 threads, no faster than the plain graph.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelFolderError, OnnxError  # noqa: F401 - OnnxError is raised from here

from .model_folder import INT8_NAME, check_model_folder, load_config, load_tokenizer
from .schema import cache_root

FP32_NAME = "model.onnx"
THREADS_ENV = "EASTWEST_ONNX_THREADS"
CHOICE_NAME = "backend.json"
BACKENDS = ("auto", "torch", "onnx")
OPSET = 17
EXPORT_SCHEME = f"opset{OPSET}-matmul-int8-per-channel"  # part of the cache's folder name: a new scheme, a new build
FP32_TOLERANCE = 1e-3  # max |logit difference| allowed between PyTorch and ONNX fp32 (seen: ~1e-6)
_SAMPLE = "2021年4月，天津市和平区帮扶甘肃省会宁县投入3.3亿元，新建产业项目12个，带动2086人就业。"


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise OnnxError("the onnx backend needs onnxruntime: pip install onnxruntime") from exc
    return onnxruntime


def default_threads() -> int:
    """Intra-op threads for onnxruntime: $EASTWEST_ONNX_THREADS, else $OMP_NUM_THREADS, else every
    core this process may use (measured in the module docstring; `--workers N` passes its share)."""
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if not value:
            continue
        try:
            threads = int(value)
        except ValueError:
            raise OnnxError(f"{name} must be a whole number of threads, got {value!r}") from None
        if threads < 0:
            raise OnnxError(f"{name} must be >= 0 (0: onnxruntime decides), got {threads}")
        return threads
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class OnnxTokenClassifier:
    """An ONNX token classifier on CPU: `.config` (id2label, eastwest settings) and
    `.logits(input_ids, attention_mask, token_type_ids)`, int64 arrays in, float32 logits out."""

    def __init__(self, path: str | Path, config, threads: int | None = None):
        ort = _onnxruntime()
        self.path = Path(path)
        self.config = config
        self.threads = default_threads() if threads is None else threads
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray | None = None) -> np.ndarray:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            feeds["token_type_ids"] = token_type_ids
        if "token_type_ids" in self.input_names and "token_type_ids" not in feeds:
            raise OnnxError(f"{self.path} takes word features (token_type_ids) and none were given")
        feeds = {k: np.asarray(v, dtype=np.int64) for k, v in feeds.items() if k in self.input_names}
        (logits,) = self.session.run(["logits"], feeds)
        return logits

    def __repr__(self) -> str:
        return f"OnnxTokenClassifier({self.path}, threads={self.threads})"


def load_onnx_model(model_dir: Path, path: str | Path = INT8_NAME, threads: int | None = None) -> OnnxTokenClassifier:
    """An ONNX model (`path`, relative to the folder or absolute: the cache) with its folder's
    config (checked: folder, config.json, tokenizer.json, the .onnx)."""
    model_dir = Path(model_dir)
    check_model_folder(model_dir, backend=None)  # then the .onnx file asked for, below
    path = model_dir / path
    if not path.is_file():
        raise OnnxError(f"model folder {model_dir} has no {path.name}; create it with: eastwest export-onnx {model_dir}")
    return OnnxTokenClassifier(path, load_config(model_dir), threads=threads)


# --- The default backend: built once, chosen by measurement -------------------------------------
#
# `backend="auto"` (the default of Tagger.load and `eastwest tag`) runs a CUDA GPU with torch (bf16
# where supported). On CPU it uses the int8 ONNX model when that was measured faster than torch
# (at the precision "auto" picks: bf16 on CPUs with AVX-512 BF16 or AMX) on this machine. The int8
# model and the measurement are made once per model weights, on first use, into the cache
# (schema.cache_root: $EASTWEST_CACHE, else $XDG_CACHE_HOME/eastwest, else ~/.cache/eastwest), folder
# onnx/<first 16 hex digits of the weights' SHA-256>-<EXPORT_SCHEME>/: model.int8.onnx and backend.json (both
# speeds, the choice, the CPU). A folder's own model.int8.onnx (export-onnx) is used only by a folder
# without torch weights: it may come from other weights or an older export. The measurement is taken once, under whatever load the machine has then:
# delete backend.json to take it again, or choose with --backend.
# The export needs torch and the onnx package; where either is missing, or the export fails, auto
# falls back to torch with a one-line note. Leave-one-article-out, the shipped config's fold models:
# int8 0.910, bf16 0.910, fp32 0.910 (README, *Speed*): both within the 1-point budget.

def _cache_dir(model_dir: Path) -> Path:
    from .model_folder import weights_digest

    return cache_root() / "onnx" / f"{weights_digest(model_dir, hex_digits=16)}-{EXPORT_SCHEME}"


def _may_have_cuda() -> bool:
    """An NVIDIA driver is present: only then is torch imported to ask (importing it costs seconds)."""
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()


def _progress(message: str) -> None:
    import sys

    print(f"eastwest: {message}", file=sys.stderr, flush=True)


def resolve_backend(backend: str, model_dir: Path, device: str | None, precision: str = "auto") -> str:
    """"torch" or "onnx" for a Tagger.load backend; "auto" as described above (may build the cache).
    A precision other than "auto" (fp32, bf16) asks for torch's arithmetic, so it means torch."""
    import importlib.util

    from .model_folder import WEIGHT_FILES

    if backend != "auto":
        return backend
    model_dir = Path(model_dir)
    if device not in (None, "cpu") or precision != "auto":
        return "torch"
    if device is None and _may_have_cuda():
        import torch

        if torch.cuda.is_available():
            return "torch"
    if importlib.util.find_spec("onnxruntime") is None:
        return "torch"
    if not any((model_dir / name).is_file() for name in WEIGHT_FILES):
        return "onnx" if (model_dir / INT8_NAME).is_file() else "torch"  # the loader names what is missing
    choice = _measured_choice(model_dir)
    return choice["backend"] if choice else "torch"


def int8_model(model_dir: Path) -> Path:
    """The int8 ONNX file for a folder: the one built from its weights into the cache (built now if
    needed; keyed by the weights and the export scheme, so it never belongs to other weights), or,
    for a folder that holds no torch weights, its own model.int8.onnx."""
    from .model_folder import WEIGHT_FILES

    model_dir = Path(model_dir)
    if (model_dir / INT8_NAME).is_file() and not any((model_dir / name).is_file() for name in WEIGHT_FILES):
        return model_dir / INT8_NAME
    check_model_folder(model_dir)
    path = _cache_dir(model_dir) / INT8_NAME
    if not path.is_file():
        _build_cache(model_dir)
    return path


def _measured_choice(model_dir: Path) -> dict | None:
    import json

    path = _cache_dir(model_dir) / CHOICE_NAME
    for attempt in range(2):
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # not built yet, or damaged (a user may edit or delete it)
            if attempt:
                break
        try:
            _build_cache(model_dir, rebuild=path.is_file())
        except Exception as exc:  # noqa: BLE001 - any failure here only costs speed: say so, use torch
            _progress(f"no int8 ONNX model for {model_dir} ({type(exc).__name__}: {exc}); using torch")
            return None
    return None


def _build_cache(model_dir: Path, rebuild: bool = False) -> None:
    """Export the int8 model into the cache and measure it against torch, once: a lock keeps
    concurrent processes from building it twice; files appear only when complete."""
    import fcntl
    import json
    import shutil
    import tempfile

    target = _cache_dir(model_dir)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        lock = open(target.parent / f"{target.name}.lock", "w")
    except OSError as exc:
        raise OnnxError(f"cannot write the cache {target.parent}: {exc.strerror} (set $EASTWEST_CACHE)") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not rebuild and (target / CHOICE_NAME).is_file() and (target / INT8_NAME).is_file():
            return  # another process built it while this one waited
        _progress(f"building the int8 ONNX model for {model_dir} once, into {target}")
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
        try:
            report = export_onnx(model_dir, work)
            (work / FP32_NAME).unlink()  # only the int8 model is used
            speeds = _measure(model_dir, work / INT8_NAME)
            best = max(speeds, key=speeds.get)
            choice = {"backend": "onnx" if best == "onnx int8" else "torch", "encoder_tokens_per_s": speeds,
                      "int8_tag_agreement": round(report.int8_tag_agreement, 4), "cpu": _cpu_name()}
            (work / CHOICE_NAME).write_text(json.dumps(choice, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
            if target.exists():
                shutil.rmtree(target)
            os.replace(work, target)
        except OnnxError:
            raise
        except Exception as exc:  # noqa: BLE001 - torch's exporter and onnxruntime raise anything; say it in one line
            raise OnnxError(f"building the int8 ONNX model for {model_dir} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
        rates = ", ".join(f"{name} {rate:,.0f} tokens/s" for name, rate in speeds.items())
        _progress(f"measured {rates}: the default backend here is {choice['backend']} ({target / CHOICE_NAME}; "
                  f"--backend overrides)")


def _measure(model_dir: Path, int8_path: Path, rows: int = 16, rounds: int = 3) -> dict[str, float]:
    """Tokens per second of the encoder alone (the rest of tagging is the same on both paths):
    `rows` full windows of real text, each run as the Tagger runs it — one call per window for
    int8 ONNX, one batch for torch at the precision "auto" picks for this CPU — best of `rounds`."""
    import time

    import torch
    from transformers import AutoModelForTokenClassification

    from .devices import pick_precision
    from .lexicon import token_word_types
    from .windows import encode_text, pad_batch

    config, tokenizer = load_config(model_dir), load_tokenizer(model_dir)
    trained = getattr(config, "eastwest", None) or {}
    window = min(int(trained.get("window", 256)), int(getattr(config, "max_position_embeddings", 512)))
    text = _SAMPLE * (rows * window // len(_SAMPLE) + 1)
    ids, offsets = encode_text(tokenizer, text)
    types = token_word_types(offsets, text) if trained.get("word_features") else None
    cut = [slice(i * (window - 2), (i + 1) * (window - 2)) for i in range(rows)]
    batch = pad_batch([ids[c] for c in cut], tokenizer.pad_token_id, [types[c] for c in cut] if types is not None else None,
                      tokenizer.cls_token_id, tokenizer.sep_token_id)
    feeds = dict(zip(("input_ids", "attention_mask", "token_type_ids"), batch))
    if types is None:
        del feeds["token_type_ids"]
    onnx_model = OnnxTokenClassifier(int8_path, config)
    torch_model = AutoModelForTokenClassification.from_pretrained(model_dir, dtype=torch.float32).eval()
    precision = pick_precision("auto", "cpu")

    def run_torch():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            torch_model(**{k: torch.from_numpy(v) for k, v in feeds.items()})

    speeds = {}
    def run_onnx():
        for row in range(rows):
            onnx_model.logits(**{k: v[row : row + 1] for k, v in feeds.items()})

    for name, run in (("onnx int8", run_onnx), (f"torch {precision}", run_torch)):
        run()  # warm-up: first-call allocations and kernel choices
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - start)
        speeds[name] = round(rows * (window - 2) / best)
    return speeds


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            return next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    except OSError:
        return ""


def _logits_only(model):
    """The exported signature: (input_ids, attention_mask[, token_type_ids]) → logits, no dicts;
    token_type_ids only for a model trained with word features (BERT's default of zeros otherwise)."""
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    return LogitsOnly()


def _sample_batch(tokenizer, window: int):
    """Three rows of real tokens (full window, half, a few), right-padded like Tagger's batches,
    with their word-feature types."""
    from .lexicon import token_word_types
    from .windows import encode_text, pad_batch

    text = _SAMPLE * (window // len(_SAMPLE) + 1)
    ids, offsets = encode_text(tokenizer, text)
    word_types = token_word_types(offsets, text)
    pad = tokenizer.pad_token_id or 0
    lengths = [window - 2, max(1, (window - 2) // 2), min(5, window - 2)]
    import torch

    return tuple(torch.from_numpy(a) for a in pad_batch([ids[:n] for n in lengths], pad, [word_types[:n] for n in lengths],
                                                        tokenizer.cls_token_id, tokenizer.sep_token_id, width=window))


@dataclass
class ExportReport:
    fp32: Path
    int8: Path
    fp32_max_diff: float  # max |logit| difference, ONNX fp32 vs PyTorch, on the check batches
    int8_max_diff: float
    int8_tag_agreement: float  # share of real tokens whose argmax tag int8 and PyTorch share

    def summary(self) -> str:
        return (f"wrote {self.fp32} and {self.int8}; logits vs PyTorch: fp32 max diff {self.fp32_max_diff:.2e}, "
                f"int8 max diff {self.int8_max_diff:.3f}, int8 same tag on {self.int8_tag_agreement:.1%} of tokens")


def export_onnx(model_dir: str | Path, out_dir: str | Path | None = None, opset: int = OPSET,
                tolerance: float = FP32_TOLERANCE) -> ExportReport:
    """Export the folder's token classifier to OUT/model.onnx, check it against PyTorch, and
    quantise it to OUT/model.int8.onnx (OUT defaults to the model folder)."""
    import logging
    import warnings

    import torch

    ort = _onnxruntime()
    try:
        import onnx  # noqa: F401 - the exporter and the quantiser both need it
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise OnnxError(f"export-onnx needs the onnx package: pip install onnx ({exc})") from exc
    from transformers import AutoModelForTokenClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    model_dir = Path(model_dir)
    check_model_folder(model_dir)
    out = Path(out_dir) if out_dir else model_dir
    out.mkdir(parents=True, exist_ok=True)
    fp32_path, int8_path = out / FP32_NAME, out / INT8_NAME

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForTokenClassification.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    wrapped = _logits_only(model).eval()  # eval on the wrapper too: the exporter restores its mode after
    trained = getattr(model.config, "eastwest", None) or {}
    window = min(int(trained.get("window", 128)), int(getattr(model.config, "max_position_embeddings", 512)))
    input_ids, attention, types = _sample_batch(tokenizer, window)
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if trained.get("word_features") else [])
    sample = {"input_ids": input_ids, "attention_mask": attention, "token_type_ids": types}

    dynamic = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        torch.onnx.export(
            wrapped, tuple(sample[n] for n in names), str(fp32_path), dynamo=False, opset_version=opset,
            input_names=names, output_names=["logits"],
            dynamic_axes={**{n: dynamic for n in names}, "logits": dynamic},
        )
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs advice about static-quantisation preprocessing
    try:
        quantize_dynamic(fp32_path, int8_path, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                         per_channel=True)
    finally:
        root.setLevel(level)

    # Check on the export batch and on a different shape (fewer rows, shorter): the axes are dynamic.
    checks = [[sample[n] for n in names], [sample[n][1:, : window // 2 + 1] for n in names]]
    diffs = {"fp32": 0.0, "int8": 0.0}
    same = total = 0
    for name, path in (("fp32", fp32_path), ("int8", int8_path)):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for tensors in checks:
            with torch.no_grad():
                expected = wrapped(*tensors)
            got = torch.from_numpy(session.run(["logits"], {n: t.numpy() for n, t in zip(names, tensors)})[0])
            real = tensors[1].bool()
            if got.shape != expected.shape:
                raise OnnxError(f"{path}: logits of shape {tuple(got.shape)}, PyTorch gives {tuple(expected.shape)}")
            diffs[name] = max(diffs[name], float((got - expected)[real].abs().max()))
            if name == "int8":
                same += int((got.argmax(-1) == expected.argmax(-1))[real].sum())
                total += int(real.sum())
    if not diffs["fp32"] <= tolerance:
        fp32_path.unlink(missing_ok=True)
        int8_path.unlink(missing_ok=True)
        raise OnnxError(f"{fp32_path}: ONNX fp32 logits differ from PyTorch by {diffs['fp32']:.3g} "
                        f"(more than {tolerance:g}); the export is wrong and was deleted")
    return ExportReport(fp32_path, int8_path, diffs["fp32"], diffs["int8"], same / max(total, 1))
