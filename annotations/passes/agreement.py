"""Span-level agreement (exact start, end, label) between two independent annotation passes.

usage: python agreement.py DIR_A DIR_B [--diff]
"""
import json
import sys
from collections import Counter
from pathlib import Path

a_dir, b_dir = Path(sys.argv[1]), Path(sys.argv[2])
show = "--diff" in sys.argv
tp = fa = fb = 0
per_label = Counter()
for fa_path in sorted(a_dir.glob("*.json")):
    a = {(s["start"], s["end"], s["label"]): s["text"] for s in json.load(open(fa_path, encoding="utf-8"))}
    b = {(s["start"], s["end"], s["label"]): s["text"] for s in json.load(open(b_dir / fa_path.name, encoding="utf-8"))}
    both = a.keys() & b.keys()
    tp += len(both); fa += len(a.keys() - b.keys()); fb += len(b.keys() - a.keys())
    for k in both:
        per_label[k[2], "tp"] += 1
    for k in a.keys() - b.keys():
        per_label[k[2], "a"] += 1
    for k in b.keys() - a.keys():
        per_label[k[2], "b"] += 1
    if show:
        for k in sorted((a.keys() ^ b.keys())):
            who = "A" if k in a else "B"
            print(fa_path.stem[:3], who, k, a.get(k) or b.get(k))
p = tp / (tp + fa) if tp + fa else 0
r = tp / (tp + fb) if tp + fb else 0
print(f"spans A={tp+fa} B={tp+fb} agree={tp}  F1={2*p*r/(p+r):.4f}")
for label in sorted({k[0] for k in per_label}):
    t, x, y = per_label[label, "tp"], per_label[label, "a"], per_label[label, "b"]
    print(f"  {label:14s} F1={2*t/(2*t+x+y):.3f} agree={t} onlyA={x} onlyB={y}")
