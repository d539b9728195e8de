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
