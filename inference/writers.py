"""Output sinks for tagged documents: JSONL, CSV and Parquet, resumable with exactly-once results.

A tagged document is a dict
    {"id", "source", "text", "entities": [{start, end, label, text, score}],
     "record": {"partners": [...], "facts": [...], "not_facts": [...], "published", "published_at"},
     "replaced": characters replaced in decoding, "model": {"name", "weights", "backend"}}
as defined once in record_types.py (`TaggedDocument`, published as schema/document.schema.json).
JSONL stores it whole, one object per line. CSV and Parquet store one row per fact (`fact_rows`):
the document's id, source, model (`model_label`), replaced characters and publication date, its
partners flattened into `;`-joined helper/recipient name and code columns (the i-th helper pairs
with the i-th recipient), the fact's index, and the fact columns that `record_types.Fact` declares
on its fields (`FACT_COLUMNS`: fact_label … sentence_end; `regions` is a `;`-joined string of region
names, `part_of_start` the start of the whole a part belongs to, `value` a float64 of the exact value).
A document without facts still gets one row, with empty fact columns, so that no document
disappears from a table.

`ResumableRun(out_path, fmt)` is the one way to write them. A run can be killed at any point
(`kill -9`, power loss) and started again with the same arguments: it finds the documents already
completed, the caller skips those (`done(id)`), and when the run finally closes every document is
in the output exactly once and the file is valid. A document is completed when it was written
(`write`) or recorded as failed (`error`, into `OUT.errors.jsonl` as {"id", "source", "reason"});
failed documents are tried again by the next run unless it passes `retry_failed=False`. Writing
an id that is already completed is refused, so duplicates cannot arise from a caller's mistake
either. Only one process may hold a run: a second one fails at once (an flock on the errors file,
released by the kernel when the holder dies, however it dies). Given the `model_label` of its
model, a run refuses (before changing anything) an OUT that holds documents of another model, so
that one output never mixes two models unnoticed.

Crash safety:
  - JSONL (the output, and the errors file of every format) is appended one complete line per
    write(2), without user-space buffering, and fsync'ed every `batch_size` records and at close.
    A killed process loses at most the line being written; a power loss at most the records since
    the last fsync. On open, a torn last line is truncated away before appending; a complete line
    that is not a JSON object with an id is an error (the file is not ours), never truncated.
  - CSV and Parquet cannot be appended to safely (a Parquet file without its footer is unreadable),
    so rows are buffered for `batch_size` documents, then written as one part file under
    `OUT.parts/` (to a temporary name, fsync'ed, renamed: a part is there whole or not at all).
    A crash loses at most the buffered batch. `close()` streams the previous OUT (if any) and the
    parts, row group by row group, into a temporary file, fsyncs it and renames it over OUT, then
    deletes the parts. A part whose ids are already in OUT was merged by a run that died before
    deleting it, and is deleted on open. Until `close()`, OUT is the previous complete file.
Memory stays flat: one batch of rows, one row group while merging, and the set of completed ids.
"""
from __future__ import annotations

import csv
import datetime as dt
import fcntl
import io
import json
import logging
import math
import os
import re
import shutil
from functools import lru_cache
from pathlib import Path

from .errors import OutputError
from .record_types import DECIMAL_PATTERN, FACT_COLUMNS

FORMATS = ("jsonl", "csv", "parquet")
DEFAULT_BATCH_SIZE = 200

# One row per fact: the document's columns, its partners flattened, the fact's index, then one column
# per fact field as record_types.Fact declares them (`kind`, `per` and `part_of_start` among them, so
# that a sum over a table adds transfers only, not prices, incomes or output values, and counts a part
# (其中…) once: its whole's fact_start is in part_of_start).
PARTNER_KEYS = ("name", "code")  # of each side's record_types.Region
COLUMN_TYPES = (
    ("id", "string"), ("source", "string"), ("model", "string"), ("replaced", "int64"), ("published", "string"),
    *((f"{side}_{key}", "string") for side in ("helper", "recipient") for key in PARTNER_KEYS),
    ("fact_index", "int64"),
    *((column.name, column.type) for _, column in FACT_COLUMNS),
)
COLUMNS = tuple(name for name, _ in COLUMN_TYPES)


@lru_cache(maxsize=1)
def arrow_schema():
    """The Parquet schema of COLUMN_TYPES (pyarrow is imported only by the runs that write Parquet)."""
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, kind)()) for name, kind in COLUMN_TYPES])

log = logging.getLogger(__name__)


def errors_path_for(out_path: str | Path) -> Path:
    return Path(f"{out_path}.errors.jsonl")


def model_label(model: dict | None) -> str | None:
    """One string for a document's model: its folder name, weights hash and backend."""
    if model is None:
        return None
    return f"{model['name']} (weights {model['weights']}, {model['backend']})"


# --- flattening -------------------------------------------------------------------------------------

def fact_rows(doc: dict) -> list[dict]:
    """The table rows of a tagged document: one per fact, or one with empty fact columns."""
    record = doc.get("record") or {}
    partners = record.get("partners") or []
    sides = {side: [p.get(side) or {} for p in partners] for side in ("helper", "recipient")}
    common = {
        "id": _text(doc["id"]), "source": _text(doc.get("source")), "model": model_label(doc.get("model")),
        "replaced": _int(doc.get("replaced")), "published": _text(record.get("published")),
        **{f"{side}_{key}": ";".join(_text(party.get(key)) or "" for party in parties) or None
           for side, parties in sides.items() for key in PARTNER_KEYS},
    }
    facts = record.get("facts") or []
    if not facts:
        return [{**common, **{c: None for c in COLUMNS if c not in common}}]
    rows = []
    for index, fact in enumerate(facts):
        rows.append({**common, "fact_index": index,
                     **{column.name: _CELL[column.type](column.get(fact.get(field)))
                        for field, column in FACT_COLUMNS}})
    return rows


def _text(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def _int(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer offset, got {value!r}")
    return value


def _number(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, str) and _DECIMAL.fullmatch(value):  # an exact amount with a fraction: "6.5"
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number for a fact value, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"fact value {value} is not a finite number")
    return float(value)


_DECIMAL = re.compile(DECIMAL_PATTERN)
_CELL = {"string": _text, "int64": _int, "float64": _number}


def json_default(value):
    """JSON for the one non-JSON value a record may hold: dates."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# --- the run --------------------------------------------------------------------------------------------

class ResumableRun:
    """Exactly-once output of tagged documents to `out_path` in `fmt` (see the module docstring).

        with ResumableRun("out.parquet", "parquet") as run:
            for doc in iter_documents(inputs):
                if run.done(doc.id):
                    continue
                ...  # run.write(tagged_dict) or run.error(doc.id, doc.source, reason)
    """

    def __init__(self, out_path: str | Path, fmt: str, *, batch_size: int = DEFAULT_BATCH_SIZE, retry_failed: bool = True,
                 model: str | None = None):
        if fmt not in FORMATS:
            raise ValueError(f"unknown output format {fmt!r}; expected one of {FORMATS}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.out_path = Path(out_path)
        self.fmt = fmt
        self.errors_path = errors_path_for(out_path)
        self._errors = _JsonlLog(self.errors_path, batch_size, lock=True)
        self._closed = False
        try:
            self._sink = _JsonlLog(self.out_path, batch_size) if fmt == "jsonl" else _TableSink(
                self.out_path, fmt, batch_size)
        except BaseException:
            self._errors.close()
            raise
        others = self._sink.models - {model} if model is not None else set()
        if others:
            self.close()  # before the errors file is cleared below: a refused run changes nothing
            raise OutputError(f"{out_path} holds documents tagged by {'; '.join(sorted(others))}, and this run's model "
                              f"is {model}: write to another output (eastwest tag --force mixes them)")
        # Documents that failed in an earlier run are tried again (the file may have been fixed):
        # their old error lines go, and a second failure is logged anew, so each id ends up in
        # exactly one of OUT and the errors file.
        self.retrying = len(self._errors.ids - self._sink.ids) if retry_failed else 0
        if retry_failed and self._errors.ids:
            os.ftruncate(self._errors.fd, 0)
            self._errors.ids = set()
        self._completed = self._errors.ids | self._sink.ids

    def done(self, doc_id: str) -> bool:
        return doc_id in self._completed

    def write(self, doc: dict) -> None:
        self._claim(doc["id"])
        self._sink.append(doc)
        self._completed.add(doc["id"])

    def error(self, doc_id: str, source: str, reason: str) -> None:
        self._claim(doc_id)
        self._errors.append({"id": doc_id, "source": source, "reason": reason})
        self._completed.add(doc_id)

    def close(self) -> None:
        """Make everything written durable and, for CSV/Parquet, assemble OUT. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._sink.close()
        finally:
            if os.fstat(self._errors.fd).st_size == 0:  # no errors, no errors file
                self.errors_path.unlink(missing_ok=True)
            self._errors.close()

    def __enter__(self) -> ResumableRun:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _claim(self, doc_id: str) -> None:
        if self._closed:
            raise ValueError("the run is closed")
        if not isinstance(doc_id, str):
            raise TypeError(f"document ids are strings, got {doc_id!r}")
        if doc_id in self._completed:
            raise ValueError(f"document {doc_id!r} is already completed in {self.out_path}")


class _JsonlLog:
    """An append-only JSONL file of objects with an "id"; repaired on open, see the module docstring."""

    def __init__(self, path: Path, fsync_every: int, *, lock: bool = False):
        self.path = path
        self.fsync_every = fsync_every
        self.unsynced = 0
        self.models: set[str] = set()
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:  # a folder, no permission, a read-only disk: one line, not a traceback
            raise OutputError(f"cannot write {path}: {exc.strerror}") from None
        try:
            if lock:
                try:
                    fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise OutputError(f"{path} is held by another running process") from None
            self.ids = self._recover()
        except BaseException:
            os.close(self.fd)
            raise

    def _recover(self) -> set[str]:
        """Ids of the records (and, into self.models, the labels of their models); a torn last line
        (no newline: the write that a kill interrupted) is cut off. Any other line that is not a
        record means this is not our file, or it was damaged by something other than a crash:
        refuse rather than destroy it."""
        ids: set[str] = set()
        good_end = 0
        with open(self.fd, "rb", closefd=False) as f:
            for lineno, line in enumerate(f, 1):
                if not line.endswith(b"\n"):
                    break
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                    raise OutputError(f"{self.path}:{lineno}: not a JSON object with a string id; "
                                      "repair or remove the file to resume")
                ids.add(record["id"])
                if isinstance(record.get("model"), dict):
                    self.models.add(model_label(record["model"]))
                good_end += len(line)
            size = f.seek(0, os.SEEK_END)
        if good_end < size:
            log.warning("%s: cutting a torn last line of %d bytes (an interrupted run)", self.path, size - good_end)
            os.ftruncate(self.fd, good_end)
            os.fsync(self.fd)
        return ids

    def append(self, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False, allow_nan=False, default=json_default) + "\n"
        data = memoryview(line.encode("utf-8"))
        while data:
            data = data[os.write(self.fd, data):]
        self.unsynced += 1
        if self.unsynced >= self.fsync_every:
            self.sync()

    def sync(self) -> None:
        os.fsync(self.fd)
        self.unsynced = 0

    def close(self) -> None:
        try:
            self.sync()
        finally:
            os.close(self.fd)


class _TableSink:
    """CSV or Parquet output as atomically written part files, merged into OUT at close."""

    def __init__(self, out_path: Path, fmt: str, batch_size: int):
        self.out_path = out_path
        self.table = _CsvFormat if fmt == "csv" else _ParquetFormat
        self.batch_size = batch_size
        self.parts_dir = Path(f"{out_path}.parts")
        self.tmp_path = Path(f"{out_path}.tmp")
        self.rows: list[dict] = []
        self.docs_in_batch = 0

        self.tmp_path.unlink(missing_ok=True)
        for stale in self.parts_dir.glob("*.tmp"):
            stale.unlink()
        self.ids, self.models = self.table.read_ids(out_path) if out_path.exists() else (set(), set())
        merged = set(self.ids)
        self.new_parts = False
        self.next_part = 0
        for part in self._parts():
            part_ids, part_models = self.table.read_ids(part)
            if part_ids & merged:
                part.unlink()
            else:
                self.ids |= part_ids
                self.models |= part_models
                self.new_parts = True
            self.next_part = int(part.name.split("-")[1].split(".")[0]) + 1

    def _parts(self) -> list[Path]:
        return sorted(self.parts_dir.glob(f"part-*.{self.table.suffix}"))

    def append(self, doc: dict) -> None:
        self.rows.extend(fact_rows(doc))
        self.docs_in_batch += 1
        if self.docs_in_batch >= self.batch_size:
            self._flush()

    def _flush(self) -> None:
        if not self.rows:
            return
        self.parts_dir.mkdir(exist_ok=True)
        part = self.parts_dir / f"part-{self.next_part:06d}.{self.table.suffix}"
        tmp = part.with_name(part.name + ".tmp")
        with open(tmp, "wb") as f:
            self.table.write(f, self.rows)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, part)
        _fsync_dir(self.parts_dir)
        self.next_part += 1
        self.new_parts = True
        self.rows, self.docs_in_batch = [], 0

    def close(self) -> None:
        self._flush()
        if self.new_parts or not self.out_path.exists():
            self._merge()
        if self.parts_dir.exists():
            self.parts_dir.rmdir()

    def _merge(self) -> None:
        sources = ([self.out_path] if self.out_path.exists() else []) + self._parts()
        with open(self.tmp_path, "wb") as f:
            self.table.merge(sources, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(self.tmp_path, self.out_path)
        _fsync_dir(self.out_path.parent)
        for part in self._parts():
            part.unlink()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _CsvFormat:
    """UTF-8 CSV with a BOM (so that spreadsheet programs read Chinese correctly), header first;
    empty cells for missing values; whole values without a decimal point (330000000, as in the
    report, not 330000000.0). Parts are complete CSV files too, merged by concatenation."""
    suffix = "csv"

    @staticmethod
    def write(f, rows: list[dict]) -> None:
        text = io.TextIOWrapper(f, encoding="utf-8-sig", newline="", write_through=True)
        writer = csv.DictWriter(text, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({**row, "value": int(value)} if (value := row["value"]) is not None and value.is_integer()
                         else row for row in rows)
        text.detach()

    @classmethod
    def read_ids(cls, path: Path) -> tuple[set[str], set[str]]:
        """The document ids and model labels of a CSV file."""
        ids, models = set(), set()
        model_column = COLUMNS.index("model")
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            if next(reader, None) != list(COLUMNS):
                raise OutputError(f"{path} is not a CSV written with columns {COLUMNS}")
            for row in reader:
                if row:
                    ids.add(row[0])
                    models.add(row[model_column])
        return ids, models - {""}

    @staticmethod
    def merge(sources: list[Path], f) -> None:
        if not sources:
            _CsvFormat.write(f, [])
        for i, source in enumerate(sources):
            with open(source, "rb") as part:
                if i:
                    part.readline()  # its header: the column names contain no line breaks
                shutil.copyfileobj(part, f)


class _ParquetFormat:
    """Parquet with the fixed schema (arrow_schema); each part is one row group and stays one in OUT."""
    suffix = "parquet"

    @staticmethod
    def write(f, rows: list[dict]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema()), f)

    @staticmethod
    def read_ids(path: Path) -> tuple[set[str], set[str]]:
        """The document ids and model labels of a Parquet file."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:  # not Parquet at all, or cut short
            raise OutputError(f"{path} is not a Parquet file written here ({exc}); repair or remove it to resume") from None
        if not parquet.schema_arrow.remove_metadata().equals(arrow_schema()):
            raise OutputError(f"{path} is not a Parquet file written with the schema {arrow_schema()}")
        ids, models = set(), set()
        for batch in parquet.iter_batches(columns=["id", "model"]):
            ids.update(batch.column(0).to_pylist())
            models.update(batch.column(1).to_pylist())
        return ids, models - {None}

    @staticmethod
    def merge(sources: list[Path], f) -> None:
        import pyarrow.parquet as pq

        with pq.ParquetWriter(f, arrow_schema()) as writer:
            for source in sources:
                parquet = pq.ParquetFile(source)
                for i in range(parquet.num_row_groups):
                    writer.write_table(parquet.read_row_group(i))

