"""`eastwest ls …` against a real Label Studio server started for this test session.

The server comes from $LABEL_STUDIO_BIN or `label-studio` on PATH (install one with
`bash .ci/install-label-studio.sh`); without either, the server tests are skipped with the reason
printed. It runs on 127.0.0.1 on a free port with a throw-away data directory and is stopped at
the end of the session (the fixtures are in conftest.py, shared with tests/test_ml_backend.py).
"""
from __future__ import annotations

import json

import pytest

from eastwest.inference.cli import main
from eastwest.inference.schema import LABELS, Entity
from eastwest.training.labelstudio import Prediction, model_version, predict_texts

from .conftest import SEEDS, TOKEN, Server, _free_port

pytestmark = pytest.mark.labelstudio


@pytest.fixture
def ls_env(monkeypatch, label_studio) -> Server:
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    return label_studio


@pytest.fixture
def client(label_studio):
    from label_studio_sdk import LabelStudio

    return LabelStudio(base_url=label_studio.url, api_key=label_studio.token)


def eastwest(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def new_project(capsys, title: str) -> int:
    code, out, err = eastwest(capsys, "ls", "init", "--title", title)
    assert code == 0, err
    return int(out.strip())


def tasks_of(client, project: int) -> list[dict]:
    return [t.model_dump(mode="json") for t in client.tasks.list(project=project)]


def test_predictions_match_the_tagger(tiny_model_dir):
    from eastwest.inference.tagger import Tagger

    tagger = Tagger.load(tiny_model_dir, device="cpu")
    texts = [p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))] + [""]
    predictions = predict_texts(tagger, texts)
    assert [p.entities for p in predictions] == [d.entities for d in tagger.tag_many(texts)]
    assert all(0 < p.score <= 1 for p in predictions)


def test_round_trip(ls_env, client, capsys, monkeypatch, tmp_path, tiny_model_dir, tiny_base_dir, gold_tasks):
    from eastwest.training.annotations import load_exports
    from eastwest.training.config import load_config
    from eastwest.training.train import run_training

    print(f"Label Studio answered after {ls_env.start_seconds} s")
    seeds = sorted(SEEDS.glob("*.txt"))
    assert len(seeds) == 5
    project = new_project(capsys, "round trip")
    version = model_version(tiny_model_dir)

    monkeypatch.chdir(SEEDS)  # files named relative to here get the same ids as from the directory
    names = [p.name for p in seeds[:3]]
    code, out, err = eastwest(capsys, "ls", "import", "--project", str(project), *names, "--predict", "--model", str(tiny_model_dir))
    assert code == 0, err
    assert f"imported 3 tasks into project {project} with predictions from {version}" in out
    code, out, err = eastwest(capsys, "ls", "import", "--project", str(project), str(SEEDS))
    assert code == 0, err
    assert "skipping 3 documents" in err and "imported 2 tasks" in out

    tasks = tasks_of(client, project)
    assert sorted(t["data"]["source"] for t in tasks) == [p.name for p in seeds]
    predicted = [t for t in tasks if t["predictions"]]
    assert len(predicted) == 3
    for task in predicted:
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == version and 0 < prediction["score"] <= 1
        for item in prediction["result"]:
            value = item["value"]
            assert task["data"]["text"][value["start"] : value["end"]] == value["text"] and 0 < item["score"] <= 1

    code, out, err = eastwest(capsys, "ls", "predict", "--project", str(project), "--model", str(tiny_model_dir))
    assert code == 0, err
    assert "to 2 tasks" in out
    code, out, err = eastwest(capsys, "ls", "predict", "--project", str(project), "--model", str(tiny_model_dir))
    assert "to 0 tasks" in out
    scores = {t["id"]: t["predictions"][0]["score"] for t in tasks_of(client, project)}

    code, out, err = eastwest(capsys, "ls", "next", "--project", str(project), "-n", "3", "--model", str(tiny_model_dir))
    assert code == 0, err
    listed = [line.split("\t") for line in out.splitlines()]
    assert [float(row[1]) for row in listed] == sorted(scores.values())[:3]
    first_id, first_source = int(listed[0][0]), listed[0][2]

    gold = next(t for t in gold_tasks if t["data"]["source"] == first_source)
    gold_result = gold["annotations"][0]["result"]
    client.annotations.create(id=first_id, result=gold_result)
    code, out, err = eastwest(capsys, "ls", "next", "--project", str(project))  # the project's model version
    assert len(out.splitlines()) == 4 and str(first_id) not in [line.split("\t")[0] for line in out.splitlines()]

    export = tmp_path / "export.json"
    code, out, err = eastwest(capsys, "ls", "export", "--project", str(project), "-o", str(export))
    assert code == 0, err
    report = load_exports([export])
    assert report.ok, report.errors
    assert len(report.docs) == 1 and len(report.unlabelled) == 4
    (doc,) = report.docs
    assert doc.id == first_source
    assert [(e.start, e.end, e.label) for e in doc.entities] == sorted(
        (r["value"]["start"], r["value"]["end"], r["value"]["labels"][0]) for r in gold_result
    )
    assert eastwest(capsys, "validate", str(export))[0] == 0

    config = load_config(None, [
        f"model.base={tiny_base_dir}", f"data.train=[{export}]", "train.epochs=1", "train.batch_size=8",
        "data.window=64", "data.stride=16", f"output.dir={tmp_path / 'model'}",
    ])
    model_dir = run_training(config, progress=False)
    assert json.loads((model_dir / "metrics.json").read_text())["train_documents"] == [first_source]


def gold_as_predictions(gold_docs):
    """A stand-in for a model that finds every gold span, with made-up scores per document."""
    by_text = {doc.text: doc for doc in gold_docs}

    def predict(tagger, texts):
        docs = [by_text[text] for text in texts]
        return [Prediction([Entity(e.start, e.end, e.label, e.text, 0.9) for e in d.entities], 0.5 + i / 10) for i, d in enumerate(docs)]

    return predict


def test_predicted_spans_reach_label_studio(ls_env, client, capsys, monkeypatch, tiny_model_dir, gold_docs):
    monkeypatch.setattr("eastwest.training.labelstudio.predict_texts", gold_as_predictions(gold_docs))
    project = new_project(capsys, "spans")
    monkeypatch.chdir(SEEDS)
    names = sorted(p.name for p in SEEDS.glob("*.txt"))[:3]
    assert eastwest(capsys, "ls", "import", "--project", str(project), *names, "--predict", "--model", str(tiny_model_dir))[0] == 0

    gold = {doc.id: doc for doc in gold_docs}
    for task in tasks_of(client, project):
        (prediction,) = task["predictions"]
        spans = [(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0], r["score"]) for r in prediction["result"]]
        assert spans == [(e.start, e.end, e.label, 0.9) for e in gold[task["data"]["source"]].entities]
    code, out, _ = eastwest(capsys, "ls", "next", "--project", str(project), "-n", "2")
    assert [line.split("\t")[2] for line in out.splitlines()] == names[:2]


def test_wrong_token(ls_env, monkeypatch, capsys):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "not-the-token")
    code, _, err = eastwest(capsys, "ls", "init", "--title", "never")
    assert code == 2
    assert "refused the API key in $LABEL_STUDIO_API_KEY (HTTP 401)" in err


def test_server_down(monkeypatch, capsys):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", TOKEN)
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    code, _, err = eastwest(capsys, "ls", "init", "--url", url, "--title", "never")
    assert code == 2
    assert f"cannot reach Label Studio at {url}" in err and len(err.splitlines()) == 1


def test_project_with_other_labels(ls_env, client, capsys, tmp_path):
    first = LABELS.names[0]
    other_config = LABELS.label_config_xml().replace(f'value="{first}"', 'value="PERSON"')
    project = client.projects.create(title="other labels", label_config=other_config).id
    seed = str(sorted(SEEDS.glob("*.txt"))[0])

    code, _, err = eastwest(capsys, "ls", "import", "--project", str(project), seed)
    assert code == 2
    assert f"project {project} does not fit this label set" in err and f"missing ['{first}'], extra ['PERSON']" in err
    assert tasks_of(client, project) == []
    code, _, err = eastwest(capsys, "ls", "export", "--project", str(project), "-o", str(tmp_path / "x.json"))
    assert code == 2 and not (tmp_path / "x.json").exists()


def lying_predictions(tagger, texts) -> list[Prediction]:
    """One span per text whose offsets are one character off its surface text."""
    return [Prediction([Entity(0, 2, LABELS.names[0], text[1:3], 0.5)], 0.5) for text in texts]


def test_prediction_with_wrong_offsets(ls_env, client, capsys, monkeypatch, tiny_model_dir):
    monkeypatch.setattr("eastwest.training.labelstudio.predict_texts", lying_predictions)
    project = new_project(capsys, "wrong offsets")
    seeds = [str(p) for p in sorted(SEEDS.glob("*.txt"))[:2]]

    code, _, err = eastwest(capsys, "ls", "import", "--project", str(project), *seeds, "--predict", "--model", str(tiny_model_dir))
    assert code == 2
    assert "says" in err and "but the text there is" in err and "nothing was sent" in err
    assert tasks_of(client, project) == []

    assert eastwest(capsys, "ls", "import", "--project", str(project), *seeds)[0] == 0
    code, _, err = eastwest(capsys, "ls", "predict", "--project", str(project), "--model", str(tiny_model_dir))
    assert code == 2 and "nothing was sent" in err
    assert all(t["predictions"] == [] for t in tasks_of(client, project))
