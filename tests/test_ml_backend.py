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
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from inference.schema import LABELS
from training.labelstudio import model_version, predict_texts
from training.ml_backend import BackendError, RequestError, build_backend, check_address, loao_scores

from .conftest import GOLD, REPO, SEEDS, _free_port

HELD_OUT = "002_ad6c2b88aab27273.txt"
SECRET = "eastwest-shared-secret-for-tests"


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


@pytest.fixture(scope="module", autouse=True)
def _boot_early(booting_server):
    """Start Label Studio with this module's first test, so that it boots while tiny models train."""
    return booting_server


@pytest.fixture(scope="module")
def weak_model_dir(tmp_path_factory, tiny_base_dir):
    """The tiny recipe with learning rates of 1e-9: as good as untrained, the model to replace."""
    from training.config import load_config
    from training.train import run_training

    out = tmp_path_factory.mktemp("weak-model") / "weak"
    run_training(load_config(None, tiny_recipe(tiny_base_dir, "train.epochs=1", "train.learning_rate=1e-9",
                                               "train.head_learning_rate=1e-9", f"output.dir={out}")), progress=False)
    return out


@pytest.fixture(scope="module")
def app_client(tiny_model_dir, tiny_base_dir, blank_config, tmp_path_factory):
    from starlette.testclient import TestClient

    app, slot, jobs = build_backend(tiny_model_dir, blank_config, tiny_recipe(tiny_base_dir), "auto",
                                    tmp_path_factory.mktemp("work"))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, slot, jobs


def seed_texts() -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))]


# --- the protocol, in-process ---------------------------------------------------------------------------

def test_setup_and_predict(app_client, tiny_model_dir):
    from inference.tagger import Tagger

    client, slot, jobs = app_client
    version = model_version(tiny_model_dir)
    answer = client.post("/setup", json={"project": "7.1718000000", "schema": LABELS.label_config_xml(),
                                         "hostname": "http://localhost:8080", "access_token": "abc", "extra_params": None})
    assert answer.status_code == 200 and answer.json() == {"model_version": version}
    assert jobs.connections[7] == ("http://localhost:8080", "abc")

    texts = seed_texts()[:2] + [""]
    tasks = [{"id": 10 + i, "data": {"text": text}, "project": 7} for i, text in enumerate(texts)]
    answer = client.post("/predict", json={"tasks": tasks, "label_config": LABELS.label_config_xml(), "project": "7.1718000000",
                                           "params": {"context": None}})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_version"] == version and len(body["results"]) == 3
    expected = predict_texts(Tagger.load(tiny_model_dir, device="cpu"), texts)
    for text, result, prediction in zip(texts, body["results"], expected):
        assert result["model_version"] == version and result["score"] == prediction.score
        spans = [(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0]) for r in result["result"]]
        assert spans == [(e.start, e.end, e.label) for e in prediction.entities]
        for item in result["result"]:
            assert (item["from_name"], item["to_name"], item["type"]) == ("label", "text", "labels")
            assert text[item["value"]["start"]:item["value"]["end"]] == item["value"]["text"]
    assert any(result["result"] for result in body["results"])  # the tiny model finds something

    health = client.get("/health").json()
    assert health["status"] == "UP" and health["model_version"] == version
    assert health["training"]["state"] == "idle" and health["training"]["evaluation"] == "holdout"
    assert client.get("/versions").json() == {"versions": [version]}


def test_bad_tasks_and_configs_are_named_and_the_server_goes_on(app_client):
    client, _, _ = app_client
    config = LABELS.label_config_xml()
    text = seed_texts()[0]
    cases = [
        ({"tasks": [{"id": 1, "data": {"text": text}}, {"id": 2, "data": {"body": text}}], "label_config": config},
         422, "task 2: data.text is missing"),
        ({"tasks": [{"id": 3, "data": {"text": 42}}], "label_config": config}, 422, "task 3: data.text is a int, not a string"),
        ({"tasks": [{"id": 4}]}, 422, "task 4: not a task object with a 'data' field"),
        ({"tasks": []}, 400, "'tasks' must be a non-empty list"),
        ({"tasks": [{"id": 5, "data": {"text": text}}], "label_config": config.replace('value="ORG"', 'value="PERSON"')},
         422, "does not fit this label set: its labels differ from labels.yaml: missing ['ORG'], extra ['PERSON']"),
        ({"tasks": [{"id": 6, "data": {"text": text}}], "label_config": "<View><Text"}, 422, "not valid XML"),
    ]
    for request, status, message in cases:
        answer = client.post("/predict", json=request)
        assert answer.status_code == status and message in answer.json()["error"], (request, answer.text)
        assert len(answer.json()["error"].splitlines()) == 1
    answer = client.post("/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert answer.status_code == 400 and answer.json() == {"error": "the request body is not JSON"}
    answer = client.post("/setup", json={"project": "9.1", "schema": config.replace("$text", "$body")})
    assert answer.status_code == 422 and 'no <Text name="text" value="$text"/>' in answer.json()["error"]
    answer = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 9, "label_config": "<View/>"}})
    assert answer.status_code == 422 and "does not fit" in answer.json()["error"]
    # and it still serves
    answer = client.post("/predict", json={"tasks": [{"id": 8, "data": {"text": text}}], "label_config": config})
    assert answer.status_code == 200 and len(answer.json()["results"]) == 1
    assert client.get("/health").json()["training"]["jobs"] == 0


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

    app, _, _ = build_backend(tiny_model_dir, blank_config, tiny_recipe(tiny_base_dir), "holdout", tmp_path, secret=SECRET)
    client = TestClient(app)
    basic = "Basic " + base64.b64encode(f"anyone:{SECRET}".encode()).decode()
    wrong = "Basic " + base64.b64encode(b"anyone:guess").decode()
    for path, method in (("/health", "GET"), ("/predict", "POST"), ("/setup", "POST"), ("/webhook", "POST"), ("/nowhere", "GET")):
        for headers in ({}, {"Authorization": wrong}, {"Authorization": "Bearer guess"}, {"Authorization": "Basic %%%"}):
            answer = client.request(method, path, json={}, headers=headers)
            assert answer.status_code == 401 and "shared secret" in answer.json()["error"], (path, headers)
            assert answer.headers["www-authenticate"].startswith("Basic")
    assert client.get("/health", headers={"Authorization": basic}).status_code == 200
    assert client.get("/health", headers={"Authorization": f"Bearer {SECRET}"}).status_code == 200


def test_setup_problems_are_one_line(tiny_model_dir, tiny_base_dir, blank_config, tmp_path):
    with pytest.raises(BackendError, match="would let other machines use the model"):
        check_address("0.0.0.0", _free_port(), None)
    check_address("127.0.0.1", _free_port(), None)
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(BackendError, match=f"cannot listen on 127.0.0.1:{taken.getsockname()[1]}"):
            check_address("127.0.0.1", taken.getsockname()[1], None)
    with pytest.raises(BackendError, match="data.eval_documents is empty"):
        build_backend(tiny_model_dir, blank_config, [f"model.base={tiny_base_dir}"], "holdout", tmp_path)
    with pytest.raises(BackendError, match="unknown key"):
        build_backend(tiny_model_dir, blank_config, ["train.epoch=3"], "auto", tmp_path)
    with pytest.raises(BackendError, match="config file .* not found"):
        build_backend(tiny_model_dir, str(tmp_path / "missing.yaml"), [], "auto", tmp_path)
    with pytest.raises(BackendError, match="model folder"):
        build_backend(tmp_path / "none", None, [], "auto", tmp_path)


def test_leave_one_article_out_compares_recipes_on_the_same_folds(tiny_base_dir, gold_tasks, tmp_path):
    from training.config import load_config

    two, three = tmp_path / "two.json", tmp_path / "three.json"
    two.write_text(json.dumps(gold_tasks[:2], ensure_ascii=False), encoding="utf-8")
    three.write_text(json.dumps(gold_tasks[:3], ensure_ascii=False), encoding="utf-8")
    recipe = [f"model.base={tiny_base_dir}", "train.epochs=2", "train.learning_rate=0.005", "data.window=64", "data.stride=16"]
    current = load_config(None, [*recipe, f"data.train=[{two}]"])
    new = load_config(None, [*recipe, f"data.train=[{three}]"])
    scores = loao_scores(current, new)
    ids = [t["data"]["source"] for t in gold_tasks[:3]]
    assert [fold["held_out"] for fold in scores["folds"]] == ids
    for fold in scores["folds"]:
        assert 0 <= fold["current"] <= 1 and 0 <= fold["new"] <= 1
    for name in ("current", "new"):
        assert scores[f"{name}_f1"] == round(sum(f[name] for f in scores["folds"]) / 3, 4)
    # the first two folds train the same recipe on the same documents: the same model, the same score
    assert [f["current"] for f in scores["folds"][:2]] == [f["new"] for f in scores["folds"][:2]]


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
    from inference.tagger import Tagger

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
    job = jobs.start(project)
    with pytest.raises(RequestError, match="a training is already running"):
        jobs.start(project)  # one at a time
    jobs.wait(600)
    print(f"\nweak recipe: {job.message}")
    assert job.state == "kept", job.message
    assert job.new_f1 < job.current_f1 and slot.version == version and slot.model_dir == tiny_model_dir
    assert Path(job.new_model_dir, "ls_backend.json").is_file()
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
    job = jobs.start(project)
    jobs.wait(120)
    assert job.state == "failed" and job.message == f"project {project} has no completed annotation yet (1 tasks without one)"
    assert slot.model_dir == tiny_model_dir
