"""Gold data and Label Studio export validation: every rejection is provoked by a crafted export."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from eastwest.inference.bio import spans_to_tags, tags_to_spans
from eastwest.training.annotations import load_exports, validate_tasks

from .conftest import GOLD, SEEDS


def test_gold_has_one_task_per_seed_with_exact_text(gold_tasks):
    seeds = sorted(SEEDS.glob("*.txt"))
    assert [t["data"]["source"] for t in gold_tasks] == [p.name for p in seeds]
    for task, seed in zip(gold_tasks, seeds):
        assert task["data"]["text"] == seed.read_text(encoding="utf-8")


def test_gold_is_valid_and_substantial(gold_docs):
    spans = [e for d in gold_docs for e in d.entities]
    assert len(gold_docs) == 5
    assert len(spans) > 400
    assert {e.label for e in spans} == {"REGION", "ORG", "DATE", "MONEY", "PROJECT_COUNT", "PEOPLE_COUNT"}


def test_gold_follows_guideline_decisions(gold_docs):
    surfaces = {(e.text, e.label) for d in gold_docs for e in d.entities}
    texts = {e.text for d in gold_docs for e in d.entities}
    assert ("天津市和平区", "REGION") in surfaces
    assert ("3.3亿元", "MONEY") in surfaces and ("138986名", "PEOPLE_COUNT") in surfaces
    assert not texts & {"津甘", "城渭", "津", "甘", "东西部", "两地"}


def test_spans_to_bio_to_spans_is_identity_on_gold(gold_docs):
    for doc in gold_docs:
        offsets = [(i, i + 1) for i, ch in enumerate(doc.text) if not ch.isspace()]
        tags, misaligned = spans_to_tags(offsets, doc.entities)
        assert misaligned == []
        back = tags_to_spans(tags, offsets, doc.text)
        assert [(e.start, e.end, e.label, e.text) for e in back] == [(e.start, e.end, e.label, e.text) for e in doc.entities]


def _first_span(task):
    return task["annotations"][0]["result"][0]["value"]


def _errors(tasks, **kw):
    return validate_tasks(tasks, "crafted.json", **kw).errors


def test_offsets_out_of_range_are_rejected(tasks):
    _first_span(tasks[0])["end"] = len(tasks[0]["data"]["text"]) + 5
    [error] = _errors(tasks)
    assert "crafted.json: task 1" in error and "out of range" in error


def test_text_mismatch_is_rejected_with_utf16_hint(tasks):
    task = tasks[0]
    task["data"]["text"] = "😀" + task["data"]["text"]  # an emoji before every span: Label Studio's classic shift
    errors = _errors([task])
    assert errors and all("!= text[start:end]" in e for e in errors)
    # shift the offsets the way a UTF-16 counting frontend would: the hint must recognise it
    for item in task["annotations"][0]["result"]:
        item["value"]["start"] += 2
        item["value"]["end"] += 2
    errors = _errors([task])
    assert errors and "UTF-16" in errors[0]


def test_unknown_label_is_rejected(tasks):
    _first_span(tasks[1])["labels"] = ["PERSON"]
    [error] = _errors(tasks)
    assert "task 2" in error and "unknown label 'PERSON'" in error


def test_overlapping_spans_are_rejected(tasks):
    result = tasks[2]["annotations"][0]["result"]
    first = result[0]["value"]
    text = tasks[2]["data"]["text"]
    start, end = first["start"] + 1, first["end"]  # a shorter span inside the first one
    result.append({"type": "labels", "value": {"start": start, "end": end, "text": text[start:end], "labels": ["ORG"]}})
    [error] = _errors(tasks)
    assert "overlap" in error and "task 3" in error


def test_edge_whitespace_is_rejected_or_trimmed_and_reported(tasks):
    task = tasks[0]
    text = task["data"]["text"]
    # grow the first span that follows a space over that space
    item = next(i for i in task["annotations"][0]["result"] if text[i["value"]["start"] - 1] == " ")
    space = item["value"]["start"] - 1
    item["value"]["start"] = space
    item["value"]["text"] = text[space:item["value"]["end"]]
    [error] = _errors([task])
    assert "whitespace" in error
    report = validate_tasks([task], "crafted.json", fix_whitespace=True)
    assert report.ok and len(report.fixes) == 1
    assert any(e.start == space + 1 for e in report.docs[0].entities)


def test_unlabelled_cancelled_and_negative_tasks(tasks):
    tasks[0]["annotations"] = []
    tasks[1]["annotations"][0]["was_cancelled"] = True
    tasks[2]["annotations"][0]["result"] = []  # annotated, no entities: a valid negative example
    report = validate_tasks(tasks, "crafted.json")
    assert report.ok
    assert len(report.unlabelled) == 2
    assert [len(d.entities) for d in report.docs][0] == 0


def test_latest_non_cancelled_annotation_wins(tasks):
    task = tasks[0]
    old = task["annotations"][0]
    newer = dict(old, id=99, updated_at="2030-01-01T00:00:00Z", result=old["result"][:3])
    newest_cancelled = dict(old, id=100, updated_at="2031-01-01T00:00:00Z", was_cancelled=True, result=[])
    task["annotations"] = [old, newer, newest_cancelled]
    [doc] = validate_tasks([task], "crafted.json").docs
    assert len(doc.entities) == 3


def test_traditional_text_is_handled(tasks):
    # seed 004 is in traditional characters; its spans survive the round trip like the others
    doc = next(d for d in validate_tasks(tasks, "x").docs if d.id.startswith("004"))
    assert any(e.text == "130個" and e.label == "PROJECT_COUNT" for e in doc.entities)


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"[{\"data\": {\"text\": \"x\"}", "invalid JSON"),
        (b"id,text,label\n1,abc,ORG\n", "looks like CSV"),
        (b"{\"tasks\": []}", "expected a list of tasks"),
        (b"[{\"annotations\": []}]", "not a task object with a 'data' field"),
        (b"[{\"id\": 7, \"data\": {\"text\": \"abc\"}, \"annotations\": [{\"result\": [{\"value\": {\"start\": 0}}]}]}]", "task 7: result item"),
        (os.urandom(4096), "not UTF-8"),
    ],
)
def test_bad_files_give_one_clear_line(tmp_path, content, expected):
    path = tmp_path / "export.json"
    path.write_bytes(content)
    report = load_exports([path])
    assert not report.ok
    assert any(expected in e and str(path) in e for e in report.errors), report.errors


def test_validate_cli_on_50mb_of_random_bytes_fails_cleanly(tmp_path):
    path = tmp_path / "random.json"
    path.write_bytes(os.urandom(50 * 1024 * 1024))
    proc = subprocess.run([sys.executable, "-m", "eastwest", "validate", str(path)], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert str(path) in proc.stderr


def test_validate_cli_accepts_gold_and_rejects_a_bad_export(tmp_path, tasks):
    ok = subprocess.run([sys.executable, "-m", "eastwest", "validate", str(GOLD)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "5 annotated tasks" in ok.stdout
    _first_span(tasks[0])["labels"] = ["NOPE"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "eastwest", "validate", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 1 and "unknown label 'NOPE'" in proc.stderr


def test_a_document_in_a_later_export_replaces_the_earlier_one(tmp_path, tasks):
    first, second = tmp_path / "gold.json", tmp_path / "reannotated.json"
    first.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    again = json.loads(json.dumps(tasks[1]))
    again["annotations"][0]["result"] = again["annotations"][0]["result"][:3]
    second.write_text(json.dumps([again], ensure_ascii=False), encoding="utf-8")
    report = load_exports([first, second])
    ids = [d.id for d in report.docs]
    assert sorted(ids) == sorted({d.id for d in report.docs}) and len(ids) == len(tasks)  # never twice
    replaced = next(d for d in report.docs if d.id == str(tasks[1]["data"]["source"]))
    assert len(replaced.entities) == 3 and replaced.source == str(second)
    assert report.replaced == [f"{replaced.id}: {first} → {second}"]


def test_check_spans_is_the_one_validator():
    from eastwest.inference.schema import check_spans

    text = "甘肃省 会宁县人民医院"
    checked = check_spans(text, [(0, 3, "REGION", "甘肃省"), (4, 7, "REGION", None), (4, 11, "ORG", "会宁县人民医院"),
                                 (9, 30, "ORG", None), (0, 2, "PERSON", None), (3, 5, "ORG", " 会")])
    assert [(e.start, e.end) for e in checked.entities] == [(0, 3), (4, 7), (4, 11)]
    assert [p.split(" ", 2)[1] for p in checked.problems] == ["[9:30]", "[0:2]", "[3:5]", "[4:7]"]
    assert "out of range" in checked.problems[0] and "unknown label 'PERSON'" in checked.problems[1]
    assert "whitespace" in checked.problems[2] and checked.problems[3].endswith("overlap")
    # a span may overlap an earlier one that is not its neighbour in start order
    nested = check_spans("一二三四五六", [(0, 6, "ORG", None), (1, 2, "REGION", None), (3, 4, "REGION", None)])
    assert len(nested.problems) == 2
    trimmed = check_spans(text, [(3, 5, "ORG", None)], whitespace="trim")
    assert trimmed.fixes == ["span [3:5] trimmed to [4:5]"] and trimmed.entities[0].text == "会"
