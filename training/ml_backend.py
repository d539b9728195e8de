"""`eastwest serve-ls`: a Label Studio ML backend — pre-annotations and retraining from the UI.

The protocol is the one Label Studio 1.23 speaks to a model server (label_studio/ml/api_connector.py
and ml/models.py in its package), every call a JSON POST unless noted:

    GET  /health    is the server up? Label Studio allows it 1 s; here also the training status
    POST /setup     {project: "<id>.<created>", schema: labeling config, hostname, access_token}
                    → {model_version}; Label Studio calls it before every prediction round, so a
                    model swapped in after training shows up as a new version
    POST /predict   {tasks: [{id, data: {text}}], label_config, project, params: {context}}
                    → {results: [{result: [spans], score, model_version}] (one per task, in order;
                    [] for a task that cannot be tagged, which Label Studio skips), model_version};
                    the same call serves interactive pre-annotation
    POST /webhook   {action, project: {id, …}, …}: START_TRAINING (the Start Training button, sent
                    with the connection's Basic Auth) and the annotation events of the webhook Label
                    Studio creates for the backend (sent with that webhook's headers)
    POST /train     {annotations, project: "<id>.<created>", label_config, params}: what Start
                    Training posts instead when the feature flag ff_back_dev_1417 is off
    GET  /versions  → {versions}: the model versions this server has served

Label Studio calls raise_for_status() before it reads a response, so an error answer's body never
reaches its UI: every refused request is logged as one line on stderr (path, project or task, the
reason), and the training status is at /health.

Safety: the server binds to 127.0.0.1 unless told otherwise, and refuses any other address without
a shared secret. On loopback it answers only requests whose Host header is a loopback name with its
port (a web page cannot reach it by DNS rebinding), and every POST must be `application/json` (a
page's cross-site form or text/plain POST gets 415 without being read). With $EASTWEST_LS_SECRET
set, every request must carry it, either as the password of HTTP Basic Auth (what Label Studio
sends when the connection's authentication is "Basic Auth") or as `Authorization: Bearer <secret>`.
The Label Studio address and token that /setup sends are used for the export only with a secret,
or when the address is $LABEL_STUDIO_URL.

Training (`TrainingJobs`): export the project's annotations from Label Studio and validate them as
`eastwest validate` does (in the server), then train and evaluate in a separate process
(training/ls_training.py: the new model and the current one scored the same way, fairly), and swap
the new model in only if its micro F1 is not lower. One training at a time.
"""
from __future__ import annotations

import base64
import binascii
import copy
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from eastwest.inference.errors import BackendError, EastwestError

from .labelstudio import KEY_ENV, URL_ENV, config_mismatch, model_version, predict_texts, prediction_dict
from .ls_training import STATE_FILE, holdout_overlap, one_line as _one_line, training_recipe

SECRET_ENV = "EASTWEST_LS_SECRET"
EVALUATIONS = ("auto", "holdout", "loao")
MAX_TEXT_BYTES = 5 * 1024 * 1024  # as `eastwest tag --max-bytes`
MAX_BODY_BYTES = 256 * 1024 * 1024
ANNOTATION_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def log(message: str) -> None:
    print(f"eastwest serve-ls: {message}", file=sys.stderr, flush=True)


class RequestError(Exception):
    """A request the backend cannot serve: answered as {"error": message} with `status`."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


# --- predictions ------------------------------------------------------------------------------------

JSON_KINDS = {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}


def task_text(task, index: int) -> str:
    """The text of one task of a /predict request, or a RequestError naming the task."""
    name = f"task {task.get('id')}" if isinstance(task, dict) and task.get("id") is not None else f"task #{index}"
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise RequestError(f"{name}: not a task object with a 'data' field")
    text = task["data"].get("text")
    if text is None:
        raise RequestError(f"{name}: data.text is missing (the labeling config shows $text)")
    if not isinstance(text, str):
        raise RequestError(f"{name}: data.text is {JSON_KINDS.get(type(text), type(text).__name__)}, not a string")
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
        from eastwest.inference.tagger import Tagger

        return Path(model_dir), model_version(Path(model_dir)), Tagger.load(model_dir, device=self.device)

    def swap(self, model_dir: Path) -> None:
        loaded = self._load(model_dir)  # load before taking the lock: predictions go on meanwhile
        with self._lock:
            self.model_dir, self.version, self.tagger = loaded
            if self.version not in self.versions:
                self.versions.append(self.version)

    def predict(self, tasks: list) -> tuple[str, list, list[str]]:
        """(model version, one Label Studio prediction per task in order, the problems). A task that
        cannot be tagged gets [] (Label Studio 1.23 stores no prediction for it: ml/models.py) and
        its problem; the others are tagged."""
        texts, problems = {}, []
        for i, task in enumerate(tasks):
            try:
                texts[i] = task_text(task, i)
            except RequestError as exc:
                problems.append(str(exc))
        with self._lock:
            version, tagger = self.version, self.tagger
            predictions = dict(zip(texts, predict_texts(tagger, list(texts.values())))) if texts else {}
        return version, [prediction_dict(predictions[i], version) if i in predictions else [] for i in range(len(tasks))], problems


# --- training -----------------------------------------------------------------------------------------

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
    pid: int | None = None  # the training process

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["started"] = _iso(self.started)
        d["finished"] = _iso(self.finished) if self.finished else None
        return d


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


def _loopback_host(host: str | None) -> bool:
    return (host or "").strip("[]").lower() in LOOPBACK


def same_server(url_a: str | None, url_b: str | None) -> bool:
    """Two Label Studio addresses name the same server (scheme, port, host; loopback names alike)."""
    if not (url_a and url_b):
        return False
    try:
        a, b = urlsplit(url_a.strip()), urlsplit(url_b.strip())
        ports = (a.port or {"http": 80, "https": 443}.get(a.scheme), b.port or {"http": 80, "https": 443}.get(b.scheme))
    except ValueError:
        return False
    if a.scheme != b.scheme or ports[0] != ports[1] or not a.hostname or not b.hostname:
        return False
    return a.hostname.lower() == b.hostname.lower() or (_loopback_host(a.hostname) and _loopback_host(b.hostname))


def child_environment(device: str | None, tmp: Path) -> tuple[dict, str | None]:
    """(environment, device for the Tagger) of a training process: its temporary files in `tmp`
    (removed with it), and only the chosen device visible, since the Trainer takes CUDA whenever
    it sees one."""
    env = dict(os.environ, TMPDIR=str(tmp), PYTHONUNBUFFERED="1")
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    elif device and device.startswith("cuda:"):
        env["CUDA_VISIBLE_DEVICES"] = device.split(":", 1)[1]
        device = "cuda"
    return env, device


class TrainingJobs:
    """Trainings started from Label Studio, one at a time: export and validation in a thread of the
    server, training and evaluation in a process of their own (training/ls_training.py)."""

    def __init__(self, slot: ModelSlot, config_path: str | None, overrides: list[str], evaluation: str, work_dir: Path,
                 train_after: int = 0, secret: str | None = None):
        from .config import load_config

        self.slot = slot
        self.config_path, self.overrides = config_path, list(overrides)
        self.base_config = load_config(config_path, self.overrides)  # ConfigError: one line, at startup
        self.evaluation = resolve_evaluation(evaluation, self.base_config, slot.model_dir)
        self.work_dir = Path(work_dir).resolve()  # the export is named in data.train: never relative to the cwd
        self.train_after = train_after
        self.secret = secret
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
        running = self.running()
        return {"state": (running.state if running else "idle"), "evaluation": self.evaluation,
                "config": self.config_path or "(defaults)", "overrides": self.overrides, "train_after": self.train_after,
                "annotation_events": self.annotation_events, "annotation_events_since_training": self.events_since_training,
                "last_job": last, "jobs": len(self.jobs)}

    def remember_connection(self, project: int, hostname, access_token) -> bool:
        """Keep the address and token /setup sent, if they may be trusted: with a shared secret
        (the caller proved it is Label Studio), or when the address is $LABEL_STUDIO_URL."""
        if not (isinstance(hostname, str) and hostname and isinstance(access_token, str) and access_token):
            return False
        if not (self.secret or same_server(hostname, os.environ.get(URL_ENV))):
            return False
        self.connections[project] = (hostname, access_token)
        return True

    def annotation_event(self, project: int | None) -> Job | None:
        """Count an annotation event; start a training after `train_after` of them (0: never)."""
        with self._lock:
            self.annotation_events += 1
            self.events_since_training += 1
            due = self.train_after and self.events_since_training >= self.train_after and self.running() is None
        if due and project is not None:
            job, started = self.start(project)
            return job if started else None
        return None

    # -- a training
    def start(self, project: int) -> tuple[Job, bool]:
        """(the job, True) for a new training; (the running job, False) while one runs."""
        with self._lock:
            busy = self.running()
            if busy is not None:
                return busy, False
            job = Job(len(self.jobs) + 1, project, evaluation=self.evaluation, previous_model_version=self.slot.version)
            self.jobs.append(job)
            self.events_since_training = 0
            self._thread = threading.Thread(target=self._run, args=(job,), name=f"eastwest-training-{job.id}", daemon=True)
            self._thread.start()
        return job, True

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the running training (tests, shutdown)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, job: Job) -> None:
        expected = (RequestError, EastwestError)
        tmp = Path(tempfile.mkdtemp(prefix=f"eastwest-ls-job{job.id}-"))
        try:
            self._train(job, tmp)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the job says so and the server goes on
            job.state, job.message = "failed", _one_line(exc)
            log(f"training job {job.id} failed: {job.message}")
            if not isinstance(exc, expected):  # a user error (a Label Studio call too): one line
                traceback.print_exc()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            if job.finished is None:
                job.finished = time.time()

    def validated(self, tasks: list[dict], project: int):
        """The export's report, validated as `eastwest validate` does with the config's fix_whitespace."""
        from .annotations import validate_tasks

        report = validate_tasks(tasks, f"project {project} export", fix_whitespace=self.base_config.data.fix_whitespace)
        if not report.ok:
            more = f" (and {len(report.errors) - 3} more)" if len(report.errors) > 3 else ""
            raise RequestError(f"{len(report.errors)} annotation errors, nothing trained: {'; '.join(report.errors[:3])}{more}")
        if not report.docs:
            raise RequestError(f"project {project} has no completed annotation yet ({len(report.unlabelled)} tasks without one)")
        return report

    def _train(self, job: Job, tmp: Path) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(job.started))
        name = f"ls-p{job.project}-{stamp}-job{job.id}"
        job.state = "exporting"
        tasks = self._export(job.project)
        report = self.validated(tasks, job.project)
        export = self.work_dir / "exports" / f"{name}.json"
        export.parent.mkdir(parents=True, exist_ok=True)
        export.write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf-8")
        job.export = str(export)

        config = copy.deepcopy(self.base_config)
        config.data.train = [*config.data.train, str(export)]
        config.output.dir = str(self.work_dir / "models" / name)
        job.state = "training"
        log(f"job {job.id}: training on {report.summary()} from project {job.project} plus "
            f"{', '.join(self.base_config.data.train)}, in a process of its own")
        env, device = child_environment(self.slot.device, tmp)
        spec = {"config": config.to_dict(), "current_dir": str(self.slot.model_dir), "evaluation": self.evaluation,
                "device": device, "work_dir": str(self.work_dir)}
        (tmp / "job.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
        from eastwest.inference.schema import REPO_ROOT

        process = subprocess.Popen([sys.executable, "-m", "eastwest.training.ls_training", str(tmp / "job.json"), str(tmp / "result.json")],
                                   env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL)
        job.pid = process.pid
        while process.poll() is None:
            if (tmp / STATE_FILE).is_file():
                job.state = "evaluating"
            time.sleep(0.5)
        result_path = tmp / "result.json"
        result = json.loads(result_path.read_text(encoding="utf-8")) if result_path.is_file() else {}
        if process.returncode != 0 or "scores" not in result:
            if result.get("error"):
                raise RequestError(result["error"])
            if process.returncode < 0:
                raise RequestError(f"the training process was killed by {signal.Signals(-process.returncode).name}")
            raise RequestError(f"the training process exited with status {process.returncode} (its output is in the log above)")
        new_dir = Path(result["new_model_dir"])
        scores = result["scores"]
        job.new_model_dir, job.new_model_version = str(new_dir), model_version(new_dir)
        job.current_f1, job.new_f1 = scores["current_f1"], scores["new_f1"]
        how = self.evaluation + (f" ({scores['note']})" if scores.get("note") else "")
        if job.new_f1 >= job.current_f1:
            self.slot.swap(new_dir)
            job.state = "swapped"
            job.message = (f"{how} micro F1 {job.new_f1:.4f} (new) >= {job.current_f1:.4f} (current): "
                           f"now serving {job.new_model_version}")
        else:
            job.state = "kept"
            job.message = (f"{how} micro F1 {job.new_f1:.4f} (new) < {job.current_f1:.4f} (current): "
                           f"still serving {self.slot.version}; the new model stays in {new_dir}")
        job.finished = time.time()
        (new_dir / "ls_backend.json").write_text(json.dumps({"job": job.to_dict(), "scores": scores}, ensure_ascii=False, indent=2) + "\n",
                                                  encoding="utf-8")
        log(f"job {job.id}: {job.message}")

    def _export(self, project: int) -> list[dict]:
        from .labelstudio import Session

        url, key = os.environ.get(URL_ENV), os.environ.get(KEY_ENV)
        if not (url and key):
            if project not in self.connections:
                raise RequestError(f"cannot export project {project}: set ${URL_ENV} and ${KEY_ENV} for serve-ls (the address "
                                   f"and token Label Studio sends to /setup are used only with ${SECRET_ENV} set, or when "
                                   f"the address is ${URL_ENV})")
            url, key = self.connections[project]
        return Session(url, key).export(project)


def resolve_evaluation(evaluation: str, config, model_dir: Path) -> str:
    """holdout or loao: `auto` is holdout when the config holds documents out, else loao. A comparison
    that could not be fair is refused here, at startup, with what to do."""
    if evaluation not in EVALUATIONS:
        raise BackendError(f"--evaluation {evaluation}: use {', '.join(EVALUATIONS)}")
    if evaluation == "auto":
        evaluation = "holdout" if config.data.eval_documents else "loao"
    if evaluation == "holdout" and not config.data.eval_documents:
        raise BackendError("--evaluation holdout needs held-out documents: the config's data.eval_documents is empty "
                           "(--set 'data.eval_documents=[ID,…]', or use --evaluation loao)")
    has_recipe = training_recipe(model_dir) is not None
    if evaluation == "loao" and not has_recipe:
        raise BackendError(f"model folder {model_dir} has no training_config.yaml, so its training recipe cannot be "
                           "cross-validated; use --evaluation holdout")
    if evaluation == "holdout":
        overlap = holdout_overlap(model_dir, list(config.data.eval_documents))
        if overlap and not has_recipe:
            raise BackendError(f"the model {model_dir} was trained on the held-out {', '.join(overlap)} and has no "
                               "training_config.yaml to retrain without them for a fair comparison; hold out other "
                               "documents, serve a model trained without them, or use --evaluation loao")
        if overlap:
            log(f"the model {model_dir} was trained on the held-out {', '.join(overlap)}: the first training also retrains "
                "its recipe without them, and that model stands in for it in the comparison")
    return evaluation


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

class Guard:
    """ASGI middleware, in this order: the Host header must name this server (on loopback: a
    loopback name and the bound port; against DNS rebinding), the shared secret (when one is set),
    and a POST must say `Content-Type: application/json` (a browser sends a cross-site text/plain
    or form POST without asking first; a JSON one it must ask for, and is refused)."""

    def __init__(self, app, secret: str | None, host: str, port: int):
        self.app, self.secret = app, secret
        self.port = port
        self.check_host = _loopback_host(host)

    def host_allowed(self, value: str) -> bool:
        if not self.check_host:
            return True  # any other address needs the secret, which a rebinding page does not have
        name, _, port = value.rpartition(":") if not value.endswith("]") else (value, "", "")
        if not name:
            name, port = value, ""
        if not port.isdigit() and port:
            return False
        return _loopback_host(name) and int(port or 80) == self.port

    def secret_given(self, headers: dict[bytes, bytes]) -> bool:
        given = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, value = given.partition(" ")
        expected = [self.secret.encode("utf-8")]
        try:
            expected.append(self.secret.encode("latin-1"))  # what HTTP clients send for a non-ASCII Basic Auth password
        except UnicodeEncodeError:
            pass
        if scheme.lower() == "basic":
            try:
                candidate = base64.b64decode(value.strip(), validate=True).partition(b":")[2]
            except binascii.Error:
                return False
        elif scheme.lower() == "bearer":
            candidate = value.strip().encode("latin-1")
        else:
            return False
        return any(hmac.compare_digest(candidate, e) for e in expected)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.responses import JSONResponse

        headers = dict(scope["headers"])
        response = None
        if not self.host_allowed(headers.get(b"host", b"").decode("latin-1")):
            response = JSONResponse({"error": "this server answers only to http://127.0.0.1, localhost or [::1] with its port"},
                                    status_code=400)
        elif self.secret and not self.secret_given(headers):
            response = JSONResponse({"error": f"authentication required: the shared secret (${SECRET_ENV}) as the Basic Auth "
                                              "password or as 'Authorization: Bearer …'"},
                                    status_code=401, headers={"WWW-Authenticate": 'Basic realm="eastwest"'})
        elif scope["method"] == "POST":
            media = headers.get(b"content-type", b"").decode("latin-1").split(";", 1)[0].strip().lower()
            if media != "application/json":
                response = JSONResponse({"error": f"the request body must be JSON with 'Content-Type: application/json' "
                                                  f"(got {media or 'none'})"}, status_code=415)
        if response is None:
            await self.app(scope, receive, send)
            return
        log(f"{scope['method']} {scope['path']}: HTTP {response.status_code}: {json.loads(response.body)['error']}")
        await response(scope, receive, send)


def create_app(slot: ModelSlot, jobs: TrainingJobs, secret: str | None = None, host: str = "127.0.0.1", port: int = 9090):
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
        request.state.project = _project_id(data.get("project"))
        return data

    async def health(request: Request):
        return JSONResponse({"status": "UP", "model_class": "eastwest-ner", "model_version": slot.version,
                             "model_dir": str(slot.model_dir), "training": jobs.status()})

    async def setup(request: Request):
        data = await body(request)
        check_label_config(data.get("schema"))
        project = _project_id(data.get("project"))
        if project is not None and not jobs.remember_connection(project, data.get("hostname"), data.get("access_token")):
            if data.get("hostname") and not (os.environ.get(URL_ENV) and os.environ.get(KEY_ENV)):
                log(f"/setup project {project}: the address {data.get('hostname')} and its token are not used for exports "
                    f"(no ${SECRET_ENV}, and it is not ${URL_ENV}); Start Training needs ${URL_ENV} and ${KEY_ENV}")
        return JSONResponse({"model_version": slot.version})

    async def predict(request: Request):
        data = await body(request)
        tasks = data.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            raise RequestError("'tasks' must be a non-empty list of tasks", status=400)
        check_label_config(data.get("label_config"))
        version, results, problems = await run_in_threadpool(slot.predict, tasks)
        if len(problems) == len(tasks):
            raise RequestError("; ".join(problems))
        for problem in problems:
            log(f"/predict project {request.state.project}: {problem}; no prediction for it, the other tasks are tagged")
        return JSONResponse({"results": results, "model_version": version})

    def start_training(project: int | None, label_config):
        if project is None:
            raise RequestError("Start Training without a project id", status=400)
        check_label_config(label_config)
        job, started = jobs.start(project)
        if started:
            return JSONResponse({"status": "started", "job": str(job.id), "model_version": slot.version}, status_code=201)
        # Label Studio marks the backend ERROR on any error status: say which job is running instead
        log(f"Start Training for project {project}: job {job.id} (project {job.project}) is still {job.state}; not started again")
        return JSONResponse({"status": f"already running: job {job.id} for project {job.project}, {job.state}",
                             "job": str(job.id), "model_version": slot.version})

    async def webhook(request: Request):
        data = await body(request)
        action = data.get("action")
        project = _project_id(data.get("project"))
        if action == "START_TRAINING":
            label_config = data["project"].get("label_config") if isinstance(data.get("project"), dict) else None
            return start_training(project, label_config)
        if action in ANNOTATION_ACTIONS:
            job = jobs.annotation_event(project)
            return JSONResponse({"status": "training started" if job else "counted", "job": str(job.id) if job else None,
                                 "annotation_events_since_training": jobs.events_since_training})
        return JSONResponse({"status": "ignored", "action": action})

    async def train(request: Request):
        data = await body(request)  # the annotations it carries are not used: the export has them all
        return start_training(_project_id(data.get("project")), data.get("label_config"))

    async def versions(request: Request):
        return JSONResponse({"versions": list(slot.versions)})

    async def request_error(request: Request, exc: RequestError):
        project = getattr(request.state, "project", None)
        where = f" project {project}" if project is not None else ""
        log(f"{request.method} {request.url.path}{where}: HTTP {exc.status}: {exc}")
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    async def server_error(request: Request, exc: Exception):
        message = f"{request.url.path}: {type(exc).__name__}: {_one_line(exc)}"
        log(f"{request.method} {message}")
        return JSONResponse({"error": message}, status_code=500)

    routes = [
        Route("/", health, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/setup", setup, methods=["POST"]),
        Route("/predict", predict, methods=["POST"]),
        Route("/webhook", webhook, methods=["POST"]),
        Route("/train", train, methods=["POST"]),
        Route("/versions", versions, methods=["GET"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(Guard, secret=secret, host=host, port=port)],
                     exception_handlers={RequestError: request_error, Exception: server_error},
                     max_body_size=MAX_BODY_BYTES)  # Starlette 1.6 and later


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
                  secret: str | None = None, host: str = "127.0.0.1", port: int = 9090):
    """(app, slot, jobs) for a model folder and a training config; BackendError on a setup problem."""
    from eastwest.inference.schema import REPO_ROOT

    from .labelstudio import resolve_model_dir

    config_path = config_path or str(REPO_ROOT / "configs" / "teacher.yaml")  # one training, no teacher needed
    work_dir = Path(work_dir).resolve() if work_dir else REPO_ROOT / "models" / "ls-backend"
    try:
        folder = resolve_model_dir(model_dir)
        slot = ModelSlot(folder, device)
        jobs = TrainingJobs(slot, config_path, overrides, evaluation, work_dir, train_after, secret)
    except EastwestError as exc:  # a model folder or config that cannot be used
        raise BackendError(str(exc)) from None
    return create_app(slot, jobs, secret, host, port), slot, jobs


def serve(model_dir, host: str, port: int, config_path, overrides, evaluation: str, work_dir, device=None,
          train_after: int = 0) -> None:
    import uvicorn

    secret = os.environ.get(SECRET_ENV) or None
    check_address(host, port, secret)
    app, slot, jobs = build_backend(model_dir, config_path, overrides, evaluation, work_dir, device, train_after, secret,
                                    host, port)
    shown = f"[{host}]" if ":" in host else host
    log(f"serving {slot.version} ({slot.model_dir}) on http://{shown}:{port}; training from {jobs.config_path} with "
        f"{jobs.evaluation} evaluation; {'shared secret required' if secret else 'no shared secret'}")
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5)
