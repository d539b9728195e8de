"""The annotation loop on a Label Studio server: `eastwest ls init|import|predict|next|export`.

    init     a project whose labeling config is derived from configs/labels.yaml
    import   report texts as tasks (anything `eastwest tag` reads), optionally pre-annotated
    predict  the current model's predictions for tasks that have none from it yet
    next     the unannotated tasks the model is least sure about (what to annotate next)
    export   a JSON export that `eastwest validate` and `eastwest train` read as it is

The server is named by `--url` or $LABEL_STUDIO_URL; the API key is read from
$LABEL_STUDIO_API_KEY only, so it never lands in a repository file or the shell history.

Nothing is half-done: inputs, the project's labeling config and every predicted span are checked
before anything is sent, and all tasks (or predictions) of one command go in one request.
Requests are not retried behind the user's back: a repeated import would duplicate tasks.
"""
from __future__ import annotations

import json
import os
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from eastwest.inference.errors import UserError
from eastwest.inference.model_folder import check_model_folder, model_dir_for, weights_digest
from eastwest.inference.schema import LABELS, LABELS_FILE, Entity, check_spans

URL_ENV = "LABEL_STUDIO_URL"
KEY_ENV = "LABEL_STUDIO_API_KEY"
FROM_NAME, TO_NAME = "label", "text"  # the control and object names of LABELS.label_config_xml()
TIMEOUT_S = 300  # a large import is one request; the SDK's 60 s default is too short for it


def _user_error(message: str) -> Exception:
    return UserError(message)


# --- the model side: version, predictions, confidence ---------------------------------------------

def resolve_model_dir(model_dir: str | Path | None) -> Path:
    """The folder `Tagger.load(model_dir)` would load, checked to be a usable model folder."""
    folder = model_dir_for(model_dir)
    check_model_folder(folder)
    return folder


def model_version(model_dir: Path) -> str:
    """`<folder name>-<first 8 hex digits of the weights' SHA-256>`: retraining into the same
    folder gives a new version, so old predictions are never mistaken for the current model's."""
    return f"{model_dir.resolve().name}-{weights_digest(model_dir, hex_digits=8)}"


@dataclass
class Prediction:
    """The model's entities for one text and its confidence in the whole text.

    `score` is the mean over tokens of the probability of the predicted tag. 1 − score is the
    expected share of tokens the model tags wrongly, i.e. the correction work per unit of
    reading, which is what an annotator spends. Alternatives were weighed: the minimum token
    probability is decided by one token and is low for almost every long report; summed
    uncertainty or total entropy ranks long reports first however well they are tagged; entropy
    over all 2·labels+1 tags also counts doubt between tags that do not change the argmax.
    """

    entities: list[Entity]
    score: float


def predict_texts(tagger, texts: Sequence[str], batch_size: int = 32) -> list[Prediction]:
    """Tag each text exactly as `tagger.tag_many` does, keeping the per-token probabilities."""
    from eastwest.inference.bio import tags_to_spans

    predictions = []
    for text, tokens in tagger.predict_tokens(texts, batch_size=batch_size):
        entities = tags_to_spans(tokens.tags, tokens.offsets, text, tokens.scores)
        score = sum(tokens.scores) / len(tokens.scores) if tokens.scores else 1.0
        predictions.append(Prediction(entities, round(score, 4)))
    return predictions


def to_results(entities: Sequence[Entity]) -> list[dict]:
    """Entities as Label Studio span results, each with the model's score for it."""
    return [
        {
            "from_name": FROM_NAME,
            "to_name": TO_NAME,
            "type": "labels",
            "value": {"start": e.start, "end": e.end, "text": e.text, "labels": [e.label]},
            "score": e.score,
        }
        for e in entities
    ]


def result_problems(text: str, results: Sequence[dict]) -> list[str]:
    """What is wrong with span results for `text`: names, then offsets, label and surface text
    through the one span validator (inference/schema.py)."""
    problems, spans = [], []
    for item in results:
        value = item.get("value") or {}
        start, end, labels = value.get("start"), value.get("end"), value.get("labels")
        if (item.get("from_name"), item.get("to_name"), item.get("type")) != (FROM_NAME, TO_NAME, "labels"):
            problems.append(f"span [{start}:{end}] is not a {FROM_NAME}→{TO_NAME} labels result")
        elif not (isinstance(labels, list) and len(labels) == 1):
            problems.append(f"span [{start}:{end}] has labels {labels!r}, expected one of {', '.join(LABELS.names)}")
        elif not isinstance(value.get("text"), str):
            problems.append(f"span [{start}:{end}] has no value.text")
        else:
            spans.append((start, end, labels[0], value["text"]))
    return problems + check_spans(text, spans, whitespace="allow", overlaps=False).problems


def _check_results(items: Iterable[tuple[str, str, list[dict]]]) -> None:
    """Raise one line naming the first bad span of (name, text, results) items, if any."""
    for name, text, results in items:
        problems = result_problems(text, results)
        if problems:
            more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
            raise _user_error(f"{name}: prediction {problems[0]}{more}; nothing was sent")


# --- the labeling config --------------------------------------------------------------------------

def config_mismatch(label_config: str) -> str | None:
    """Why a project's labeling config does not fit configs/labels.yaml, or None when it does.

    Only what matters is compared: a `Labels` control named "label" on a `Text` named "text"
    showing $text, with exactly our label names (colours and layout may be edited in the UI).
    """
    try:
        root = ET.fromstring(label_config)
    except ET.ParseError as exc:
        return f"its labeling config is not valid XML ({exc})"
    texts = [el for el in root.iter("Text") if el.get("name") == TO_NAME]
    if not texts or texts[0].get("value") != "$text":
        return f'it has no <Text name="{TO_NAME}" value="$text"/>'
    controls = [el for el in root.iter("Labels") if el.get("name") == FROM_NAME and el.get("toName") == TO_NAME]
    if not controls:
        return f'it has no <Labels name="{FROM_NAME}" toName="{TO_NAME}">'
    found = {el.get("value") for el in controls[0].iter("Label")}
    missing, extra = sorted(set(LABELS.names) - found), sorted(found - set(LABELS.names))
    if missing or extra:
        return f"its labels differ from {LABELS_FILE.name}: missing {missing or 'none'}, extra {extra or 'none'}"
    return None


# --- the server -------------------------------------------------------------------------------------

def _id_ranges(ids: list[int]) -> str:
    """[3, 4, 5, 9] → '3-5, 9'."""
    runs: list[list[int]] = []
    for i in sorted(ids):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


class Session:
    """One Label Studio server. Every failed call becomes a one-line UserError that says what
    was being done and why it failed (unreachable, key refused, not found, HTTP status)."""

    def __init__(self, url: str, api_key: str):
        from label_studio_sdk import LabelStudio

        self.url = url.rstrip("/")
        with self._call("reading the API key"):  # the SDK checks a JWT key's expiry here
            self.client = LabelStudio(base_url=self.url, api_key=api_key, timeout=TIMEOUT_S, max_retries=0)

    @contextmanager
    def _call(self, doing: str) -> Iterator[None]:
        import httpx
        from label_studio_sdk.core.api_error import ApiError

        try:
            yield
        except httpx.TransportError as exc:
            reason = f"{type(exc).__name__}: {exc}"
            raise _user_error(f"cannot reach Label Studio at {self.url} while {doing} ({reason}); is the server running?") from None
        except ApiError as exc:
            status = exc.status_code
            if status in (401, 403):
                raise _user_error(f"Label Studio at {self.url} refused the API key in ${KEY_ENV} (HTTP {status}) while {doing}") from None
            if status == 404:
                raise _user_error(f"not found on {self.url} (HTTP 404) while {doing}") from None
            body = exc.body if isinstance(exc.body, str) else json.dumps(exc.body, ensure_ascii=False)
            raise _user_error(f"Label Studio at {self.url} answered HTTP {status} while {doing}: {body[:300]}") from None

    def create_project(self, title: str) -> int:
        with self._call(f"creating project {title!r}"):
            return self.client.projects.create(title=title, label_config=LABELS.label_config_xml()).id

    def check_project(self, project: int) -> None:
        """Raise unless the project exists and its labeling config fits our label set."""
        with self._call(f"reading project {project}"):
            label_config = self.client.projects.get(id=project).label_config
        problem = config_mismatch(label_config or "")
        if problem:
            raise _user_error(f"project {project} does not fit this label set: {problem}")

    def tasks(self, project: int) -> list[dict]:
        """All tasks of a project with their annotations and predictions, as plain dicts."""
        with self._call(f"listing the tasks of project {project}"):
            return [task.model_dump(mode="json") for task in self.client.tasks.list(project=project, page_size=100)]

    def import_tasks(self, project: int, tasks: list[dict]) -> list[int]:
        """Import tasks in one request, after checking every pre-annotation; their new ids."""
        _check_results(
            (task["data"]["source"], task["data"]["text"], p["result"]) for task in tasks for p in task.get("predictions", [])
        )
        with self._call(f"importing {len(tasks)} tasks into project {project}"):
            answer = self.client.projects.import_tasks(id=project, request=tasks, return_task_ids=True)
        ids = list(answer.task_ids or [])
        if len(ids) != len(tasks):  # e.g. an Enterprise server, which imports asynchronously
            raise _user_error(
                f"project {project}: sent {len(tasks)} tasks, the server reports task ids [{_id_ranges(ids)}]; "
                "check its Data Manager before importing again"
            )
        return ids

    def import_predictions(self, project: int, predictions: list[dict], texts: dict[int, str]) -> int:
        """Add predictions (each naming its `task`) in one request, after checking every span."""
        _check_results((f"task {p['task']}", texts[p["task"]], p["result"]) for p in predictions)
        with self._call(f"adding {len(predictions)} predictions to project {project}"):
            return self.client.projects.import_predictions(id=project, request=predictions).created or 0

    def current_model_version(self, project: int) -> str:
        """The model version the project pre-annotates with ('' when none was set)."""
        with self._call(f"reading project {project}"):
            return self.client.projects.get(id=project).model_version or ""

    def use_model_version(self, project: int, version: str) -> None:
        """Make the labeling UI pre-annotate with this model version's predictions."""
        with self._call(f"setting the model version of project {project}"):
            self.client.projects.update(id=project, model_version=version)

    def export(self, project: int) -> list[dict]:
        with self._call(f"exporting project {project}"):
            return self.client.projects.exports.as_json(project, timeout=TIMEOUT_S)

    def task_url(self, project: int, task: int) -> str:
        return f"{self.url}/projects/{project}/data?task={task}"


def connect(url: str | None = None) -> Session:
    """A session on `url` (else $LABEL_STUDIO_URL) with the key from $LABEL_STUDIO_API_KEY."""
    url = url or os.environ.get(URL_ENV)
    if not url:
        raise _user_error(f"no Label Studio URL: pass --url or set ${URL_ENV} (e.g. http://localhost:8080)")
    if not url.startswith(("http://", "https://")):
        raise _user_error(f"Label Studio URL {url!r} must start with http:// or https://")
    api_key = os.environ.get(KEY_ENV)
    if not api_key:
        raise _user_error(f"no API key: set ${KEY_ENV} (Label Studio → Account & Settings → Personal Access Token)")
    return Session(url, api_key)


# --- tasks and predictions --------------------------------------------------------------------------

def prediction_dict(prediction: Prediction, version: str) -> dict:
    return {"model_version": version, "score": prediction.score, "result": to_results(prediction.entities)}


def build_task(doc_id: str, text: str, prediction: dict | None = None) -> dict:
    """A Label Studio task; `data.source` is the document id that training and cv key on."""
    task = {"data": {"text": text, "source": doc_id}}
    if prediction is not None:
        task["predictions"] = [prediction]
    return task


def read_documents(inputs: list[str]) -> list:
    """Every document of the inputs (see inference.readers), or an error naming the unreadable."""
    from eastwest.inference.readers import BadDoc, iter_documents

    docs = list(iter_documents(inputs))
    bad = [doc for doc in docs if isinstance(doc, BadDoc)]
    if bad:
        listed = "; ".join(f"{doc.id}: {doc.reason}" for doc in bad[:3])
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise _user_error(f"{len(bad)} inputs cannot be read, nothing was imported: {listed}{more}")
    if not docs:
        raise _user_error("no documents in the inputs")
    return docs


def has_prediction(task: dict, version: str) -> bool:
    return any(p.get("model_version") == version for p in task.get("predictions") or [])


def rank_for_annotation(tasks: list[dict], version: str) -> tuple[list[tuple[float, dict]], int]:
    """Unannotated tasks with a prediction from `version`, least confident first, and the
    number of unannotated tasks without one. A skipped task counts as handled."""
    ranked, unscored = [], 0
    for task in tasks:
        if task.get("annotations"):
            continue
        predictions = task.get("predictions") or []
        scores = [p["score"] for p in predictions if p.get("model_version") == version and p.get("score") is not None]
        if scores:
            ranked.append((min(scores), task))
        else:
            unscored += 1
    ranked.sort(key=lambda pair: (pair[0], pair[1]["id"]))
    return ranked, unscored


# --- the commands -------------------------------------------------------------------------------------

def cmd_init(args) -> int:
    project = connect(args.url).create_project(args.title)
    print(project)
    return 0


def cmd_import(args) -> int:
    docs = read_documents(args.files)
    model_dir = resolve_model_dir(args.model) if args.predict else None
    session = connect(args.url)
    session.check_project(args.project)
    present = {(task.get("data") or {}).get("source") for task in session.tasks(args.project)}
    new = [doc for doc in docs if doc.id not in present]
    if len(new) < len(docs):
        print(f"skipping {len(docs) - len(new)} documents already in project {args.project} (same data.source)", file=sys.stderr)
    if not new:
        print("nothing to import")
        return 0
    if model_dir is None:
        ids = session.import_tasks(args.project, [build_task(doc.id, doc.text) for doc in new])
        print(f"imported {len(ids)} tasks into project {args.project}; task ids {_id_ranges(ids)}")
        return 0
    from eastwest.inference.tagger import Tagger

    version = model_version(model_dir)
    predicted = predict_texts(Tagger.load(model_dir, device=args.device), [doc.text for doc in new])
    tasks = [build_task(doc.id, doc.text, prediction_dict(p, version)) for doc, p in zip(new, predicted)]
    ids = session.import_tasks(args.project, tasks)
    session.use_model_version(args.project, version)
    print(f"imported {len(ids)} tasks into project {args.project} with predictions from {version}; task ids {_id_ranges(ids)}")
    return 0


def cmd_predict(args) -> int:
    model_dir = resolve_model_dir(args.model)
    version = model_version(model_dir)
    session = connect(args.url)
    session.check_project(args.project)
    tasks = session.tasks(args.project)
    if not tasks:
        raise _user_error(f"project {args.project} has no tasks; add some with `eastwest ls import`")
    todo = [task for task in tasks if not has_prediction(task, version)]
    if todo:
        from eastwest.inference.tagger import Tagger

        tagger = Tagger.load(model_dir, device=args.device)
        texts = {task["id"]: task["data"]["text"] for task in todo}
        predictions = [
            {"task": task["id"], **prediction_dict(p, version)}
            for task, p in zip(todo, predict_texts(tagger, list(texts.values())))
        ]
        session.import_predictions(args.project, predictions, texts)
    session.use_model_version(args.project, version)
    print(f"added predictions from {version} to {len(todo)} tasks of project {args.project}")
    return 0


def cmd_next(args) -> int:
    session = connect(args.url)
    version = model_version(resolve_model_dir(args.model)) if args.model else session.current_model_version(args.project)
    if not version:
        raise _user_error(f"project {args.project} has no model version yet; run `eastwest ls predict --project {args.project}`")
    ranked, unscored = rank_for_annotation(session.tasks(args.project), version)
    predict = f"`eastwest ls predict --project {args.project}`"
    if not ranked and unscored:
        raise _user_error(f"no unannotated task of project {args.project} has a prediction from {version}; run {predict}")
    if unscored:
        print(f"note: {unscored} unannotated tasks have no prediction from {version}; run {predict} to rank them too", file=sys.stderr)
    if not ranked:
        print(f"every task of project {args.project} is annotated", file=sys.stderr)
    for score, task in ranked[: args.n]:
        print(f"{task['id']}\t{score:.4f}\t{task['data'].get('source', '')}\t{session.task_url(args.project, task['id'])}")
    return 0


def cmd_export(args) -> int:
    from eastwest.training.annotations import validate_tasks

    session = connect(args.url)
    session.check_project(args.project)
    tasks = session.export(args.project)
    Path(args.output).write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf-8")
    report = validate_tasks(tasks, args.output)
    for line in report.errors:
        print(f"error: {line}", file=sys.stderr)
    print(f"{len(tasks)} tasks written to {args.output}; {report.summary()}")
    return 0 if report.ok else 1


def add_ls_commands(subparsers) -> None:
    """Register `eastwest ls …` on the CLI's sub-command parsers."""
    ls = subparsers.add_parser("ls", help="annotate in Label Studio: init, import, predict, next, export")
    commands = ls.add_subparsers(dest="ls_command", required=True, metavar="{init,import,predict,next,export}")

    def command(name: str, func, help_text: str):
        p = commands.add_parser(name, help=help_text)
        p.add_argument("--url", help=f"Label Studio URL (default: ${URL_ENV}); the API key is read from ${KEY_ENV}")
        if name != "init":
            p.add_argument("--project", type=int, required=True, help="project id (printed by `eastwest ls init`)")
        p.set_defaults(func=func)
        return p

    def model_args(p, help_model: str) -> None:
        p.add_argument("--model", help=f"{help_model} (default: $EASTWEST_MODEL or models/default)")
        p.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda when available)")

    p = command("init", cmd_init, "create a project with the labeling config of configs/labels.yaml; prints its id")
    p.add_argument("--title", required=True)

    p = command("import", cmd_import, "import reports as tasks (files, directories, archives, HTML, JSONL)")
    p.add_argument("files", nargs="+")
    p.add_argument("--predict", action="store_true", help="attach the model's predictions as pre-annotations")
    model_args(p, "model folder for --predict")

    p = command("predict", cmd_predict, "add the model's predictions to tasks that have none from it")
    model_args(p, "model folder")

    p = command("next", cmd_next, "list the unannotated tasks the model is least confident about")
    p.add_argument("-n", type=int, default=10, help="how many tasks (default 10)")
    p.add_argument("--model", help="rank by this model folder's predictions (default: the project's model version, "
                   "i.e. the model of the last `ls import --predict` or `ls predict`)")

    p = command("export", cmd_export, "write a JSON export for `eastwest validate` and `eastwest train`")
    p.add_argument("-o", "--output", required=True, help="JSON file to write")
