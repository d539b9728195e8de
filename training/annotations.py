"""Label Studio JSON exports → validated, annotated documents.

A wrong span is worse than a missing one: it teaches the model a wrong boundary. So every span is
checked against the task text and the label set, and problems are reported with the file, task id
and span; nothing is repaired silently. Only `fix_whitespace=True` trims whitespace at span edges,
and each trim is reported.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from eastwest.inference.errors import AnnotationError
from eastwest.inference.schema import Entity, check_spans


@dataclass
class AnnotatedDoc:
    id: str
    text: str
    entities: list[Entity]
    source: str = ""


@dataclass
class LoadReport:
    docs: list[AnnotatedDoc] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)  # "<id>: <older file> → <newer file>"

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        n_spans = sum(len(d.entities) for d in self.docs)
        return (
            f"{len(self.docs)} annotated tasks, {n_spans} spans, {len(self.unlabelled)} tasks without a "
            f"completed annotation skipped, {len(self.fixes)} whitespace fixes, {len(self.errors)} errors"
        )


def read_export(path: str | Path) -> list:
    """Parse an export file into its list of tasks, or raise AnnotationError with one clear line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AnnotationError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"{path}: not UTF-8 text (byte {exc.start}); expected a Label Studio JSON export") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = " (looks like CSV; export as JSON from Label Studio)" if _looks_like_csv(text) else ""
        raise AnnotationError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}{hint}") from None
    if isinstance(data, dict) and "data" in data:
        data = [data]  # a single task
    if not isinstance(data, list):
        raise AnnotationError(f"{path}: expected a list of tasks, got a JSON {type(data).__name__}")
    return data


def _looks_like_csv(text: str) -> bool:
    first = text.split("\n", 1)[0]
    return "," in first and not first.lstrip().startswith(("[", "{"))


def _latest_annotation(task: dict) -> dict | None:
    done = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    if not done:
        return None
    # Label Studio timestamps are ISO strings, comparable as text; the id breaks ties.
    return max(done, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), a.get("id") or 0))


def validate_tasks(
    tasks: Iterable, source: str = "<export>", fix_whitespace: bool = False, text_key: str = "text"
) -> LoadReport:
    report = LoadReport()
    for index, task in enumerate(tasks):
        where = f"{source}: task {task.get('id', f'#{index}') if isinstance(task, dict) else f'#{index}'}"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            report.errors.append(f"{where}: not a task object with a 'data' field")
            continue
        text = task["data"].get(text_key)
        if not isinstance(text, str):
            report.errors.append(f"{where}: data.{text_key} missing or not a string")
            continue
        annotation = _latest_annotation(task)
        if annotation is None:
            report.unlabelled.append(where)
            continue
        result = annotation.get("result")
        if not isinstance(result, list):
            report.errors.append(f"{where}: annotation {annotation.get('id')} has no result list")
            continue
        entities, errors = _check_result(result, text, where, fix_whitespace, report.fixes)
        if errors:
            report.errors.extend(errors)
            continue
        # A stable document id: the file the task was made from when the task says so, else its id.
        doc_id = str(task["data"].get("source") or task.get("id", index))
        report.docs.append(AnnotatedDoc(doc_id, text, entities, source))
    return report


def _check_result(result, text, where, fix_whitespace, fixes):
    """Label Studio span results → entities, through the one span validator (inference/schema.py)."""
    spans, errors = [], []
    for item in result:
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(value, dict) or "start" not in value or "end" not in value or "labels" not in value:
            errors.append(f"{where}: result item {item.get('id') if isinstance(item, dict) else item!r} lacks value.start/end/labels")
            continue
        labels = value["labels"]
        if not isinstance(labels, list) or len(labels) != 1:
            errors.append(f"{where}: span [{value['start']}:{value['end']}] must carry exactly one label, got {labels!r}")
            continue
        spans.append((value["start"], value["end"], labels[0], value.get("text")))
    checked = check_spans(text, spans, whitespace="trim" if fix_whitespace else "error")
    fixes += [f"{where}: {fix}" for fix in checked.fixes]
    return checked.entities, errors + [f"{where}: {problem}" for problem in checked.problems]


def load_exports(paths: Iterable[str | Path], fix_whitespace: bool = False) -> LoadReport:
    """Read and validate several export files into one report (errors from all files are kept).

    A document id that comes again in a later file (the gold export, then a Label Studio export that
    re-annotates one of its articles) is replaced by the later version: one text must never be both
    trained on and held out."""
    report = LoadReport()
    for path in paths:
        try:
            tasks = read_export(path)
        except AnnotationError as exc:
            report.errors.append(str(exc))
            continue
        part = validate_tasks(tasks, str(path), fix_whitespace)
        newer = {d.id: d for d in part.docs}
        report.replaced += [f"{d.id}: {d.source} → {newer[d.id].source}" for d in report.docs if d.id in newer]
        report.docs = [d for d in report.docs if d.id not in newer] + part.docs
        report.errors += part.errors
        report.fixes += part.fixes
        report.unlabelled += part.unlabelled
    return report


def to_label_studio(docs: Iterable[AnnotatedDoc]) -> list[dict]:
    """The inverse: documents as a Label Studio import/export list (one completed annotation each)."""
    tasks = []
    for doc in docs:
        result = [
            {
                "id": f"{doc.id}-{i}",
                "from_name": "label",
                "to_name": "text",
                "type": "labels",
                "value": {"start": e.start, "end": e.end, "text": e.text, "labels": [e.label]},
            }
            for i, e in enumerate(doc.entities)
        ]
        tasks.append({"data": {"text": doc.text, "source": doc.id}, "annotations": [{"result": result}]})
    return tasks
