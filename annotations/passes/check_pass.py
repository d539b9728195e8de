"""Check one annotation pass file: offsets valid, text matches, no overlaps, known labels,
no whitespace at span edges (the project's one span validator, eastwest.inference.schema.check_spans).

usage: python check_pass.py SEED_TXT PASS_JSON   (with eastwest installed: pip install -e .)
"""
import json
import sys
from collections import Counter

from eastwest.inference.schema import check_spans

text = open(sys.argv[1], encoding="utf-8").read()
spans = json.load(open(sys.argv[2], encoding="utf-8"))
checked = check_spans(text, [(s.get("start"), s.get("end"), s.get("label"), s.get("text")) for s in spans])
for problem in checked.problems:
    print(f"{sys.argv[2]}: {problem}")
print(len(spans), "spans", dict(Counter(s.get("label") for s in spans)), "problems:", len(checked.problems))
sys.exit(1 if checked.problems else 0)
