"""inference.record_types: the record's one definition, its published JSON Schemas, and real output
(rule-tagger and gold records of the seed reports, a trained model's JSONL lines) checked against them."""
from __future__ import annotations

import json

import jsonschema
import pytest

from eastwest.inference.record_types import (FACT_COLUMNS, SCHEMA_DIR, SCHEMAS, Record, TaggedDocument, json_schema,
                                             main, schema_text, validate_record)
from eastwest.inference.records import build_record
from eastwest.inference.rules import RuleTagger
from eastwest.inference.writers import COLUMNS, fact_rows

from .conftest import GOLD, SEEDS


def validator(model) -> jsonschema.Draft202012Validator:
    schema = json_schema(model)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def assert_valid(validator, instance) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]
    assert not errors, errors[:5]


def seed_texts() -> list[tuple[str, str]]:
    return [(p.name, p.read_text(encoding="utf-8")) for p in sorted(SEEDS.glob("*.txt"))]


def test_committed_schemas_are_the_generated_ones(capsys):
    for name, model in SCHEMAS.items():
        assert (SCHEMA_DIR / name).read_text(encoding="utf-8") == schema_text(model), (
            f"schema/{name} is out of date: run python -m eastwest.inference.record_types")
    assert main(["--check"]) == 0


def test_check_reports_a_stale_schema(tmp_path, capsys):
    assert main(["--dir", str(tmp_path), "--check"]) == 1
    assert main(["--dir", str(tmp_path)]) == 0
    assert main(["--dir", str(tmp_path), "--check"]) == 0


@pytest.mark.skipif(not SEEDS.exists(), reason="no seed reports")
def test_rule_tagger_records_of_the_seeds_validate():
    schema = validator(Record)
    texts = seed_texts()
    assert texts
    facts = 0
    for name, text in texts:
        record = json.loads(json.dumps(build_record(text, RuleTagger().tag(text)), ensure_ascii=False))
        assert_valid(schema, record)
        validate_record(record)
        facts += len(record["facts"])
    assert facts > 0


@pytest.mark.skipif(not GOLD.exists(), reason="annotations/gold.json not added yet")
def test_gold_records_validate(gold_tasks):
    from eastwest.inference.schema import Entity

    schema = validator(Record)
    for task in gold_tasks:
        result = task["annotations"][-1]["result"]
        entities = [Entity(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0], r["value"]["text"])
                    for r in result if r.get("type") == "labels"]
        record = json.loads(json.dumps(build_record(task["data"]["text"], entities), ensure_ascii=False))
        assert_valid(schema, record)


def test_a_fractional_amount_is_an_exact_decimal_and_a_table_number():
    text = "2020年，上海市普陀区向陇川县投入帮扶资金2860.5万元，按每公斤6.5元的保护价收购茶叶。"
    record = build_record(text, RuleTagger().tag(text))
    assert [f["value"] for f in record["facts"]] == [28605000, "6.5"]
    validate_record(record)
    rows = fact_rows({"id": "a", "record": record})
    assert [row["value"] for row in rows] == [28605000.0, 6.5]


def test_unknown_or_mistyped_keys_are_rejected():
    schema = validator(Record)
    text = "上海市普陀区对口帮扶云南省陇川县，投入资金2860万元。"
    record = json.loads(json.dumps(build_record(text, RuleTagger().tag(text)), ensure_ascii=False))
    assert_valid(schema, record)
    drifted = json.loads(json.dumps(record))
    drifted["facts"][0]["amount"] = 1
    assert list(schema.iter_errors(drifted))
    drifted = json.loads(json.dumps(record))
    drifted["facts"][0]["value"] = 2860.5  # a float is not an exact amount: "2860.5" is
    assert list(schema.iter_errors(drifted))
    drifted = json.loads(json.dumps(record))
    del drifted["facts"][0]["sentence"]
    assert list(schema.iter_errors(drifted))


def test_table_columns_come_from_the_fact_definition():
    fact_part = COLUMNS[COLUMNS.index("fact_index") + 1:]
    assert fact_part == tuple(column.name for _, column in FACT_COLUMNS)
    assert fact_part == ("fact_label", "fact_start", "fact_end", "fact_text", "value", "unit", "qualifier", "date",
                         "category", "kind", "per", "part_of_start", "regions", "sentence_start", "sentence_end")


@pytest.mark.skipif(not SEEDS.exists(), reason="no seed reports")
def test_tagger_output_validates(tiny_model_dir):
    from eastwest.inference import Tagger
    from eastwest.inference.batch import model_identity

    schema = validator(TaggedDocument)
    tagger = Tagger.load(tiny_model_dir, device="cpu")
    texts = seed_texts()
    for (name, _), doc in zip(texts, tagger.tag_many([t for _, t in texts], batch_size=4)):
        doc.id, doc.source = name, name
        line = json.loads(doc.to_json())
        assert_valid(schema, line)
        assert list(line) == ["id", "source", "text", "entities", "record"]
        with_run_fields = {**line, "replaced": 0, "model": model_identity(str(tiny_model_dir), "torch", device="cpu")}
        assert_valid(schema, with_run_fields)
