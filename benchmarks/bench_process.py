"""Whole-process speed, as a user runs it: `eastwest tag DIR -o OUT` against a transformers pipeline script.

    python benchmarks/bench_process.py [--model models/default] [--docs 200] [--repeats 3]

Each round runs, as separate processes and in alternation (so background load hits both alike):

- `eastwest tag DIR -o OUT.jsonl -q` with its default settings, on a folder of --docs reports;
- a script that loads `pipeline("token-classification", aggregation_strategy="simple", stride=16)`
  on the same model folder and tags the same files, writing one JSON line per file.

Wall time covers everything a user waits for: interpreter start, imports, model load, reading,
tagging, records (eastwest) and writing. The reports are the team-written corpus
(annotations/written/texts/, 208 reports), cycled to --docs. Then start-up: tagging one sentence
with `eastwest tag -` against `python -c "import torch, transformers.models.bert.modeling_bert"`
(what any BERT tool pays before it reads a character). Medians are printed.

The runs use a cache of their own ($EASTWEST_CACHE in a temporary folder): the first one builds
the int8 model and the word table there, as a user's first run does, and is reported on its own
line; every timed run after it finds them. Last, `python -X importtime` on the one-sentence run:
the top-level imports by cumulative time.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEXTS = REPO / "annotations" / "written" / "texts"
SENTENCE = "天津市和平区帮扶甘肃省会宁县投入3.3亿元。\n"
ENV = dict(os.environ)

PIPELINE_SCRIPT = """
import json, sys
from pathlib import Path
from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline
model_dir, in_dir, out = sys.argv[1:4]
tokenizer = AutoTokenizer.from_pretrained(model_dir, model_max_length=128)
model = AutoModelForTokenClassification.from_pretrained(model_dir)
tag = pipeline("token-classification", model=model, tokenizer=tokenizer, aggregation_strategy="simple", stride=16)
with open(out, "w", encoding="utf-8") as f:
    for path in sorted(Path(in_dir).glob("*.txt")):
        spans = tag(path.read_text(encoding="utf-8"))
        f.write(json.dumps({"id": path.name, "entities": [[int(s["start"]), int(s["end"]), s["entity_group"]]
                                                         for s in spans]}, ensure_ascii=False) + "\\n")
"""


def timed(cmd: list[str], stdin: str | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, cwd=REPO, env=ENV)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} … failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "models" / "default"))
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    texts = sorted(TEXTS.glob("*.txt"))
    work = Path(tempfile.mkdtemp(prefix="eastwest-bench-"))
    ENV["EASTWEST_CACHE"] = str(work / "cache")
    try:
        reports = work / "reports"
        reports.mkdir()
        chars = 0
        for i in range(args.docs):
            text = texts[i % len(texts)].read_text(encoding="utf-8")
            (reports / f"{i:05d}.txt").write_text(text, encoding="utf-8")
            chars += len(text)
        script = work / "pipeline_tag.py"
        script.write_text(PIPELINE_SCRIPT, encoding="utf-8")
        one = [sys.executable, "-m", "eastwest", "tag", "-", "-q", "--model", args.model]
        first_run = timed(one, SENTENCE)  # builds the cache, as a user's first run does
        eastwest = [sys.executable, "-m", "eastwest", "tag", str(reports), "-q", "--model", args.model]
        pipe = [sys.executable, str(script), args.model, str(reports)]
        times: dict[str, list[float]] = {"eastwest tag": [], "pipeline": []}
        for r in range(args.repeats):
            for out in work.glob("out*"):
                out.unlink()
            times["eastwest tag"].append(timed(eastwest + ["-o", str(work / f"out{r}.jsonl")]))
            times["pipeline"].append(timed(pipe + [str(work / f"pipe{r}.jsonl")]))
        imports = [sys.executable, "-c", "import torch, transformers.models.bert.modeling_bert"]
        startup: dict[str, list[float]] = {"eastwest tag, one sentence": [], "import torch + BERT": []}
        for _ in range(args.repeats):
            startup["eastwest tag, one sentence"].append(timed(one, SENTENCE))
            startup["import torch + BERT"].append(timed(imports))
        profile = subprocess.run([sys.executable, "-X", "importtime", *one[1:]], input=SENTENCE, capture_output=True,
                                 text=True, cwd=REPO, env=ENV).stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = statistics.median(times["pipeline"])
    print(f"{args.docs} reports, {chars:,} characters, model {args.model}; median of {args.repeats} alternated runs")
    for name, runs in times.items():
        median = statistics.median(runs)
        print(f"{name:28s} {median:7.1f} s  {chars / median:8,.0f} chars/s  {base / median:5.2f}x the pipeline  "
              f"runs {' '.join(f'{t:.1f}' for t in runs)}")
    print(f"{'first run (builds the cache)':28s} {first_run:7.2f} s")
    for name, runs in startup.items():
        print(f"{name:28s} {statistics.median(runs):7.2f} s  runs {' '.join(f'{t:.2f}' for t in runs)}")
    # "import time: self [us] | cumulative | name", nesting shown by indentation of the name
    top = [(int(m.group(1)), m.group(2)) for m in re.finditer(r"^import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", profile, re.M)]
    total = sum(us for us, _ in top)
    print(f"python -X importtime, one sentence: top-level imports {total / 1e6:.2f} s in all; the largest:")
    for us, name in sorted(top, reverse=True)[:8]:
        print(f"  {us / 1e6:6.3f} s  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
