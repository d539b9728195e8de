"""Training with a tiny randomly initialised BERT built in the test: data, loop, model folder, errors."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from eastwest.inference.schema import LABELS, Entity
from eastwest.inference.tagger import Tagger
from eastwest.inference.windows import encode_text, most_central_window, window_bounds
from eastwest.training.annotations import AnnotatedDoc
from eastwest.training.config import ConfigError, load_config
from eastwest.training.dataset import build_dataset, split_by_document

from .conftest import REPO, build_char_tokenizer


def test_windows_cover_every_token_and_character(gold_docs, tiny_base_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base_dir)
    dataset, report = build_dataset(gold_docs, tokenizer, window=32, stride=8)
    assert report.misaligned == []
    for doc in gold_docs:
        ids, offsets = encode_text(tokenizer, doc.text)
        rows = dataset.filter(lambda r: r["doc_id"] == doc.id)
        covered = set()
        for row in rows:
            covered.update(range(row["window_start"], row["window_start"] + len(row["input_ids"]) - 2))
            assert len(row["input_ids"]) <= 32 and row["labels"][0] == row["labels"][-1] == -100
        assert covered == set(range(len(ids)))
        chars = {i for s, e in offsets for i in range(s, e)}
        assert chars == {i for i, ch in enumerate(doc.text) if not ch.isspace()}


def test_window_bounds_and_central_vote():
    bounds = window_bounds(10, 4, 2)
    assert bounds == [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert window_bounds(0, 4, 1) == [(0, 0)]
    choice = most_central_window(bounds, 10)
    assert choice[0] == 0 and choice[9] == 3 and choice[4] in (1, 2)
    with pytest.raises(ValueError):
        window_bounds(10, 4, 4)


def test_boundary_inside_a_token_is_reported_not_shifted():
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(WordLevel({"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "[PAD]": 3, "投": 4, "入": 5, "3211": 6, "万": 7, "元": 8}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Digits(individual_digits=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]")
    text = "投入3211万元"
    doc = AnnotatedDoc("d", text, [Entity(4, 8, "MONEY", text[4:8])])  # starts inside the token "3211"
    _, report = build_dataset([doc], tokenizer, window=16, stride=4)
    assert len(report.misaligned) == 1 and report.misaligned[0][1].token == (2, 6)


def test_document_split_never_shares_a_document(gold_docs):
    train, held = split_by_document(gold_docs, ["001_7499d48701203260.txt"])
    assert [d.id for d in held] == ["001_7499d48701203260.txt"]
    assert not {d.id for d in train} & {d.id for d in held}
    from eastwest.inference.errors import TrainingError

    with pytest.raises(TrainingError, match="not in the data"):
        split_by_document(gold_docs, ["nope.txt"])


def test_loss_decreases_on_two_gold_articles(tiny_base_dir):
    from eastwest.training.train import fit, prepare

    config = load_config(None, [
        f"model.base={tiny_base_dir}", "train.epochs=6", "train.batch_size=8", "train.learning_rate=0.005",
        "train.logging_steps=1", "data.window=64", "data.stride=16",
        "data.eval_documents=[000_5e482c36e855b8f5.txt, 001_7499d48701203260.txt, 003_3b8787922281874d.txt]",
    ])
    prepared = prepare(config)
    assert [d.id for d in prepared.train_docs] == ["002_ad6c2b88aab27273.txt", "004_7d29d2d5cf896e98.txt"]
    trainer, _ = fit(prepared, progress=False)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) >= 10
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3


def test_model_folder_is_self_describing_and_loads_without_project_code(tiny_model_dir):
    for name in ("model.safetensors", "config.json", "tokenizer.json", "training_config.yaml", "metrics.json", "README.md"):
        assert (tiny_model_dir / name).is_file(), name
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["id2label"] == {str(i): t for i, t in LABELS.id2label.items()}
    # Trained on windows overlapping by data.stride; tags with data.tag_stride (the Tagger reads it).
    assert (config["eastwest"]["window"], config["eastwest"]["train_stride"], config["eastwest"]["stride"]) == (64, 16, 8)
    assert Tagger.load(tiny_model_dir, device="cpu").stride == 8
    metrics = json.loads((tiny_model_dir / "metrics.json").read_text())
    assert set(metrics["eval"]) == {*LABELS.names, "micro"}
    code = (
        "import sys; from transformers import AutoModelForTokenClassification, AutoTokenizer;"
        f"m = AutoModelForTokenClassification.from_pretrained({str(tiny_model_dir)!r});"
        f"t = AutoTokenizer.from_pretrained({str(tiny_model_dir)!r});"
        "out = m(**t('天津市和平区帮扶会宁县', return_tensors='pt'));"
        "print(tuple(out.logits.shape))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"(1, 13, {len(LABELS.tags)})"


def test_config_overrides_and_unknown_keys():
    config = load_config(REPO / "configs" / "default.yaml", ["train.epochs=3", "data.eval_documents=[a.txt]"])
    assert config.train.epochs == 3.0 and config.data.eval_documents == ["a.txt"]
    with pytest.raises(ConfigError, match="unknown key.*epoch"):
        load_config(REPO / "configs" / "default.yaml", ["train.epoch=3"])
    with pytest.raises(ConfigError, match="expected int"):
        load_config(None, ["train.batch_size=big"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["train.batch_size"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(REPO / "configs" / "missing.yaml")


def test_config_rejects_wrong_types_naming_the_key():
    """Strict types: no bool for an int, no str for an int or bool, one ConfigError line naming the key."""
    for override, key, expected in [("train.batch_size=true", "train.batch_size", "int"),
                                    ("train.batch_size='16'", "train.batch_size", "int"),
                                    ("train.seed=1.5", "train.seed", "int"),
                                    ("model.random_init=1", "model.random_init", "bool"),
                                    ("model.base=3", "model.base", "str"),
                                    ("train.learning_rate=fast", "train.learning_rate", "a number"),
                                    ("train.epochs=true", "train.epochs", "a number"),
                                    ("data.train=[1]", "data.train[0]", "str"),
                                    ("data.train=gold.json", "data.train", "a list"),
                                    ("train=3", "train", "a mapping")]:
        with pytest.raises(ConfigError) as info:
            load_config(None, [override])
        message = str(info.value)
        assert message.startswith(f"{key}: expected {expected}, got "), (override, message)
        assert "\n" not in message


def test_config_rejects_unknown_nested_keys_naming_them():
    with pytest.raises(ConfigError, match=r"^unknown key train\.batchsize \(known in train: epochs, batch_size"):
        load_config(None, ["train.batchsize=8"])
    with pytest.raises(ConfigError, match=r"^unknown key trian \(known: model, data"):
        load_config(None, ["trian.epochs=3"])
    from eastwest.training.config import config_from_dict

    with pytest.raises(ConfigError, match=r"unknown key decoding\.lexicon_penalty.*; train\.seed: expected int"):
        config_from_dict({"decoding": {"lexicon_penalty": 1}, "train": {"seed": "x"}})


def test_config_numbers_floats_and_dict_output():
    import copy

    from eastwest.training.config import Config, config_from_dict

    config = load_config(None, ["train.learning_rate=5e-4", "train.epochs=3", "augment.regions=1",
                                "data.tag_stride=null", "model.layers=2"])
    assert config.train.learning_rate == 0.0005 and isinstance(config.train.learning_rate, float)
    assert config.train.epochs == 3.0 and isinstance(config.train.epochs, float)
    assert config.augment.regions == 1.0 and config.data.tag_stride is None and config.model.layers == 2
    tree = config.to_dict()
    assert list(tree) == ["model", "data", "augment", "mlm", "silver", "written", "decoding", "distill", "train", "output"]
    assert tree["train"]["learning_rate"] == 0.0005 and tree["data"]["train"] == ["annotations/gold.json"]
    assert config_from_dict(tree) == config
    assert Config().to_dict() == config_from_dict({}).to_dict()
    fold = copy.deepcopy(config)
    fold.data.eval_documents = ["a.txt"]
    assert config.data.eval_documents == [] and fold.data.eval_documents == ["a.txt"]
    with pytest.raises(ValueError):  # assignments are checked too
        fold.train.batch_size = True


def _train_cli(*overrides, cwd=REPO):
    cmd = [sys.executable, "-m", "eastwest", "train", str(REPO / "configs" / "default.yaml"), "-q"]
    for o in overrides:
        cmd += ["--set", o]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("case", ["missing data", "unknown label", "no tokenizer", "empty training set", "tag stride"])
def test_bad_training_inputs_fail_before_training(case, tmp_path, tiny_base_dir, tasks):
    overrides = [f"model.base={tiny_base_dir}", f"output.dir={tmp_path / 'out'}"]
    if case == "missing data":
        overrides.append(f"data.train=[{tmp_path / 'nope.json'}]")
        expected = "training data not found"
    elif case == "unknown label":
        tasks[0]["annotations"][0]["result"][0]["value"]["labels"] = ["PERSON"]
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
        overrides.append(f"data.train=[{bad}]")
        expected = "unknown label 'PERSON'"
    elif case == "no tokenizer":
        folder = tmp_path / "base"
        folder.mkdir()
        (folder / "config.json").write_text((tiny_base_dir / "config.json").read_text())
        overrides[0] = f"model.base={folder}"
        expected = "has no tokenizer"
    elif case == "tag stride":
        overrides.append("data.tag_stride=126")  # the default window holds 126 text tokens
        expected = "data.tag_stride must be at least 0 and below data.window - 2 = 126, got 126"
    else:
        empty = tmp_path / "empty.json"
        empty.write_text(json.dumps([{"id": 1, "data": {"text": "无标注"}, "annotations": []}]), encoding="utf-8")
        overrides.append(f"data.train=[{empty}]")
        expected = "no annotated tasks"
    proc = _train_cli(*overrides)
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_cross_validation_holds_out_each_article_and_records_itself(tmp_path, tiny_base_dir, gold_tasks):
    from eastwest.training.cv import cross_validate
    from eastwest.training.train import run_training

    export = tmp_path / "two.json"
    export.write_text(json.dumps([gold_tasks[2], gold_tasks[4]], ensure_ascii=False), encoding="utf-8")
    overrides = [f"model.base={tiny_base_dir}", f"data.train=[{export}]", "train.epochs=1", "train.batch_size=8",
                 "data.window=64", "data.stride=16", f"output.dir={tmp_path / 'model'}"]
    run_training(load_config(None, overrides), progress=False)
    report = cross_validate(load_config(None, overrides), progress=False, keep_models=True, onnx=True)
    held_out = ["002_ad6c2b88aab27273.txt", "004_7d29d2d5cf896e98.txt"]
    assert [f["held_out"] for f in report["folds"]] == held_out
    # the configured decoding, the lexicon switched the other way, greedy, int8, and both peers
    assert set(report["mean"]) == set(report["pooled"]) == {"model", "model_lexicon", "model_greedy", "model_int8",
                                                             "rules", "lac"}
    for name, pooled in report["pooled"].items():  # the held-out articles' spans counted together
        for label, row in pooled.items():
            assert [row[k] for k in ("tp", "fp", "fn")] == [sum(f[name][label][k] for f in report["folds"])
                                                            for k in ("tp", "fp", "fn")]
            assert row["support"] == report["mean"][name][label]["support"] == row["tp"] + row["fn"]
    for doc_id in held_out:  # each fold's model is kept, knows what it was not trained on, and has its int8 export
        fold_dir = tmp_path / "model.folds" / doc_id
        assert json.loads((fold_dir / "metrics.json").read_text())["eval_documents"] == [doc_id]
        assert (fold_dir / "model.safetensors").is_file() and (fold_dir / "model.int8.onnx").is_file()
    assert json.loads((tmp_path / "model.cv.json").read_text())["folds"] == report["folds"]
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert metrics["cross_validation"]["mean"] == report["mean"]  # attached: same config
    card = (tmp_path / "model" / "README.md").read_text()
    assert "rule baseline" in card and "Baidu LAC" in card and "lexicon constraint added" in card


def test_torchrun_on_two_cpu_processes_trains_one_model(tmp_path, tiny_base_dir, gold_tasks):
    """The same command under torchrun: data parallel over 2 processes (gloo), one model folder."""
    from .conftest import REPO

    export = tmp_path / "two.json"
    export.write_text(json.dumps([gold_tasks[2], gold_tasks[4]], ensure_ascii=False), encoding="utf-8")

    def train(launcher: list[str], out) -> subprocess.CompletedProcess:
        settings = [f"model.base={tiny_base_dir}", f"data.train=[{export}]", "train.epochs=2", "train.batch_size=8",
                    "train.logging_steps=1", "augment.copies=0", "mlm.documents=0", "silver.documents=0", "written.exports=[]",
                    'distill.teacher=""',  # the default config is a student: here it trains on gold alone
                    f"output.dir={out}"]
        command = [sys.executable, "-m", *launcher, "eastwest", "train", "configs/default.yaml", "-q",
                   *(a for s in settings for a in ("--set", s))]
        proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    ddp = train(["torch.distributed.run", "--nproc_per_node", "2", "-m"], tmp_path / "ddp")
    single = train([], tmp_path / "single")
    # one process logs and saves; with each batch's share split over 2 processes it takes half the steps
    ddp_steps = [line for line in ddp.stdout.splitlines() if line.startswith("{'loss'")]
    single_steps = [line for line in single.stdout.splitlines() if line.startswith("{'loss'")]
    assert len(ddp_steps) == (len(single_steps) + 1) // 2
    assert ddp.stdout.count("model written to") == 1
    assert json.loads((tmp_path / "ddp" / "config.json").read_text())["id2label"]["0"] == "O"


def test_word_features_start_as_the_pretrained_type_and_reach_the_tagger(tmp_path, tiny_base_dir, tiny_word_features_model_dir):
    import shutil

    import torch

    from eastwest.inference.lexicon import WORD_FEATURE_TYPES, WORD_FEATURES_VERSION, token_word_types
    from eastwest.inference.tagger import ModelFolderError
    from eastwest.training.train import load_model

    plain = load_model(str(tiny_base_dir), None)
    featured = load_model(str(tiny_base_dir), None, word_features=True)
    assert featured.config.type_vocab_size == WORD_FEATURE_TYPES
    ids, types = torch.tensor([[2, 5, 6, 7, 3]]), torch.tensor([[0, 4, 5, 12, 0]])
    with torch.no_grad():  # before training, the new types change nothing: every row is type 0's
        torch.testing.assert_close(featured.bert(input_ids=ids, token_type_ids=types).last_hidden_state,
                                   plain.bert(input_ids=ids).last_hidden_state)

    out = shutil.copytree(tiny_word_features_model_dir, tmp_path / "model")
    saved = json.loads((out / "config.json").read_text())
    assert saved["type_vocab_size"] == WORD_FEATURE_TYPES and saved["eastwest"]["word_features"] == WORD_FEATURES_VERSION

    tagger = Tagger.load(out, device="cpu", precision="fp32")  # compared with fp32 forward passes below
    text = "遵义市人民医院投入资金，帮扶工作队来了"
    [(_, tokens)] = list(tagger.predict_tokens([text]))
    ids, offsets = encode_text(tagger.tokenizer, text)
    inputs = torch.tensor([[tagger.cls_id, *ids, tagger.sep_id]])
    word_types = torch.tensor([[0, *token_word_types(offsets, text), 0]])
    with torch.no_grad():
        with_types = tagger.model(input_ids=inputs, token_type_ids=word_types).logits[0, 1:-1].softmax(-1)
        without = tagger.model(input_ids=inputs).logits[0, 1:-1].softmax(-1)
    torch.testing.assert_close(torch.from_numpy(tokens.probs), with_types, atol=1e-5, rtol=1e-4)  # the Tagger feeds the types
    assert not torch.allclose(with_types, without, atol=1e-4)  # and training taught the model to use them

    saved["eastwest"]["word_features"] = "some-future-scheme"
    (out / "config.json").write_text(json.dumps(saved), encoding="utf-8")
    with pytest.raises(ModelFolderError, match="word features 'some-future-scheme'"):
        Tagger.load(out, device="cpu")


def test_pooled_scores_count_every_span_once_and_skip_nothing():
    from eastwest.training.evaluate import pooled_metrics, span_metrics

    text_a, text_b = "会宁县投入100万元", "帮扶30人"
    gold_a = [Entity(0, 3, "REGION", "会宁县"), Entity(5, 10, "MONEY", "100万元")]
    gold_b = [Entity(2, 5, "PEOPLE_COUNT", "30人")]
    a = span_metrics([text_a], [gold_a], [[gold_a[0], Entity(4, 10, "MONEY", "入100万元")]])
    b = span_metrics([text_b], [gold_b], [gold_b])
    assert (a["MONEY"]["tp"], a["MONEY"]["fp"], a["MONEY"]["fn"]) == (0, 1, 1)
    assert b["REGION"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "tp": 0, "fp": 0, "fn": 0}
    pooled = pooled_metrics([a, b])
    assert pooled["micro"]["tp"] == 2 and pooled["micro"]["f1"] == round(4 / 6, 4)
    assert pooled["REGION"]["f1"] == 1.0  # b has no REGION: it neither helps nor hurts
    assert pooled == span_metrics([text_a, text_b], [gold_a, gold_b],
                                  [[gold_a[0], Entity(4, 10, "MONEY", "入100万元")], gold_b])
    from eastwest.training.cv import _mean

    mean = _mean([a, b])
    assert mean["REGION"]["folds"] == 1 and mean["REGION"]["f1"] == 1.0  # b's missing REGION is no score, not 0
    assert mean["micro"]["folds"] == 2 and mean["micro"]["f1"] == round((a["micro"]["f1"] + 1.0) / 2, 4)
