"""The wheel, as a new user gets it: built from this checkout, installed in a fresh virtualenv, and
run from an unrelated folder. Only `eastwest` may be a top-level name in it, and the label set,
categories, pairings and the shipped model must travel inside it.

Fast and offline: the wheel is built without build isolation (setuptools from the test extra), and
the fresh virtualenv borrows this environment's installed dependencies (torch, transformers …)
through a .pth line placed after its own site-packages, so the installed wheel, not this checkout,
is what `eastwest` runs. Nothing is downloaded from a package index or a model hub.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from .conftest import REPO, SEEDS

pytestmark = pytest.mark.slow

PACKAGE_DATA = [
    "eastwest/configs/labels.yaml",
    "eastwest/configs/categories.yaml",
    "eastwest/configs/pairings.yaml",
    "eastwest/models/default/config.json",
    "eastwest/models/default/tokenizer.json",
    "eastwest/models/default/model.safetensors",
]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                           str(REPO)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = out.glob("eastwest_ner-*.whl")
    return path


def test_the_wheel_holds_one_namespace_and_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"eastwest"}, top
    for name in PACKAGE_DATA + ["eastwest/__main__.py", "eastwest/inference/tagger.py", "eastwest/training/train.py"]:
        assert name in names, name
    assert not [n for n in names if n.endswith(".onnx") or "/cache/" in n or n.startswith("eastwest/tests")]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "eastwest = eastwest.inference.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_installed_wheel_tags_a_report_from_another_folder(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # this environment's dependencies, after the fresh site-packages (a plain path line: the
    # editable install's own .pth files there are not processed, so the checkout stays invisible)
    borrowed = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_borrowed_dependencies.pth").write_text("\n".join(sorted(borrowed)) + "\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                           str(wheel)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    work = tmp_path / "elsewhere"
    work.mkdir()
    seed = sorted(SEEDS.glob("*.txt"))[0]
    (work / "report.txt").write_bytes(seed.read_bytes())
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EASTWEST_MODEL", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"))

    where = subprocess.run([python, "-c", "import eastwest.inference, eastwest.inference.model_folder as m; "
                            "print(eastwest.inference.__file__); print(m.DEFAULT_MODEL_DIR)"],
                           cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert where.returncode == 0, where.stderr[-3000:]
    package_file, model_dir = where.stdout.split()
    assert Path(package_file).is_relative_to(site) and Path(model_dir).is_relative_to(site), where.stdout
    for generic in ("inference", "training", "configs", "models"):
        gone = subprocess.run([python, "-c", f"import {generic}"], cwd=work, env=env, capture_output=True, text=True)
        assert gone.returncode != 0, f"`import {generic}` works after installing the wheel"

    tag = subprocess.run([venv / "bin" / "eastwest", "tag", "report.txt", "-o", "records.jsonl", "-q"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert tag.returncode == 0, tag.stderr[-3000:]
    (record,) = [json.loads(line) for line in (work / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    assert record["id"] == "report.txt" and record["model"]["name"] == "default"
    assert record["entities"] and record["record"]["facts"]
    for e in record["entities"]:
        assert record["text"][e["start"]:e["end"]] == e["text"]

    labels = subprocess.run([python, "-m", "eastwest", "labels"], cwd=work, env=env, capture_output=True, text=True,
                            timeout=120)
    assert labels.returncode == 0 and "REGION" in labels.stdout, labels.stderr[-2000:]
