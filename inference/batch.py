"""`eastwest tag`: stream report archives through the tagger into resumable outputs.

Reading (decoding, HTML parsing, archives) runs in a background thread that stays a bounded
number of chunks ahead, so the model never waits for disks or parsers; with `--workers N` the
chunks are tagged by N processes, each with its share of the CPU threads, and results are written
in input order. Documents already completed by an earlier, interrupted run are skipped; a
document that cannot be read or tagged goes to OUT.errors.jsonl and the run goes on.
"""
from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .readers import BadDoc, SourceDoc, iter_documents
from .writers import FORMATS, ResumableRun

DOCS_PER_CHUNK = 32
_worker_tagger = None


def _prefetch(iterator: Iterator, depth: int) -> Iterator:
    """Run `iterator` in a thread, at most `depth` items ahead of the consumer."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def fill() -> None:
        try:
            for item in iterator:
                items.put(item)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            items.put(exc)
        items.put(done)

    threading.Thread(target=fill, daemon=True).start()
    while (item := items.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


def _chunks(docs: Iterator, size: int) -> Iterator[list]:
    chunk = []
    for doc in docs:
        chunk.append(doc)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def tag_chunk(tagger, chunk: list[SourceDoc], batch_size: int) -> list[tuple[SourceDoc, dict | None, str | None]]:
    """(doc, tagged dict or None, error reason or None) for each document of a chunk."""
    results = []
    documents = tagger.tag_many([d.text for d in chunk], batch_size=batch_size, docs_per_chunk=len(chunk))
    for source, document in zip(chunk, documents):
        document.id, document.source = source.id, source.source
        try:
            results.append((source, document.to_dict(), None))
        except Exception as exc:  # noqa: BLE001 - one bad record must not stop the archive
            results.append((source, None, f"record assembly failed: {type(exc).__name__}: {exc}"))
    return results


def _init_worker(model: str | None, device: str | None, threads: int, backend: str = "torch") -> None:
    import torch

    from .tagger import Tagger

    global _worker_tagger
    torch.set_num_threads(threads)
    _worker_tagger = Tagger.load(model, device=device, backend=backend)


def _work(chunk: list[SourceDoc], batch_size: int):
    return tag_chunk(_worker_tagger, chunk, batch_size)


class _StdoutRun:
    """JSONL on stdout: no resume (there is no file to resume from)."""

    def done(self, doc_id: str) -> bool:
        return False

    def write(self, doc: dict) -> None:
        sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def error(self, doc_id: str, source: str, reason: str) -> None:
        print(f"eastwest: skipped {doc_id} ({source}): {reason}", file=sys.stderr)

    def close(self) -> None:
        pass


def count_documents(inputs: list[str]) -> int | None:
    """About how many documents the inputs hold, for the progress bar's ETA (hidden archive
    members count, and a damaged file counts one); None when that would need a full read (a
    .tar.gz must be decompressed to list it). Only listings, metadata and line breaks are read."""
    import zipfile

    import pyarrow.parquet as pq

    from .readers import file_kind, list_files

    total = 0
    for found in list_files(inputs):
        if isinstance(found, BadDoc):
            total += 1
            continue
        path = found[0]
        kind = file_kind(path)
        try:
            if kind == "tar":
                return None
            if kind == "zip":
                with zipfile.ZipFile(path) as archive:
                    total += sum(1 for info in archive.infolist() if not info.is_dir())
            elif kind == "jsonl":
                with open(path, "rb") as f:
                    total += sum(1 for line in f if line.strip())
            elif kind == "parquet":
                total += pq.ParquetFile(path).metadata.num_rows
            else:
                total += 1
        except Exception:  # noqa: BLE001 - a damaged file is one error document when read
            total += 1
    return total


def output_format(path: str | None, given: str | None) -> str:
    if given:
        return given
    suffix = Path(path).suffix.lstrip(".").lower() if path else ""
    return suffix if suffix in FORMATS else "jsonl"


def tag_inputs(args) -> int:
    from tqdm import tqdm

    from .cli import UserError

    fmt = output_format(args.output, args.format)
    if args.output is None and fmt != "jsonl":
        raise UserError(f"--format {fmt} needs an output file (-o)")
    run = ResumableRun(args.output, fmt, retry_failed=not args.no_retry_failed) if args.output else _StdoutRun()
    if getattr(run, "retrying", 0):
        print(f"eastwest: retrying {run.retrying} document{'s' if run.retrying != 1 else ''} that failed before "
              f"(--no-retry-failed skips them)", file=sys.stderr)
    if args.workers < 1:
        raise UserError("--workers must be at least 1")
    counts = {"tagged": 0, "errors": 0, "skipped": 0, "chars": 0}
    show = not args.quiet and sys.stderr.isatty()
    total = count_documents(args.inputs) if show and args.inputs and "-" not in args.inputs else None
    bar = tqdm(total=total, unit="doc", disable=not show, file=sys.stderr)
    started = None  # the rate counts tagging only: the clock starts once the model is loaded

    def pending() -> Iterator[SourceDoc]:
        for doc in iter_documents(args.inputs or ["-"], text_field=args.text_field):
            if run.done(doc.id):
                counts["skipped"] += 1
                bar.update(1)
            elif isinstance(doc, BadDoc):
                run.error(doc.id, doc.source, doc.reason)
                counts["errors"] += 1
                bar.update(1)
            else:
                yield doc

    def record(results) -> None:
        for source, tagged, reason in results:
            if tagged is None:
                run.error(source.id, source.source, reason)
                counts["errors"] += 1
            else:
                run.write(tagged)
                counts["tagged"] += 1
                counts["chars"] += len(source.text)
            bar.update(1)
        elapsed = max(time.time() - started, 1e-9)
        bar.set_postfix(chars_per_s=f"{counts['chars'] / elapsed:,.0f}", errors=counts["errors"])

    try:
        chunks = _chunks(_prefetch(pending(), depth=4 * DOCS_PER_CHUNK), DOCS_PER_CHUNK)
        if args.workers == 1:
            from .tagger import Tagger

            tagger = Tagger.load(args.model, device=args.device, backend=getattr(args, "backend", "torch"))
            started = time.time()
            for chunk in chunks:
                record(tag_chunk(tagger, chunk, args.batch_size))
        else:
            threads = max(1, (os.cpu_count() or 1) // args.workers)
            with ProcessPoolExecutor(args.workers, initializer=_init_worker, initargs=(args.model, args.device, threads, getattr(args, "backend", "torch"))) as pool:
                started = time.time()  # the workers load their models concurrently with the first chunks
                in_flight: deque = deque()
                for chunk in chunks:  # at most 2 chunks per worker in flight: memory stays flat
                    in_flight.append(pool.submit(_work, chunk, args.batch_size))
                    if len(in_flight) >= 2 * args.workers:
                        record(in_flight.popleft().result())
                while in_flight:
                    record(in_flight.popleft().result())
    finally:
        run.close()
        bar.close()
    elapsed = time.time() - started if started else 0.0
    where = f" (see {run.errors_path})" if counts["errors"] and args.output else ""
    rate = f"; {counts['chars'] / elapsed:,.0f} chars/s" if counts["chars"] and elapsed else ""
    print(f"eastwest: {summary_line(counts['tagged'], counts['errors'])}{where}, {counts['skipped']} already done{rate}",
          file=sys.stderr)
    return exit_status(counts["tagged"] + counts["skipped"], counts["errors"], args.inputs)


def summary_line(tagged: int, errors: int) -> str:
    return f"{tagged} document{'' if tagged == 1 else 's'} tagged, {errors} error{'' if errors == 1 else 's'}"


def exit_status(done: int, errors: int, inputs: list[str]) -> int:
    """0: every document tagged; 1: some failed (listed in the errors file); 2: the input held nothing."""
    from .cli import UserError

    if errors:
        return 1
    if not done:
        raise UserError(f"no documents in {', '.join(inputs) if inputs else 'standard input'}")
    return 0
