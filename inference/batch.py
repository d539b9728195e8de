"""`eastwest tag`: stream report archives through the tagger into resumable outputs.

Reading (decoding, HTML parsing, archives) runs in a background thread that stays a bounded
number of chunks ahead, so the model never waits for disks or parsers; with `--workers N` the
chunks are tagged by N processes, each with its share of the CPU threads, and results are written
in input order. Documents already completed by an earlier, interrupted run are skipped; a
document that cannot be read or tagged goes to OUT.errors.jsonl and the run goes on. Every record
names the model that tagged it (`model_identity`), and a run refuses an output that holds another
model's documents unless --force. Ctrl-C stops the run with what was tagged written and flushed
(exit status 130); rerunning the same command goes on from there.
"""
from __future__ import annotations

import json
import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .errors import UserError
from .readers import BadDoc, SourceDoc, iter_documents
from .writers import FORMATS, ResumableRun, model_label

DOCS_PER_CHUNK = 32
# Documents go to the model in groups of at least this many batches of windows, so that the
# progress bar moves within a chunk of long documents. Every group ends in a part-filled batch, so
# smaller groups cost throughput. Measured with the shipped model on the busy 2-core machine:
# 16 reports of 6,000 characters as one group 44.7 s, in groups of 16 batches 45.1 s, of 8 47.0 s;
# 32 reports of 1,500 characters, groups of 4 batches +11%, of 1 batch (about a report each) +19%.
GROUP_BATCHES = 16
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
    while True:
        try:
            # A short timeout, not a blocking get: Ctrl-C may be delivered to the reader thread (blocked
            # in read()), and a main thread asleep on the queue would then never run Python's handler;
            # waking up every 0.2 s lets KeyboardInterrupt through (a CI run hung here without it).
            item = items.get(timeout=0.2)
        except queue.Empty:
            continue
        if item is done:
            return
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


def model_identity(model: str | None, backend: str, precision: str = "auto", device: str | None = None) -> dict:
    """What every record says about its model: the folder's name, the first 12 hex digits of the
    SHA-256 of the weights file the backend loads (a folder retrained in place differs), the
    backend ("torch" or "onnx": resolve "auto" first) and the arithmetic (int8 for onnx; fp32 or
    bf16 for torch, `precision` resolved for `device`). A missing folder or weights file is the
    loader's one-line error."""
    from .devices import pick_device, pick_precision
    from .model_folder import file_digest, model_dir_for, weights_file
    from .onnx_backend import int8_model

    folder = model_dir_for(model)  # found as Tagger.load finds it
    if backend == "onnx":
        weights, arithmetic = int8_model(folder), "int8"
    else:
        weights, arithmetic = weights_file(folder), pick_precision(precision, pick_device(device))
    return {"name": folder.resolve().name, "weights": file_digest(weights), "backend": backend, "precision": arithmetic}


def _groups(docs: list[SourceDoc], chars: int) -> Iterator[list[SourceDoc]]:
    """Consecutive documents holding at least `chars` characters together (a long one alone)."""
    group, size = [], 0
    for doc in docs:
        group.append(doc)
        size += len(doc.text)
        if size >= chars:
            yield group
            group, size = [], 0
    if group:
        yield group


def tag_chunk(tagger, chunk: list[SourceDoc], batch_size: int,
              model: dict) -> Iterator[list[tuple[SourceDoc, dict | None, str | None]]]:
    """The documents of a chunk, tagged in groups of GROUP_BATCHES batches' worth of text (about a
    token per character; each window adds window - 2 - stride new tokens), so that short documents
    still share batches and long ones come back one by one: for each group as soon as it is done,
    (doc, tagged dict or None, error reason or None) for each of its documents."""
    for group in _groups(chunk, GROUP_BATCHES * batch_size * (tagger.window - 2 - tagger.stride)):
        results = []
        documents = tagger.tag_many([d.text for d in group], batch_size=batch_size, docs_per_chunk=len(group))
        for source, document in zip(group, documents):
            document.id, document.source = source.id, source.source
            try:
                tagged = {**document.to_dict(), "replaced": source.replaced, "model": model}
            except Exception as exc:  # noqa: BLE001 - one bad record must not stop the archive
                results.append((source, None, f"record assembly failed: {type(exc).__name__}: {exc}"))
            else:
                results.append((source, tagged, None))
        yield results


def _init_worker(model: str | None, device: str | None, threads: int, backend: str, precision: str) -> None:
    from .tagger import Tagger

    global _worker_tagger
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle: no worker tracebacks
    _worker_tagger = Tagger.load(model, device=device, backend=backend, precision=precision, threads=threads)


def _work(chunk: list[SourceDoc], batch_size: int, model: dict):
    return [result for results in tag_chunk(_worker_tagger, chunk, batch_size, model) for result in results]


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

    from .devices import check_device
    from .model_folder import model_dir_for
    from .onnx_backend import resolve_backend

    fmt = output_format(args.output, args.format)
    _check_tag_args(args, fmt)
    check_device(args.device)
    # "auto" is settled once, here (building the int8 cache on first use), for every worker alike
    backend = resolve_backend(args.backend, model_dir_for(args.model), args.device, args.precision)
    model = model_identity(args.model, backend, args.precision, args.device)
    run = _open_run(args, fmt, model) if args.output else _StdoutRun()
    if getattr(run, "retrying", 0):
        print(f"eastwest: retrying {run.retrying} document{'s' if run.retrying != 1 else ''} that failed before "
              f"(--no-retry-failed skips them)", file=sys.stderr)
    counts = {"tagged": 0, "errors": 0, "skipped": 0, "chars": 0}
    show = not args.quiet and sys.stderr.isatty()
    total = count_documents(args.inputs) if show and args.inputs and "-" not in args.inputs else None
    bar = tqdm(total=total, unit="doc", disable=not show, file=sys.stderr)
    started = None  # the rate counts tagging only: the clock starts once the model is loaded

    def pending() -> Iterator[SourceDoc]:
        for doc in iter_documents(args.inputs or ["-"], text_field=args.text_field, max_bytes=args.max_bytes,
                                  errors=args.errors, lines=args.lines):
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
        elapsed = max(time.time() - started, 1e-9)
        bar.set_postfix(chars_per_s=f"{counts['chars'] / elapsed:,.0f}", errors=counts["errors"], refresh=False)
        # all at once: documents tagged together finish together, and a bar shown after the first
        # of them alone would give a rate, and an ETA, as if only it had been done
        bar.update(len(results))

    def start_clock() -> None:
        nonlocal started
        started = time.time()
        bar.reset(total=total)  # the ETA, too, from tagging only: no model loading in the first rate

    interrupted = False
    try:
        chunks = _chunks(_prefetch(pending(), depth=4 * DOCS_PER_CHUNK), DOCS_PER_CHUNK)
        if args.workers == 1:
            from .tagger import Tagger

            tagger = Tagger.load(args.model, device=args.device, backend=backend, precision=args.precision)
            start_clock()
            for chunk in chunks:
                for results in tag_chunk(tagger, chunk, args.batch_size, model):
                    record(results)
        else:
            threads = max(1, (os.cpu_count() or 1) // args.workers)
            pool = ProcessPoolExecutor(args.workers, initializer=_init_worker,
                                       initargs=(args.model, args.device, threads, backend, args.precision))
            try:
                start_clock()  # the workers load their models concurrently with the first chunks
                in_flight: deque = deque()
                for chunk in chunks:  # at most 2 chunks per worker in flight: memory stays flat
                    in_flight.append(pool.submit(_work, chunk, args.batch_size, model))
                    if len(in_flight) >= 2 * args.workers:
                        record(in_flight.popleft().result())
                while in_flight:
                    record(in_flight.popleft().result())
            finally:
                pool.shutdown(cancel_futures=True)  # after Ctrl-C: only the chunks being tagged finish
    except KeyboardInterrupt:
        interrupted = True
    finally:
        run.close()
        bar.close()
    elapsed = time.time() - started if started else 0.0
    where = f" (see {run.errors_path})" if counts["errors"] and args.output else ""
    rate = f"; {counts['chars'] / elapsed:,.0f} chars/s" if counts["chars"] and elapsed else ""
    summary = f"{summary_line(counts['tagged'], counts['errors'])}{where}, {counts['skipped']} already done{rate}"
    if interrupted:
        again = "; rerun the same command to go on" if args.output else ""
        print(f"eastwest: interrupted: {summary}{again}", file=sys.stderr)
        return 130
    print(f"eastwest: {summary}", file=sys.stderr)
    return exit_status(counts["tagged"] + counts["skipped"], counts["errors"], args.inputs)


def _check_tag_args(args, fmt: str) -> None:
    """One line for each way the arguments of `eastwest tag` cannot work, before anything loads;
    on a terminal, how to give it standard input."""
    if args.output is None and fmt != "jsonl":
        raise UserError(f"--format {fmt} needs an output file (-o)")
    if args.workers < 1:
        raise UserError("--workers must be at least 1")
    if args.max_bytes < 0:
        raise UserError("--max-bytes must be 0 (no limit) or more")
    if args.output and not Path(args.output).parent.is_dir():
        raise UserError(f"cannot write {args.output}: there is no folder {Path(args.output).parent}")
    reads_stdin = not args.inputs or "-" in args.inputs
    if args.lines and not reads_stdin:
        raise UserError("--lines splits standard input into documents; give '-' or no input")
    if reads_stdin and sys.stdin.isatty():
        if not args.inputs:
            raise UserError("no input: name files or folders (eastwest tag REPORTS/ -o out.jsonl), "
                            "or pipe text in (… | eastwest tag -)")
        print("eastwest: reading standard input: type or paste, then Ctrl-D on a new line", file=sys.stderr)


def _open_run(args, fmt: str, model: dict) -> ResumableRun:
    """The resumable run writing -o; one line (UserError) for a file that cannot be opened (a
    missing folder is _check_tag_args'). The model check is ResumableRun's; --force turns it off."""
    try:
        return ResumableRun(args.output, fmt, retry_failed=not args.no_retry_failed,
                            model=None if args.force else model_label(model))
    except OSError as exc:
        raise UserError(f"cannot write {args.output}: {exc.strerror}") from None


def summary_line(tagged: int, errors: int) -> str:
    return f"{tagged} document{'' if tagged == 1 else 's'} tagged, {errors} error{'' if errors == 1 else 's'}"


def exit_status(done: int, errors: int, inputs: list[str]) -> int:
    """0: every document tagged; 1: some failed (listed in the errors file); 2: the input held nothing."""
    if errors:
        return 1
    if not done:
        raise UserError(f"no documents in {', '.join(inputs) if inputs else 'standard input'}")
    return 0
