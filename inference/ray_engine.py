"""`eastwest tag --engine ray`: the same tagging as a Ray Data job, on one machine or a cluster.

    eastwest tag reports/ --engine ray --workers 2 -o out/ --format parquet        # local Ray
    RAY_ADDRESS=ray://head:10001 eastwest tag /mnt/archive --engine ray \\
        --workers 16 --device cuda --gpus-per-worker 1 -o /mnt/out --format parquet   # a cluster

The driver lists the input files (`readers.list_files`: paths only, so millions of files fit);
Ray tasks read them with the local engine's own reader (`readers.read_file`: encodings, HTML,
archives, JSONL, Parquet, size limit), so both engines see the same documents with the same ids;
`--workers` actors each hold one Tagger (loaded once, `--cpus-per-worker` / `--gpus-per-worker`
reserved for it) and tag batches of documents; the results are written by Ray as a folder of
part files. Inputs and the output folder must be on a filesystem every node can see (a shared
mount), and so must the model folder.

The output folder holds the same content as the local engine's output, in part files:
  - parquet: the fact table of writers.arrow_schema(), plus an `error` column;
  - jsonl: the same JSON lines as the local engine.
A document that cannot be read or tagged is not dropped: it is a row (Parquet: `id`, `source`,
`error`; JSONL: {"id", "source", "error"}) in the same output, so one bad file never stops the
job and `error IS NOT NULL` lists them all. Ray retries failed tasks itself; a job that dies is
rerun as a whole (the local engine is the one that resumes document by document).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pyarrow as pa

from .errors import RayEngineError

from .readers import BadDoc, list_files, read_file
from .writers import arrow_schema, fact_rows, json_default

DOCS_PER_BATCH = 32
RAY_FORMATS = ("parquet", "jsonl")
RAY_SCHEMA = arrow_schema().append(pa.field("error", pa.string()))


def _read(row: dict, text_field: str, max_bytes: int, errors: str) -> list[dict]:
    """Ray flat_map: one listed file → its documents (id, source, text, replaced, error)."""
    out = []
    for doc in read_file(row["path"], row["id"], text_field=text_field, max_bytes=max_bytes, errors=errors):
        if isinstance(doc, BadDoc):
            out.append({"id": doc.id, "source": doc.source, "text": None, "replaced": 0, "error": doc.reason})
        else:
            out.append({"id": doc.id, "source": doc.source, "text": doc.text, "replaced": doc.replaced, "error": None})
    return out


class TaggerActor:
    """One Tagger per actor, loaded once; `__call__` tags a batch of documents."""

    def __init__(self, model: str | None, device: str | None, backend: str, precision: str, threads: int, fmt: str,
                 batch_size: int, identity: dict):
        from .tagger import Tagger

        self.tagger = Tagger.load(model, device=device, backend=backend, precision=precision, threads=threads)
        self.fmt = fmt
        self.batch_size = batch_size
        self.identity = identity  # batch.model_identity, computed once by the driver

    def __call__(self, batch: dict) -> dict:
        from .batch import tag_chunk
        from .readers import SourceDoc

        rows: list[dict] = []
        # a column of nulls arrives as float NaN in a numpy batch: an error is a string or nothing
        errors = [e if isinstance(e, str) else None for e in batch["error"]]
        good = [SourceDoc(str(i), str(s), str(t), "", int(r))
                for i, s, t, r, e in zip(batch["id"], batch["source"], batch["text"], batch["replaced"], errors) if e is None]
        results = {source.id: (tagged, reason) for group in tag_chunk(self.tagger, good, self.batch_size, self.identity)
                   for source, tagged, reason in group}
        for doc_id, source, error in zip(batch["id"], batch["source"], errors):
            tagged, reason = results.get(str(doc_id), (None, error))
            rows += self._rows(str(doc_id), str(source), tagged, reason)
        if self.fmt == "jsonl":
            return {"line": [json.dumps(r, ensure_ascii=False, default=json_default) for r in rows]}
        return pa.Table.from_pylist(rows, schema=RAY_SCHEMA)

    def _rows(self, doc_id: str, source: str, tagged: dict | None, reason: str | None) -> list[dict]:
        if self.fmt == "jsonl":
            return [tagged if tagged is not None else {"id": doc_id, "source": source, "error": reason}]
        if tagged is None:
            return [{**{c: None for c in RAY_SCHEMA.names}, "id": doc_id, "source": source, "error": reason}]
        return [{**row, "error": None} for row in fact_rows(tagged)]


def _jsonl_sink(path: str):
    from ray.data.datasource import BlockBasedFileDatasink

    class JsonLinesSink(BlockBasedFileDatasink):
        """Writes the `line` column as it is: the local engine's JSONL, byte for byte per document."""

        def __init__(self, out: str):
            super().__init__(out, file_format="jsonl")

        def write_block_to_file(self, block, file) -> None:
            lines = block.to_arrow().column("line").to_pylist()
            file.write("".join(line + "\n" for line in lines).encode("utf-8"))

    return JsonLinesSink(path)


def tag_with_ray(args) -> dict:
    """Run the job; returns counts {"documents", "errors"} read back from the output."""
    from .batch import model_identity
    from .model_folder import model_dir_for
    from .onnx_backend import resolve_backend

    try:
        import ray
    except ImportError as exc:
        raise RayEngineError("--engine ray needs Ray Data: pip install 'ray[data]'") from exc
    fmt = args.format or "parquet"
    if fmt not in RAY_FORMATS:
        raise RayEngineError(f"--engine ray writes {' or '.join(RAY_FORMATS)}, not {fmt}")
    if not args.output:
        raise RayEngineError("--engine ray needs an output folder (-o)")
    if not args.inputs or "-" in args.inputs:
        raise RayEngineError("--engine ray reads files and folders, not standard input")
    out = Path(args.output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RayEngineError(f"output folder {out} exists and is not empty: the Ray engine writes a new folder")
    listed, missing = [], []
    for found in list_files(args.inputs):
        if isinstance(found, BadDoc):
            missing.append(found)
        else:
            listed.append({"path": os.path.abspath(found[0]), "id": found[1]})
    if not listed:
        raise RayEngineError("no input files: " + "; ".join(f"{m.id}: {m.reason}" for m in missing))
    for m in missing:
        print(f"eastwest: skipped {m.id}: {m.reason}", file=sys.stderr)

    ray.init(address=os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True, include_dashboard=False,
             log_to_driver=False, logging_level="ERROR")
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = not args.quiet and sys.stderr.isatty()
    threads = args.cpus_per_worker
    docs = ray.data.from_items(listed, override_num_blocks=min(len(listed), 64 * max(1, args.workers))).flat_map(
        # num_cpus=0: reading is light, and the actors may reserve every CPU; a read task that
        # waited for a free CPU would wait forever (seen: 2 actors on 2 cores, no read ever ran).
        # A zero-CPU task is never held back by Ray, so the pool size bounds it instead (without
        # it Ray started over 100 reader processes on 2 cores).
        _read, fn_kwargs={"text_field": args.text_field, "max_bytes": args.max_bytes, "errors": args.errors}, num_cpus=0,
        compute=ray.data.TaskPoolStrategy(size=max(1, args.workers)))
    # "auto" settled once on the driver, so every actor runs the same backend (and the records say which)
    backend = resolve_backend(args.backend, model_dir_for(args.model), args.device, args.precision)
    tagged = docs.map_batches(
        TaggerActor,
        fn_constructor_kwargs={"model": args.model, "device": args.device, "backend": backend,
                               "precision": args.precision, "threads": threads, "fmt": fmt, "batch_size": args.batch_size,
                               "identity": model_identity(args.model, backend, args.precision, args.device)},
        batch_size=DOCS_PER_BATCH, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=args.workers),
        num_cpus=threads, num_gpus=args.gpus_per_worker or None,
    )
    light = {"num_cpus": 0}  # writing, like reading, must not wait behind the actors' CPUs
    if fmt == "parquet":
        tagged.write_parquet(str(out), ray_remote_args=light)
    else:
        tagged.write_datasink(_jsonl_sink(str(out)), ray_remote_args=light)
    return summarize(out, fmt)


def summarize(out: Path, fmt: str) -> dict:
    """Documents and errors in a Ray output folder (read back, so the figures are what was written)."""
    ids, errors = set(), set()
    if fmt == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(out, columns=["id", "error"])
        for doc_id, error in zip(table.column("id").to_pylist(), table.column("error").to_pylist()):
            (errors if error is not None else ids).add(doc_id)
    else:
        for part in sorted(out.glob("*.jsonl")):
            for line in part.read_text(encoding="utf-8").splitlines():
                obj = json.loads(line)
                (errors if "error" in obj else ids).add(obj["id"])
    return {"documents": len(ids), "errors": len(errors)}
