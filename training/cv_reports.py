"""Where a config's cross-validation report and fold models live, and whether a saved report
still describes that config. Below both `eastwest train` (which records a matching report in the
model folder) and `eastwest cv` (which writes it).
"""
from __future__ import annotations

import json
from pathlib import Path

from .config import Config, resolve_path


def folds_dir(config: Config) -> Path:
    out = resolve_path(config.output.dir)
    return out.with_name(out.name + ".folds")


def cv_report_path(config: Config) -> Path:
    out = resolve_path(config.output.dir)
    return out.with_name(out.name + ".cv.json")


def _comparable(config: Config) -> dict:
    """The parts of a config that decide what a cross-validation measures."""
    d = config.to_dict()
    d.pop("output")
    d["data"].pop("eval_documents")
    return d


def matching_cv_report(config: Config) -> dict | None:
    """The saved CV report for this exact configuration, or None (stale reports are ignored)."""
    path = cv_report_path(config)
    if not path.is_file():
        return None
    report = json.loads(path.read_text(encoding="utf-8"))
    return report if report.get("config") == _comparable(config) else None
