"""Merge the two independent passes into the gold export, deciding each disagreement explicitly.

Spans both passes agree on are kept. Every disagreement must have a decision below (keep or drop,
with the reason); an undecided disagreement stops the script, so a new pass cannot slip in unread.

usage: python annotations/passes/adjudicate.py   (writes annotations/gold.json)
"""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEEDS = HERE.parents[2] / "shared" / "seeds"
OUT = HERE.parent / "gold.json"

# (seed prefix, start, end, label) -> keep?  with the reason
DECISIONS = {
    ("000", 1370, 1374, "DATE"): False,  # 今年二三月份: a vague two-month range after a relative year, not a calendar time
    ("004", 476, 491, "ORG"): True,  # 扶貧協作和支援合作工作領導小組: a named standing office (guidelines: named work teams/offices)
    ("004", 706, 714, "ORG"): False,  # 河西區黨政代表團: a visiting delegation is not an organisation ...
    ("004", 706, 709, "REGION"): True,  # ... so only 河西區 is tagged
}


def main() -> None:
    tasks = []
    for task_id, seed in enumerate(sorted(SEEDS.glob("*.txt")), start=1):
        text = seed.read_text(encoding="utf-8")
        passes = [
            {(s["start"], s["end"], s["label"]) for s in json.loads((HERE / p / f"{seed.stem}.json").read_text(encoding="utf-8"))}
            for p in ("A", "B")
        ]
        spans = passes[0] & passes[1]
        for key in passes[0] ^ passes[1]:
            decision = DECISIONS[(seed.stem[:3], *key)]  # KeyError = an undecided disagreement
            if decision:
                spans.add(key)
        result = [
            {
                "id": f"{task_id}-{i}",
                "from_name": "label",
                "to_name": "text",
                "type": "labels",
                "origin": "manual",
                "value": {"start": start, "end": end, "text": text[start:end], "labels": [label]},
            }
            for i, (start, end, label) in enumerate(sorted(spans))
        ]
        tasks.append(
            {
                "id": task_id,
                "data": {"text": text, "source": seed.name},
                "annotations": [
                    {
                        "id": task_id,
                        "completed_by": 1,
                        "was_cancelled": False,
                        "ground_truth": True,
                        "created_at": "2026-11-22T22:40:00.000000Z",
                        "updated_at": "2026-11-22T22:40:00.000000Z",
                        "lead_time": 0,
                        "result": result,
                    }
                ],
                "predictions": [],
            }
        )
    OUT.write_text(json.dumps(tasks, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}: {len(tasks)} tasks, {sum(len(t['annotations'][0]['result']) for t in tasks)} spans")


if __name__ == "__main__":
    main()
