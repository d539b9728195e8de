"""The record as a type: the one definition of what `build_record` and `eastwest tag` write.

`Record` (partners, facts, not_facts, published), `Partner`, `Fact`, `EntityRecord` and
`TaggedDocument` (one JSONL line of `eastwest tag`) are pydantic models. They are the source of
truth for three things that used to be kept by hand:

  - the JSON Schemas published in the repository, `schema/record.schema.json` and
    `schema/document.schema.json`, written by `python -m eastwest.inference.record_types`
    (`--check` fails when the committed files differ; tests/test_record_types.py runs it);
  - the validation of real output in the tests (`validate_record`, `validate_document`);
  - the CSV and Parquet fact columns (`FACT_COLUMNS`, read by writers.py): each column is declared
    on the fact field it comes from.

`build_record` still returns plain dicts (`doc.record["facts"]`), key for key what these models
describe: the models check the dicts, they do not replace them. Every model forbids keys it does not
name, so a key added to a record without being added here fails the tests. A field marked "absent
unless …" is left out of the dict when it does not apply, rather than written as null.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from eastwest.inference.gazetteer import LEVELS
from eastwest.inference.schema import LABELS, REPO_ROOT

FACT_LABELS = ("MONEY", "PROJECT_COUNT", "PEOPLE_COUNT")
SCHEMA_DIR = REPO_ROOT / "schema"  # in a checkout, the published copies

Level = Literal[LEVELS]  # type: ignore[valid-type]
EntityLabel = Literal[LABELS.names]  # type: ignore[valid-type]  # configs/labels.yaml
FactLabel = Literal[FACT_LABELS]  # type: ignore[valid-type]
# An exact amount: an integer, or a decimal string when it has a fraction (0.5元 → "0.5"), never a float.
DECIMAL_PATTERN = r"^-?\d+\.\d+$"
DecimalText = Annotated[str, StringConstraints(pattern=DECIMAL_PATTERN)]
Offsets = Annotated[list[int], Field(min_length=2, max_length=2)]  # [start, end) in the report's text


def _absent(description: str) -> Any:
    """A key that is left out when it does not apply (never written as null)."""
    def drop_default(schema: dict) -> None:
        schema.pop("default", None)

    return Field(default=None, description=description, json_schema_extra=drop_default)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Span(_Model):
    """Words of the report that a value was read from."""

    text: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class Region(_Model):
    """A division of the gazetteer (configs/ and inference/gazetteer.py)."""

    name: str
    full_name: str
    code: str = Field(description="administrative division code, 6 digits (9 for a town)")
    province: str
    level: Level


class RegionMention(Region):
    """A place named in a fact's sentence, with its span."""

    text: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class Evidence(Span):
    cue: str = Field(description="helps, helped by, sends to, paired, abbreviation or named")
    side: Literal["helper", "recipient"] = _absent("absent unless cue is `named`: the side this span names")


class Pairing(_Model):
    """The entry of configs/pairings.yaml a pair falls under."""

    model_config = ConfigDict(populate_by_name=True)

    helper: str
    recipient: str
    programme: str
    from_: int = Field(alias="from", description="first year of the pairing")
    to: int | None = Field(description="last year, or null while it lasts")
    source: str = Field(description="key of its source in configs/pairings.yaml")


class Partner(_Model):
    """Who helps whom."""

    helper: Region
    recipient: Region
    level: Level = Field(description="the level of the deeper side")
    score: float
    evidence: list[Evidence]
    pairing: Pairing | None


class Qualifier(Span):
    qualifier: str = Field(description="cumulative, total, more than, about …")


@dataclass(frozen=True)
class Column:
    """A CSV/Parquet column read from a fact field: `name`, its type (`string`, `int64`, `float64`)
    and `get`, which turns the field's value (None when the fact lacks it) into the cell."""

    name: str
    type: Literal["string", "int64", "float64"]
    get: Callable[[Any], Any] = lambda value: value


def _region_names(regions) -> str | None:
    names = [r.get("name") if isinstance(r, dict) else r for r in regions or []]
    return ";".join(str(n) for n in names if n) or None


def _item(i: int) -> Callable[[Any], Any]:
    return lambda pair: pair[i] if pair else None


# The `Column` markers below name the CSV/Parquet columns each fact field becomes (writers.py), in
# field order; a field without one is in JSONL only.
class Fact(_Model):
    """One figure (MONEY, PROJECT_COUNT, PEOPLE_COUNT) and what it means."""

    label: Annotated[FactLabel, Column("fact_label", "string")]
    start: Annotated[int, Field(ge=0), Column("fact_start", "int64")]
    end: Annotated[int, Field(ge=0), Column("fact_end", "int64")]
    text: Annotated[str, Column("fact_text", "string")]
    value: Annotated[int | DecimalText | None, Column("value", "float64")] = Field(
        description="exact: an integer, or a decimal string; null when the figure could not be read")
    unit: Annotated[str | None, Column("unit", "string")] = Field(
        description="yuan (or a currency code) for money; the classifier or noun of a count")
    qualifier: Annotated[str | None, Column("qualifier", "string")]
    qualifier_text: str | None
    qualifiers: list[Qualifier]
    date: Annotated[str | None, Column("date", "string")] = Field(
        description="ISO date or interval: 2020, 2020-05, 2017/.., ../2023")
    date_span: Offsets | None
    category: Annotated[str, Column("category", "string")] = Field(description="configs/categories.yaml")
    trigger: Span | None = Field(description="the words the category was read from")
    kind: Annotated[str, Column("kind", "string")] = _absent(
        "absent unless MONEY: transfer, price, income or output value")
    per: Annotated[str | None, Column("per", "string")] = _absent(
        "absent unless MONEY: the unit an amount is per (亩, 人, 公斤 …), null for a total")
    part_of: Annotated[Span | None, Column("part_of_start", "int64", lambda span: (span or {}).get("start"))] = Field(
        description="the whole this figure is a part of (其中…)")
    regions: Annotated[list[RegionMention], Column("regions", "string", _region_names)]
    sentence: Annotated[Offsets, Column("sentence_start", "int64", _item(0)), Column("sentence_end", "int64", _item(1))]
    unit_from: Span = _absent("absent unless a count's unit was read from the noun after it (1600萬網友 → 人)")
    currency: str = _absent("absent unless MONEY: ISO 4217 code")
    problem: str = _absent("absent unless the value could not be read: why")
    note: str = _absent("absent unless something about the reading is worth saying")


class NotFact(Span):
    label: FactLabel
    reason: str


class Record(_Model):
    """One report's record: `build_record(text, entities)`, `Document.record`."""

    partners: list[Partner] = Field(description="most specific pair first, then its province pair, then the rest")
    facts: list[Fact]
    not_facts: list[NotFact] = Field(description="figures that are not facts (inside a quoted name)")
    published: Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$")] | None
    published_at: str | None = Field(description="the full date-time of the report's date line, ISO")


class EntityRecord(Span):
    """An entity as written: `Entity.to_dict()` (inference/schema.py)."""

    label: EntityLabel
    score: float


class ModelInfo(_Model):
    name: str = Field(description="the model folder's name")
    weights: str = Field(description="first 12 hex digits of the SHA-256 of the weights file")
    backend: Literal["torch", "onnx"]
    precision: Literal["fp32", "bf16", "int8"] = Field(description="the encoder's arithmetic (int8: the onnx backend)")


class TaggedDocument(_Model):
    """One document as `eastwest tag` writes it to JSONL (`Document.to_dict()` plus run fields)."""

    id: str | None
    source: str | None
    text: str
    entities: list[EntityRecord]
    record: Record
    replaced: int = _absent("absent unless written by `eastwest tag`: characters replaced in decoding")
    model: ModelInfo = _absent("absent unless written by `eastwest tag`: the model that tagged it")


def _fact_columns() -> tuple[tuple[str, Column], ...]:
    return tuple((name, marker) for name, info in Fact.model_fields.items()
                 for marker in info.metadata if isinstance(marker, Column))


FACT_COLUMNS = _fact_columns()  # (fact field, Column), in table order


def validate_record(record: dict) -> Record:
    """`record` checked against the definition (pydantic's ValidationError names what is wrong)."""
    return Record.model_validate(record)


def validate_document(doc: dict) -> TaggedDocument:
    return TaggedDocument.model_validate(doc)


SCHEMAS: dict[str, type[BaseModel]] = {"record.schema.json": Record, "document.schema.json": TaggedDocument}


def json_schema(model: type[BaseModel]) -> dict:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://github.com/eastwest-ner/eastwest-ner/schema/{_file_of(model)}", **schema}


def _file_of(model: type[BaseModel]) -> str:
    return next(name for name, m in SCHEMAS.items() if m is model)


def schema_text(model: type[BaseModel]) -> str:
    return json.dumps(json_schema(model), ensure_ascii=False, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eastwest.inference.record_types",
                                     description="write (or --check) the JSON Schemas of the record")
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR, help="default: the repository's schema/")
    parser.add_argument("--check", action="store_true", help="exit 1 when a file differs from the models")
    args = parser.parse_args(argv)
    stale = []
    for name, model in SCHEMAS.items():
        path = args.dir / name
        text = schema_text(model)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            args.dir.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(path)
    if stale:
        print(f"out of date (run python -m eastwest.inference.record_types): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
