"""The `eastwest` command line (also `python -m inference`).

Every sub-command turns expected failures — bad files, bad configs, missing models — into one
line on stderr naming the file, task or key, and a non-zero exit status; tracebacks are for bugs.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


class UserError(Exception):
    """An error in what the user asked for; reported as one line, exit status 2."""


def cmd_labels(args) -> int:
    from .schema import LABELS

    if args.xml:
        sys.stdout.write(LABELS.label_config_xml())
    else:
        for label in LABELS.labels:
            print(f"{label.name}\t{label.description}")
    return 0


def cmd_validate(args) -> int:
    from training.annotations import load_exports, to_label_studio

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


def _config(args):
    from training.config import load_config

    return load_config(args.config, args.set or [])


def cmd_train(args) -> int:
    from training.train import run_training

    run_training(_config(args), progress=not args.quiet)
    return 0


def cmd_cv(args) -> int:
    from training.cv import cross_validate

    cross_validate(_config(args), progress=not args.quiet, baseline=not args.no_baseline)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eastwest", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("labels", help="print the label set (or the Label Studio labeling config)")
    p.add_argument("--xml", action="store_true", help="print the Label Studio labeling config XML")
    p.set_defaults(func=cmd_labels)

    p = sub.add_parser("validate", help="check Label Studio JSON exports before training")
    p.add_argument("files", nargs="+")
    p.add_argument("--fix-whitespace", action="store_true", help="trim whitespace at span edges (each trim is reported)")
    p.add_argument("-o", "--output", help="write the validated (and trimmed) export here")
    p.set_defaults(func=cmd_validate)

    for name, func, help_text in (("train", cmd_train, "fine-tune a model from a config"), ("cv", cmd_cv, "leave-one-article-out cross-validation")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("config", help="YAML config, e.g. configs/default.yaml")
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. train.epochs=3")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
        if name == "cv":
            p.add_argument("--no-baseline", action="store_true", help="skip the rule-based baseline")
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from training.annotations import AnnotationError
    from training.config import ConfigError
    from training.train import TrainingError

    from .tagger import ModelFolderError

    try:
        return args.func(args)
    except (UserError, AnnotationError, ConfigError, TrainingError, ModelFolderError) as exc:
        print(f"eastwest: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("eastwest: interrupted", file=sys.stderr)
        return 130
