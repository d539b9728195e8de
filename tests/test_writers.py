"""inference.writers: table flattening, JSONL/CSV/Parquet output and crash-safe resumption."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from eastwest.inference.writers import COLUMNS, OutputError, arrow_schema, ResumableRun, errors_path_for, fact_rows, model_label

REPO_ROOT = Path(__file__).resolve().parents[1]

# Builds the same tagged documents in this process and in the subprocesses below.
MAKE_DOC = '''
def make_doc(i, text_size=200):
    text = ("福建省帮助宁夏回族自治区建设产业园区，投入资金" * (text_size // 23 + 1))[:text_size]
    facts = [{"label": "MONEY", "start": 20 + k, "end": 24 + k, "text": "5亿元", "value": 5e8 + i,
              "unit": "元", "qualifier": None if k else "累计", "date": "2023", "category": "资金",
              "regions": [{"name": "宁夏回族自治区", "code": "640000"}, "固原市"], "sentence": [0, 30]}
             for k in range(i % 3)]
    partners = [{"helper": {"name": "福建省", "code": "350000", "province": "福建省", "level": "province"},
                 "recipient": {"name": "宁夏回族自治区", "code": "640000", "province": "宁夏回族自治区",
                               "level": "province"}}] if i % 2 else []
    return {"id": f"doc-{i:04d}", "source": f"input/{i}.txt", "text": text,
            "entities": [{"start": 0, "end": 3, "label": "REGION", "text": text[:3], "score": 0.98}],
            "record": {"partners": partners, "facts": facts, "published": "2023-05-01" if i % 2 else None}}
'''
exec(MAKE_DOC)


def read_jsonl(path: Path) -> list[dict]:
    data = path.read_bytes()
    assert not data or data.endswith(b"\n")
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def read_table(path: Path, fmt: str) -> list[dict]:
    if fmt == "parquet":
        return pq.read_table(path).to_pylist()
    options = pacsv.ConvertOptions(column_types=arrow_schema(), strings_can_be_null=True)
    return pacsv.read_csv(path, convert_options=options).to_pylist()


def test_fact_rows_flatten_partners_facts_and_regions():
    doc = make_doc(5)
    doc["record"]["partners"].append({"helper": {"name": "厦门市", "code": "350200"},
                                      "recipient": {"name": "固原市"}})
    rows = fact_rows(doc)
    assert len(rows) == 2 and all(tuple(row) == COLUMNS for row in rows)
    assert rows[0]["helper_name"] == "福建省;厦门市" and rows[0]["helper_code"] == "350000;350200"
    assert rows[0]["recipient_name"] == "宁夏回族自治区;固原市" and rows[0]["recipient_code"] == "640000;"
    assert rows[0]["regions"] == "宁夏回族自治区;固原市"
    assert (rows[1]["fact_index"], rows[1]["fact_start"], rows[1]["value"]) == (1, 21, 5e8 + 5)
    assert (rows[0]["qualifier"], rows[1]["qualifier"]) == ("累计", None)
    assert (rows[0]["sentence_start"], rows[0]["sentence_end"], rows[0]["published"]) == (0, 30, "2023-05-01")

    doc["record"]["facts"][1].update(kind="price", per="公斤", part_of={"text": "5亿元", "start": 20, "end": 24})
    priced = fact_rows(doc)[1]
    assert (priced["kind"], priced["per"], priced["part_of_start"]) == ("price", "公斤", 20)
    assert (rows[0]["kind"], rows[0]["per"], rows[0]["part_of_start"]) == (None, None, None)

    [empty] = fact_rows(make_doc(0))
    assert empty["id"] == "doc-0000" and empty["source"] == "input/0.txt"
    assert all(empty[c] is None for c in COLUMNS if c not in ("id", "source"))


def test_fact_rows_reject_values_a_table_cannot_hold():
    doc = make_doc(1)
    doc["record"]["facts"][0]["value"] = "5亿"
    with pytest.raises(TypeError):
        fact_rows(doc)
    doc["record"]["facts"][0]["value"] = float("nan")
    with pytest.raises(ValueError):
        fact_rows(doc)


def test_jsonl_output_errors_and_resume_after_a_torn_line(tmp_path):
    out = tmp_path / "out.jsonl"
    with ResumableRun(out, "jsonl") as run:
        for i in range(3):
            run.write(make_doc(i))
        run.error("bad-1", "input/bad.bin", "binary data")
        with pytest.raises(ValueError):
            run.write(make_doc(1))
    assert [d["id"] for d in read_jsonl(out)] == ["doc-0000", "doc-0001", "doc-0002"]
    assert read_jsonl(out)[1] == make_doc(1)
    assert "宁夏" in out.read_text(encoding="utf-8")  # ensure_ascii=False
    assert read_jsonl(errors_path_for(out)) == [{"id": "bad-1", "source": "input/bad.bin", "reason": "binary data"}]

    with out.open("ab") as f:  # a kill -9 in the middle of writing doc-0003
        f.write(json.dumps(make_doc(3), ensure_ascii=False).encode()[:57])
    with errors_path_for(out).open("ab") as f:
        f.write(b'{"id": "bad-2", "sou')
    with ResumableRun(out, "jsonl", retry_failed=False) as run:
        assert [run.done(f"doc-{i:04d}") for i in range(4)] == [True, True, True, False]
        assert run.done("bad-1") and not run.done("bad-2")
        for i in range(3, 6):
            run.write(make_doc(i))
        run.error("bad-2", "input/bad2", "empty document")
    assert [d["id"] for d in read_jsonl(out)] == [f"doc-{i:04d}" for i in range(6)]
    assert [e["id"] for e in read_jsonl(errors_path_for(out))] == ["bad-1", "bad-2"]


def test_failed_documents_are_retried_on_rerun_and_logged_once(tmp_path):
    out = tmp_path / "out.jsonl"
    with ResumableRun(out, "jsonl") as run:
        run.write(make_doc(0))
        run.error("bad-1", "in/bad1", "not UTF-8")
        run.error("bad-2", "in/bad2", "empty document")
    with ResumableRun(out, "jsonl") as run:  # bad-1 was fixed, bad-2 still fails
        assert run.retrying == 2 and run.done("doc-0000") and not run.done("bad-1") and not run.done("bad-2")
        run.write(make_doc(1) | {"id": "bad-1"})
        run.error("bad-2", "in/bad2", "empty document")
    assert [d["id"] for d in read_jsonl(out)] == ["doc-0000", "bad-1"]
    assert [e["id"] for e in read_jsonl(errors_path_for(out))] == ["bad-2"]
    with ResumableRun(out, "jsonl") as run:
        run.write(make_doc(2) | {"id": "bad-2"})
    assert not errors_path_for(out).exists()  # no errors left: no errors file


def test_a_damaged_or_foreign_jsonl_file_is_refused_not_truncated(tmp_path):
    out = tmp_path / "out.jsonl"
    content = json.dumps(make_doc(0), ensure_ascii=False) + "\n" + '{"no_id": 1}\n' + '{"id": "x"}'
    out.write_text(content, encoding="utf-8")
    with pytest.raises(OutputError, match="out.jsonl:2"):
        ResumableRun(out, "jsonl")
    assert out.read_text(encoding="utf-8") == content


def test_one_process_at_a_time(tmp_path):
    with ResumableRun(tmp_path / "out.csv", "csv"):
        with pytest.raises(OutputError, match="another running process"):
            ResumableRun(tmp_path / "out.csv", "csv")
    ResumableRun(tmp_path / "out.csv", "csv").close()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_table_round_trip_one_row_per_fact_and_resume(tmp_path, fmt):
    out = tmp_path / f"out.{fmt}"
    with ResumableRun(out, fmt, batch_size=2) as run:
        for i in range(5):
            run.write(make_doc(i))
    expected = [row for i in range(5) for row in fact_rows(make_doc(i))]
    assert read_table(out, fmt) == expected
    assert not Path(f"{out}.parts").exists()

    with ResumableRun(out, fmt, batch_size=2) as run:
        assert all(run.done(f"doc-{i:04d}") for i in range(5))
        for i in range(5, 8):
            run.write(make_doc(i))
    expected += [row for i in range(5, 8) for row in fact_rows(make_doc(i))]
    assert read_table(out, fmt) == expected
    if fmt == "csv":
        assert out.read_bytes().startswith(b"\xef\xbb\xbf" + ",".join(COLUMNS).encode())


def test_csv_writes_whole_values_as_integers(tmp_path):
    doc = make_doc(5)
    doc["record"]["facts"][1]["value"] = 0.25
    with ResumableRun(tmp_path / "out.csv", "csv") as run:
        run.write(doc)
    text = (tmp_path / "out.csv").read_text(encoding="utf-8-sig")
    assert ",500000005," in text and ",0.25," in text and "500000005.0" not in text
    assert [row["value"] for row in read_table(tmp_path / "out.csv", "csv")] == [500000005, 0.25]


MODEL_A = {"name": "default", "weights": "3f2a9c1b4d5e", "backend": "torch"}
MODEL_B = {"name": "run-2", "weights": "91ab07c2e4f8", "backend": "torch"}


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_an_output_records_its_model_and_refuses_another(tmp_path, fmt):
    out = tmp_path / f"out.{fmt}"
    with ResumableRun(out, fmt, model=model_label(MODEL_A)) as run:
        run.write(make_doc(1) | {"model": MODEL_A, "replaced": 2})
        run.error("bad-1", "in/bad1", "not UTF-8")
    if fmt == "jsonl":
        assert read_jsonl(out)[0]["model"] == MODEL_A
    else:
        rows = read_table(out, fmt)
        assert {(r["model"], r["replaced"]) for r in rows} == {("default (weights 3f2a9c1b4d5e, torch)", 2)}
    before = out.read_bytes(), errors_path_for(out).read_bytes()
    for other in (MODEL_B, MODEL_A | {"backend": "onnx"}):
        with pytest.raises(OutputError, match=r"holds documents tagged by default \(weights 3f2a9c1b4d5e, torch\)"):
            ResumableRun(out, fmt, model=model_label(other))
        assert (out.read_bytes(), errors_path_for(out).read_bytes()) == before  # refused: nothing changed
    with ResumableRun(out, fmt, model=model_label(MODEL_A)) as run:  # the same model resumes
        assert run.done("doc-0001") and run.retrying == 1
    with ResumableRun(out, fmt, model=None) as run:  # no model given (eastwest tag --force): mixing allowed
        run.write(make_doc(2) | {"model": MODEL_B})


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_empty_run_still_leaves_a_valid_table(tmp_path, fmt):
    ResumableRun(tmp_path / f"out.{fmt}", fmt).close()
    assert read_table(tmp_path / f"out.{fmt}", fmt) == []


WRITER_SCRIPT = MAKE_DOC + textwrap.dedent('''
    import os, sys, time
    from eastwest.inference.writers import ResumableRun
    out, fmt, n, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    run = ResumableRun(out, fmt, batch_size=7)
    for i in range(n):
        doc_id = f"doc-{i:04d}"
        if run.done(doc_id):
            continue
        if i % 17 == 0:
            run.error(doc_id, f"input/{i}.txt", "not decodable")
        else:
            run.write(make_doc(i, text_size=20_000))
        print(i, flush=True)
        if mode == "slow":
            time.sleep(0.002)
    if mode == "abandon":
        os._exit(0)  # like a crash: no close()
    run.close()
''')


def run_writer(tmp_path: Path, out: Path, fmt: str, n: int, mode: str) -> subprocess.Popen:
    script = tmp_path / "writer.py"
    script.write_text(WRITER_SCRIPT, encoding="utf-8")
    return subprocess.Popen([sys.executable, str(script), str(out), fmt, str(n), mode], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})


def assert_exactly_once(out: Path, fmt: str, n: int) -> None:
    errors = [e["id"] for e in read_jsonl(errors_path_for(out))]
    assert errors == [f"doc-{i:04d}" for i in range(0, n, 17)]
    if fmt == "jsonl":
        written = [d["id"] for d in read_jsonl(out)]
    else:
        rows = read_table(out, fmt)
        assert len(rows) == sum(max(1, i % 3) for i in range(n) if i % 17)
        written = list(dict.fromkeys(row["id"] for row in rows))
    assert sorted(written) == [f"doc-{i:04d}" for i in range(n) if i % 17]
    assert len(written) == len(set(written))


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_kill_9_mid_run_then_resume_gives_every_document_exactly_once(tmp_path, fmt):
    out, n = tmp_path / f"out.{fmt}", 150
    first = run_writer(tmp_path, out, fmt, n, "slow")
    for _ in range(60):  # let it get well into the run
        assert first.stdout.readline(), "the writer ended early"
    first.send_signal(signal.SIGKILL)
    first.wait()
    first.stdout.close()

    second = run_writer(tmp_path, out, fmt, n, "fast")
    resumed = [int(line) for line in second.communicate()[0].split()]
    assert second.returncode == 0
    fresh = [i for i in resumed if i % 17]  # the failures (every 17th) are retried, the rest resumed
    assert fresh and fresh[0] >= 50  # it did not start over
    assert_exactly_once(out, fmt, n)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_crash_between_merge_and_part_cleanup(tmp_path, fmt):
    out, n = tmp_path / f"out.{fmt}", 40
    crashed = run_writer(tmp_path, out, fmt, n, "abandon")
    crashed.communicate()
    parts = Path(f"{out}.parts")
    assert not out.exists() and len(list(parts.iterdir())) == 5  # 35 documents in parts, 2 lost in the buffer
    shutil.copytree(parts, tmp_path / "parts-copy")

    with ResumableRun(out, fmt, retry_failed=False) as run:
        missing = [i for i in range(n) if not run.done(f"doc-{i:04d}")]
        assert len(missing) == 2
        for i in missing:
            run.write(make_doc(i, text_size=20_000))
    shutil.copytree(tmp_path / "parts-copy", parts)  # as if the merging run died before deleting them
    Path(f"{out}.tmp").write_bytes(b"half a merged file")

    with ResumableRun(out, fmt, retry_failed=False) as run:
        assert all(run.done(f"doc-{i:04d}") for i in range(n))
    assert not parts.exists() and not Path(f"{out}.tmp").exists()
    assert_exactly_once(out, fmt, n)
