"""Archive-scale throughput and memory of `eastwest tag`: one process, --workers 2, and Ray.

    python benchmarks/bench_batch.py [--model DIR] [--docs 1000 10000] [--chars 400]
                                     [--systems local workers2 ray] [--backend torch|onnx]

Reports are synthetic but realistic: the gold articles rewritten by the training augmentation
(new places from the whole gazetteer, new amounts, counts and dates, some copies in traditional
script), cut at sentence ends into reports of about --chars characters, one .txt file each, in
folders of 100. Each system runs the real CLI in a subprocess on the same folder; the figures are
wall time (model loading included), documents/s, characters/s and the peak resident memory of the
whole process tree (the CLI, its workers, and for Ray its raylet and workers), sampled every
50 ms. Memory flat from 1k to 10k documents is the property to look for; the speed depends on the
machine and its load, so compare systems within one run. Not a test.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SYSTEMS = {
    "local": ["--workers", "1"],
    "workers2": ["--workers", "2"],
    "ray": ["--engine", "ray", "--workers", "2", "--format", "jsonl"],
}


def make_reports(folder: Path, count: int, chars: int, seed: int = 0) -> int:
    """Write `count` reports under `folder`; returns the total number of characters."""
    from eastwest.training.annotations import load_exports
    from eastwest.training.augment import augment_documents
    from eastwest.training.config import AugmentConfig

    gold = load_exports([REPO / "annotations" / "gold.json"]).docs
    total, written, round_ = 0, 0, 0
    while written < count:
        docs = augment_documents(gold, AugmentConfig(copies=1, seed=seed + round_))
        round_ += 1
        for doc in docs:
            sentences = re.split(r"(?<=[。！？\n])", doc.text)
            report = ""
            for sentence in sentences:
                report += sentence
                if len(report) >= chars:
                    path = folder / f"{written // 100:04d}" / f"report-{written:06d}.txt"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(report, encoding="utf-8")
                    total += len(report)
                    written += 1
                    report = ""
                    if written == count:
                        return total
    return total


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run(system: str, inputs: Path, out: Path, model: str | None, backend: str) -> tuple[float, int, int]:
    """(wall seconds, peak RSS bytes of the process tree, documents written)."""
    command = [sys.executable, "-m", "eastwest", "tag", str(inputs), "-o", str(out), "-q", "--backend", backend,
               *SYSTEMS[system], *(["--model", model] if model else [])]
    started = time.time()
    proc = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True)
    handle, peak, stop = psutil.Process(proc.pid), 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.05):
            peak = max(peak, tree_rss(handle))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    _, stderr = proc.communicate()
    wall = time.time() - started
    stop.set()
    thread.join()
    if proc.returncode != 0:
        raise SystemExit(f"{system} failed ({proc.returncode}): {stderr[-2000:]}")
    files = sorted(out.glob("*.jsonl")) if out.is_dir() else [out]
    written = sum(1 for f in files for line in f.read_text(encoding="utf-8").splitlines() if '"error"' not in line[:200])
    return wall, peak, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: the shipped one)")
    parser.add_argument("--docs", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--chars", type=int, default=400, help="approximate characters per report")
    parser.add_argument("--systems", nargs="+", choices=list(SYSTEMS), default=list(SYSTEMS))
    parser.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    args = parser.parse_args()
    print(f"{'system':<10} {'docs':>6} {'chars':>10} {'wall s':>8} {'docs/s':>8} {'chars/s':>9} {'peak RSS MiB':>13}")
    for count in args.docs:
        with tempfile.TemporaryDirectory(prefix="eastwest-bench-") as tmp:
            inputs = Path(tmp) / "reports"
            chars = make_reports(inputs, count, args.chars)
            for system in args.systems:
                out = Path(tmp) / (f"{system}-out" if system == "ray" else f"{system}.jsonl")
                wall, peak, written = run(system, inputs, out, args.model, args.backend)
                if written != count:
                    raise SystemExit(f"{system}: {written} documents written, expected {count}")
                print(f"{system:<10} {count:>6} {chars:>10,} {wall:>8.1f} {count / wall:>8.1f} {chars / wall:>9,.0f} "
                      f"{peak / 2**20:>13,.0f}", flush=True)


if __name__ == "__main__":
    main()
