"""`eastwest tag` at archive scale: worker processes, kill -9 and resume, and the Ray engine,
each compared with the plain single-process run on the same inputs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq

from .conftest import REPO, SEEDS


def _reports(folder, n: int, size: int = 300) -> list[str]:
    """n short reports cut from the seed articles (real text, real entities), one file each."""
    text = "".join(p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))).replace("\n", "")
    folder.mkdir()
    names = []
    for i in range(n):
        start = (i * 97) % (len(text) - size)
        name = f"{i // 100:02d}/report-{i:05d}.txt"
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_text(text[start : start + size], encoding="utf-8")
        names.append(name)
    return names


def _eastwest(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "eastwest", "tag", "-q", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_workers_write_what_one_process_writes(tmp_path, tiny_model_dir):
    _reports(tmp_path / "in", 70)
    outputs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}.jsonl"
        proc = _eastwest(str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_model_dir), "--workers", str(workers))
        assert proc.wait() == 0, proc.stderr.read()
        outputs[workers] = out.read_text(encoding="utf-8")
    assert outputs[1] == outputs[2]  # same documents, same spans, same input order
    assert len(outputs[1].splitlines()) == 70


def test_kill_9_during_eastwest_tag_then_rerun_gives_every_document_once(tmp_path, tiny_model_dir):
    names = _reports(tmp_path / "in", 1500)
    out = tmp_path / "out.jsonl"
    args = (str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_model_dir), "--batch-size", "8")
    first = _eastwest(*args, start_new_session=True)
    deadline = time.time() + 300
    while not (out.exists() and out.read_bytes().count(b"\n") >= 200):
        assert first.poll() is None, "the run ended before it could be interrupted"
        assert time.time() < deadline
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    done_before = out.read_bytes().count(b"\n")
    assert done_before < len(names)

    second = _eastwest(*args)
    _, stderr = second.communicate(timeout=600)
    assert second.returncode == 0, stderr
    assert f"{done_before} already done" in stderr  # resumed, not restarted
    ids = [d["id"] for d in _jsonl(out)]
    assert sorted(ids) == sorted(names) and len(ids) == len(set(ids))


def test_ray_engine_writes_what_the_local_engine_writes(tmp_path, tiny_model_dir):
    from eastwest.inference.cli import main

    inputs = tmp_path / "in"
    _reports(inputs, 12)
    (inputs / "broken.txt").write_bytes(os.urandom(500) + b"\x00")
    (inputs / "empty.txt").write_bytes(b"")
    (inputs / "more.jsonl").write_text('{"id": "j1", "text": "天津市和平区投入3.3亿元。"}\nnot json\n', encoding="utf-8")
    model = ["--model", str(tiny_model_dir), "-q"]
    try:
        for fmt in ("parquet", "jsonl"):
            local, ray_out = tmp_path / f"local.{fmt}", tmp_path / f"ray-{fmt}"
            assert main(["tag", str(inputs), "-o", str(local), *model]) == 1  # 1: some documents failed
            assert main(["tag", str(inputs), "-o", str(ray_out), "--format", fmt, "--engine", "ray", "--workers", "2", *model]) == 1
            local_errors = sorted(e["id"] for e in _jsonl(tmp_path / f"local.{fmt}.errors.jsonl"))
            assert local_errors == ["broken.txt", "empty.txt", "more.jsonl:2"]
            if fmt == "parquet":
                ray_rows = pq.read_table(ray_out).to_pylist()
                assert sorted(r["id"] for r in ray_rows if r.pop("error") is not None) == local_errors
                ray_rows = [r for r in ray_rows if r["fact_label"] is not None or r["id"] not in local_errors]
                key = lambda r: (r["id"], r["fact_index"] if r["fact_index"] is not None else -1)  # noqa: E731
                assert sorted(ray_rows, key=key) == sorted(pq.read_table(local).to_pylist(), key=key)
            else:
                ray_docs = [d for part in sorted(ray_out.glob("*.jsonl")) for d in _jsonl(part)]
                assert sorted(d["id"] for d in ray_docs if "error" in d) == local_errors
                assert sorted((d for d in ray_docs if "error" not in d), key=lambda d: d["id"]) == \
                    sorted(_jsonl(local), key=lambda d: d["id"])
        good = tmp_path / "good"  # no failures at all: the error column is all nulls (NaN in numpy batches)
        _reports(good, 3)
        assert main(["tag", str(good), "-o", str(tmp_path / "ray-good"), "--format", "jsonl", "--engine", "ray", *model]) == 0
        lines = [d for part in sorted((tmp_path / "ray-good").glob("*.jsonl")) for d in _jsonl(part)]
        assert len(lines) == 3 and not any("error" in d for d in lines)
        assert main(["tag", str(inputs), "-o", str(tmp_path / "ray-parquet"), "--engine", "ray", *model]) == 2  # not empty
        assert main(["tag", str(inputs), "-o", str(tmp_path / "x.csv"), "--format", "csv", "--engine", "ray", *model]) == 2
    finally:
        import ray

        ray.shutdown()


def _bar_on_a_terminal(args) -> str:
    """What `eastwest tag ARGS` shows on a terminal (stderr) while it runs; it must exit 0."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a new pty is 0 columns wide
    proc = subprocess.Popen([sys.executable, "-m", "eastwest", "tag", *args], cwd=REPO, stderr=follower,
                            stdout=subprocess.DEVNULL)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    assert proc.wait() == 0
    os.close(leader)
    return shown.decode("utf-8", "replace")


def test_progress_bar_knows_the_total_on_a_terminal(tmp_path, tiny_model_dir):
    """On a TTY the bar counts documents against a total (so it can show an ETA), skipped ones too."""
    import zipfile

    import pyarrow as pa

    from eastwest.inference.batch import count_documents

    inputs = tmp_path / "in"
    _reports(inputs, 5)
    (inputs / "lines.jsonl").write_text('{"text": "天津市"}\n\n{"text": "会宁县"}\n{"text": "甘肃省"}\n', encoding="utf-8")
    with zipfile.ZipFile(inputs / "two.zip", "w") as archive:
        archive.writestr("a.txt", "天津市和平区")
        archive.writestr("b/c.txt", "甘肃省会宁县")
    pq.write_table(pa.table({"text": ["一", "二", "三", "四"]}), inputs / "rows.parquet")
    assert count_documents([str(inputs)]) == 5 + 3 + 2 + 4
    (tmp_path / "x.tar.gz").write_bytes(b"")
    assert count_documents([str(inputs), str(tmp_path / "x.tar.gz")]) is None

    out = tmp_path / "out.jsonl"
    for run in range(2):  # the second run: all 14 skipped, bar still full
        assert "14/14" in _bar_on_a_terminal([str(inputs), "-o", str(out), "--model", str(tiny_model_dir)])


def test_progress_bar_moves_with_every_long_document(tmp_path, tiny_model_dir):
    """Five reports, each longer than a group of batches, make one chunk; the bar moves while they
    are tagged, not only once all five are (it redraws at most every 0.1 s, so not every count
    need be drawn)."""
    _reports(tmp_path / "in", 5, size=6000)
    shown = _bar_on_a_terminal([str(tmp_path / "in"), "-o", str(tmp_path / "out.jsonl"), "--model", str(tiny_model_dir),
                                "--batch-size", "4"])
    assert any(f"{n}/5" in shown for n in (2, 3, 4)), shown
