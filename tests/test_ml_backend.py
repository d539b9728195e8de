"""`eastwest serve-ls` (training/ml_backend.py): the protocol with Starlette's test client, then the
whole loop against a real Label Studio server (the `label_studio` fixture in conftest.py): connect
the backend to a project, let Label Studio fetch predictions, annotate, press "Start Training".

Every model here is tiny and every training a few seconds; the machine may be shared, so the
server subprocess runs with one thread.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from eastwest.inference.schema import LABELS
from eastwest.training.labelstudio import model_version, predict_texts
from eastwest.training.ls_training import holdout_scores, loao_scores
from eastwest.training.ml_backend import BackendError, build_backend, check_address

from .conftest import GOLD, REPO, SEEDS, _free_port

HELD_OUT = "002_ad6c2b88aab27273.txt"
SECRET = "eastwest-shared-secret-for-tests"
BASE_URL = "http://127.0.0.1:9090"  # build_backend's default address: the Host header must name it


def tiny_recipe(base_dir, *extra: str) -> list[str]:
    """The --set overrides of tiny_model_dir's recipe (tests/conftest.py), with `extra` after them."""
    return [f"model.base={base_dir}", f"data.train=[{GOLD}]", f"data.eval_documents=[{HELD_OUT}]", "train.epochs=8",
            "train.batch_size=16", "train.learning_rate=0.005", "data.window=64", "data.stride=16", "data.tag_stride=8",
            *extra]


@pytest.fixture(scope="module")
def blank_config(tmp_path_factory) -> str:
    """A config file holding nothing: the defaults of training/config.py, then the tiny --set keys."""
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text("# the defaults of training/config.py\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def weak_model_dir(tmp_path_factory, tiny_base_dir):
    """The tiny recipe with learning rates of 1e-9: as good as untrained, the model to replace."""
    from eastwest.training.config import load_config
    from eastwest.training.train import run_training

    out = tmp_path_factory.mktemp("weak-model") / "weak"
    run_training(load_config(None, tiny_recipe(tiny_base_dir, "train.epochs=1", "train.learning_rate=1e-9",
                                               "train.head_learning_rate=1e-9", f"output.dir={out}")), progress=False)
    return out


@pytest.fixture(scope="module")
def app_client(tiny_model_dir, tiny_base_dir, blank_config, tmp_path_factory):
    from starlette.testclient import TestClient

    app, slot, jobs = build_backend(tiny_model_dir, blank_config, tiny_recipe(tiny_base_dir), "auto",
                                    tmp_path_factory.mktemp("work"))
    with TestClient(app, base_url=BASE_URL, raise_server_exceptions=False) as client:
        yield client, slot, jobs


def seed_texts() -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))]


def spans_of(result: dict) -> list[tuple]:
    return [(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0]) for r in result["result"]]


# --- the protocol, in-process ---------------------------------------------------------------------------

def test_in_process_tests_do_not_boot_label_studio(request):
    assert "booting_server" not in request.fixturenames and "label_studio" not in request.fixturenames


def test_setup_and_predict(app_client, tiny_model_dir, monkeypatch):
    from eastwest.inference.tagger import Tagger

    client, slot, jobs = app_client
    version = model_version(tiny_model_dir)
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    setup = {"project": "7.1718000000", "schema": LABELS.label_config_xml(), "hostname": "http://localhost:8080",
             "access_token": "abc", "extra_params": None}
    answer = client.post("/setup", json=setup)
    assert answer.status_code == 200 and answer.json() == {"model_version": version}
    # no secret: the address and token /setup names are not trusted for exports …
    assert 7 not in jobs.connections
    # … unless the address is $LABEL_STUDIO_URL (loopback names alike)
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:8080/")
    assert client.post("/setup", json=setup).status_code == 200
    assert jobs.connections[7] == ("http://localhost:8080", "abc")
    assert client.post("/setup", json={**setup, "project": "8.1", "hostname": "http://attacker.example:8080"}).status_code == 200
    assert 8 not in jobs.connections

    texts = seed_texts()[:2] + ["", "𠀀𠀀" + seed_texts()[0][:200]]
    tasks = [{"id": 10 + i, "data": {"text": text}, "project": 7} for i, text in enumerate(texts)]
    answer = client.post("/predict", json={"tasks": tasks, "label_config": LABELS.label_config_xml(), "project": "7.1718000000",
                                           "params": {"context": None}})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_version"] == version and len(body["results"]) == 4
    expected = predict_texts(Tagger.load(tiny_model_dir, device="cpu"), texts)
    for text, result, prediction in zip(texts, body["results"], expected):
        assert result["model_version"] == version and result["score"] == prediction.score
        assert spans_of(result) == [(e.start, e.end, e.label) for e in prediction.entities]
        for item in result["result"]:
            assert (item["from_name"], item["to_name"], item["type"]) == ("label", "text", "labels")
            # Python string indices (code points), as Label Studio 1.23 stores them: after the two
            # astral characters of the last text, UTF-16 offsets would be 2 more
            assert text[item["value"]["start"]:item["value"]["end"]] == item["value"]["text"]
    astral = body["results"][3]["result"]
    assert astral and all(r["value"]["start"] >= 2 for r in astral)
    utf16 = texts[3].encode("utf-16-le")
    for item in astral:  # not UTF-16 code units, which would be shifted by 2
        start, end = item["value"]["start"], item["value"]["end"]
        assert utf16[2 * start:2 * end].decode("utf-16-le", errors="replace") != item["value"]["text"]
    assert any(result["result"] for result in body["results"])  # the tiny model finds something

    health = client.get("/health").json()
    assert health["status"] == "UP" and health["model_version"] == version
    assert health["training"]["state"] == "idle" and health["training"]["evaluation"] == "holdout"
    assert client.get("/versions").json() == {"versions": [version]}


def test_bad_tasks_are_skipped_named_and_logged(app_client, capsys):
    client, _, _ = app_client
    config = LABELS.label_config_xml()
    text = seed_texts()[0]
    tasks = [{"id": 1, "data": {"text": text}}, {"id": 2, "data": {"body": text}}, {"id": 3, "data": {"text": 42}},
             {"id": 4}, {"id": 5, "data": {"text": text[:100]}}]
    capsys.readouterr()
    answer = client.post("/predict", json={"tasks": tasks, "label_config": config, "project": "7.1"})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert len(results) == 5 and results[1] == results[2] == results[3] == []  # Label Studio stores nothing for []
    assert results[0]["result"] and results[4]["model_version"] == answer.json()["model_version"]
    logged = capsys.readouterr().err.splitlines()
    for problem in ("task 2: data.text is missing", "task 3: data.text is a number, not a string",
                    "task 4: not a task object with a 'data' field"):
        (line,) = [line for line in logged if problem in line]
        assert line.startswith("eastwest serve-ls: /predict project 7: ")
    # every task bad: 422, with every reason, in one line and on stderr
    answer = client.post("/predict", json={"tasks": tasks[1:4], "project": "7.1"})
    assert answer.status_code == 422 and [p.split(":")[0] for p in answer.json()["error"].split("; ")] == ["task 2", "task 3", "task 4"]
    assert len(answer.json()["error"].splitlines()) == 1
    (line,) = [line for line in capsys.readouterr().err.splitlines() if "HTTP 422" in line]
    assert line.startswith("eastwest serve-ls: POST /predict project 7: HTTP 422: task 2: data.text is missing")


def test_bad_requests_and_configs_are_named_logged_and_the_server_goes_on(app_client, capsys):
    client, _, _ = app_client
    config = LABELS.label_config_xml()
    text = seed_texts()[0]
    cases = [
        ({"tasks": []}, 400, "'tasks' must be a non-empty list"),
        ({"tasks": [{"id": 5, "data": {"text": text}}], "label_config": config.replace('value="ORG"', 'value="PERSON"')},
         422, "does not fit this label set: its labels differ from labels.yaml: missing ['ORG'], extra ['PERSON']"),
        ({"tasks": [{"id": 6, "data": {"text": text}}], "label_config": "<View><Text"}, 422, "not valid XML"),
    ]
    for request, status, message in cases:
        capsys.readouterr()
        answer = client.post("/predict", json=request)
        assert answer.status_code == status and message in answer.json()["error"], (request, answer.text)
        assert len(answer.json()["error"].splitlines()) == 1
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith(f"eastwest serve-ls: POST /predict") and f"HTTP {status}: " in line and message in line
    answer = client.post("/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert answer.status_code == 400 and answer.json() == {"error": "the request body is not JSON"}
    answer = client.post("/setup", json={"project": "9.1", "schema": config.replace("$text", "$body")})
    assert answer.status_code == 422 and 'no <Text name="text" value="$text"/>' in answer.json()["error"]
    assert "POST /setup project 9: HTTP 422" in capsys.readouterr().err
    answer = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 9, "label_config": "<View/>"}})
    assert answer.status_code == 422 and "does not fit" in answer.json()["error"]
    answer = client.post("/train", json={"project": "9.1", "label_config": "<View/>", "annotations": []})
    assert answer.status_code == 422 and "does not fit" in answer.json()["error"]
    # and it still serves
    answer = client.post("/predict", json={"tasks": [{"id": 8, "data": {"text": text}}], "label_config": config})
    assert answer.status_code == 200 and len(answer.json()["results"]) == 1
    assert client.get("/health").json()["training"]["jobs"] == 0


def test_cross_site_requests_are_refused(app_client, capsys):
    """A web page can POST text/plain to 127.0.0.1 without asking, and reach it under its own
    hostname by DNS rebinding: neither gets past the guard."""
    from starlette.testclient import TestClient

    client, _, jobs = app_client
    body = json.dumps({"action": "START_TRAINING", "project": {"id": 5}})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        headers = {"content-type": content_type} if content_type else {}
        answer = client.post("/webhook", content=body.encode(), headers=headers)
        assert answer.status_code == 415 and "application/json" in answer.json()["error"], content_type
    assert "POST /webhook: HTTP 415" in capsys.readouterr().err
    answer = client.post("/webhook", content=body.encode(), headers={"content-type": "application/json; charset=utf-8"})
    assert answer.status_code != 415
    jobs.wait(60)
    app = client.app
    for base in ("http://attacker.example:9090", "http://127.0.0.1:9091", "http://localhost", "http://127.0.0.1.nip.io:9090"):
        with TestClient(app, base_url=base) as other:
            answer = other.get("/health")
            assert answer.status_code == 400 and "answers only to" in answer.json()["error"], base
            assert other.post("/setup", json={"project": "5.1", "hostname": "http://attacker.example", "access_token": "x"}).status_code == 400
    for base in ("http://localhost:9090", "http://[::1]:9090", "http://127.0.0.1:9090"):
        with TestClient(app, base_url=base) as same:
            assert same.get("/health").status_code == 200, base
    assert 5 not in jobs.connections


def test_webhook_events(app_client):
    client, _, jobs = app_client
    before = jobs.annotation_events
    answer = client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 3}, "annotation": {"id": 1}})
    assert answer.status_code == 200 and answer.json()["status"] == "counted"
    assert client.post("/webhook", json={"action": "PROJECT_UPDATED"}).json()["status"] == "ignored"
    assert jobs.annotation_events == before + 1
    assert client.get("/health").json()["training"]["annotation_events"] == before + 1


def test_shared_secret(tiny_model_dir, tiny_base_dir, blank_config, tmp_path):
    from starlette.testclient import TestClient

    app, _, jobs = build_backend(tiny_model_dir, blank_config, tiny_recipe(tiny_base_dir), "holdout", tmp_path, secret=SECRET)
    client = TestClient(app, base_url=BASE_URL)
    basic = "Basic " + base64.b64encode(f"anyone:{SECRET}".encode()).decode()
    wrong = "Basic " + base64.b64encode(b"anyone:guess").decode()
    for path, method in (("/health", "GET"), ("/predict", "POST"), ("/setup", "POST"), ("/webhook", "POST"), ("/nowhere", "GET")):
        for headers in ({}, {"Authorization": wrong}, {"Authorization": "Bearer guess"}, {"Authorization": "Basic %%%"}):
            answer = client.request(method, path, json={}, headers=headers)
            assert answer.status_code == 401 and "shared secret" in answer.json()["error"], (path, headers)
            assert answer.headers["www-authenticate"].startswith("Basic")
    assert client.get("/health", headers={"Authorization": basic}).status_code == 200
    assert client.get("/health", headers={"Authorization": f"Bearer {SECRET}"}).status_code == 200
    # with the secret, /setup's address is trusted: only Label Studio knows the secret
    answer = client.post("/setup", json={"project": "4.1", "hostname": "http://ls.example:8080", "access_token": "t"},
                         headers={"Authorization": basic})
    assert answer.status_code == 200 and jobs.connections[4] == ("http://ls.example:8080", "t")


def test_a_non_ascii_secret_as_http_clients_send_it(tiny_model_dir, tiny_base_dir, blank_config, tmp_path):
    """httpx and requests encode a Basic Auth password as Latin-1 when they can, else as UTF-8."""
    from starlette.testclient import TestClient

    for secret in ("pässwörd-für-tests", "密钥-for-tests"):
        app, _, _ = build_backend(tiny_model_dir, blank_config, tiny_recipe(tiny_base_dir), "holdout", tmp_path, secret=secret)
        client = TestClient(app, base_url=BASE_URL)
        for encoding in ("latin-1", "utf-8"):
            try:
                raw = b"eastwest:" + secret.encode(encoding)
            except UnicodeEncodeError:
                continue
            headers = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
            assert client.get("/health", headers=headers).status_code == 200, (secret, encoding)
        assert client.get("/health", auth=("eastwest", secret)).status_code == 200
        assert client.get("/health", auth=("eastwest", secret[:-1])).status_code == 401


def test_setup_problems_are_one_line(tiny_model_dir, tiny_base_dir, blank_config, tmp_path):
    from eastwest.inference.cli import main

    with pytest.raises(BackendError, match="would let other machines use the model"):
        check_address("0.0.0.0", _free_port(), None)
    check_address("127.0.0.1", _free_port(), None)
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(BackendError, match=f"cannot listen on 127.0.0.1:{taken.getsockname()[1]}"):
            check_address("127.0.0.1", taken.getsockname()[1], None)
    for port in ("0", "65536", "http"):
        with pytest.raises(SystemExit) as exit_:
            main(["serve-ls", "--port", port])
        assert exit_.value.code == 2
    with pytest.raises(BackendError, match="data.eval_documents is empty"):
        build_backend(tiny_model_dir, blank_config, [f"model.base={tiny_base_dir}"], "holdout", tmp_path)
    with pytest.raises(BackendError, match="unknown key"):
        build_backend(tiny_model_dir, blank_config, ["train.epoch=3"], "auto", tmp_path)
    with pytest.raises(BackendError, match="config file .* not found"):
        build_backend(tiny_model_dir, str(tmp_path / "missing.yaml"), [], "auto", tmp_path)
    with pytest.raises(BackendError, match="model folder"):
        build_backend(tmp_path / "none", None, [], "auto", tmp_path)


def test_a_relative_work_dir_is_made_absolute(tiny_model_dir, tiny_base_dir, blank_config, tmp_path, monkeypatch):
    """The export is named in data.train, which training resolves against the repository, not the cwd."""
    monkeypatch.chdir(tmp_path)
    _, _, jobs = build_backend(tiny_model_dir, blank_config, tiny_recipe(tiny_base_dir), "holdout", "ls-work")
    assert jobs.work_dir == tmp_path / "ls-work" and jobs.work_dir.is_absolute()


def test_the_export_is_validated_with_the_configs_fix_whitespace(tiny_model_dir, tiny_base_dir, blank_config, tmp_path):
    from eastwest.training.ml_backend import RequestError

    label = LABELS.names[0]
    value = {"start": 2, "end": 5, "text": " 北京", "labels": [label]}  # a space at the span's start
    task = {"id": 1, "data": {"text": "我在 北京工作。"},
            "annotations": [{"id": 1, "result": [{"from_name": "label", "to_name": "text", "type": "labels", "value": value}]}]}
    _, _, jobs = build_backend(tiny_model_dir, blank_config, tiny_recipe(tiny_base_dir), "holdout", tmp_path)
    with pytest.raises(RequestError, match="annotation errors, nothing trained"):
        jobs.validated([task], 1)
    _, _, jobs = build_backend(tiny_model_dir, blank_config, tiny_recipe(tiny_base_dir, "data.fix_whitespace=true"), "holdout",
                               tmp_path)
    (doc,) = jobs.validated([task], 1).docs
    assert [(e.start, e.end, e.label) for e in doc.entities] == [(3, 5, label)]


@pytest.fixture(scope="module")
def all_docs_model_dir(tmp_path_factory, tiny_base_dir):
    """The tiny recipe trained on all five gold documents (like models/default): HELD_OUT included."""
    from eastwest.training.config import load_config
    from eastwest.training.train import run_training

    out = tmp_path_factory.mktemp("all-docs") / "all"
    run_training(load_config(None, tiny_recipe(tiny_base_dir, "data.eval_documents=[]", "train.epochs=2",
                                               f"output.dir={out}")), progress=False)
    return out


def test_holdout_never_scores_the_current_model_on_its_training_documents(all_docs_model_dir, tiny_model_dir, tiny_base_dir,
                                                                          blank_config, tmp_path, capsys):
    from eastwest.training.config import load_config
    from eastwest.training.ls_training import trained_documents

    assert HELD_OUT in trained_documents(all_docs_model_dir)
    config = load_config(None, tiny_recipe(tiny_base_dir))
    scores = holdout_scores(config, all_docs_model_dir, tiny_model_dir, "cpu", tmp_path)
    baseline = Path(scores["current_scored"])
    assert baseline != all_docs_model_dir and baseline.parent == tmp_path / "baselines"
    assert sorted(trained_documents(baseline)) == sorted(d for d in trained_documents(all_docs_model_dir) if d != HELD_OUT)
    recipe = json.loads((baseline / "metrics.json").read_text(encoding="utf-8"))
    assert recipe["eval_documents"] == [HELD_OUT]
    assert scores["current_f1"] == pytest.approx(recipe["eval"]["micro"]["f1"], abs=1e-4)  # as training measured it
    assert HELD_OUT in scores["note"]
    # the retrained baseline is reused by the next job
    stamp = (baseline / "model.safetensors").stat().st_mtime_ns
    again = holdout_scores(config, all_docs_model_dir, tiny_model_dir, "cpu", tmp_path)
    assert again == scores and (baseline / "model.safetensors").stat().st_mtime_ns == stamp
    # a model that never saw the held-out document is scored as it is
    direct = holdout_scores(config, tiny_model_dir, tiny_model_dir, "cpu", tmp_path)
    assert direct["current_scored"] == str(tiny_model_dir) and direct["current_f1"] == direct["new_f1"] and not direct["note"]
    # startup: said when it will retrain; refused when it cannot
    capsys.readouterr()
    build_backend(all_docs_model_dir, blank_config, tiny_recipe(tiny_base_dir), "holdout", tmp_path)
    assert f"trained on the held-out {HELD_OUT}" in capsys.readouterr().err
    bare = tmp_path / "bare"
    shutil.copytree(all_docs_model_dir, bare)
    (bare / "training_config.yaml").unlink()
    with pytest.raises(BackendError, match=f"trained on the held-out {HELD_OUT} and has no training_config.yaml"):
        build_backend(bare, blank_config, tiny_recipe(tiny_base_dir), "holdout", tmp_path)


def test_leave_one_article_out_folds(tiny_base_dir, gold_tasks, tmp_path):
    from eastwest.training.config import load_config

    two, three = tmp_path / "two.json", tmp_path / "three.json"
    two.write_text(json.dumps(gold_tasks[:2], ensure_ascii=False), encoding="utf-8")
    three.write_text(json.dumps(gold_tasks[:3], ensure_ascii=False), encoding="utf-8")
    recipe = [f"model.base={tiny_base_dir}", "train.epochs=8", "train.batch_size=16", "train.learning_rate=0.005",
              "data.window=64", "data.stride=16", "data.tag_stride=8"]
    ids = [t["data"]["source"] for t in gold_tasks[:3]]
    # the same recipe on both sides: the same folds, so the same models and scores
    same = loao_scores(load_config(None, [*recipe, f"data.train=[{three}]"]), load_config(None, [*recipe, f"data.train=[{three}]"]))
    assert [fold["held_out"] for fold in same["folds"]] == ids
    assert [f["current"] for f in same["folds"]] == [f["new"] for f in same["folds"]]
    assert same["current_f1"] == same["new_f1"] > 0  # the tiny recipe learns something
    for fold in same["folds"]:
        assert fold["train_documents"]["current"] == fold["train_documents"]["new"] == [i for i in ids if i != fold["held_out"]]
    # a current recipe with fewer documents: each held-out one is out of both trainings
    scores = loao_scores(load_config(None, [*recipe, f"data.train=[{two}]"]), load_config(None, [*recipe, f"data.train=[{three}]"]))
    assert [fold["held_out"] for fold in scores["folds"]] == ids
    for fold in scores["folds"]:
        for name in ("current", "new"):
            assert fold["held_out"] not in fold["train_documents"][name]
    assert scores["folds"][0]["train_documents"]["current"] == [ids[1]]
    assert scores["folds"][2]["train_documents"]["current"] == ids[:2]  # never had it: trained on all of its data
    for name in ("current", "new"):
        assert scores[f"{name}_f1"] == round(sum(f[name] for f in scores["folds"]) / 3, 4)
    assert scores["folds"][0]["new"] == same["folds"][0]["new"]  # the new recipe's folds did not change


def test_leave_one_article_out_keeps_the_distillation_guard(tiny_model_dir, tiny_base_dir):
    """A distilled student's fold needs the teacher's model of the same fold, as in `eastwest cv`."""
    from eastwest.training.config import load_config
    from eastwest.training.train import TrainingError

    config = load_config(None, tiny_recipe(tiny_base_dir, "data.eval_documents=[]", f"distill.teacher={tiny_model_dir}"))
    with pytest.raises(TrainingError, match="needs the teacher's fold model"):
        loao_scores(config, config)


# --- against a real Label Studio -------------------------------------------------------------------------

@pytest.fixture
def ls(label_studio):
    from label_studio_sdk import LabelStudio

    return LabelStudio(base_url=label_studio.url, api_key=label_studio.token)


def start_serve_ls(tmp_path: Path, model_dir: Path, config: str, overrides: list[str]) -> tuple[subprocess.Popen, str, Path]:
    port = _free_port()
    work = tmp_path / "work"
    env = {k: v for k, v in os.environ.items() if k not in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY")}
    env.update(EASTWEST_LS_SECRET=SECRET, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "inference", "serve-ls", "--model", str(model_dir), "--port", str(port),
               "--work-dir", str(work), "--evaluation", "holdout", "--device", "cpu", "--config", config]
    for item in overrides:
        command += ["--set", item]
    log = tmp_path / "serve-ls.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/health", auth=("eastwest", SECRET), timeout=2).status_code == 200:
                return process, url, log
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"serve-ls did not start; its log:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_for_training(url: str, log: Path, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        training = httpx.get(f"{url}/health", auth=("eastwest", SECRET), timeout=5).json()["training"]
        if training["last_job"] and training["last_job"]["finished"]:
            return training["last_job"]
        time.sleep(1)
    pytest.fail(f"training did not finish in {timeout} s; serve-ls log:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.mark.labelstudio
def test_label_studio_predicts_and_trains_through_the_backend(label_studio, ls, weak_model_dir, tiny_base_dir, blank_config,
                                                              gold_tasks, tmp_path):
    from eastwest.inference.tagger import Tagger

    process, url, log = start_serve_ls(tmp_path, weak_model_dir, blank_config, tiny_recipe(tiny_base_dir))
    try:
        weak_version = model_version(weak_model_dir)
        project = ls.projects.create(title="ml backend", label_config=LABELS.label_config_xml()).id
        backend = ls.ml.create(project=project, url=url, title="eastwest", auth_method="BASIC_AUTH",
                               basic_auth_user="eastwest", basic_auth_pass=SECRET, is_interactive=True)
        assert backend.model_version == weak_version  # Label Studio called /setup with the secret
        headers = {"Authorization": f"Token {label_studio.token}"}
        # the webhook Label Studio created for the backend sends annotation events, with no
        # credentials until it is given the secret (README: Settings → Webhooks)
        (hook,) = [h for h in httpx.get(f"{label_studio.url}/api/webhooks/", params={"project": project}, headers=headers).json()
                   if h["url"] == f"{url}/webhook"]
        answer = httpx.patch(f"{label_studio.url}/api/webhooks/{hook['id']}/", headers=headers,
                             json={"headers": {"Authorization": f"Bearer {SECRET}"}})
        assert answer.status_code == 200, answer.text

        gold = {t["data"]["source"]: t for t in gold_tasks}
        names = ["000_5e482c36e855b8f5.txt", "001_7499d48701203260.txt", "003_3b8787922281874d.txt"]
        tasks = [{"data": {"text": gold[n]["data"]["text"], "source": n}} for n in names]
        ids = ls.projects.import_tasks(id=project, request=tasks, return_task_ids=True).task_ids
        assert len(ids) == 3

        # opening a task makes Label Studio ask the backend (show_collab_predictions is on by default)
        first = ls.tasks.get(id=ids[0]).model_dump(mode="json")
        (prediction,) = first["predictions"]
        (expected,) = predict_texts(Tagger.load(weak_model_dir, device="cpu"), [first["data"]["text"]])
        assert prediction["model_version"] == weak_version and prediction["score"] == pytest.approx(expected.score)
        assert [(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0]) for r in prediction["result"]] == [
            (e.start, e.end, e.label) for e in expected.entities]
        # interactive pre-annotation goes through /predict too
        answer = httpx.post(f"{label_studio.url}/api/ml/{backend.id}/interactive-annotating", headers=headers,
                            json={"task": ids[1], "context": {}})
        assert answer.status_code == 200 and answer.json()["data"]["model_version"] == weak_version, answer.text

        for task_id, name in zip(ids, names):
            ls.annotations.create(id=task_id, result=gold[name]["annotations"][0]["result"])
        health = httpx.get(f"{url}/health", auth=("eastwest", SECRET)).json()
        assert health["training"]["annotation_events"] >= 3  # the webhook reached the backend with the secret

        ls.ml.train(id=backend.id)  # the "Start Training" button
        # pressed again while it runs: the running job, not an error (Label Studio would mark the backend ERROR)
        answer = httpx.post(f"{url}/webhook", auth=("eastwest", SECRET), json={"action": "START_TRAINING", "project": {"id": project}})
        assert answer.status_code == 200 and answer.json()["status"].startswith("already running: job 1"), answer.text
        job = wait_for_training(url, log)
        print(f"\ntraining from Label Studio: {job['message']}")
        assert job["state"] == "swapped", job
        assert job["project"] == project and job["previous_model_version"] == weak_version
        assert job["new_f1"] >= job["current_f1"] and job["new_f1"] > 0, job
        exported = json.loads(Path(job["export"]).read_text(encoding="utf-8"))
        assert sorted(t["data"]["source"] for t in exported if t["annotations"]) == names
        new_dir = Path(job["new_model_dir"])
        new_version = model_version(new_dir)
        assert job["new_model_version"] == new_version != weak_version
        metrics = json.loads((new_dir / "metrics.json").read_text(encoding="utf-8"))
        assert sorted(set(metrics["train_documents"])) == sorted({*names, "004_7d29d2d5cf896e98.txt"})
        health = httpx.get(f"{url}/health", auth=("eastwest", SECRET)).json()
        assert health["model_version"] == new_version and health["training"]["state"] == "idle"

        # a new task is pre-annotated by the new model, with exact offsets; Label Studio knows the version
        text = gold[HELD_OUT]["data"]["text"]
        (new_id,) = ls.projects.import_tasks(id=project, request=[{"data": {"text": text, "source": HELD_OUT}}],
                                             return_task_ids=True).task_ids
        (prediction,) = ls.tasks.get(id=new_id).model_dump(mode="json")["predictions"]
        (expected,) = predict_texts(Tagger.load(new_dir, device="cpu"), [text])
        assert prediction["model_version"] == new_version and prediction["result"]
        assert [(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0]) for r in prediction["result"]] == [
            (e.start, e.end, e.label) for e in expected.entities]
        assert all(text[r["value"]["start"]:r["value"]["end"]] == r["value"]["text"] for r in prediction["result"])
        assert ls.ml.get(id=backend.id).model_version == new_version

        # a second Start Training while none runs is accepted again; a bad label config is refused
        other = ls.projects.create(title="other labels", label_config=LABELS.label_config_xml().replace('value="ORG"', 'value="PERSON"')).id
        answer = httpx.post(f"{url}/webhook", auth=("eastwest", SECRET),
                            json={"action": "START_TRAINING", "project": ls.projects.get(id=other).model_dump(mode="json")})
        assert answer.status_code == 422 and "missing ['ORG'], extra ['PERSON']" in answer.json()["error"]
        assert process.poll() is None
    finally:
        stop(process)


@pytest.mark.labelstudio
def test_a_worse_model_is_not_swapped_in(label_studio, ls, tiny_model_dir, tiny_base_dir, blank_config, gold_tasks, tmp_path,
                                         monkeypatch):
    """In-process, against the real server: the current model is the trained tiny model, the
    recipe has learning rates of 1e-9, so the new model scores lower and stays on disk unused."""
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    project = ls.projects.create(title="worse model", label_config=LABELS.label_config_xml()).id
    gold = [t for t in gold_tasks if t["data"]["source"] != HELD_OUT][:2]
    ids = ls.projects.import_tasks(id=project, request=[{"data": t["data"]} for t in gold], return_task_ids=True).task_ids
    ls.annotations.create(id=ids[0], result=gold[0]["annotations"][0]["result"])

    _, slot, jobs = build_backend(tiny_model_dir, blank_config, tiny_recipe(tiny_base_dir, "train.epochs=1", "train.learning_rate=1e-9",
                                                                    "train.head_learning_rate=1e-9"), "holdout", tmp_path)
    version = slot.version
    job, started = jobs.start(project)
    assert started and jobs.start(project) == (job, False)  # one at a time: the running job again
    jobs.wait(600)
    print(f"\nweak recipe: {job.message}")
    assert job.state == "kept", job.message
    assert job.new_f1 < job.current_f1 and slot.version == version and slot.model_dir == tiny_model_dir
    record = json.loads(Path(job.new_model_dir, "ls_backend.json").read_text(encoding="utf-8"))
    assert record["job"] == job.to_dict() and record["job"]["state"] == "kept" and record["job"]["finished"]
    assert jobs.status()["last_job"]["state"] == "kept" and "still serving" in jobs.status()["last_job"]["message"]
    exported = json.loads(Path(job.export).read_text(encoding="utf-8"))
    assert [t["data"]["source"] for t in exported if t["annotations"]] == [gold[0]["data"]["source"]]


@pytest.mark.labelstudio
def test_training_with_nothing_annotated_fails_clearly(label_studio, ls, tiny_model_dir, tiny_base_dir, blank_config, tmp_path,
                                                      monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    project = ls.projects.create(title="nothing annotated", label_config=LABELS.label_config_xml()).id
    ls.projects.import_tasks(id=project, request=[{"data": {"text": seed_texts()[0]}}])
    _, slot, jobs = build_backend(tiny_model_dir, blank_config, tiny_recipe(tiny_base_dir), "holdout", tmp_path)
    job, _ = jobs.start(project)
    jobs.wait(120)
    assert job.state == "failed" and job.message == f"project {project} has no completed annotation yet (1 tasks without one)"
    assert slot.model_dir == tiny_model_dir


@pytest.mark.labelstudio
def test_annotation_events_start_a_training_and_bad_annotations_train_nothing(label_studio, ls, tiny_model_dir, tiny_base_dir,
                                                                             blank_config, gold_tasks, tmp_path, monkeypatch):
    """--train-after 2: the second annotation event starts a training; the export holds an
    annotation whose text does not match its offsets, so nothing is trained and /health says why."""
    from starlette.testclient import TestClient

    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    project = ls.projects.create(title="bad annotation", label_config=LABELS.label_config_xml()).id
    task = gold_tasks[0]
    (task_id,) = ls.projects.import_tasks(id=project, request=[{"data": task["data"]}], return_task_ids=True).task_ids
    result = json.loads(json.dumps(task["annotations"][0]["result"]))
    result[0]["value"]["text"] += "X"
    ls.annotations.create(id=task_id, result=result)
    app, slot, jobs = build_backend(tiny_model_dir, blank_config, tiny_recipe(tiny_base_dir), "holdout", tmp_path, train_after=2)
    with TestClient(app, base_url=BASE_URL) as client:
        event = {"action": "ANNOTATION_CREATED", "project": {"id": project}, "annotation": {"id": 1}}
        assert client.post("/webhook", json=event).json()["status"] == "counted"
        answer = client.post("/webhook", json=event).json()
        assert answer["status"] == "training started" and answer["job"] == "1"
        jobs.wait(120)
        last = client.get("/health").json()["training"]["last_job"]
        assert last["state"] == "failed" and last["message"].startswith("1 annotation errors, nothing trained: ")
        assert last["finished"] and not last["new_model_dir"] and slot.model_dir == tiny_model_dir


@pytest.mark.labelstudio
def test_a_crashed_training_leaves_the_server_serving(label_studio, ls, tiny_model_dir, tiny_base_dir, blank_config, gold_tasks,
                                                      tmp_path, monkeypatch):
    """Training runs in a process of its own: killing it (as the OOM killer would) fails the job,
    the server keeps serving the old model, and the job's temporary folder is gone."""
    from starlette.testclient import TestClient

    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    project = ls.projects.create(title="crash", label_config=LABELS.label_config_xml()).id
    gold = [t for t in gold_tasks if t["data"]["source"] != HELD_OUT][:1]
    (task_id,) = ls.projects.import_tasks(id=project, request=[{"data": gold[0]["data"]}], return_task_ids=True).task_ids
    ls.annotations.create(id=task_id, result=gold[0]["annotations"][0]["result"])
    app, slot, jobs = build_backend(tiny_model_dir, blank_config, tiny_recipe(tiny_base_dir), "holdout", tmp_path, device="cpu")
    version = slot.version
    before = set(Path(tempfile.gettempdir()).glob("eastwest-ls-job1-*"))
    with TestClient(app, base_url=BASE_URL) as client:
        answer = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": project}})
        assert answer.status_code == 201 and answer.json()["job"] == "1"
        again = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": project}})
        assert again.status_code == 200 and again.json()["job"] == "1" and again.json()["status"].startswith("already running")
        deadline = time.monotonic() + 60
        while jobs.jobs[0].pid is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert jobs.jobs[0].pid != os.getpid()
        os.kill(jobs.jobs[0].pid, signal.SIGKILL)
        jobs.wait(60)
        health = client.get("/health").json()
        assert health["status"] == "UP" and health["model_version"] == version
        last = health["training"]["last_job"]
        assert last["state"] == "failed" and last["message"] == "the training process was killed by SIGKILL", last
        answer = client.post("/predict", json={"tasks": [{"id": 1, "data": {"text": seed_texts()[0]}}]})
        assert answer.status_code == 200 and answer.json()["model_version"] == version
    assert set(Path(tempfile.gettempdir()).glob("eastwest-ls-job1-*")) <= before
