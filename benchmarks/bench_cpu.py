"""CPU throughput and agreement: transformers pipeline vs Tagger (torch; Viterbi, greedy, bf16) vs Tagger (onnx int8).

    python benchmarks/bench_cpu.py MODEL_DIR [--docs 20] [--repeats 3] [--sweep-threads]

One process, one model folder, the same documents for every system: the seed reports in
../shared/seeds, cycled to --docs documents. Each system is warmed up on one document, then the
systems are timed in turn, --repeats rounds interleaved (so background load hits them alike);
the median chars/s is printed, with the ratio to the pipeline, the peak resident memory sampled
while each system ran, and span agreement: exact (start, end, label) micro F1 against Tagger torch
and against the pipeline.

The pipeline is the plain transformers one a user would write, made to read whole reports the
way it supports in transformers 5: `stride=` makes its preprocessing tokenise with
return_overflowing_tokens, so the text is cut into chunks of tokenizer.model_max_length tokens
(special tokens included) overlapping by `stride` tokens, one forward pass per chunk (the
pipeline's default batch_size 1), and overlapping entities of neighbouring chunks are resolved
by keeping the longest. model_max_length is set to the model's training window and stride to its
training stride (config.json "eastwest"), so it sees the same window sizes as the Tagger.

The onnx system is the int8 model the default path uses (built once into the cache if the folder
has no model.int8.onnx of its own).
Not a test: figures depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import itertools
import os
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

import psutil
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SEEDS = REPO.parent / "shared" / "seeds"

from eastwest.inference.tagger import Tagger  # noqa: E402


class PeakRSS:
    """Highest resident set size of this process while the block runs (sampled every 5 ms)."""

    def __init__(self):
        self.process = psutil.Process()
        self.peak = 0

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self):
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def tagger_spans(tagger, texts, batch_size):
    return [[(e.start, e.end, e.label) for e in doc.entities] for doc in tagger.tag_many(texts, batch_size=batch_size)]


def pipeline_spans(pipe, texts):
    return [[(int(e["start"]), int(e["end"]), e["entity_group"]) for e in entities] for entities in pipe(texts)]


def span_f1(predicted: list[list[tuple]], reference: list[list[tuple]]) -> float:
    tp = fp = fn = 0
    for p, r in zip(predicted, reference):
        p, r = set(p), set(r)
        tp, fp, fn = tp + len(p & r), fp + len(p - r), fn + len(r - p)
    if tp + fp + fn == 0:
        return 1.0  # neither side found anything: they agree
    return 2 * tp / (2 * tp + fp + fn)


def build_pipeline(model_dir: Path, window: int, stride: int):
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.model_max_length = window
    model = AutoModelForTokenClassification.from_pretrained(model_dir, dtype=torch.float32)
    return pipeline("token-classification", model=model, tokenizer=tokenizer, aggregation_strategy="simple",
                    stride=stride, device=-1)


def onnx_tagger(model_dir: Path, threads: int | None):
    """The int8 ONNX Tagger: the folder's model.int8.onnx, or the one the default path builds into the cache."""
    return Tagger.load(model_dir, backend="onnx", threads=threads)


def run_times(run, repeats: int) -> list[float]:
    """Wall-clock seconds of `repeats` calls of `run`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--docs", type=int, default=20, help="documents (the seeds, cycled); default 20")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per system; the median is printed")
    parser.add_argument("--batch-size", type=int, default=32, help="Tagger windows per forward pass")
    parser.add_argument("--torch-threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--onnx-threads", type=int, help="onnxruntime intra-op threads (default: the backend's)")
    parser.add_argument("--sweep-threads", action="store_true", help="also time Tagger torch and onnx with 1 and 2 threads")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the transformers pipeline")
    args = parser.parse_args(argv)

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    seeds = [p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))]
    if not seeds:
        raise SystemExit(f"no seed reports in {SEEDS}")
    texts = list(itertools.islice(itertools.cycle(seeds), args.docs))
    chars = sum(len(t) for t in texts)

    systems: dict[str, object] = {}
    memory: dict[str, int] = {}
    base_rss = psutil.Process().memory_info().rss
    with PeakRSS() as peak:
        systems["tagger torch"] = Tagger.load(args.model_dir, device="cpu", precision="fp32")
    memory["tagger torch"] = peak.peak
    tagger = systems["tagger torch"]
    # The pipeline decodes greedily (argmax per token); the Tagger's default is Viterbi. The same
    # model with greedy decoding shows the agreement that comes from windows and batching alone.
    systems["tagger torch greedy"] = Tagger(tagger.model, tagger.tokenizer, device="cpu", decoding="greedy", precision="fp32")
    # bf16 autocast, where the CPU does bf16 natively (what precision="auto" picks there)
    systems["tagger torch bf16"] = Tagger(tagger.model, tagger.tokenizer, device="cpu", precision="bf16")
    if not args.no_pipeline:
        with PeakRSS() as peak:
            systems["pipeline"] = build_pipeline(args.model_dir, tagger.window, tagger.stride)
        memory["pipeline"] = peak.peak
    with PeakRSS() as peak:
        systems["tagger onnx int8"] = onnx_tagger(args.model_dir, args.onnx_threads)
    memory["tagger onnx int8"] = peak.peak

    def run(name, system):
        return pipeline_spans(system, texts) if name == "pipeline" else tagger_spans(system, texts, args.batch_size)

    for name, system in systems.items():  # warm-up: first-call allocations, lazy imports, thread pools
        run(name, system) if name != "pipeline" else pipeline_spans(system, texts[:1])

    times: dict[str, list[float]] = {name: [] for name in systems}
    spans: dict[str, list] = {}
    for _ in range(args.repeats):
        for name, system in systems.items():
            with PeakRSS() as peak:
                start = time.perf_counter()
                spans[name] = run(name, system)
                times[name].append(time.perf_counter() - start)
            memory[name] = max(memory.get(name, 0), peak.peak)

    print(f"model {args.model_dir}; {len(texts)} documents, {chars:,} characters; window {tagger.window}, "
          f"stride {tagger.stride}; torch threads {torch.get_num_threads()}, "
          f"onnx threads {getattr(systems.get('tagger onnx int8'), 'model', None) and systems['tagger onnx int8'].model.threads}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; median of {args.repeats}")
    speed = {name: chars / statistics.median(ts) for name, ts in times.items()}
    reference = spans["tagger torch"]
    print(f"{'system':20s} {'chars/s':>9s} {'vs pipeline':>11s} {'runs (s)':>22s} {'span F1 vs torch':>17s} "
          f"{'vs pipeline':>12s} {'spans':>6s} {'peak RSS':>9s}")
    for name in systems:
        ratio = f"{speed[name] / speed['pipeline']:.2f}x" if "pipeline" in speed else "-"
        runs = " ".join(f"{t:.1f}" for t in times[name])
        vs_pipeline = f"{span_f1(spans[name], spans['pipeline']):.3f}" if "pipeline" in spans else "-"
        print(f"{name:20s} {speed[name]:9,.0f} {ratio:>11s} {runs:>22s} {span_f1(spans[name], reference):17.3f} "
              f"{vs_pipeline:>12s} {sum(map(len, spans[name])):6d} {memory[name] / 2**20:7.0f}MB")
    print(f"process: RSS before loading {base_rss / 2**20:.0f} MB, peak (ru_maxrss) "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; peak RSS per system is cumulative "
          f"(every model stays loaded), so differences between rows are what each system added")

    if args.sweep_threads:
        print("\nthread sweep (same documents, median of --repeats):")
        before = torch.get_num_threads()
        for threads in (1, 2):
            torch.set_num_threads(threads)
            ts = run_times(lambda: tagger_spans(tagger, texts, args.batch_size), args.repeats)
            print(f"  tagger torch, {threads} intra-op thread(s): {chars / statistics.median(ts):9,.0f} chars/s  "
                  f"runs {' '.join(f'{t:.1f}' for t in ts)}")
        torch.set_num_threads(before)
        if "tagger onnx int8" in systems:
            for threads in (1, 2):
                onnx = onnx_tagger(args.model_dir, threads)
                tagger_spans(onnx, texts[:1], args.batch_size)
                ts = run_times(lambda: tagger_spans(onnx, texts, args.batch_size), args.repeats)
                print(f"  tagger onnx int8, {threads} intra-op thread(s): {chars / statistics.median(ts):9,.0f} chars/s  "
                      f"runs {' '.join(f'{t:.1f}' for t in ts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
