"""The Tagger and `eastwest tag` with a tiny model trained in the test session."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eastwest.inference.tagger import ModelFolderError, Tagger

from .conftest import REPO, SEEDS


@pytest.fixture(scope="module")
def tagger(tiny_model_dir):
    return Tagger.load(tiny_model_dir, device="cpu", backend="torch")  # tests/test_onnx.py covers the other paths


def _check_spans(doc):
    previous_end = 0
    for e in doc.entities:
        assert e.text == doc.text[e.start : e.end]
        assert previous_end <= e.start < e.end <= len(doc.text)
        previous_end = e.end


def test_long_report_every_character_predicted_exactly_once(tagger):
    seeds = "".join(p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt")))
    text = (seeds * 2)[:20_000]
    [(same, tokens)] = list(tagger.predict_tokens([text], batch_size=8))
    assert same == text
    assert len(tokens.tags) == len(tokens.offsets) == len(tokens.scores) == tokens.probs.shape[0]
    covered = {i for start, end in tokens.offsets for i in range(start, end)}
    assert covered == {i for i, ch in enumerate(text) if not ch.isspace()}
    # tokens never overlap, except the pieces of one character that NFKC expands (… → ...)
    distinct = sorted(set(tokens.offsets))
    assert all(a[1] <= b[0] for a, b in zip(distinct, distinct[1:]))
    doc = tagger.tag(text)
    _check_spans(doc)
    assert doc.entities, "a trained model finds something in 20,000 characters of reports"


def test_batching_does_not_change_results(tagger):
    texts = [p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))]
    one_by_one = [tagger.tag(t).entities for t in texts]
    batched = [d.entities for d in tagger.tag_many(texts, batch_size=3, docs_per_chunk=2)]
    assert [[(e.start, e.end, e.label) for e in doc] for doc in one_by_one] == [[(e.start, e.end, e.label) for e in doc] for doc in batched]


def test_empty_and_whitespace_texts(tagger):
    for text in ("", " ", "\r\n\t"):
        doc = tagger.tag(text)
        assert doc.entities == [] and doc.record["facts"] == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.one_of(
    st.characters(codec="utf-8"),
    st.sampled_from(list("天津市和平区帮扶会宁县投入３.３亿元2086人😀𠀀\r\n\x00１２")),
), max_size=300))
def test_entity_text_is_always_the_source_slice(tagger, text):
    doc = tagger.tag(text)
    _check_spans(doc)
    json.loads(doc.to_json())


def test_document_json_has_the_contract_keys(tagger):
    doc = tagger.tag("2021年4月，天津市和平区帮扶甘肃省会宁县投入3.3亿元，带动2086人就业。")
    data = json.loads(doc.to_json())
    assert set(data) >= {"id", "source", "text", "entities", "record"}
    assert set(data["record"]) >= {"partners", "facts", "published"}


def test_tag_none_is_a_clear_type_error(tagger):
    with pytest.raises(TypeError, match=r"Tagger.tag takes the text of a report \(str\), not NoneType"):
        tagger.tag(None)


def test_bf16_precision_runs_the_encoder_in_bf16_and_agrees_with_fp32(tagger):
    import torch

    from eastwest.inference.devices import pick_precision

    texts = [p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))[:2]]
    fp32 = [tokens for _, tokens in Tagger(tagger.model, tagger.tokenizer, device="cpu", precision="fp32").predict_tokens(texts)]
    bf16 = [tokens for _, tokens in Tagger(tagger.model, tagger.tokenizer, device="cpu", precision="bf16").predict_tokens(texts)]
    same = sum(x == y for a, b in zip(fp32, bf16) for x, y in zip(a.tags, b.tags))
    assert same / sum(len(a.tags) for a in fp32) >= 0.97  # bf16 rounding flips only near-ties
    assert any(not np.array_equal(a.probs, b.probs) for a, b in zip(fp32, bf16))  # and it did run in bf16
    assert pick_precision("fp32", torch.device("cpu")) == "fp32"
    assert pick_precision("auto", torch.device("cpu")) in ("fp32", "bf16")
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        Tagger(tagger.model, tagger.tokenizer, device="cpu", precision="fp16")


def test_model_folder_missing_files_is_named(tmp_path, tiny_model_dir):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    with pytest.raises(ModelFolderError, match="missing tokenizer.json, model.safetensors or pytorch_model.bin"):
        Tagger.load(folder)
    with pytest.raises(ModelFolderError, match="does not exist"):
        Tagger.load(tmp_path / "nowhere")


def _tag(*args, stdin=None, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "eastwest", "tag", "-q", *args], input=stdin,
                          capture_output=True, text=stdin is not None or None, cwd=cwd)


def test_tag_cli_jsonl_with_a_bad_file_in_the_batch(tmp_path, tiny_model_dir):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for seed in sorted(SEEDS.glob("*.txt"))[:3]:
        (inputs / seed.name).write_bytes(seed.read_bytes())
    (inputs / "broken.txt").write_bytes(os.urandom(2000) + b"\x00\x01")
    (inputs / "empty.txt").write_bytes(b"")
    out = tmp_path / "out.jsonl"
    proc = _tag(str(inputs), "-o", str(out), "--model", str(tiny_model_dir))
    assert proc.returncode == 1, proc.stderr  # some documents failed: listed in the errors file
    assert "3 documents tagged, 2 errors" in proc.stderr.decode()
    docs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(d["id"] for d in docs) == sorted(p.name for p in sorted(SEEDS.glob("*.txt"))[:3])
    for d in docs:
        assert set(d) >= {"id", "source", "text", "entities", "record"}
        assert all(d["text"][e["start"]:e["end"]] == e["text"] for e in d["entities"])
    errors = [json.loads(line) for line in (tmp_path / "out.jsonl.errors.jsonl").read_text().splitlines()]
    assert sorted(e["id"] for e in errors) == ["broken.txt", "empty.txt"]
    again = _tag(str(inputs), "-o", str(out), "--model", str(tiny_model_dir), "--no-retry-failed")  # nothing twice
    assert again.returncode == 0 and "5 already done" in again.stderr.decode()
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3
    (inputs / "empty.txt").write_text("天津市和平区帮扶甘肃省会宁县。", encoding="utf-8")  # fixed: a rerun retries it
    fixed = _tag(str(inputs), "-o", str(out), "--model", str(tiny_model_dir))
    assert fixed.returncode == 1 and "retrying 2 documents" in fixed.stderr.decode()
    assert "1 document tagged, 1 error" in fixed.stderr.decode()
    assert sorted(json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()) == \
        sorted([p.name for p in sorted(SEEDS.glob("*.txt"))[:3]] + ["empty.txt"])
    errors = [json.loads(line)["id"] for line in (tmp_path / "out.jsonl.errors.jsonl").read_text().splitlines()]
    assert errors == ["broken.txt"]


def test_tag_cli_exit_codes_for_nothing_to_tag(tmp_path, tiny_model_dir):
    missing = _tag(str(tmp_path / "no-such-file.txt"), "-o", str(tmp_path / "a.jsonl"), "--model", str(tiny_model_dir))
    assert missing.returncode == 1 and b"Traceback" not in missing.stderr  # reported as a failed document
    empty = _tag("--model", str(tiny_model_dir), stdin="")
    assert empty.returncode == 1 and "<stdin> (-): empty document" in empty.stderr
    (tmp_path / "nothing").mkdir()
    nothing = _tag(str(tmp_path / "nothing"), "-o", str(tmp_path / "b.jsonl"), "--model", str(tiny_model_dir))
    assert nothing.returncode == 2 and b"no documents in" in nothing.stderr and b"Traceback" not in nothing.stderr


def test_tag_cli_csv_and_parquet_rows_per_fact(tmp_path, tiny_model_dir):
    seed = sorted(SEEDS.glob("*.txt"))[0]
    for fmt in ("csv", "parquet"):
        out = tmp_path / f"out.{fmt}"
        proc = _tag(str(seed), "-o", str(out), "--model", str(tiny_model_dir))
        assert proc.returncode == 0, proc.stderr
        if fmt == "csv":
            with open(out, encoding="utf-8-sig", newline="") as f:
                rows = list(csv.DictReader(f))
        else:
            rows = pq.read_table(out).to_pylist()
        assert rows and all(r["id"] == seed.name for r in rows)


def test_tag_cli_reads_stdin_and_python_dash_m(tiny_model_dir):
    proc = _tag("--model", str(tiny_model_dir), stdin="天津市和平区帮扶甘肃省会宁县。")
    assert proc.returncode == 0, proc.stderr
    [doc] = [json.loads(line) for line in proc.stdout.splitlines()]
    assert doc["id"] == "<stdin>" and doc["text"] == "天津市和平区帮扶甘肃省会宁县。"


def _jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _one_line(proc) -> str:
    stderr = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode()
    assert proc.returncode == 2 and len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr, stderr
    return stderr


def test_records_name_their_model_and_another_model_is_refused(tmp_path, tiny_model_dir):
    import shutil

    from safetensors.torch import load_file, save_file

    seeds = sorted(SEEDS.glob("*.txt"))[:2]
    out = tmp_path / "out.jsonl"
    torch = ("--backend", "torch")  # the identity is the point here; tests/test_onnx.py covers the backends
    assert _tag(str(seeds[0]), "-o", str(out), "--model", str(tiny_model_dir), *torch).returncode == 0
    [first] = _jsonl(out)
    assert first["model"]["name"] == tiny_model_dir.name and first["model"]["backend"] == "torch"
    assert len(first["model"]["weights"]) == 12 and first["replaced"] == 0
    assert first["model"]["precision"] == Tagger.load(tiny_model_dir, device="cpu", backend="torch").precision  # auto: what ran

    retrained = shutil.copytree(tiny_model_dir, tmp_path / "v2" / tiny_model_dir.name)  # same name, new weights
    weights = load_file(retrained / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] + 0.01
    save_file(weights, retrained / "model.safetensors", metadata={"format": "pt"})
    before = out.read_bytes()
    refused = _tag(*map(str, seeds), "-o", str(out), "--model", str(retrained), *torch)
    assert "holds documents tagged by" in _one_line(refused) and "--force" in refused.stderr.decode()
    assert out.read_bytes() == before
    forced = _tag(*map(str, seeds), "-o", str(out), "--model", str(retrained), "--force", *torch)
    assert forced.returncode == 0 and "1 document tagged" in forced.stderr.decode() and "1 already done" in forced.stderr.decode()
    models = [d["model"] for d in _jsonl(out)]
    assert models[0] == first["model"] and models[1]["name"] == first["model"]["name"]
    assert models[1]["weights"] != first["model"]["weights"]


def test_two_folders_both_holding_report_txt_are_both_tagged(tmp_path, tiny_model_dir):
    text = sorted(SEEDS.glob("*.txt"))[0].read_text(encoding="utf-8")[:400]
    for site in ("site-a", "site-b"):
        (tmp_path / site).mkdir()
        (tmp_path / site / "report.txt").write_text(text, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    proc = _tag(str(tmp_path / "site-a"), str(tmp_path / "site-b"), "-o", str(out), "--model", str(tiny_model_dir))
    assert proc.returncode == 0 and "2 documents tagged, 0 errors" in proc.stderr.decode(), proc.stderr
    assert [d["id"] for d in _jsonl(out)] == ["site-a/report.txt", "site-b/report.txt"]


def test_errors_replace_and_max_bytes_let_a_rerun_tag_what_failed(tmp_path, tiny_model_dir):
    text = sorted(SEEDS.glob("*.txt"))[0].read_text(encoding="utf-8")
    short, k = text[:500], text.index("\n") + 1  # under 2000 bytes, with a stray byte after its first line
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "stray.txt").write_bytes(short[:k].encode() + b"\xff" + short[k:].encode())
    (tmp_path / "in" / "long.txt").write_text(text, encoding="utf-8")
    out, model = tmp_path / "out.jsonl", ("--model", str(tiny_model_dir))
    strict = _tag(str(tmp_path / "in"), "-o", str(out), "--max-bytes", "2000", *model)
    assert strict.returncode == 1 and "0 documents tagged, 2 errors" in strict.stderr.decode()
    reasons = {e["id"]: e["reason"] for e in _jsonl(tmp_path / "out.jsonl.errors.jsonl")}
    assert "not UTF-8" in reasons["stray.txt"] and "2000-byte limit" in reasons["long.txt"]
    lenient = _tag(str(tmp_path / "in"), "-o", str(out), "--errors", "replace", "--max-bytes", "0", *model)
    assert lenient.returncode == 0 and "2 documents tagged, 0 errors" in lenient.stderr.decode(), lenient.stderr
    docs = {d["id"]: d for d in _jsonl(out)}
    assert docs["stray.txt"]["replaced"] == 1 and docs["stray.txt"]["text"] == short[:k] + "\ufffd" + short[k:]
    assert docs["long.txt"]["replaced"] == 0 and docs["long.txt"]["text"] == text


def test_lines_reads_one_document_per_line_of_stdin(tmp_path, tiny_model_dir):
    proc = _tag("--lines", "--model", str(tiny_model_dir), stdin="天津市和平区帮扶会宁县。\n\n甘肃省会宁县。\n")
    assert proc.returncode == 0, proc.stderr
    assert [(d["id"], d["text"]) for d in map(json.loads, proc.stdout.splitlines())] == [
        ("<stdin>:1", "天津市和平区帮扶会宁县。"), ("<stdin>:3", "甘肃省会宁县。")]
    assert "standard input" in _one_line(_tag(str(SEEDS), "--lines", "--model", str(tiny_model_dir)))


def test_setup_errors_are_one_line_with_exit_status_2(tmp_path, tiny_model_dir):
    import torch

    from eastwest.inference.writers import ResumableRun

    model = ("--model", str(tiny_model_dir))
    seed = str(sorted(SEEDS.glob("*.txt"))[0])
    if not torch.cuda.is_available():
        assert "CUDA is not available" in _one_line(_tag(seed, "--device", "cuda", *model))
    assert "not a device name" in _one_line(_tag(seed, "--device", "gpu0", *model))
    assert "there is no folder" in _one_line(_tag(seed, "-o", str(tmp_path / "no" / "out.jsonl"), *model))
    with ResumableRun(tmp_path / "busy.csv", "csv"):  # as another running `eastwest tag` would
        assert "held by another running process" in _one_line(_tag(seed, "-o", str(tmp_path / "busy.csv"), *model))
    several = tmp_path / "two.jsonl"
    several.write_text('{"text": "天津市"}\n{"text": "会宁县"}\n', encoding="utf-8")
    show = subprocess.run([sys.executable, "-m", "eastwest", "show", str(several), *model], capture_output=True, cwd=REPO)
    assert "holds several documents" in _one_line(show)


def _on_a_terminal(args, typed: bytes = b"") -> tuple[int, str, str]:
    """Run `eastwest tag ARGS` with a terminal as standard input; type `typed` into it."""
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "eastwest", "tag", "-q", *args], stdin=follower,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    os.close(follower)
    os.write(leader, typed)
    stdout, stderr = proc.communicate(timeout=300)
    os.close(leader)
    return proc.returncode, stdout.decode(), stderr.decode()


def test_no_input_on_a_terminal_gives_a_hint_instead_of_waiting(tiny_model_dir):
    code, _, stderr = _on_a_terminal(["--model", str(tiny_model_dir)])
    assert code == 2 and "no input" in stderr and "eastwest tag -" in stderr
    code, stdout, stderr = _on_a_terminal(["-", "--model", str(tiny_model_dir)], "天津市和平区帮扶会宁县。\n\x04".encode())
    assert code == 0 and "Ctrl-D" in stderr and json.loads(stdout)["text"] == "天津市和平区帮扶会宁县。\n"


def test_ctrl_c_flushes_and_exits_130_and_the_rerun_goes_on(tmp_path, tiny_model_dir):
    import signal
    import time

    import threading

    lines = [f"第{i}篇：天津市和平区帮扶甘肃省会宁县，投入{i}亿元。\n" for i in range(40)]
    out = tmp_path / "out.jsonl"
    args = [sys.executable, "-m", "eastwest", "tag", "-q", "--lines", "-o", str(out), "--model", str(tiny_model_dir)]
    # As at a terminal: SIGINT at its default, even when the tests run in a background job (a shell
    # starts those with SIGINT ignored, and an ignored signal stays ignored across exec). faulthandler:
    # if the process does not exit, SIGABRT makes it print every thread's stack.
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
                            env={**os.environ, "PYTHONFAULTHANDLER": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    captured: list[bytes] = []  # drained all along, so a full stderr pipe can never block the process
    drain = threading.Thread(target=lambda: captured.append(proc.stderr.read()), daemon=True)
    drain.start()
    proc.stdin.write("".join(lines[:32]).encode())  # one chunk: tagged while stdin stays open
    proc.stdin.flush()
    deadline = time.time() + 300
    while not (out.exists() and out.read_bytes().count(b"\n") == 32):
        assert proc.poll() is None and time.time() < deadline, "tagging did not finish"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)  # while the reader thread waits for more input
    try:
        proc.wait(timeout=120)  # stdin still open, as a terminal's is: the reader is still blocked at exit
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        proc.wait(timeout=30)
        drain.join(timeout=30)
        pytest.fail(f"no exit 120 s after SIGINT; its threads: {b''.join(captured).decode(errors='replace')[-4000:]}")
    drain.join(timeout=30)
    stderr = b"".join(captured).decode()
    proc.stdin.close()
    assert proc.returncode == 130, stderr
    assert "interrupted: 32 documents tagged" in stderr and "Fatal Python error" not in stderr and "Traceback" not in stderr
    rerun = subprocess.run(args, input="".join(lines).encode(), capture_output=True, cwd=REPO)
    assert rerun.returncode == 0 and "8 documents tagged, 0 errors, 32 already done" in rerun.stderr.decode()
    assert [d["id"] for d in _jsonl(out)] == [f"<stdin>:{i}" for i in range(1, 41)]


def test_package_metadata_names_its_authors_and_version():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["authors"] == [{"name": "eastwest-ner developers"}]
    proc = subprocess.run([sys.executable, "-m", "eastwest", "--version"], capture_output=True, text=True, cwd=REPO)
    assert proc.stdout.strip() == f"eastwest-ner {project['version']}"


def test_train_refuses_to_replace_the_shipped_model_without_force():
    proc = subprocess.run([sys.executable, "-m", "eastwest", "train", "configs/default.yaml"], cwd=REPO,
                          capture_output=True, timeout=120)
    assert proc.returncode == 2 and b"--force" in proc.stderr and b"Traceback" not in proc.stderr


def test_tag_cli_missing_model_is_one_line(tmp_path):
    proc = _tag(str(SEEDS), "--model", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert b"does not exist" in proc.stderr and b"Traceback" not in proc.stderr


def _valid_iob2(tags) -> bool:
    return all(not t.startswith("I-") or (p in ("B-" + t[2:], t)) for p, t in zip(["O", *tags], tags))


def test_viterbi_matches_brute_force_over_valid_sequences():
    """The reference: enumerate every valid IOB2 sequence of a short text and take the best product."""
    import itertools
    import math

    import torch

    from eastwest.inference.bio import viterbi_decode

    tags = ["O", "B-A", "I-A", "B-B", "I-B"]
    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        probs = torch.rand((5, len(tags)), generator=generator).softmax(-1)
        best = max((seq for seq in itertools.product(range(len(tags)), repeat=5) if _valid_iob2([tags[i] for i in seq])),
                   key=lambda seq: sum(math.log(probs[t, i]) for t, i in enumerate(seq)))
        decoded, scores = viterbi_decode(probs, tags)
        assert decoded == [tags[i] for i in best]
        assert scores == pytest.approx([float(probs[t, i]) for t, i in enumerate(best)])


def test_viterbi_decodes_sequences_of_different_lengths_together():
    """The batched decoder gives every sequence its own brute-force best path, whatever the
    lengths around it (empty, one token, longer and shorter than its neighbours)."""
    import itertools
    import math

    import numpy as np

    from eastwest.inference.bio import viterbi_decode_many

    tags = ["O", "B-A", "I-A", "B-B", "I-B"]
    rng = np.random.default_rng(1)
    for _ in range(10):
        lengths = rng.integers(0, 6, size=6).tolist()  # 5 next to 1-2: several length groups
        sequences = [rng.dirichlet(np.ones(len(tags)), size=n).astype(np.float32) for n in lengths]
        decoded = viterbi_decode_many(sequences, tags)
        assert len(decoded) == len(sequences)
        for probs, (got, scores) in zip(sequences, decoded):
            n = len(probs)
            best = max((seq for seq in itertools.product(range(len(tags)), repeat=n) if _valid_iob2([tags[i] for i in seq])),
                       key=lambda seq: sum(math.log(probs[t, i]) for t, i in enumerate(seq)))
            assert got == [tags[i] for i in best], (lengths, n)
            assert scores == pytest.approx([float(probs[t, i]) for t, i in enumerate(best)])


def test_viterbi_never_mixes_labels_inside_an_entity(tagger):
    """Greedy decoding can emit B-PEOPLE_COUNT I-PROJECT_COUNT; the Tagger's default cannot."""
    import torch

    from eastwest.inference.bio import viterbi_decode

    tags = tagger.tag_order
    probs = torch.full((3, len(tags)), 0.01)
    probs[0, tags.index("B-PEOPLE_COUNT")] = 0.6  # "2"
    probs[1, tags.index("I-PROJECT_COUNT")] = 0.5  # "9"
    probs[1, tags.index("I-PEOPLE_COUNT")] = 0.3
    probs[2, tags.index("I-PROJECT_COUNT")] = 0.5  # "个"
    probs[2, tags.index("I-PEOPLE_COUNT")] = 0.4
    decoded, _ = viterbi_decode(probs, tags)
    assert decoded == ["B-PEOPLE_COUNT", "I-PEOPLE_COUNT", "I-PEOPLE_COUNT"]
    (_, tokens), = tagger.predict_tokens(["2021年4月，天津市和平区帮扶会宁县29个项目，带动2086人就业。" * 20])
    assert _valid_iob2(tokens.tags)
    assert viterbi_decode(torch.zeros((0, len(tags))), tags) == ([], [])


def test_pad_batch_wraps_pads_and_places_types():
    from eastwest.inference.windows import pad_batch

    ids, mask, types = pad_batch([[5, 6, 7], [8]], 0, [[1, 2, 3], None], cls_id=101, sep_id=102)
    assert ids.tolist() == [[101, 5, 6, 7, 102], [101, 8, 102, 0, 0]]
    assert mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert types.tolist() == [[0, 1, 2, 3, 0], [0, 0, 0, 0, 0]]
    ids, mask, types = pad_batch([[101, 5, 102], [101, 102]], 9, [[0, 3, 0], [0, 0]], width=4)  # rows as they are
    assert ids.tolist() == [[101, 5, 102, 9], [101, 102, 9, 9]] and mask.tolist() == [[1, 1, 1, 0], [1, 1, 0, 0]]
    assert types.tolist() == [[0, 3, 0, 0], [0, 0, 0, 0]] and str(ids.dtype) == "int64"


def test_a_damaged_tokenizer_is_a_one_line_error(tmp_path, tiny_model_dir):
    import shutil

    folder = shutil.copytree(tiny_model_dir, tmp_path / "model", ignore=shutil.ignore_patterns("*.onnx"))
    (folder / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelFolderError, match="unreadable tokenizer"):
        Tagger.load(folder, backend="torch")
