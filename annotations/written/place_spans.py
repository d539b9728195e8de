"""Turn an annotator's list of mentions into exact character spans, and show what may be missing.

An annotator writes a plain list, one mention per line, tab-separated:

    LABEL<TAB>mention                 every occurrence of the mention in the text
    LABEL<TAB>mention<TAB>1,3         only the 1st and 3rd occurrence (counted over the whole text)

Longer mentions are placed first, and an occurrence that overlaps a span already placed is
skipped, so `会宁县人民医院 ORG` and `会宁 REGION` in one list give one ORG and no REGION inside it.
Lines starting with # are comments. The script writes the pass file (JSON list of
{start, end, label, text}), prints every span with context, then every numeral + unit and every
date-like string that no span covers, for the annotator to confirm as deliberately left out.

usage: python place_spans.py TEXT.txt LIST.tsv OUT.json
"""
import json
import re
import sys

LABELS = {"REGION", "ORG", "DATE", "MONEY", "PROJECT_COUNT", "PEOPLE_COUNT"}
NUMERAL = r"[0-9０-９.,，．零〇一二两三四五六七八九十百千万萬亿億余餘多逾]+"
SUSPECTS = re.compile(NUMERAL + r"(?:元|人次|人|名|户|戶|位|个|個|项|項)|" + NUMERAL + r"[年月日]|\d{4}[-/]\d{1,2}")


def main(text_path: str, list_path: str, out_path: str) -> int:
    text = open(text_path, encoding="utf-8").read()
    wanted = []
    for number, line in enumerate(open(list_path, encoding="utf-8"), start=1):
        line = line.rstrip("\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) not in (2, 3) or parts[0] not in LABELS or not parts[1]:
            print(f"{list_path}:{number}: expected LABEL<TAB>mention[<TAB>1,2], got {line!r}")
            return 1
        which = {int(x) for x in parts[2].split(",")} if len(parts) == 3 else None
        wanted.append((parts[0], parts[1], which, number))
    taken = [False] * len(text)
    spans = []
    for label, mention, which, number in sorted(wanted, key=lambda w: -len(w[1])):
        hits = [m.start() for m in re.finditer(re.escape(mention), text)]
        if not hits:
            print(f"line {number}: {mention!r} not found in the text")
            return 1
        for k, start in enumerate(hits, start=1):
            if which is not None and k not in which:
                continue
            end = start + len(mention)
            if any(taken[start:end]):
                print(f"  skipped (overlaps a longer span): {label} {mention!r} occurrence {k} at {start}")
                continue
            taken[start:end] = [True] * (end - start)
            spans.append({"start": start, "end": end, "label": label, "text": mention})
    spans.sort(key=lambda s: s["start"])
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(spans, f, ensure_ascii=False, indent=1)
    for s in spans:
        left, right = text[max(0, s["start"] - 8) : s["start"]], text[s["end"] : s["end"] + 8]
        print(f'{s["start"]:5d} {s["label"]:13s} {left!r:>20} [{s["text"]}] {right!r}')
    print("not covered by any span (check each is meant to be left out):")
    for m in SUSPECTS.finditer(text):
        if not any(taken[m.start() : m.end()]):
            print(f'  {m.start():5d} {text[max(0, m.start() - 6) : m.start()]!r} [{m.group()}] {text[m.end() : m.end() + 6]!r}')
    print(f"{len(spans)} spans written to {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
