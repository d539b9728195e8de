"""Shared fixtures: the real gold export, small real things built in the test session, and a
real Label Studio server (from $LABEL_STUDIO_BIN or `label-studio` on PATH) for the tests that
need one."""
from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]

# No per-example time limit: a first example that pays a lazy import (cn2an, a fifth of a second)
# on a busy machine is not a failure; speed is measured in benchmarks/, never in tests.
settings.register_profile("eastwest", deadline=None)
settings.load_profile("eastwest")
GOLD = REPO / "annotations" / "gold.json"
SEEDS = REPO.parent / "shared" / "seeds"


@pytest.fixture(scope="session", autouse=True)
def eastwest_cache(tmp_path_factory) -> Path:
    """One cache (int8 models, the word table) for the session, never the user's: set in the
    environment, so the commands the tests start use it too."""
    path = tmp_path_factory.mktemp("eastwest-cache")
    previous = os.environ.get("EASTWEST_CACHE")
    os.environ["EASTWEST_CACHE"] = str(path)
    yield path
    if previous is None:
        del os.environ["EASTWEST_CACHE"]
    else:
        os.environ["EASTWEST_CACHE"] = previous


def _settle_default_backend(model_dir) -> None:
    """Build the int8 model and measure the default backend for a model folder now, so that no
    test's output depends on being the first to use it (the first run prints progress lines)."""
    from eastwest.inference.onnx_backend import resolve_backend

    resolve_backend("auto", model_dir, None)


@pytest.fixture(scope="session")
def gold_tasks() -> list:
    return json.loads(GOLD.read_text(encoding="utf-8"))


@pytest.fixture
def tasks(gold_tasks) -> list:
    """A private copy of the gold tasks for tests that corrupt them."""
    return copy.deepcopy(gold_tasks)


@pytest.fixture(scope="session")
def gold_docs():
    from eastwest.training.annotations import load_exports

    report = load_exports([GOLD])
    assert report.ok, report.errors
    return report.docs


def build_char_tokenizer(texts):
    """A character-level fast tokenizer over the characters of `texts` (BERT special tokens)."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted({ch for text in texts for ch in text if not ch.isspace()})
    vocab = {tok: i for i, tok in enumerate(specials + chars)}
    backend = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex("."), behavior="isolated")]
    )
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]"
    )


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory, gold_docs):
    """A tiny randomly initialised BERT encoder + char tokenizer, saved like a hub model folder."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = build_char_tokenizer([d.text for d in gold_docs] + ["０１２３４５６７８９"])
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_base_dir):
    """A tiny token classifier trained briefly on two gold articles by the real training code."""
    from eastwest.training.config import load_config
    from eastwest.training.train import run_training

    out = tmp_path_factory.mktemp("tiny-model") / "model"
    config = load_config(None, [
        f"model.base={tiny_base_dir}", "data.eval_documents=[002_ad6c2b88aab27273.txt]",
        "data.train=[annotations/gold.json]", "train.epochs=8", "train.batch_size=16", "train.learning_rate=0.005",
        f"output.dir={out}", "data.window=64", "data.stride=16", "data.tag_stride=8",
    ])
    run_training(config, progress=False)
    _settle_default_backend(out)
    return out


@pytest.fixture(scope="session")
def tiny_word_features_model_dir(tmp_path_factory, tiny_base_dir):
    """A tiny token classifier that takes word features (token_type_ids from inference/lexicon.py)."""
    from eastwest.training.config import load_config
    from eastwest.training.train import run_training

    out = tmp_path_factory.mktemp("tiny-word-features") / "model"
    config = load_config(None, [
        f"model.base={tiny_base_dir}", "model.word_features=true", "train.epochs=2", "train.batch_size=16",
        "train.learning_rate=0.005", f"output.dir={out}", "data.window=64", "data.stride=16",
        "data.eval_documents=[002_ad6c2b88aab27273.txt, 003_3b8787922281874d.txt, 004_7d29d2d5cf896e98.txt]",
    ])
    run_training(config, progress=False)
    return out


# --- a real Label Studio server -----------------------------------------------------------------------

TOKEN = "eastwest-test-token-0123456789"
START_TIMEOUT_S = 180


@dataclass
class Server:
    url: str
    token: str
    start_seconds: float


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    request = urllib.request.Request(f"{url}/api/projects", headers={"Authorization": f"Token {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Booting:
    process: subprocess.Popen
    url: str
    log: Path
    started: float


@pytest.fixture(scope="session")
def booting_server(tmp_path_factory):
    """Start the server (if there is one) without waiting for it, so that it boots while the
    tiny model trains; `label_studio` waits. `_boot_label_studio_early` requests it for every
    `labelstudio`-marked test, so the first such test starts it."""
    binary = os.environ.get("LABEL_STUDIO_BIN") or shutil.which("label-studio")
    if not binary:
        yield None
        return
    data_dir = tmp_path_factory.mktemp("label-studio")
    port = _free_port()
    # The bare names are read by Label Studio too; an unrelated HOST or PORT must not leak in.
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT", "USERNAME", "PASSWORD")}
    env.update(
        LABEL_STUDIO_USERNAME="annotator@example.com",
        LABEL_STUDIO_PASSWORD="eastwest-test-password",
        LABEL_STUDIO_USER_TOKEN=TOKEN,
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        LATEST_VERSION_CHECK="false",
        LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),
        # an ML backend on 127.0.0.1 (tests/test_ml_backend.py): Label Studio 1.23 refuses loopback
        # addresses for ML backends and webhooks unless these are off
        ML_BLOCK_LOCAL_IP="false",
        SSRF_PROTECTION_ENABLED="false",
    )
    log_path = data_dir / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [binary, "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    try:
        yield Booting(process, f"http://127.0.0.1:{port}", log_path, time.monotonic())
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # its own session: the server and its workers only
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(autouse=True)
def _boot_label_studio_early(request):
    """A `labelstudio`-marked test starts the server first thing (its function-scoped fixtures
    then build while it boots); no other test starts it or has it among its fixtures."""
    if request.node.get_closest_marker("labelstudio"):
        request.getfixturevalue("booting_server")


@pytest.fixture(scope="session")
def label_studio(booting_server, pytestconfig) -> Server:
    """The running server, once `GET /api/projects` answers 200 with the admin token."""
    if booting_server is None:
        reason = "no Label Studio server: set LABEL_STUDIO_BIN or put label-studio on PATH (bash .ci/install-label-studio.sh)"
        with pytestconfig.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
            print(f"\nskipping Label Studio tests: {reason}")  # once: the skip is cached for the session
        pytest.skip(reason)
    process, url = booting_server.process, booting_server.url
    while not _answers(url):
        waited = time.monotonic() - booting_server.started
        if process.poll() is not None or waited > START_TIMEOUT_S:
            why = f"exited with status {process.returncode}" if process.poll() is not None else f"did not answer in {START_TIMEOUT_S} s"
            pytest.fail(f"Label Studio {why}; its log:\n{booting_server.log.read_text(errors='replace')[-5000:]}")
        time.sleep(1)
    return Server(url, TOKEN, round(time.monotonic() - booting_server.started, 1))
