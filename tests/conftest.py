"""Shared fixtures: the real gold export and small real things built in the test session."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GOLD = REPO / "annotations" / "gold.json"
SEEDS = REPO.parent / "shared" / "seeds"


@pytest.fixture(scope="session")
def gold_tasks() -> list:
    return json.loads(GOLD.read_text(encoding="utf-8"))


@pytest.fixture
def tasks(gold_tasks) -> list:
    """A private copy of the gold tasks for tests that corrupt them."""
    return copy.deepcopy(gold_tasks)


@pytest.fixture(scope="session")
def gold_docs():
    from training.annotations import load_exports

    report = load_exports([GOLD])
    assert report.ok, report.errors
    return report.docs
