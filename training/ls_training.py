"""The training job of `eastwest serve-ls` (training/ml_backend.py), run in its own process.

    python -m eastwest.training.ls_training JOB.json RESULT.json

JOB.json holds the training config (as a dict), the folder of the model being served, the
evaluation (holdout or loao), the device and the work folder. The process trains the new model,
scores it and the current one the same way, and writes RESULT.json: {"new_model_dir", "scores"} or
{"error": one line}. Everything process-wide that training touches (seeds, logging, CUDA, the
Trainer's temporary folders) stays in this process; the server decides whether to swap.

The comparison is fair or not made:

* holdout: both models are scored on the held-out documents (data.eval_documents), which the new
  model never trains on. If the current model was trained on any of them (its metrics.json
  `train_documents`), its score there would be inflated, so its recipe (training_config.yaml) is
  retrained with those documents held out, once per model and split (kept under
  WORK/baselines/), and that model stands in for it in the comparison.
* loao: leave-one-article-out over every document of the new recipe's data, both recipes trained
  per fold by training/cv.py's `train_fold` (distilled students with the teacher's fold model).
"""
from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path

from eastwest.inference.errors import EastwestError

STATE_FILE = "state"


class EvaluationError(EastwestError):
    """The comparison cannot be made fairly; one line."""


def micro_f1(metrics: dict) -> float:
    return float(metrics["micro"]["f1"])


def trained_documents(model_dir: Path) -> list[str] | None:
    """The documents a model folder was trained on (metrics.json), or None if it does not say."""
    path = Path(model_dir) / "metrics.json"
    if not path.is_file():
        return None
    docs = json.loads(path.read_text(encoding="utf-8")).get("train_documents")
    return list(docs) if isinstance(docs, list) else None


def holdout_overlap(model_dir: Path, held_out: list[str]) -> list[str]:
    """The held-out documents the model at `model_dir` was trained on (all of them if unknown)."""
    trained = trained_documents(model_dir)
    if trained is None:
        return sorted(held_out)
    return sorted(set(held_out) & set(trained))


def training_recipe(model_dir: Path) -> dict | None:
    import yaml

    path = Path(model_dir) / "training_config.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None


def holdout_baseline(model_dir: Path, held_out: list[str], work_dir: Path) -> tuple[Path, str]:
    """(the model folder to score as "current", a note): `model_dir` itself when it never trained
    on the held-out documents, else its recipe retrained without them (reused if already made)."""
    from .config import config_from_dict
    from .labelstudio import model_version
    from .train import run_training

    overlap = holdout_overlap(model_dir, held_out)
    if not overlap:
        return Path(model_dir), ""
    recipe = training_recipe(model_dir)
    if recipe is None:
        raise EvaluationError(f"the current model {model_dir} was trained on the held-out documents {', '.join(overlap)} and has "
                              "no training_config.yaml to retrain without them; use --evaluation loao or a --model trained "
                              "without them")
    config = config_from_dict(recipe)
    config.data.eval_documents = overlap
    key = hashlib.sha256(json.dumps([model_version(Path(model_dir)), overlap]).encode()).hexdigest()[:12]
    folder = Path(work_dir) / "baselines" / f"{Path(model_dir).name}-without-{key}"
    config.output.dir = str(folder)
    trained = trained_documents(folder) if (folder / "config.json").is_file() else None
    if trained is None or set(trained) & set(overlap):
        print(f"the current model was trained on held-out {', '.join(overlap)}: retraining its recipe without them "
              f"into {folder} for a fair comparison", flush=True)
        run_training(config, progress=False)
    note = f"current recipe retrained without {', '.join(overlap)} ({folder})"
    return folder, note


def holdout_scores(config, current_dir: Path, new_dir: Path, device: str | None, work_dir: Path) -> dict:
    """Both models, each decoding as its folder says, on the held-out documents of `config`."""
    from eastwest.inference.tagger import Tagger

    from .dataset import split_by_document
    from .evaluate import span_metrics
    from .train import load_gold

    _, held = split_by_document(load_gold(config), config.data.eval_documents)
    baseline, note = holdout_baseline(current_dir, [d.id for d in held], work_dir)
    scores = {}
    for name, folder in (("current", baseline), ("new", new_dir)):
        tagger = Tagger.load(folder, device=device)
        predicted = [doc.entities for doc in tagger.tag_many([d.text for d in held])]
        scores[name] = micro_f1(span_metrics([d.text for d in held], [d.entities for d in held], predicted))
        del tagger
    return {"current_f1": scores["current"], "new_f1": scores["new"], "documents": [d.id for d in held],
            "current_scored": str(baseline), "note": note}


def loao_scores(current_config, new_config) -> dict:
    """Leave-one-article-out F1 of two training recipes on the same folds: every document of the
    new recipe's data is held out once and scored with its new annotations, by both recipes trained
    without it (training/cv.py's folds). A document the current recipe never had is scored by the
    current recipe trained on all of its data (one training, shared by those folds)."""
    from .cv import train_fold
    from .train import evaluate_model, fit, load_gold, prepare

    new_docs = {doc.id: doc for doc in load_gold(new_config)}
    current_ids = {doc.id for doc in load_gold(current_config)}
    if len(new_docs) < 2:
        raise EvaluationError("leave-one-article-out needs at least two annotated documents")
    folds, full_current = [], None
    for doc_id, doc in new_docs.items():
        fold = {"held_out": doc_id, "train_documents": {}}
        for name, recipe in (("current", current_config), ("new", new_config)):
            if name == "new" or doc_id in current_ids:
                fold_config, prepared, model = train_fold(recipe, doc_id)
            else:
                if full_current is None:
                    fold_config = copy.deepcopy(recipe)
                    fold_config.data.eval_documents = []
                    prepared = prepare(fold_config)
                    full_current = (fold_config, prepared, fit(prepared, progress=False)[1])
                fold_config, prepared, model = full_current
            data = fold_config.data
            metrics = evaluate_model(model, prepared.tokenizer, [doc], data.window, data.tagging_stride(),
                                     lexicon=fold_config.decoding.constraint())
            fold[name] = micro_f1(metrics)
            fold["train_documents"][name] = [d.id for d in prepared.train_docs]
        folds.append(fold)
    mean = {name: round(sum(f[name] for f in folds) / len(folds), 4) for name in ("current", "new")}
    return {"current_f1": mean["current"], "new_f1": mean["new"], "folds": folds}


def run_job(spec: dict, state_path: Path | None = None) -> dict:
    """Train the new model of a job and score both; {"new_model_dir", "scores"}."""
    from .config import config_from_dict
    from .train import run_training

    config = config_from_dict(spec["config"])
    new_dir = run_training(config, progress=False)
    if state_path is not None:
        state_path.write_text("evaluating", encoding="utf-8")
    current_dir = Path(spec["current_dir"])
    if spec["evaluation"] == "holdout":
        scores = holdout_scores(config, current_dir, new_dir, spec.get("device"), Path(spec["work_dir"]))
    else:
        recipe = training_recipe(current_dir)
        if recipe is None:
            raise EvaluationError(f"model folder {current_dir} has no training_config.yaml, so its recipe cannot be "
                                  "cross-validated; use --evaluation holdout")
        scores = loao_scores(config_from_dict(recipe), config)
    return {"new_model_dir": str(new_dir), "scores": scores}


def one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    lines = text.splitlines()
    return lines[0] + (f" (and {len(lines) - 1} more lines)" if len(lines) > 1 else "")


def main(argv: list[str]) -> int:
    import traceback


    job_path, result_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(job_path.read_text(encoding="utf-8"))
    try:
        result = run_job(spec, job_path.with_name(STATE_FILE))
    except Exception as exc:  # noqa: BLE001 - the server reports it; unexpected ones with a traceback
        if not isinstance(exc, (EastwestError, ValueError)):
            traceback.print_exc()
        result_path.write_text(json.dumps({"error": one_line(exc)}, ensure_ascii=False), encoding="utf-8")
        return 1
    result_path.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
