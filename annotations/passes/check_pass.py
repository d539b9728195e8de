"""Check one annotation pass file: offsets valid, text matches, no overlaps, known labels.

usage: python check_pass.py SEED_TXT PASS_JSON
"""
import json
import sys

LABELS = {"REGION", "ORG", "DATE", "MONEY", "PROJECT_COUNT", "PEOPLE_COUNT"}
text = open(sys.argv[1], encoding="utf-8").read()
spans = json.load(open(sys.argv[2], encoding="utf-8"))
problems = 0
spans = sorted(spans, key=lambda s: (s["start"], s["end"]))
prev_end = -1
for s in spans:
    where = f'{s["start"]}-{s["end"]} {s.get("text")!r}'
    if s["label"] not in LABELS:
        print("unknown label", where, s["label"]); problems += 1
    if not (0 <= s["start"] < s["end"] <= len(text)):
        print("bad offsets", where); problems += 1; continue
    if text[s["start"]:s["end"]] != s["text"]:
        print("text mismatch", where, "actual", repr(text[s["start"]:s["end"]])); problems += 1
    if s["text"] != s["text"].strip():
        print("whitespace at edge", where); problems += 1
    if s["start"] < prev_end:
        print("overlap", where); problems += 1
    prev_end = max(prev_end, s["end"])
from collections import Counter
print(len(spans), "spans", dict(Counter(s["label"] for s in spans)), "problems:", problems)
sys.exit(1 if problems else 0)
