"""User errors end as one line on stderr and exit status 2, never a traceback: every one of them is
an `EastwestError`, the one thing the command catches."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import REPO, SEEDS


def eastwest(*args, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eastwest", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def assert_one_line(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("eastwest: error:")]
    assert len(lines) == 1, proc.stderr[-2000:]
    for word in words:
        assert word in lines[0], lines[0]


def test_every_error_class_is_an_eastwest_error():
    from eastwest.inference import errors

    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, Exception)]
    assert len(classes) > 5 and all(issubclass(c, errors.EastwestError) for c in classes)


def test_unknown_eval_documents_is_one_line(tmp_path, gold_tasks):
    export = tmp_path / "gold.json"
    export.write_text(json.dumps(gold_tasks[:2], ensure_ascii=False), encoding="utf-8")
    proc = eastwest("train", "configs/default.yaml", "--set", f"data.train=[{export}]", "--set",
                    "data.eval_documents=[nope.txt]", "--set", f"output.dir={tmp_path / 'm'}")
    assert_one_line(proc, "data.eval_documents", "nope.txt")


def test_cross_validation_of_one_document_is_one_line(tmp_path, gold_tasks):
    export = tmp_path / "one.json"
    export.write_text(json.dumps(gold_tasks[:1], ensure_ascii=False), encoding="utf-8")
    proc = eastwest("cv", "configs/default.yaml", "--set", f"data.train=[{export}]", "--set", f"output.dir={tmp_path / 'm'}")
    assert_one_line(proc, "at least two", "has 1")


@pytest.mark.parametrize("name, content, fmt", [("foreign.parquet", b"not parquet", "parquet"),
                                                ("foreign.jsonl", b"hello\n", "jsonl")])
def test_a_foreign_output_file_is_one_line(tmp_path, name, content, fmt):
    (tmp_path / name).write_bytes(content)
    report = sorted(SEEDS.glob("*.txt"))[0]
    proc = eastwest("tag", report, "-o", tmp_path / name, "--format", fmt, "-q")
    assert_one_line(proc, name)
    assert (tmp_path / name).read_bytes() == content  # left as it was


def test_an_output_that_cannot_be_opened_is_one_line(tmp_path):
    (tmp_path / "out.jsonl").mkdir()  # a folder where the output file should be
    proc = eastwest("tag", sorted(SEEDS.glob("*.txt"))[0], "-o", tmp_path / "out.jsonl", "-q")
    assert_one_line(proc, "out.jsonl")
