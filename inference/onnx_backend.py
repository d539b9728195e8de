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
the weights of every MatMul are stored as int8, activations are quantised per batch at run time.
The embedding tables stay fp32: a lookup costs nothing to compute, and quantising it would only
add error at the input of every layer. Static (calibrated) quantisation is deliberately not
offered: it is known to wreck NER accuracy.

Threads. Quiet 2-core machine (load < 2), shipped 6-layer model, 10 seed reports (33,682 chars),
Tagger batches of 32 windows, medians of 3 interleaved runs:

    onnxruntime int8, 1 intra-op thread:  4,098 chars/s
    onnxruntime int8, 2 intra-op threads: 6,518 chars/s   (1.6x: the default, all usable cores)

Session 1 measured the opposite on the same machine while other jobs kept both cores busy (load
3-7): there a second thread mostly waited for a core and one thread was faster. A batch job owns
its machine's cores, so the default follows the quiet figures: torch's intra-op thread count (all
usable cores, which `eastwest tag --workers N` divides among the workers). On a machine shared
with other work, `EASTWEST_ONNX_THREADS=1` (0: onnxruntime decides) is the override.

Fusing each layer into onnxruntime's Attention/SkipLayerNormalization/BiasGelu operators
(onnxruntime.transformers.optimizer) before quantising was measured and not kept: 3,626 and
6,312 chars/s for 1 and 2 threads, no faster than the plain graph.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch

from .errors import ModelFolderError, OnnxError  # noqa: F401 - OnnxError is raised from here

from .model_folder import INT8_NAME, check_model_folder

FP32_NAME = "model.onnx"
THREADS_ENV = "EASTWEST_ONNX_THREADS"
OPSET = 17
FP32_TOLERANCE = 1e-3  # max |logit difference| allowed between PyTorch and ONNX fp32 (seen: ~1e-6)
_SAMPLE = "2021年4月，天津市和平区帮扶甘肃省会宁县投入3.3亿元，新建产业项目12个，带动2086人就业。"


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise OnnxError("the onnx backend needs onnxruntime: pip install onnxruntime") from exc
    return onnxruntime


def default_threads() -> int:
    """Intra-op threads for onnxruntime: $EASTWEST_ONNX_THREADS, else torch's intra-op thread
    count (all usable cores unless --workers divided them; measured in the module docstring)."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if value:
        try:
            threads = int(value)
        except ValueError:
            raise OnnxError(f"{THREADS_ENV} must be a whole number of threads, got {value!r}") from None
        if threads < 0:
            raise OnnxError(f"{THREADS_ENV} must be >= 0 (0: onnxruntime decides), got {threads}")
        return threads
    return max(1, torch.get_num_threads())


class OnnxTokenClassifier:
    """Stands in for a transformers token classifier inside `Tagger`: `.config`, `.to()`, `.eval()`
    and `model(input_ids=..., attention_mask=..., token_type_ids=...).logits`, torch tensors in and
    out (CPU only)."""

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

    def to(self, device) -> OnnxTokenClassifier:
        if torch.device(device).type != "cpu":
            raise OnnxError(f"the onnx backend runs on the CPU only, not on {device}; use --backend torch for GPUs")
        return self

    def eval(self) -> OnnxTokenClassifier:
        return self

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                 **_) -> SimpleNamespace:
        feeds = {"input_ids": input_ids.cpu().numpy().astype("int64", copy=False),
                 "attention_mask": attention_mask.cpu().numpy().astype("int64", copy=False)}
        if token_type_ids is not None:
            feeds["token_type_ids"] = token_type_ids.cpu().numpy().astype("int64", copy=False)
        if "token_type_ids" in self.input_names and "token_type_ids" not in feeds:
            raise OnnxError(f"{self.path} takes word features (token_type_ids) and none were given")
        (logits,) = self.session.run(["logits"], {k: v for k, v in feeds.items() if k in self.input_names})
        return SimpleNamespace(logits=torch.from_numpy(logits))

    def __repr__(self) -> str:
        return f"OnnxTokenClassifier({self.path}, threads={self.threads})"


def load_onnx_model(model_dir: Path, file_name: str = INT8_NAME, threads: int | None = None) -> OnnxTokenClassifier:
    """The ONNX model of a model folder (checked: folder, config.json, tokenizer.json, the .onnx)."""
    from transformers import AutoConfig

    model_dir = Path(model_dir)
    check_model_folder(model_dir, backend=None)  # then the .onnx file asked for, below
    path = model_dir / file_name
    if not path.is_file():
        raise OnnxError(f"model folder {model_dir} has no {file_name}; create it with: eastwest export-onnx {model_dir}")
    return OnnxTokenClassifier(path, AutoConfig.from_pretrained(model_dir), threads=threads)


class _LogitsOnly(torch.nn.Module):
    """The exported signature: (input_ids, attention_mask[, token_type_ids]) → logits, no dicts;
    token_type_ids only for a model trained with word features (BERT's default of zeros otherwise)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits


def _sample_batch(tokenizer, window: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three rows of real tokens (full window, half, a few), right-padded like Tagger's batches,
    with their word-feature types."""
    from .lexicon import token_word_types
    from .windows import encode_text, pad_batch

    text = _SAMPLE * (window // len(_SAMPLE) + 1)
    ids, offsets = encode_text(tokenizer, text)
    word_types = token_word_types(offsets, text)
    pad = tokenizer.pad_token_id or 0
    lengths = [window - 2, max(1, (window - 2) // 2), min(5, window - 2)]
    return pad_batch([ids[:n] for n in lengths], pad, [word_types[:n] for n in lengths],
                     tokenizer.cls_token_id, tokenizer.sep_token_id, width=window)


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
    wrapped = _LogitsOnly(model).eval()  # eval on the wrapper too: the exporter restores its mode after
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
        quantize_dynamic(fp32_path, int8_path, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
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
