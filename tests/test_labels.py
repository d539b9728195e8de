"""configs/labels.yaml is the one source of the label set: everything derived from it must agree."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import yaml

from eastwest.inference.schema import LABELS, LABELS_FILE

from .conftest import REPO


def test_tags_follow_the_label_file():
    names = [d["name"] for d in yaml.safe_load(LABELS_FILE.read_text(encoding="utf-8"))["labels"]]
    assert list(LABELS.names) == names == ["REGION", "ORG", "DATE", "MONEY", "PROJECT_COUNT", "PEOPLE_COUNT"]
    assert LABELS.tags[0] == "O" and len(LABELS.tags) == 1 + 2 * len(names)
    assert all(LABELS.label2id[tag] == i for i, tag in LABELS.id2label.items())


def test_committed_labeling_config_is_the_generated_one():
    committed = (REPO / "annotations" / "labeling_config.xml").read_text(encoding="utf-8")
    assert committed == LABELS.label_config_xml(), "regenerate with: eastwest labels --xml > annotations/labeling_config.xml"
    root = ET.fromstring(committed)
    assert [label.get("value") for label in root.iter("Label")] == list(LABELS.names)
    assert root.find("Labels").get("toName") == root.find("Text").get("name") == "text"


def test_guideline_label_table_matches():
    guidelines = (REPO / "annotations" / "GUIDELINES.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| ([A-Z_]+) \| (.+?) \|$", guidelines, flags=re.M)
    assert rows == [(label.name, label.description) for label in LABELS.labels]
