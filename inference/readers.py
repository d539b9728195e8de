"""Reading input documents for tagging, from whatever the user points at.

`iter_documents(inputs)` walks files, directories (recursively, in sorted order), glob patterns,
`-` (standard input: one document, or one per line with `lines=True`), `.zip` / `.tar.gz` / `.tgz`
archives, `.jsonl` files (one document per line), `.parquet` files (one document per row),
`.html` / `.htm` pages and plain text (`.txt` or no extension). `list_files` + `read_file` are the
same in two steps, for engines that list on one machine and read on many (ray_engine.py). It is
a generator: one document is in memory at a time, so a corpus of any size streams through.

A document's `source` is the path of the file it was read from (the archive, for a member;
`-` for standard input). Every input yields either a `SourceDoc` or a `BadDoc` saying why it was
not read; nothing is dropped silently except hidden files (names starting with '.', `__MACOSX/`),
symbolic links to directories and non-file archive entries (directories, links).

Ids are stable across runs and unique within one call, because resuming a run keys on them:
  - a file: its path relative to the root of the inputs, the deepest folder holding all of them
    (a folder input counts as itself, a file or glob as the folder it is in). So `data/` and
    `data/a.txt` both give `a.txt`, whichever way they are spelled, and two folders `x/` and `y/`
    that both hold `report.txt` give `x/report.txt` and `y/report.txt`. A file named twice (as
    itself and inside its folder) is read once;
  - an archive member: `<archive id>!<member path>`;
  - a JSONL line: its `id` field when present, else `<file id>:<line number>` (1-based);
  - a Parquet row: its `id` column when present, else `<file id>:<row number>` (1-based);
  - standard input: `<stdin>`; with `lines=True`, `<stdin>:<line number>`.
Only ids the data chooses (JSONL `id` fields, Parquet `id` columns) can repeat: the n-th document
with an id already produced becomes a BadDoc with id `<id>#<n>`, so that every id yielded, good
or bad, is unique (the ids seen so far are kept for this, a few dozen bytes each; the documents
are not).

Size limit: a document whose raw bytes exceed `max_bytes` (default 5 MiB; for JSONL and stdin
lines, one line; 0: no limit) is a BadDoc. The limit is checked before decoding, so an oversized
file is never held in memory.

Encodings, in this order:
  1. a byte-order mark decides (UTF-8, UTF-16);
  2. NUL bytes mean binary (images, archives, executables) -> BadDoc;
  3. strict UTF-8;
  4. each legacy CJK encoding (GB18030, Big5, CP950, Big5-HKSCS) that decodes the bytes strictly
     is scored by how much of its non-ASCII text is common Chinese characters and punctuation
     (GB2312 hanzi, Big5 frequent hanzi); the best score wins, ties go to the earlier encoding;
  5. if even the best scores below 0.8 the bytes are rejected as undecodable, unless
     `errors="replace"`: then UTF-8 and the legacy encodings are tried again with undecodable
     bytes replaced by U+FFFD, at most 1% of the characters (at least one: a last character cut
     in half), and scored without the replacements. The document's `replaced` says how many.
charset-normalizer is deliberately not used: on short Chinese snippets (2-8 characters), restricted
to these same candidates, it picked the wrong one for 176 of 939 samples, against 8 of 1565 (all
2-4 character Big5 snippets, which are genuinely ambiguous) for the scoring above.

The text is kept exactly as decoded (a BOM is not text; line endings are left alone), because
entity offsets downstream index into it. HTML is reduced to its article text by article.py (`html_to_text`).
"""
from __future__ import annotations

import glob
import gzip
import json
import os
import re
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from .article import html_to_text  # noqa: F401  (readers.html_to_text, as before)

MAX_BYTES = 5 * 1024 * 1024
STDIN_ID = "<stdin>"


@dataclass(frozen=True)
class SourceDoc:
    id: str
    source: str
    text: str
    encoding: str
    replaced: int = 0  # undecodable byte sequences replaced by U+FFFD (errors="replace" only)


@dataclass(frozen=True)
class BadDoc:
    id: str
    source: str
    reason: str


Doc = SourceDoc | BadDoc


def iter_documents(inputs: list[str], text_field: str = "text", max_bytes: int = MAX_BYTES, errors: str = "strict",
                   lines: bool = False) -> Iterator[Doc]:
    """Every document of every input, in input order; see the module docstring for the rules.
    `errors`: "strict" or "replace" (lenient decoding); `lines`: standard input holds one
    document per line."""
    first_source: dict[str, str] = {}
    repeats: dict[str, int] = {}
    root = _common_root(inputs)
    seen: set[str] = set()
    for given in inputs:
        for doc in _iter_input(given, root, seen, text_field, max_bytes, errors, lines):
            if doc.id in first_source:
                repeats[doc.id] = repeats.get(doc.id, 1) + 1
                doc = BadDoc(f"{doc.id}#{repeats[doc.id]}", doc.source,
                             f"duplicate id {doc.id!r}, first read from {first_source[doc.id]}"
                             + (f"; {doc.reason}" if isinstance(doc, BadDoc) else ""))
            else:
                first_source[doc.id] = doc.source
            yield doc


# --- inputs: stdin, files, directories, globs ---------------------------------------------------

def _iter_input(given: str, root: str, seen: set[str], text_field: str, max_bytes: int, errors: str,
                lines: bool) -> Iterator[Doc]:
    if given == "-":
        yield from _iter_stdin(max_bytes, errors, lines)
        return
    for found in _list_input(given, root, seen):
        if isinstance(found, BadDoc):
            yield found
        else:
            yield from read_file(*found, text_field=text_field, max_bytes=max_bytes, errors=errors)


def _iter_stdin(max_bytes: int, errors: str, lines: bool) -> Iterator[Doc]:
    # A reader of our own, not sys.stdin: the tagger reads in a daemon thread, and a daemon thread
    # blocked inside sys.stdin's lock when Ctrl-C ends the program makes the interpreter abort at
    # exit ("Fatal Python error: _enter_buffered_busy").
    with open(0, "rb", closefd=False) as stdin:
        if not lines:
            yield _text_doc(STDIN_ID, "-", stdin.read(_read_limit(max_bytes)), "text", max_bytes, errors)
            return
        for lineno, line in _numbered_lines(stdin, max_bytes):
            doc_id = f"{STDIN_ID}:{lineno}"
            if line is None:
                yield BadDoc(doc_id, "-", f"line {lineno}: larger than the {max_bytes}-byte limit")
            elif line.strip():
                yield _text_doc(doc_id, "-", line.rstrip(b"\r\n"), "text", max_bytes, errors)


def list_files(inputs: list[str]) -> Iterator[tuple[str, str] | BadDoc]:
    """(path, document id) of every file the inputs name, or a BadDoc for an input that names
    nothing readable. Reading is separate (`read_file`), so that a distributed run can list on
    one machine and read on many."""
    root = _common_root(inputs)
    seen: set[str] = set()
    for given in inputs:
        yield from _list_input(given, root, seen)


def _common_root(inputs: list[str]) -> str:
    """The deepest folder holding every input: file ids are paths relative to it."""
    folders = []
    for given in (given for given in inputs if given != "-"):
        magic = _GLOB_MAGIC.search(given)
        if os.path.isdir(given):
            folders.append(os.path.abspath(given))
        elif magic and not os.path.exists(given):  # the folder part before the first wildcard
            folders.append(os.path.abspath(os.path.dirname(given[:magic.start()])))
        else:
            folders.append(os.path.dirname(os.path.abspath(given)))
    return os.path.commonpath(folders) if folders else os.getcwd()


def _list_input(given: str, root: str, seen: set[str]) -> Iterator[tuple[str, str] | BadDoc]:
    """list_files for one input; `seen` (absolute paths) keeps a file named twice from being read twice."""
    if os.path.isdir(given):
        for found in _walk(given):
            if isinstance(found, OSError):
                yield BadDoc(_doc_id(found.filename, root), found.filename, f"cannot list directory: {found.strerror}")
            elif _first_time(found, seen):
                yield found, _doc_id(found, root)
    elif not _first_time(given, seen):
        return
    elif os.path.exists(given):
        yield given, _doc_id(given, root)
    elif _GLOB_MAGIC.search(given):
        matches = sorted(glob.glob(given, recursive=True))
        if not matches:
            yield BadDoc(_doc_id(given, root), given, "glob pattern matches nothing")
        for match in matches:
            yield from _list_input(match, root, seen)
    else:
        yield BadDoc(_doc_id(given, root), given, "no such file or directory")


def _first_time(path: str, seen: set[str]) -> bool:
    key = os.path.abspath(path)
    if key in seen:
        return False
    seen.add(key)
    return True


def _doc_id(path: str, root: str) -> str:
    return _posix(os.path.relpath(os.path.abspath(path), root))


_GLOB_MAGIC = re.compile(r"[*?[]")


def _walk(directory: str) -> Iterator[str | OSError]:
    """Regular files under `directory`, depth first in name order, skipping hidden entries; the
    error instead of the files of a directory that cannot be listed."""
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as e:
        yield e
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(entry.path)
        elif entry.is_file():
            yield entry.path


def _posix(path: str) -> str:
    return os.path.normpath(path).replace(os.sep, "/")


def file_kind(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith((".tar.gz", ".tgz")):
        return "tar"
    suffix = os.path.splitext(lower)[1]
    return {".zip": "zip", ".jsonl": "jsonl", ".parquet": "parquet", ".html": "html", ".htm": "html", ".txt": "text", "": "text"}.get(suffix)


def read_file(path: str, doc_id: str, text_field: str = "text", max_bytes: int = MAX_BYTES,
              errors: str = "strict") -> Iterator[Doc]:
    """The documents of one file (several for archives, JSONL and Parquet), good or bad."""
    source = path
    kind = file_kind(path)
    try:
        if kind == "zip":
            yield from _iter_zip(path, doc_id, source, text_field, max_bytes, errors)
        elif kind == "tar":
            yield from _iter_tar(path, doc_id, source, text_field, max_bytes, errors)
        elif kind == "jsonl":
            with open(path, "rb") as f:
                yield from _iter_jsonl(f, doc_id, source, text_field, max_bytes, errors)
        elif kind == "parquet":
            yield from _iter_parquet(path, doc_id, text_field, max_bytes)
        elif kind is None:
            yield BadDoc(doc_id, source, f"unsupported file type {os.path.splitext(path)[1]!r}")
        elif _too_large(os.path.getsize(path), max_bytes):
            yield BadDoc(doc_id, source, f"larger than the {max_bytes}-byte limit")
        else:
            with open(path, "rb") as f:
                yield _text_doc(doc_id, source, f.read(_read_limit(max_bytes)), kind, max_bytes, errors)
    except OSError as e:
        yield BadDoc(doc_id, source, f"cannot read: {e}")


# --- archives -------------------------------------------------------------------------------------

# What damaged archive data raises, from zipfile, tarfile, gzip and zlib.
_ARCHIVE_ERRORS = (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError, RuntimeError,
                   NotImplementedError)


def _skipped_member(name: str) -> bool:
    parts = name.split("/")
    return parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts if p)


def _iter_member(stream: BinaryIO, name: str, doc_id: str, source: str, text_field: str,
                 max_bytes: int, errors: str) -> Iterator[Doc]:
    kind = file_kind(name)
    if kind == "jsonl":
        yield from _iter_jsonl(stream, doc_id, source, text_field, max_bytes, errors)
    elif kind in ("zip", "tar", "parquet"):
        yield BadDoc(doc_id, source, f"{kind} files inside archives are not read")
    elif kind is None:
        yield BadDoc(doc_id, source, f"unsupported file type {os.path.splitext(name)[1]!r}")
    else:
        yield _text_doc(doc_id, source, stream.read(_read_limit(max_bytes)), kind, max_bytes, errors)


def _iter_zip(path: str, archive_id: str, source: str, text_field: str, max_bytes: int,
              errors: str) -> Iterator[Doc]:
    """Members in archive order; a member that fails to read (bad CRC, broken deflate data,
    encryption) is a BadDoc and the next member is still read."""
    try:
        archive = zipfile.ZipFile(path)
    except _ARCHIVE_ERRORS as e:
        yield BadDoc(archive_id, source, f"corrupt zip archive: {e}")
        return
    with archive:
        for info in archive.infolist():
            if info.is_dir() or _skipped_member(info.filename):
                continue
            member_id = f"{archive_id}!{info.filename}"
            try:
                with archive.open(info) as stream:
                    yield from _iter_member(stream, info.filename, member_id, source, text_field, max_bytes,
                                            errors)
            except _ARCHIVE_ERRORS as e:
                yield BadDoc(member_id, source, f"corrupt archive member: {e}")


def _iter_tar(path: str, archive_id: str, source: str, text_field: str, max_bytes: int,
              errors: str) -> Iterator[Doc]:
    """Members streamed in archive order. Compressed tar data cannot be resynchronised, so the
    first damaged byte ends the archive: one BadDoc names the member (or the archive) where
    reading stopped. The gzip checksum is verified at the end; a mismatch found only there means
    documents already yielded may be damaged, and is reported as a BadDoc for the archive."""
    member_id = archive_id
    try:
        with gzip.open(path, "rb") as gz:
            with tarfile.open(fileobj=gz, mode="r|") as archive:
                for member in archive:
                    if not member.isfile() or _skipped_member(member.name):
                        continue
                    member_id = f"{archive_id}!{member.name}"
                    stream = archive.extractfile(member)
                    yield from _iter_member(stream, member.name, member_id, source, text_field, max_bytes, errors)
                    member_id = archive_id
            while gz.read(1 << 20):
                pass
    except _ARCHIVE_ERRORS as e:
        yield BadDoc(member_id, source, f"corrupt archive, reading stopped here: {e}")


# --- JSONL -----------------------------------------------------------------------------------------

def _numbered_lines(stream: BinaryIO, max_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, line) for each line of a byte stream; None for a line over `max_bytes`,
    which is skipped without being held in memory."""
    lineno = 0
    while line := stream.readline(_read_limit(max_bytes)):
        lineno += 1
        if _too_large(len(line), max_bytes) and not line.endswith(b"\n"):
            while (rest := stream.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass
            yield lineno, None
        else:
            yield lineno, line


def _iter_jsonl(stream: BinaryIO, file_id: str, source: str, text_field: str, max_bytes: int,
                errors: str) -> Iterator[Doc]:
    """One document per non-blank line: a JSON object whose `text_field` is a non-empty string.
    JSON is UTF-8 by definition (a BOM on the first line is allowed; errors="replace" replaces
    undecodable bytes as for text files). A bad line is a BadDoc naming its line number; the
    following lines are still read."""
    for lineno, line in _numbered_lines(stream, max_bytes):
        line_id = f"{file_id}:{lineno}"
        if line is None:
            yield BadDoc(line_id, source, f"line {lineno}: larger than the {max_bytes}-byte limit")
            continue
        if not line.strip():
            continue
        encoding = "utf-8-sig" if lineno == 1 else "utf-8"
        try:
            decoded, replaced = line.decode(encoding), 0
        except UnicodeDecodeError as e:
            lenient = _replacing(line, encoding) if errors == "replace" else None
            if lenient is None:
                yield BadDoc(line_id, source, f"line {lineno}: not UTF-8: {e}")
                continue
            decoded, replaced = lenient
        try:
            obj = json.loads(decoded)
        except json.JSONDecodeError as e:
            yield BadDoc(line_id, source, f"line {lineno}: invalid JSON: {e}")
            continue
        if not isinstance(obj, dict):
            yield BadDoc(line_id, source, f"line {lineno}: expected a JSON object, got {type(obj).__name__}")
            continue
        if obj.get("id") not in (None, ""):
            line_id = str(obj["id"])
        text = obj.get(text_field)
        if not isinstance(text, str):
            yield BadDoc(line_id, source, f"line {lineno}: no string field {text_field!r}")
        elif not text.strip():
            yield BadDoc(line_id, source, f"line {lineno}: empty text")
        else:
            yield SourceDoc(line_id, source, text, "utf-8", replaced)


def _iter_parquet(path: str, file_id: str, text_field: str, max_bytes: int) -> Iterator[Doc]:
    """One document per row: its `text_field` column; the id from an `id` column when the row has
    one, else `<file id>:<row number>` (1-based). Read one row group at a time."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a damaged file
        yield BadDoc(file_id, path, f"not a readable Parquet file: {e}")
        return
    names = parquet.schema_arrow.names
    if text_field not in names:
        yield BadDoc(file_id, path, f"no column {text_field!r} (columns: {', '.join(names)})")
        return
    columns = [text_field] + (["id"] if "id" in names and text_field != "id" else [])
    row = 0
    for batch in parquet.iter_batches(columns=columns, batch_size=256):
        ids = batch.column("id").to_pylist() if "id" in columns else [None] * batch.num_rows
        for text, given_id in zip(batch.column(text_field).to_pylist(), ids):
            row += 1
            doc_id = str(given_id) if given_id not in (None, "") else f"{file_id}:{row}"
            if not isinstance(text, str):
                yield BadDoc(doc_id, path, f"row {row}: {text_field!r} is not a string")
            elif not text.strip():
                yield BadDoc(doc_id, path, f"row {row}: empty text")
            elif _too_large(len(text.encode("utf-8")), max_bytes):
                yield BadDoc(doc_id, path, f"row {row}: larger than the {max_bytes}-byte limit")
            else:
                yield SourceDoc(doc_id, path, text, "utf-8")


# --- one document's bytes -> text --------------------------------------------------------------

def _read_limit(max_bytes: int) -> int:
    """How many bytes to read to see whether a document is over `max_bytes` (0: no limit: all)."""
    return max_bytes + 1 if max_bytes else -1


def _too_large(size: int, max_bytes: int) -> bool:
    return bool(max_bytes) and size > max_bytes


def _text_doc(doc_id: str, source: str, raw: bytes, kind: str, max_bytes: int, errors: str) -> Doc:
    """A plain-text or HTML document from its raw bytes (at most max_bytes + 1 of them)."""
    if _too_large(len(raw), max_bytes):
        return BadDoc(doc_id, source, f"larger than the {max_bytes}-byte limit")
    try:
        text, encoding, replaced = decode_bytes(raw, errors)
    except UndecodableError as e:
        return BadDoc(doc_id, source, str(e))
    if kind == "html":
        text = html_to_text(text)
    if not text.strip():
        return BadDoc(doc_id, source, "empty document" if kind == "text" else "no text in HTML page")
    return SourceDoc(doc_id, source, text, encoding, replaced)


class UndecodableError(ValueError):
    """Bytes that are binary, or text in no encoding we accept."""


CJK_CANDIDATES = ("gb18030", "big5", "cp950", "big5hkscs")
ERRORS = ("strict", "replace")
MIN_CJK_SCORE = 0.8

_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def decode_bytes(raw: bytes, errors: str = "strict") -> tuple[str, str, int]:
    """(text, encoding name, characters replaced) of `raw`; raises UndecodableError. `errors`:
    "strict", or "replace" to replace a few undecodable bytes. See the module docstring."""
    if errors not in ERRORS:
        raise ValueError(f"errors must be one of {ERRORS}, got {errors!r}")
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                return _checked(raw.decode(encoding)), encoding, 0
            except UnicodeDecodeError as e:
                lenient = _replacing(raw, encoding) if errors == "replace" else None
                if lenient is None:
                    raise UndecodableError(f"invalid {encoding} after its byte-order mark: {e}") from None
                return _checked(lenient[0]), encoding, lenient[1]
    if b"\x00" in raw:
        raise UndecodableError("binary data (NUL bytes)")
    try:
        return _checked(raw.decode("utf-8")), "utf-8", 0
    except UnicodeDecodeError:
        pass
    best = _best_decoding(raw, CJK_CANDIDATES, "strict")
    if errors == "replace" and (best is None or best[0] < MIN_CJK_SCORE):
        best = _best_decoding(raw, ("utf-8", *CJK_CANDIDATES), "replace") or best
    if best is None:
        raise UndecodableError("not UTF-8, GB18030 or Big5" + (" (too many bytes to replace)" if errors == "replace" else ""))
    score, encoding, text, replaced = best
    if score < MIN_CJK_SCORE:
        raise UndecodableError(f"no encoding gives Chinese text (best: {encoding}, score {score:.2f})")
    return _checked(text), encoding, replaced


def _best_decoding(raw: bytes, encodings: Iterable[str], errors: str) -> tuple[float, str, str, int] | None:
    """(score, encoding, text, characters replaced) of the best-scoring encoding that decodes `raw`
    (with errors="replace": within the replacement limit; replacements are not scored)."""
    best = None
    for encoding in encodings:
        if errors == "replace":
            decoded = _replacing(raw, encoding)
        else:
            try:
                decoded = raw.decode(encoding), 0
            except UnicodeDecodeError:
                decoded = None
        if decoded is None:
            continue
        text, replaced = decoded
        score = cjk_score(text.replace("\ufffd", "") if replaced else text)
        if best is None or score > best[0]:
            best = (score, encoding, text, replaced)
    return best


def _replacing(raw: bytes, encoding: str) -> tuple[str, int] | None:
    """`raw` decoded with undecodable bytes replaced by U+FFFD, and how many were; None when
    that is more than 1% of the characters (at least one is always allowed: a cut last character)."""
    text = raw.decode(encoding, "replace")
    # "ignore" resumes where "replace" does, so the difference in length counts the replacements
    # (a U+FFFD that was in the bytes already is not one of them)
    replaced = len(text) - len(raw.decode(encoding, "ignore"))
    return (text, replaced) if replaced <= max(1, len(text) // 100) else None


def _checked(text: str) -> str:
    """`text` unless more than 1% of it is control characters, which text files do not have."""
    controls = len(_CONTROL.findall(text))
    if controls and controls * 100 > len(text):
        raise UndecodableError(f"binary data ({controls} control characters)")
    return text


def _decodable_range(encoding: str, leads: Iterable[int], trails: Iterable[int]) -> frozenset[str]:
    chars = set()
    for lead in leads:
        for trail in trails:
            try:
                chars.add(bytes((lead, trail)).decode(encoding))
            except UnicodeDecodeError:
                pass
    return frozenset(chars)


# GB2312's hanzi (rows B0-F7) and Big5's "frequently used" hanzi (A440-C67E): about 6,700
# simplified and 5,400 traditional characters that make up nearly all running Chinese text.
_COMMON_HANZI = (_decodable_range("gb2312", range(0xB0, 0xF8), range(0xA1, 0xFF))
                 | _decodable_range("big5", range(0xA4, 0xC7), [*range(0x40, 0x7F), *range(0xA1, 0xFF)]))
# Punctuation and symbols of ordinary Chinese prose. Deliberately absent: kana, bopomofo, Greek,
# Cyrillic, box drawing, pinyin letters, vertical and small forms, private use: the characters a
# GB18030/Big5 mix-up produces.
_COMMON_SYMBOLS = re.compile(
    "[\u00a0-\u00bf\u00d7\u00f7\u2000-\u206f\u2100-\u21ff\u2200-\u22ff\u2460-\u24ff\u25a0-\u26ff"
    "\u3000-\u303f\u3200-\u32ff\uff01-\uff5e\uffe0-\uffe6]")
_SCORED_PREFIX = 20_000


def cjk_score(text: str) -> float:
    """Share of the non-ASCII characters (in the first 20,000) that are common Chinese characters
    or punctuation; ASCII control characters count against. 1.0 for text with nothing to judge."""
    judged = good = 0
    for ch in text[:_SCORED_PREFIX]:
        if ch < "\x80":
            judged += ch < " " and ch not in "\t\n\r\f\v"
            continue
        judged += 1
        good += ch in _COMMON_HANZI or _COMMON_SYMBOLS.match(ch) is not None
    return good / judged if judged else 1.0
