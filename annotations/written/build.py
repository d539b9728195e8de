"""Merge the two independent passes over the written reports into one Label Studio export.

Spans both passes agree on (same start, end and label) are kept. Every disagreement needs a
decision in `decisions/*.tsv` (one line per span: file, start, end, label, keep|drop, reason),
written by an adjudicator who read both passes against the guidelines; an undecided disagreement
stops the build, so no pass slips in unread. Each task carries `data.meta` with its origin,
pairing, year, form and script (from `meta/*.json`, the writers' own description).

usage: python annotations/written/build.py [--diff BATCH]   (writes annotations/written/corpus.json)
       --diff BATCH prints the undecided disagreements of one batch with context, for adjudication
"""
import csv
import json
import sys
from collections import Counter
from pathlib import Path

from eastwest.inference.schema import check_spans

HERE = Path(__file__).resolve().parent
OUT = HERE / "corpus.json"


def load_pass(name: str, stem: str) -> dict:
    path = HERE / "passes" / name / f"{stem}.json"
    if not path.is_file():
        sys.exit(f"{path}: pass {name} of {stem} is missing")
    return {(s["start"], s["end"], s["label"]): s["text"] for s in json.loads(path.read_text(encoding="utf-8"))}


def load_decisions() -> dict:
    decisions = {}
    for path in sorted((HERE / "decisions").glob("*.tsv")):
        for number, row in enumerate(csv.reader(path.open(encoding="utf-8"), delimiter="\t"), start=1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 6 or row[4] not in ("keep", "drop"):
                sys.exit(f"{path}:{number}: expected file, start, end, label, keep|drop, reason; got {row}")
            decisions[(row[0], int(row[1]), int(row[2]), row[3])] = (row[4] == "keep", row[5])
    return decisions


def main() -> None:
    diff_batch = sys.argv[sys.argv.index("--diff") + 1] if "--diff" in sys.argv else None
    meta = {}
    for path in sorted((HERE / "meta").glob("*.json")):
        meta.update(json.loads(path.read_text(encoding="utf-8")))
    decisions = load_decisions()
    tasks, undecided = [], 0
    agreement = Counter()  # (label, "both" | "A" | "B") -> spans
    for number, path in enumerate(sorted((HERE / "texts").glob("*.txt")), start=1):
        if diff_batch and not path.stem.startswith(diff_batch + "_"):
            continue
        text = path.read_text(encoding="utf-8")
        a, b = load_pass("A", path.stem), load_pass("B", path.stem)
        spans = set(a) & set(b)
        for key in set(a) | set(b):
            agreement[key[2], "both" if key in a and key in b else "A" if key in a else "B"] += 1
        for key in sorted(set(a) ^ set(b)):
            decision = decisions.get((path.stem, *key))
            if decision is None:
                undecided += 1
                if diff_batch:
                    s, e, label = key
                    who = "A" if key in a else "B"
                    print(f"{path.stem}\t{s}\t{e}\t{label}\t{who}\t{text[max(0, s - 10):s]}[{text[s:e]}]{text[e:e + 10]}".replace("\n", "⏎"))
            elif decision[0]:
                spans.add(key)
        chosen = sorted(spans)
        problems = check_spans(text, [(s, e, label, a.get((s, e, label), b.get((s, e, label)))) for s, e, label in chosen]).problems
        if problems:
            sys.exit(f"{path.name}: the decisions leave bad spans (drop one of each overlapping pair): {'; '.join(problems)}")
        info = meta.get(path.name, {})
        tasks.append({
            "id": number,
            "data": {"text": text, "source": f"written/{path.name}",
                     "meta": {"origin": "written", **{k: info.get(k) for k in ("pairing", "year", "form", "script")}}},
            "annotations": [{
                "id": number, "completed_by": 1, "was_cancelled": False, "ground_truth": True,
                "created_at": "2026-11-29T00:00:00.000000Z", "updated_at": "2026-11-29T00:00:00.000000Z", "lead_time": 0,
                "result": [{"id": f"{number}-{i}", "from_name": "label", "to_name": "text", "type": "labels",
                            "origin": "manual", "value": {"start": s, "end": e, "text": text[s:e], "labels": [label]}}
                           for i, (s, e, label) in enumerate(chosen)],
            }],
            "predictions": [],
        })
    if diff_batch:
        return
    if undecided:
        sys.exit(f"{undecided} disagreement(s) without a decision; list them with --diff BATCH")
    OUT.write_text(json.dumps(tasks, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}: {len(tasks)} tasks, {sum(len(t['data']['text']) for t in tasks):,} characters, "
          f"{sum(len(t['annotations'][0]['result']) for t in tasks)} spans")
    print("label          gold spans   agreement of the passes (span F1, exact start/end/label)")
    gold = Counter(r["value"]["labels"][0] for t in tasks for r in t["annotations"][0]["result"])
    for label in sorted(gold, key=lambda k: -gold[k]) + ["all"]:
        both, only_a, only_b = (sum(n for (lab, who), n in agreement.items() if who == w and label in (lab, "all"))
                                for w in ("both", "A", "B"))
        count = sum(gold.values()) if label == "all" else gold[label]
        print(f"{label:14s} {count:10d}   {2 * both / (2 * both + only_a + only_b):.3f} "
              f"(both {both}, only A {only_a}, only B {only_b})")
    scripts = Counter(t["data"]["meta"]["script"] for t in tasks)
    print("scripts:", dict(scripts), " longer than 1,500 characters:", sum(len(t["data"]["text"]) > 1500 for t in tasks))


if __name__ == "__main__":
    main()
