"""Knowledge distillation: a smaller student learns the teacher's per-token distributions.

With `distill.teacher` set to a trained model folder, training runs the teacher once over every
training window (gold and augmented text alike) and keeps its logits; the student's loss is then

    alpha * T² * KL(softmax(teacher / T) || softmax(student / T))  +  (1 - alpha) * cross-entropy(gold)

over the real tokens of each window (special tokens and padding masked out). The teacher's soft
labels say which wrong tags are nearly right (B-ORG vs B-REGION on 会宁县人民医院), which the gold
one-hot labels cannot. Logits are computed once, not per epoch: on CPU the teacher's forward pass
would otherwise cost as much as the student's training step.

With `distill.init_from_teacher` the student starts from the teacher's own first `model.layers`
layers and classifier instead of the base model's: fine-tuned features, half the depth.

Cross-validation of a student must not let the held-out article leak through the teacher: each
fold uses the teacher's own fold model, `<teacher>.folds/<held-out id>/`, which
`eastwest cv TEACHER_CONFIG --keep-models` leaves behind (training/cv.py).

Five articles are little to learn a teacher from. With `distill.stage` the student first learns the
teacher's distributions over all the other text the project has — `silver.documents` People's Daily
paragraphs and the `written.exports` reports — in a cached stage of its own, then the gold articles
and their augmented copies as above. The stage's teacher is the teacher's own last seed-free stage
(its masked-LM, silver and written stages, found in the cache from the teacher's
training_config.yaml, or trained), so the stage holds no seed text: every cross-validation fold
reuses it, and only the gold fine-tune needs the teacher's fold model. The student may start from
that stage's lower layers (`distill.init_from_teacher`).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import DataCollatorForTokenClassification, Trainer

from eastwest.inference.errors import TrainingError
from eastwest.inference.windows import pad_batch

from .config import Config, config_from_dict, resolve_path

TEACHER_COLUMN = "teacher_logits"


def teacher_training_config(config: Config) -> Config:
    """The config the teacher folder was trained with (its training_config.yaml)."""
    import yaml

    path = resolve_path(config.distill.teacher) / "training_config.yaml"
    if not path.is_file():
        raise TrainingError(f"distill.stage needs the teacher's training config: {path} not found")
    return config_from_dict(yaml.safe_load(path.read_text(encoding="utf-8")))


def ensure_distill_stage(prepared, teacher_stage: str, progress: bool = True, *, fit) -> str:
    """Path of the student's distillation stage over all the text, taught by `teacher_stage` (the
    teacher's last seed-free stage folder): cached, or trained now (training/stages.py)."""
    from .silver import silver_documents
    from .stages import cached_stage, exports_key, folder_key, train_key, word_features_key
    from .written import load_written

    config = prepared.config
    if config.mlm.documents:
        raise TrainingError("distill.stage replaces the student's own stages: set mlm.documents: 0")
    base = teacher_stage if config.distill.init_from_teacher else prepared.base_path
    key = {
        "teacher": folder_key(teacher_stage),
        "base": folder_key(base),
        "layers": config.model.layers,
        **word_features_key(config),
        "silver": config.to_dict()["silver"],
        "written": exports_key(config.written.exports),
        "distill": {k: v for k, v in config.to_dict()["distill"].items() if k != "teacher"},
        "window": config.data.window,
        "stride": config.data.stride,
        "train": train_key(config),
    }

    def documents():
        docs = silver_documents(config.silver.documents, config.train.seed, config.silver.lac) if config.silver.documents else []
        return docs + (load_written(config) if config.written.exports else [])

    return cached_stage(prepared, base, "distill", key, documents, config.distill.stage_epochs, progress, fit=fit,
                        teacher=teacher_stage)


def load_teacher(path: str, num_tags: int):
    from transformers import AutoModelForTokenClassification

    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise TrainingError(f"distill.teacher {path}: not a model folder (no config.json)")
    teacher = AutoModelForTokenClassification.from_pretrained(folder, dtype=torch.float32).eval()
    if teacher.config.num_labels != num_tags:
        raise TrainingError(f"distill.teacher {path}: {teacher.config.num_labels} tags, the label set has {num_tags}")
    return teacher


@torch.inference_mode()
def add_teacher_logits(dataset, teacher, pad_id: int, batch_size: int = 32):
    """The dataset with a column of the teacher's logits for each window (tokens × tags); the
    windows' token_type_ids (word features) go to the teacher too when the dataset has them."""
    logits: list = []
    rows = dataset["input_ids"]
    type_rows = dataset["token_type_ids"] if "token_type_ids" in dataset.column_names else None
    for i in range(0, len(rows), batch_size):
        batch = rows[i : i + batch_size]
        types = type_rows[i : i + batch_size] if type_rows is not None else None
        ids, mask, types = (torch.from_numpy(a) for a in pad_batch(batch, pad_id, types))
        out = teacher(input_ids=ids, attention_mask=mask, token_type_ids=types).logits.float()
        logits += [out[j, : len(r)].tolist() for j, r in enumerate(batch)]
    return dataset.add_column(TEACHER_COLUMN, logits)


class DistillationCollator(DataCollatorForTokenClassification):
    """Pads the teacher's logits like the labels (padding rows are masked out of the loss)."""

    def __call__(self, features, return_tensors=None):
        teacher = [f.pop(TEACHER_COLUMN) for f in features]
        batch = super().__call__(features, return_tensors)
        width = batch["input_ids"].shape[1]
        padded = torch.zeros((len(teacher), width, len(teacher[0][0])))
        for j, rows in enumerate(teacher):
            padded[j, : len(rows)] = torch.tensor(rows)
        batch[TEACHER_COLUMN] = padded
        return batch


class DistillationTrainer(Trainer):
    def __init__(self, *args, temperature: float, alpha: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.temperature, self.alpha = temperature, alpha

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        teacher = inputs.pop(TEACHER_COLUMN)
        outputs = model(**inputs)
        real = inputs["labels"] != -100
        t = self.temperature
        kl = F.kl_div(F.log_softmax(outputs.logits[real] / t, -1), F.log_softmax(teacher[real].to(outputs.logits) / t, -1),
                      reduction="batchmean", log_target=True) * t * t
        loss = self.alpha * kl + (1 - self.alpha) * outputs.loss
        return (loss, outputs) if return_outputs else loss
