"""The model card (README.md) written into every model folder."""
from __future__ import annotations

from eastwest.inference.schema import LABELS

from .config import Config


def _table(metrics: dict) -> str:
    rows = ["| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for label, m in metrics.items():
        rows.append(f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
    return "\n".join(rows)


def _stages(config: Config) -> list[str]:
    """The cached stages before the gold fine-tune (training/train.py: seed_free_stages)."""
    return [
        (f"- masked-LM stage first: whole-word masking ({config.mlm.mask:.0%} of each window) on "
         f"{'all' if config.mlm.documents < 0 else config.mlm.documents} People's Daily 1998 paragraphs"
         f"{' and the written corpus texts' if config.mlm.written and config.written.exports else ''}, "
         f"{config.mlm.epochs} epoch(s)") if config.mlm.documents else "- masked-LM stage: none",
        (f"- silver stage next: {config.silver.documents} People's Daily 1998 paragraphs, silver-labelled, "
         f"{config.silver.epochs} epoch(s)") if config.silver.documents else "- silver stage: none",
        (f"- silver ORG labels from Baidu LAC where the corpus agrees (`silver.lac`)" if config.silver.lac else
         "- silver ORG labels: the corpus's single-word nt organisations only"),
        (f"- written stage next: {', '.join(config.written.exports)}, {config.written.epochs} epoch(s) — reports "
         "written by the team (every pairing but the seeds', a quarter in traditional script, 1996–2025), "
         "each annotated by two independent passes and adjudicated (annotations/written/)")
        if config.written.exports else "- written stage: none",
    ]


def _distillation_stage(config: Config) -> list[str]:
    """A student's stage over all the text (training/distill.py) instead of stages of its own."""
    text = " and ".join(filter(None, [f"{config.silver.documents} People's Daily 1998 paragraphs" if config.silver.documents else "",
                                      ", ".join(config.written.exports)]))
    return [f"- distillation stage first: {text}, {config.distill.stage_epochs} epoch(s), taught by the teacher's own "
            "last seed-free stage (its masked-LM, silver and written stages)"
            + (f", starting from that stage's first {config.model.layers} layers" if config.distill.init_from_teacher else "")]


def model_card(config: Config, metrics: dict) -> str:
    labels = "\n".join(f"- `{label.name}`: {label.description}" for label in LABELS.labels)
    parts = [
        "---",
        "language: zh",
        "pipeline_tag: token-classification",
        "library_name: transformers",
        "---",
        "# eastwest-ner token classifier",
        "",
        "Tags character spans in Chinese reports on East–West cooperation (东西部协作, 对口帮扶) with strict "
        "IOB2 tags. Loads with plain transformers: `AutoModelForTokenClassification.from_pretrained(folder)` and "
        "`AutoTokenizer.from_pretrained(folder)`; the `eastwest` package adds long-document windows and records.",
        "",
        "## Labels",
        labels,
        "",
        "## Training",
        f"- base model: `{config.model.base}`" + (f", first {config.model.layers} layers" if config.model.layers else ""),
        ("- word features: each character's place in its jieba word and the word's kind (gazetteer place, "
         "organisation head, other), or in a money/count/date pattern of the rule tagger, as `token_type_ids` "
         "(`inference/lexicon.py`); plain transformers loads the folder, but only the `eastwest` Tagger feeds "
         "the types") if config.model.word_features else
        "- word features: none (token_type_ids all 0)",
        f"- data: {', '.join(config.data.train)} ({len(metrics.get('train_documents', []))} documents)",
        f"- windows of {config.data.window} tokens, stride {config.data.stride} (tagging: {config.data.tagging_stride()}); "
        f"{config.train.epochs} epochs, "
        f"learning rate {config.train.learning_rate}, batch {config.train.batch_size}, seed {config.train.seed}",
        f"- augmentation: {config.augment.copies} copies per document" if config.augment.copies else "- augmentation: none",
        *(_distillation_stage(config) if config.distill.teacher and config.distill.stage else _stages(config)),
        (f"- distilled from `{config.distill.teacher}` (soft labels at temperature {config.distill.temperature}, "
         f"weight {config.distill.alpha}, beside the gold labels)") if config.distill.teacher else "- distillation: none",
        (f"- decoding: Viterbi with the lexicon constraint (jieba word boundaries + gazetteer; penalty "
         f"{config.decoding.penalty}, unparsable REGION kept above {config.decoding.keep_score})")
        if config.decoding.lexicon else "- decoding: Viterbi, no lexicon constraint",
        f"- training time: {metrics.get('train_seconds', '?')} s",
        "- the full configuration is in `training_config.yaml`",
        "",
        "## Evaluation",
    ]
    cv = metrics.get("cross_validation")
    if cv:
        # reports before pooling existed have only the mean over folds
        how, scores = ("spans of every held-out article counted together", cv["pooled"]) if "pooled" in cv else \
            ("mean over folds", cv["mean"])
        parts += [
            f"Leave-one-article-out cross-validation over {len(cv['folds'])} articles (strict span match, {how}):",
            "",
            _table(scores["model"]),
            "",
        ]
        variants = {"model_greedy": "greedy argmax decoding instead of Viterbi",
                    "model_no_lexicon": "Viterbi without the lexicon constraint",
                    "model_lexicon": "the lexicon constraint added to Viterbi",
                    "model_int8": "the int8 ONNX export (`--backend onnx`)"}
        parts += [f"- micro F1 with {what}: {scores[name]['micro']['f1']:.3f}" for name, what in variants.items()
                  if name in scores]
        parts += [""] if any(name in scores for name in variants) else []
        for peer, what in (("rules", "The regex + gazetteer rule baseline (`inference/rules.py`)"),
                           ("lac", "Baidu LAC, its word classes mapped onto the labels (`training/peers.py`)")):
            if peer in scores:
                parts += [f"{what} on the same folds:", "", _table(scores[peer]), ""]
    if "eval" in metrics:
        parts += [f"Held-out documents {', '.join(metrics['eval_documents'])}:", "", _table(metrics["eval"]), ""]
    if not cv and "eval" not in metrics:
        parts += ["No held-out evaluation was run for this model folder; run `eastwest cv` on its config.", ""]
    parts += [
        "## Intended use and limits",
        "- Intended: tagging regions, organisations, dates, money and project/people counts in reports on "
        "East–West cooperation and paired assistance, to build structured records of who helps whom with what.",
        "- Scored on five real articles of one pairing (Tianjin and Qingdao districts helping Gansu counties); "
        "the written corpus covers the other pairings but is written text. Expect lower accuracy on real reports "
        "of other pairings, genres and years than the figures above; check the records against the source spans "
        "they cite.",
        "- Character-level: simplified and traditional text are both handled; other languages are not.",
        "",
    ]
    return "\n".join(parts)
