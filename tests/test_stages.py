"""Cached training stages: the written corpus trains once between the base model and the gold fine-tune."""
from __future__ import annotations

import json

from eastwest.training.config import load_config


def test_written_stage_trains_once_and_never_holds_gold(tmp_path, tiny_base_dir, gold_tasks, monkeypatch, capsys):
    import eastwest.training.stages as stages
    from eastwest.training.train import run_training

    monkeypatch.setattr(stages, "CACHE_DIR", tmp_path / "cache")
    gold, written = tmp_path / "gold.json", tmp_path / "written.json"
    gold.write_text(json.dumps([gold_tasks[2]], ensure_ascii=False), encoding="utf-8")
    written.write_text(json.dumps([gold_tasks[0], gold_tasks[4]], ensure_ascii=False), encoding="utf-8")
    overrides = [f"model.base={tiny_base_dir}", f"data.train=[{gold}]", f"written.exports=[{written}]", "written.epochs=1",
                 "train.epochs=1", "train.batch_size=8", "data.window=64", "data.stride=16", "decoding.lexicon=true"]
    first = run_training(load_config(None, overrides + [f"output.dir={tmp_path / 'a'}"]), progress=False)
    (stage,) = (tmp_path / "cache").iterdir()
    summary = json.loads((stage / "stage.json").read_text())
    assert stage.name.startswith("written-") and summary["documents"] == 2
    assert "written stage written" in capsys.readouterr().out
    # the model folder says how it decodes: with the lexicon, as configured
    assert json.loads((first / "config.json").read_text())["eastwest"]["lexicon"] == {"penalty": 4.0, "keep_score": 0.9}
    from eastwest.inference.tagger import Tagger

    assert Tagger.load(first, device="cpu").lexicon is not None
    run_training(load_config(None, overrides + [f"output.dir={tmp_path / 'b'}"]), progress=False)
    assert "written stage: cached" in capsys.readouterr().out
    written.write_text(json.dumps([gold_tasks[0]], ensure_ascii=False), encoding="utf-8")  # new annotations: a new stage
    run_training(load_config(None, overrides + [f"output.dir={tmp_path / 'c'}"]), progress=False)
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_mlm_stage_reads_unlabelled_text_first_and_is_cached(tmp_path, tiny_base_dir, gold_tasks, monkeypatch, capsys):
    """Whole-word masked-LM on People's Daily paragraphs and the written texts, before the stages
    with labels: its folder is the base of the written stage, and a second run reuses it."""
    import torch
    from safetensors.torch import load_file

    import eastwest.training.stages as stages
    from eastwest.training.train import run_training

    monkeypatch.setattr(stages, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr("eastwest.training.mlm.CACHE_DIR", tmp_path / "cache")
    gold, written = tmp_path / "gold.json", tmp_path / "written.json"
    gold.write_text(json.dumps([gold_tasks[2]], ensure_ascii=False), encoding="utf-8")
    written.write_text(json.dumps([gold_tasks[0]], ensure_ascii=False), encoding="utf-8")
    overrides = [f"model.base={tiny_base_dir}", f"data.train=[{gold}]", f"written.exports=[{written}]", "written.epochs=1",
                 "mlm.documents=40", "mlm.epochs=2", "mlm.learning_rate=0.01", "model.word_features=true",
                 "train.epochs=1", "train.batch_size=8", "data.window=64", "data.stride=16"]
    run_training(load_config(None, overrides + [f"output.dir={tmp_path / 'a'}"]), progress=False)
    out = capsys.readouterr().out
    assert "mlm stage: 41 texts" in out  # 40 paragraphs and the written report
    stages_built = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert [name.split("-")[0] for name in stages_built] == ["mlm", "written"], stages_built
    mlm, written_stage = (tmp_path / "cache" / name for name in stages_built)
    summary = json.loads((mlm / "stage.json").read_text())
    assert summary["windows"] > 40 and 0 < summary["train_loss"] < 20
    assert json.loads((written_stage / "stage.json").read_text())["key"]["base"] == str(mlm)
    trained = load_file(mlm / "model.safetensors")
    base = load_file(tiny_base_dir / "model.safetensors")
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(trained[name], base[name.removeprefix("bert.")])  # the encoder learned
    assert trained["bert.embeddings.token_type_embeddings.weight"].shape[0] > 2  # with the word-feature types
    run_training(load_config(None, overrides + [f"output.dir={tmp_path / 'b'}"]), progress=False)
    assert "mlm stage: cached" in capsys.readouterr().out


def test_whole_word_masking_masks_words_together():
    from eastwest.training.mlm import IGNORE, WholeWordMasking

    class Tokens:
        mask_token_id, pad_token_id, all_special_ids = 4, 0, [0, 1, 2, 3, 4]

        def __len__(self):
            return 50

    rows = [{"input_ids": [2, *range(10, 50), 3], "token_type_ids": [0] * 42,
             "word_ids": [-1, *[i // 2 for i in range(40)], -1]}]  # 20 two-token words
    batch = WholeWordMasking(Tokens(), 0.15, seed=1)(rows)
    labels = batch["labels"][0].tolist()
    masked = [i for i, label in enumerate(labels) if label != IGNORE]
    assert len(masked) == 6  # 15% of 40 tokens, whole words: three words
    assert all((i - 1) // 2 == (j - 1) // 2 for i, j in zip(masked[::2], masked[1::2]))  # in pairs, word by word
    assert labels[0] == labels[-1] == IGNORE  # never [CLS]/[SEP]
    assert [labels[i] for i in masked] == [rows[0]["input_ids"][i] for i in masked]
    # everything masked, many times over: ~10% of positions get a random token, never a special one
    replaced = set()
    for seed in range(20):
        batch = WholeWordMasking(Tokens(), 1.0, seed=seed)(rows)
        ids = batch["input_ids"][0].tolist()
        replaced |= {t for i, t in enumerate(ids[1:-1], 1) if t not in (4, rows[0]["input_ids"][i])}
    assert len(replaced) > 20 and not replaced & {0, 1, 2, 3, 4}


def test_stage_keys_name_folders_inside_the_checkout_relative_to_it(tmp_path):
    """So a clone elsewhere or a git worktree with models/cache linked reuses the same stages."""
    from eastwest.inference.schema import REPO_ROOT
    from eastwest.training.stages import folder_key

    assert folder_key(str(REPO_ROOT / "configs")) == "configs"
    link = REPO_ROOT / "models" / f"link-{tmp_path.name}"  # a linked folder still reads as the link's path
    link.symlink_to(tmp_path)
    try:
        assert folder_key(str(link)) == f"models/{link.name}"
    finally:
        link.unlink()
    assert folder_key(str(tmp_path)) == str(tmp_path)  # outside the checkout: the absolute path
    assert folder_key("intfloat/multilingual-e5-small") == "intfloat/multilingual-e5-small"  # a hub id as given
