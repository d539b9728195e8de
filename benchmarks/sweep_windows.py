"""Inference window and stride: accuracy and cost of each setting on the cross-validation folds.

    eastwest cv configs/default.yaml --keep-models          # once: writes models/default.folds/
    python benchmarks/sweep_windows.py models/default [--settings 128/32 128/16 256/32] [--backend onnx]

A model trained on windows of W tokens overlapping by S can be run with other windows: a smaller
overlap means fewer windows (less work), a longer window fewer edges but contexts longer than any
seen in training. Each fold model (kept by `eastwest cv --keep-models`) tags the article it never
saw, with each setting; printed per setting: the mean strict micro F1 over folds (as `eastwest cv`
computes it) and the encoder cost, i.e. model tokens per text token (window positions including
[CLS]/[SEP], over the text's tokens: 1.00 would be no overlap at all). The cost is exact and
machine-independent; wall time follows it on CPU (attention is a small share at these lengths).
Not a test.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eastwest.inference.tagger import Tagger  # noqa: E402
from eastwest.inference.windows import encode_text, window_bounds  # noqa: E402
from eastwest.training.annotations import load_exports  # noqa: E402
from eastwest.training.evaluate import span_metrics  # noqa: E402


def setting(value: str) -> tuple[int, int]:
    window, _, stride = value.partition("/")
    return int(window), int(stride)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="the model whose MODEL_DIR.folds/ holds the fold models")
    parser.add_argument("--settings", type=setting, nargs="+", default=[(128, 32), (128, 16), (128, 8), (256, 32)],
                        help="WINDOW/STRIDE pairs (window includes [CLS] and [SEP])")
    parser.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    parser.add_argument("--gold", type=Path, default=REPO / "annotations" / "gold.json")
    args = parser.parse_args(argv)

    folds = sorted(p for p in (args.model_dir.parent / (args.model_dir.name + ".folds")).iterdir() if (p / "metrics.json").is_file())
    if not folds:
        raise SystemExit(f"no fold models in {args.model_dir}.folds/; run `eastwest cv CONFIG --keep-models` first")
    gold = {doc.id: doc for doc in load_exports([args.gold]).docs}
    rows = {s: {"f1": [], "positions": 0, "tokens": 0} for s in args.settings}
    for fold in folds:
        held_out = json.loads((fold / "metrics.json").read_text(encoding="utf-8"))["eval_documents"]
        docs = [gold[d] for d in held_out]
        for window, stride in args.settings:
            tagger = Tagger.load(fold, backend=args.backend, device="cpu", window=window, stride=stride)
            predicted = [doc.entities for doc in tagger.tag_many([d.text for d in docs])]
            micro = span_metrics([d.text for d in docs], [d.entities for d in docs], predicted)["micro"]["f1"]
            row = rows[(window, stride)]
            row["f1"].append(micro)
            for d in docs:
                n = len(encode_text(tagger.tokenizer, d.text)[0])
                row["positions"] += sum(e - s + 2 for s, e in window_bounds(n, window - 2, stride))
                row["tokens"] += n
            print(f"{fold.name} {window}/{stride}: micro F1 {micro:.3f}", flush=True)
    print(f"\n{len(folds)} folds of {args.model_dir}, backend {args.backend}")
    print(f"{'window/stride':>14s} {'micro F1':>9s} {'per fold':>36s} {'cost':>6s}")
    for (window, stride), row in rows.items():
        per_fold = " ".join(f"{f:.3f}" for f in row["f1"])
        print(f"{f'{window}/{stride}':>14s} {sum(row['f1']) / len(row['f1']):9.3f} {per_fold:>36s} "
              f"{row['positions'] / row['tokens']:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
