"""`eastwest serve-ls`: a Label Studio ML backend — pre-annotations and retraining from the UI.

The protocol is the one Label Studio 1.23 speaks to a model server (label_studio/ml/api_connector.py
and ml/models.py in its package), every call a JSON POST unless noted:

    GET  /health    is the server up? Label Studio allows it 1 s; here also the training status
    POST /setup     {project: "<id>.<created>", schema: labeling config, hostname, access_token}
                    → {model_version}; Label Studio calls it before every prediction round, so a
                    model swapped in after training shows up as a new version
    POST /predict   {tasks: [{id, data: {text}}], label_config, project, params: {context}}
                    → {results: [{result: [spans], score, model_version}] (one per task, in order),
                    model_version}; the same call serves interactive pre-annotation
    POST /webhook   {action, project: {id, …}, …}: START_TRAINING (the Start Training button, sent
                    with the connection's Basic Auth) and the annotation events of the webhook Label
                    Studio creates for the backend (sent with that webhook's headers)
    GET  /versions  → {versions}: the model versions this server has served

Safety: the server binds to 127.0.0.1 unless told otherwise, and refuses any other address without
a shared secret. With $EASTWEST_LS_SECRET set, every request must carry it, either as the password
of HTTP Basic Auth (what Label Studio sends when the connection's authentication is "Basic Auth")
or as `Authorization: Bearer <secret>`. A task without a usable text, or a project whose labeling
config does not fit configs/labels.yaml, gets a JSON error naming it; the server goes on serving.

Training (`TrainingJobs`): export the project's annotations from Label Studio, validate them as
`eastwest validate` does, train from the configured config with the export added to data.train,
evaluate the new model and the current one the same way (the held-out documents of
data.eval_documents, or leave-one-article-out cross-validation of both training recipes), and swap
the new model in only if its micro F1 is not lower. One training at a time, in a background thread.
"""
from __future__ import annotations

import base64
import binascii
import copy
import hmac
import json
import os
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from .labelstudio import KEY_ENV, URL_ENV, config_mismatch, model_version, predict_texts, prediction_dict

SECRET_ENV = "EASTWEST_LS_SECRET"
EVALUATIONS = ("auto", "holdout", "loao")
MAX_TEXT_BYTES = 5 * 1024 * 1024  # as `eastwest tag --max-bytes`
MAX_BODY_BYTES = 256 * 1024 * 1024
ANNOTATION_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class BackendError(Exception):
    """A setup problem of the backend (model, config, address); one line for the CLI."""


class RequestError(Exception):
    """A request the backend cannot serve: answered as {"error": message} with `status`."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


# --- predictions ------------------------------------------------------------------------------------

def task_text(task, index: int) -> str:
    """The text of one task of a /predict request, or a RequestError naming the task."""
    name = f"task {task.get('id')}" if isinstance(task, dict) and task.get("id") is not None else f"task #{index}"
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise RequestError(f"{name}: not a task object with a 'data' field")
    text = task["data"].get("text")
    if text is None:
        raise RequestError(f"{name}: data.text is missing (the labeling config shows $text)")
    if not isinstance(text, str):
        raise RequestError(f"{name}: data.text is a {type(text).__name__}, not a string")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise RequestError(f"{name}: data.text is not valid Unicode (lone surrogate at character {exc.start})") from None
    if size > MAX_TEXT_BYTES:
        raise RequestError(f"{name}: data.text is {size:,} bytes, over the limit of {MAX_TEXT_BYTES:,}")
    return text


def check_label_config(label_config) -> None:
    """A RequestError unless the project's labeling config fits configs/labels.yaml (None: not sent)."""
    if label_config is None:
        return
    if not isinstance(label_config, str):
        raise RequestError("label_config is not a string")
    problem = config_mismatch(label_config)
    if problem:
        raise RequestError(f"the project's labeling config does not fit this label set: {problem}")


class ModelSlot:
    """The model being served: its folder, version and Tagger; swapped whole under a lock."""

    def __init__(self, model_dir: Path, device: str | None = None):
        self.device = device
        self._lock = threading.Lock()
        self.model_dir, self.version, self.tagger = self._load(model_dir)
        self.versions = [self.version]

    def _load(self, model_dir: Path):
        from inference.tagger import Tagger

        return Path(model_dir), model_version(Path(model_dir)), Tagger.load(model_dir, device=self.device)

    def swap(self, model_dir: Path) -> None:
        loaded = self._load(model_dir)  # load before taking the lock: predictions go on meanwhile
        with self._lock:
            self.model_dir, self.version, self.tagger = loaded
            if self.version not in self.versions:
                self.versions.append(self.version)

    def predict(self, tasks: list) -> tuple[str, list[dict]]:
        """(model version, one Label Studio prediction per task, in order)."""
        texts = [task_text(task, i) for i, task in enumerate(tasks)]  # every task checked before any work
        with self._lock:
            version, tagger = self.version, self.tagger
            predictions = predict_texts(tagger, texts)
        return version, [prediction_dict(p, version) for p in predictions]


# --- training -----------------------------------------------------------------------------------------

def micro_f1(metrics: dict) -> float:
    return float(metrics["micro"]["f1"])


def _docs_by_id(config) -> dict:
    from .train import load_gold

    return {doc.id: doc for doc in load_gold(config)}


def holdout_scores(config, current_dir: Path, new_dir: Path, device: str | None = None) -> dict:
    """Both models, each decoding as its folder says, on the held-out documents of `config`."""
    from inference.tagger import Tagger

    from .dataset import split_by_document
    from .evaluate import span_metrics
    from .train import load_gold

    _, held = split_by_document(load_gold(config), config.data.eval_documents)
    scores = {}
    for name, folder in (("current", current_dir), ("new", new_dir)):
        tagger = Tagger.load(folder, device=device)
        predicted = [doc.entities for doc in tagger.tag_many([d.text for d in held])]
        scores[name] = micro_f1(span_metrics([d.text for d in held], [d.entities for d in held], predicted))
        del tagger
    return {"current_f1": scores["current"], "new_f1": scores["new"], "documents": [d.id for d in held]}


def loao_scores(current_config, new_config) -> dict:
    """Leave-one-article-out F1 of two training recipes on the same folds: every document of the
    new recipe's data is held out once and scored with its new annotations. A document the current
    recipe never trained on is scored by the current recipe trained on all of its data."""
    from .train import evaluate_model, fit, prepare

    new_docs = _docs_by_id(new_config)
    current_ids = set(_docs_by_id(current_config))
    if len(new_docs) < 2:
        raise RequestError("leave-one-article-out needs at least two annotated documents")
    folds, full_current = [], None
    for doc_id, doc in new_docs.items():
        fold = {"held_out": doc_id}
        for name, recipe in (("current", current_config), ("new", new_config)):
            fold_config = copy.deepcopy(recipe)
            seen = name == "new" or doc_id in current_ids
            fold_config.data.eval_documents = [doc_id] if seen else []
            if not seen and full_current is not None:
                prepared, model = full_current
            else:
                prepared = prepare(fold_config)
                _, model = fit(prepared, progress=False)
                if not seen:
                    full_current = (prepared, model)
            data = fold_config.data
            metrics = evaluate_model(model, prepared.tokenizer, [doc], data.window, data.tagging_stride(),
                                     lexicon=fold_config.decoding.constraint())
            fold[name] = micro_f1(metrics)
        folds.append(fold)
    mean = {name: round(sum(f[name] for f in folds) / len(folds), 4) for name in ("current", "new")}
    return {"current_f1": mean["current"], "new_f1": mean["new"], "folds": folds}


@dataclass
class Job:
    id: int
    project: int
    state: str = "queued"  # queued, exporting, training, evaluating, swapped, kept, failed
    started: float = field(default_factory=time.time)
    finished: float | None = None
    message: str = ""
    evaluation: str = ""
    current_f1: float | None = None
    new_f1: float | None = None
    export: str = ""
    new_model_dir: str = ""
    new_model_version: str = ""
    previous_model_version: str = ""

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["started"] = _iso(self.started)
        d["finished"] = _iso(self.finished) if self.finished else None
        return d


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


class TrainingJobs:
    """Trainings started from Label Studio, one at a time, each in a background thread."""

    def __init__(self, slot: ModelSlot, config_path: str | None, overrides: list[str], evaluation: str, work_dir: Path,
                 train_after: int = 0):
        from .config import load_config

        self.slot = slot
        self.config_path, self.overrides = config_path, list(overrides)
        self.base_config = load_config(config_path, self.overrides)  # ConfigError: one line, at startup
        self.evaluation = resolve_evaluation(evaluation, self.base_config, slot.model_dir)
        self.work_dir = Path(work_dir)
        self.train_after = train_after
        self.connections: dict[int, tuple[str, str]] = {}  # project id → (hostname, access token) from /setup
        self.jobs: list[Job] = []
        self.annotation_events = 0
        self.events_since_training = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- bookkeeping
    def running(self) -> Job | None:
        return next((job for job in self.jobs if job.finished is None), None)

    def status(self) -> dict:
        last = self.jobs[-1].to_dict() if self.jobs else None
        return {"state": (self.running().state if self.running() else "idle"), "evaluation": self.evaluation,
                "config": self.config_path or "(defaults)", "overrides": self.overrides, "train_after": self.train_after,
                "annotation_events": self.annotation_events, "annotation_events_since_training": self.events_since_training,
                "last_job": last, "jobs": len(self.jobs)}

    def remember_connection(self, project: int, hostname, access_token) -> None:
        if isinstance(hostname, str) and hostname and isinstance(access_token, str) and access_token:
            self.connections[project] = (hostname, access_token)

    def annotation_event(self, project: int | None) -> Job | None:
        """Count an annotation event; start a training after `train_after` of them (0: never)."""
        with self._lock:
            self.annotation_events += 1
            self.events_since_training += 1
            due = self.train_after and self.events_since_training >= self.train_after and self.running() is None
        if due and project is not None:
            try:
                return self.start(project)
            except RequestError:  # started by someone else meanwhile
                return None
        return None

    # -- a training
    def start(self, project: int) -> Job:
        with self._lock:
            busy = self.running()
            if busy is not None:
                raise RequestError(f"a training is already running (job {busy.id} for project {busy.project}, "
                                   f"{busy.state} since {_iso(busy.started)}); one at a time", status=409)
            job = Job(len(self.jobs) + 1, project, evaluation=self.evaluation, previous_model_version=self.slot.version)
            self.jobs.append(job)
            self.events_since_training = 0
            self._thread = threading.Thread(target=self._run, args=(job,), name=f"eastwest-training-{job.id}", daemon=True)
            self._thread.start()
        return job

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the running training (tests, shutdown)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, job: Job) -> None:
        from .annotations import AnnotationError
        from .config import ConfigError
        from .train import TrainingError

        expected = (RequestError, BackendError, TrainingError, ConfigError, AnnotationError)
        try:
            self._train(job)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the job says so and the server goes on
            job.state, job.message = "failed", _one_line(exc)
            print(f"eastwest serve-ls: training job {job.id} failed: {job.message}", file=sys.stderr, flush=True)
            if not isinstance(exc, expected) and type(exc).__name__ != "UserError":  # a Label Studio call: one line
                traceback.print_exc()
        finally:
            job.finished = time.time()

    def _train(self, job: Job) -> None:
        from .annotations import validate_tasks
        from .config import config_from_dict
        from .train import run_training

        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(job.started))
        name = f"ls-p{job.project}-{stamp}-job{job.id}"
        job.state = "exporting"
        tasks = self._export(job.project)
        report = validate_tasks(tasks, f"project {job.project} export")
        if not report.ok:
            more = f" (and {len(report.errors) - 3} more)" if len(report.errors) > 3 else ""
            raise RequestError(f"{len(report.errors)} annotation errors, nothing trained: {'; '.join(report.errors[:3])}{more}")
        if not report.docs:
            raise RequestError(f"project {job.project} has no completed annotation yet ({len(report.unlabelled)} tasks without one)")
        export = self.work_dir / "exports" / f"{name}.json"
        export.parent.mkdir(parents=True, exist_ok=True)
        export.write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf-8")
        job.export = str(export)

        config = copy.deepcopy(self.base_config)
        config.data.train = [*config.data.train, str(export)]
        config.output.dir = str(self.work_dir / "models" / name)
        job.state = "training"
        print(f"eastwest serve-ls: job {job.id}: training on {report.summary()} from project {job.project} "
              f"plus {', '.join(self.base_config.data.train)}", file=sys.stderr, flush=True)
        new_dir = run_training(config, progress=False)
        job.new_model_dir, job.new_model_version = str(new_dir), model_version(new_dir)

        job.state = "evaluating"
        current_dir = self.slot.model_dir
        if self.evaluation == "holdout":
            scores = holdout_scores(config, current_dir, new_dir, self.slot.device)
        else:
            current_config = config_from_dict(_training_config(current_dir))
            scores = loao_scores(current_config, config)
        job.current_f1, job.new_f1 = scores["current_f1"], scores["new_f1"]
        (new_dir / "ls_backend.json").write_text(json.dumps({"job": job.to_dict(), "scores": scores}, ensure_ascii=False, indent=2) + "\n",
                                                  encoding="utf-8")
        if job.new_f1 >= job.current_f1:
            self.slot.swap(new_dir)
            job.state = "swapped"
            job.message = (f"{self.evaluation} micro F1 {job.new_f1:.4f} (new) >= {job.current_f1:.4f} (current): "
                           f"now serving {job.new_model_version}")
        else:
            job.state = "kept"
            job.message = (f"{self.evaluation} micro F1 {job.new_f1:.4f} (new) < {job.current_f1:.4f} (current): "
                           f"still serving {self.slot.version}; the new model stays in {new_dir}")
        print(f"eastwest serve-ls: job {job.id}: {job.message}", file=sys.stderr, flush=True)

    def _export(self, project: int) -> list[dict]:
        from .labelstudio import Session

        url, key = os.environ.get(URL_ENV), os.environ.get(KEY_ENV)
        if not (url and key):
            if project not in self.connections:
                raise RequestError(f"cannot export project {project}: set ${URL_ENV} and ${KEY_ENV} for serve-ls, "
                                   "or let Label Studio call /setup for the project first (it sends its address and a token)")
            url, key = self.connections[project]
        return Session(url, key).export(project)


def _training_config(model_dir: Path) -> dict:
    import yaml

    path = Path(model_dir) / "training_config.yaml"
    if not path.is_file():
        raise BackendError(f"model folder {model_dir} has no training_config.yaml, so its training recipe cannot be "
                           "cross-validated; use --evaluation holdout")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def resolve_evaluation(evaluation: str, config, model_dir: Path) -> str:
    """holdout or loao: `auto` is holdout when the config holds documents out, else loao."""
    if evaluation not in EVALUATIONS:
        raise BackendError(f"--evaluation {evaluation}: use {', '.join(EVALUATIONS)}")
    if evaluation == "auto":
        evaluation = "holdout" if config.data.eval_documents else "loao"
    if evaluation == "holdout" and not config.data.eval_documents:
        raise BackendError("--evaluation holdout needs held-out documents: the config's data.eval_documents is empty "
                           "(--set 'data.eval_documents=[ID,…]', or use --evaluation loao)")
    if evaluation == "loao":
        _training_config(model_dir)
    return evaluation


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    lines = text.splitlines()
    return lines[0] + (f" (and {len(lines) - 1} more lines)" if len(lines) > 1 else "")


def _project_id(value) -> int | None:
    """A project id from Label Studio's "<id>.<created timestamp>" uid, a project object or an int."""
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        head = value.split(".", 1)[0]
        return int(head) if head.isdigit() else None
    return None


# --- the HTTP application -------------------------------------------------------------------------------

class SecretCheck:
    """ASGI middleware: every HTTP request must carry the shared secret (when one is set)."""

    def __init__(self, app, secret: str | None):
        self.app, self.secret = app, secret

    def allowed(self, headers: dict[bytes, bytes]) -> bool:
        given = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, value = given.partition(" ")
        candidate = None
        if scheme.lower() == "basic":
            try:
                candidate = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                return False
        elif scheme.lower() == "bearer":
            candidate = value.strip()
        return candidate is not None and hmac.compare_digest(candidate.encode(), self.secret.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.secret or self.allowed(dict(scope["headers"])):
            await self.app(scope, receive, send)
            return
        from starlette.responses import JSONResponse

        response = JSONResponse({"error": f"authentication required: the shared secret (${SECRET_ENV}) as the Basic Auth "
                                          "password or as 'Authorization: Bearer …'"},
                                status_code=401, headers={"WWW-Authenticate": 'Basic realm="eastwest"'})
        await response(scope, receive, send)


def create_app(slot: ModelSlot, jobs: TrainingJobs, secret: str | None = None):
    """The Starlette application speaking Label Studio's ML backend protocol."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def body(request: Request) -> dict:
        try:
            data = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RequestError("the request body is not JSON", status=400) from None
        if not isinstance(data, dict):
            raise RequestError(f"the request body is a JSON {type(data).__name__}, expected an object", status=400)
        return data

    async def health(request: Request):
        return JSONResponse({"status": "UP", "model_class": "eastwest-ner", "model_version": slot.version,
                             "model_dir": str(slot.model_dir), "training": jobs.status()})

    async def setup(request: Request):
        data = await body(request)
        check_label_config(data.get("schema"))
        project = _project_id(data.get("project"))
        if project is not None:
            jobs.remember_connection(project, data.get("hostname"), data.get("access_token"))
        return JSONResponse({"model_version": slot.version})

    async def predict(request: Request):
        data = await body(request)
        tasks = data.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            raise RequestError("'tasks' must be a non-empty list of tasks", status=400)
        check_label_config(data.get("label_config"))
        version, results = await run_in_threadpool(slot.predict, tasks)
        return JSONResponse({"results": results, "model_version": version})

    async def webhook(request: Request):
        data = await body(request)
        action = data.get("action")
        project = _project_id(data.get("project"))
        if action == "START_TRAINING":
            if project is None:
                raise RequestError("START_TRAINING without a project id", status=400)
            label_config = data["project"].get("label_config") if isinstance(data.get("project"), dict) else None
            check_label_config(label_config)
            job = jobs.start(project)
            return JSONResponse({"status": "started", "job": str(job.id), "model_version": slot.version}, status_code=201)
        if action in ANNOTATION_ACTIONS:
            job = jobs.annotation_event(project)
            return JSONResponse({"status": "training started" if job else "counted", "job": str(job.id) if job else None,
                                 "annotation_events_since_training": jobs.events_since_training})
        return JSONResponse({"status": "ignored", "action": action})

    async def versions(request: Request):
        return JSONResponse({"versions": list(slot.versions)})

    async def request_error(request: Request, exc: RequestError):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    async def server_error(request: Request, exc: Exception):
        return JSONResponse({"error": f"{request.url.path}: {type(exc).__name__}: {_one_line(exc)}"}, status_code=500)

    routes = [
        Route("/", health, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/setup", setup, methods=["POST"]),
        Route("/predict", predict, methods=["POST"]),
        Route("/webhook", webhook, methods=["POST"]),
        Route("/versions", versions, methods=["GET"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(SecretCheck, secret=secret)],
                     exception_handlers={RequestError: request_error, Exception: server_error},
                     max_body_size=MAX_BODY_BYTES)


# --- the command --------------------------------------------------------------------------------------

def check_address(host: str, port: int, secret: str | None) -> None:
    """Refuse to listen beyond this machine without a secret, and name a port that is taken."""
    if host not in LOOPBACK and not secret:
        raise BackendError(f"--host {host} would let other machines use the model and start trainings; "
                           f"set ${SECRET_ENV} to a shared secret first (and give it to Label Studio as the Basic Auth password)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BackendError(f"--host {host}: cannot resolve ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise BackendError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def build_backend(model_dir, config_path, overrides, evaluation, work_dir, device=None, train_after=0,
                  secret: str | None = None):
    """(app, slot, jobs) for a model folder and a training config; BackendError on a setup problem."""
    from inference.tagger import ModelFolderError

    from .config import ConfigError
    from .labelstudio import resolve_model_dir

    from inference.schema import REPO_ROOT

    config_path = config_path or str(REPO_ROOT / "configs" / "default.yaml")
    work_dir = Path(work_dir) if work_dir else REPO_ROOT / "models" / "ls-backend"
    try:
        folder = resolve_model_dir(model_dir)
        slot = ModelSlot(folder, device)
        jobs = TrainingJobs(slot, config_path, overrides, evaluation, work_dir, train_after)
    except (ModelFolderError, ConfigError) as exc:
        raise BackendError(str(exc)) from None
    return create_app(slot, jobs, secret), slot, jobs


def serve(model_dir, host: str, port: int, config_path, overrides, evaluation: str, work_dir, device=None,
          train_after: int = 0) -> None:
    import uvicorn

    secret = os.environ.get(SECRET_ENV) or None
    check_address(host, port, secret)
    app, slot, jobs = build_backend(model_dir, config_path, overrides, evaluation, work_dir, device, train_after, secret)
    shown = f"[{host}]" if ":" in host else host
    print(f"eastwest serve-ls: serving {slot.version} ({slot.model_dir}) on http://{shown}:{port}; "
          f"training from {jobs.config_path} with {jobs.evaluation} evaluation; "
          f"{'shared secret required' if secret else 'no shared secret'}", file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5)
