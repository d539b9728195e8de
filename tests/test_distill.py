"""Distillation: the loss is the teacher/student divergence, and a student trains end to end."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from eastwest.training.config import load_config


def _inputs(tokenizer, texts):
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    labels = batch["input_ids"].clone().fill_(0)
    labels[batch["attention_mask"] == 0] = -100
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "labels": labels}


def test_distillation_loss_is_zero_for_a_perfect_student_and_positive_otherwise(tiny_model_dir):
    from transformers import AutoModelForTokenClassification, AutoTokenizer, TrainingArguments

    from eastwest.training.distill import TEACHER_COLUMN, DistillationTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    teacher = AutoModelForTokenClassification.from_pretrained(tiny_model_dir).eval()
    inputs = _inputs(tokenizer, ["天津市和平区帮扶会宁县3.3亿元", "带动2086人就业"])
    with torch.no_grad():
        teacher_logits = teacher(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    args = TrainingArguments(output_dir="/tmp/unused", report_to="none", use_cpu=True)
    trainer = DistillationTrainer(model=teacher, args=args, temperature=2.0, alpha=1.0)
    same = trainer.compute_loss(teacher, {**inputs, TEACHER_COLUMN: teacher_logits})
    assert float(same.detach()) == pytest.approx(0.0, abs=1e-5)
    other = copy.deepcopy(teacher)
    torch.nn.init.normal_(other.classifier.weight, std=1.0)
    assert float(trainer.compute_loss(other, {**inputs, TEACHER_COLUMN: teacher_logits}).detach()) > 0.01
    trainer.alpha = 0.0  # only the gold labels: the ordinary token-classification loss
    gold_only = trainer.compute_loss(other, {**inputs, TEACHER_COLUMN: teacher_logits})
    assert float(gold_only.detach()) == pytest.approx(float(other(**inputs).loss.detach()), rel=1e-5)


def test_student_trains_from_a_teacher_folder(tmp_path, tiny_base_dir, tiny_model_dir, gold_tasks):
    from eastwest.training.cv import cross_validate
    from eastwest.training.train import TrainingError, run_training

    export = tmp_path / "one.json"
    export.write_text(json.dumps([gold_tasks[2], gold_tasks[4]], ensure_ascii=False), encoding="utf-8")
    overrides = [f"model.base={tiny_base_dir}", "model.layers=1", f"data.train=[{export}]", "train.epochs=1",
                 "train.batch_size=8", "data.window=64", "data.stride=16", f"distill.teacher={tiny_model_dir}",
                 f"output.dir={tmp_path / 'student'}"]
    folder = run_training(load_config(None, overrides), progress=False)
    config = json.loads((folder / "config.json").read_text())
    assert config["num_hidden_layers"] == 1
    assert (folder / "training_config.yaml").read_text().count(str(tiny_model_dir)) == 1
    with pytest.raises(TrainingError, match="fold model"):  # CV needs the teacher's own fold models
        cross_validate(load_config(None, overrides), progress=False)
    with pytest.raises(TrainingError, match="not a model folder"):
        run_training(load_config(None, overrides[:-2] + [f"distill.teacher={tmp_path}"]), progress=False)
    with pytest.raises(TrainingError, match="differ in model.word_features"):  # the teacher would see no word types
        run_training(load_config(None, overrides + ["model.word_features=true"]), progress=False)


def test_student_can_start_from_the_teachers_lower_layers(tmp_path, tiny_base_dir, tiny_model_dir, gold_tasks):
    from safetensors.torch import load_file

    from eastwest.training.train import run_training

    export = tmp_path / "one.json"
    export.write_text(json.dumps([gold_tasks[2]], ensure_ascii=False), encoding="utf-8")
    overrides = [f"model.base={tiny_base_dir}", "model.layers=1", f"data.train=[{export}]", "train.epochs=1",
                 "train.learning_rate=0", "train.head_learning_rate=0", "data.window=64", "data.stride=16",
                 f"distill.teacher={tiny_model_dir}", "distill.init_from_teacher=true", f"output.dir={tmp_path / 's'}"]
    folder = run_training(load_config(None, overrides), progress=False)
    student, teacher = load_file(folder / "model.safetensors"), load_file(tiny_model_dir / "model.safetensors")
    assert not any(".layer.1." in name for name in student)  # one layer kept
    for name, weight in student.items():  # learning rate 0: exactly the teacher's layer 0, embeddings and head
        assert torch.equal(weight.float(), teacher[name].float()), name


def test_student_distils_over_all_the_text_first(tmp_path, tiny_base_dir, gold_tasks, monkeypatch, capsys):
    """distill.stage: the student learns the teacher's written stage (no seed text) over People's
    Daily paragraphs and the written reports, starting from its lower layers; cached; then gold."""
    from safetensors.torch import load_file

    import eastwest.training.stages as stages
    from eastwest.training.train import TrainingError, run_training

    monkeypatch.setattr(stages, "CACHE_DIR", tmp_path / "cache")
    gold, written = tmp_path / "gold.json", tmp_path / "written.json"
    gold.write_text(json.dumps([gold_tasks[2]], ensure_ascii=False), encoding="utf-8")
    written.write_text(json.dumps([gold_tasks[0]], ensure_ascii=False), encoding="utf-8")
    common = [f"model.base={tiny_base_dir}", f"data.train=[{gold}]", f"written.exports=[{written}]", "written.epochs=1",
              "train.epochs=1", "train.batch_size=8", "data.window=64", "data.stride=16"]
    teacher = run_training(load_config(None, common + ["model.layers=2", f"output.dir={tmp_path / 'teacher'}"]),
                           progress=False)
    (teacher_stage,) = (tmp_path / "cache").iterdir()
    student = common + ["model.layers=1", "silver.documents=12", f"distill.teacher={teacher}", "distill.stage=true",
                        "distill.init_from_teacher=true", "distill.stage_epochs=1", "train.learning_rate=0",
                        "train.head_learning_rate=0"]
    capsys.readouterr()
    folder = run_training(load_config(None, student + [f"output.dir={tmp_path / 's1'}"]), progress=False)
    out = capsys.readouterr().out
    assert "written stage: cached" in out  # the teacher's stage, found from its training_config.yaml
    assert "distill stage: 13 documents" in out  # 12 paragraphs and the written report
    (stage,) = (p for p in (tmp_path / "cache").iterdir() if p.name.startswith("distill-"))
    summary = json.loads((stage / "stage.json").read_text())
    assert summary["key"]["teacher"] == str(teacher_stage) and summary["key"]["base"] == str(teacher_stage)
    # the stage trained (its own learning rate is the config's, 0 here), so the student is exactly
    # the teacher stage's lower layer: one layer kept, the second gone
    weights, taught = load_file(folder / "model.safetensors"), load_file(teacher_stage / "model.safetensors")
    assert not any(".layer.1." in name for name in weights)
    for name, weight in weights.items():
        assert torch.equal(weight.float(), taught[name].float()), name
    run_training(load_config(None, student + [f"output.dir={tmp_path / 's2'}"]), progress=False)
    assert "distill stage: cached" in capsys.readouterr().out
    with pytest.raises(TrainingError, match="set mlm.documents: 0"):
        run_training(load_config(None, student + ["mlm.documents=5", f"output.dir={tmp_path / 's3'}"]), progress=False)
    (teacher / "training_config.yaml").unlink()
    with pytest.raises(TrainingError, match="teacher's training config"):
        run_training(load_config(None, student + [f"output.dir={tmp_path / 's4'}"]), progress=False)
