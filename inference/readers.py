"""Reading input documents for tagging, from whatever the user points at.

`iter_documents(inputs)` walks files, directories (recursively, in sorted order), glob patterns,
`-` (standard input, one document), `.zip` / `.tar.gz` / `.tgz` archives, `.jsonl` files (one
document per line), `.parquet` files (one document per row), `.html` / `.htm` pages and plain
text (`.txt` or no extension). `list_files` + `read_file` are the same in two steps, for engines
that list on one machine and read on many (ray_engine.py). It is a
generator: one document is in memory at a time, so a corpus of any size streams through.

A document's `source` is the path of the file it was read from (the archive, for a member;
`-` for standard input). Every input yields either a `SourceDoc` or a `BadDoc` saying why it was
not read; nothing is dropped silently except hidden files (names starting with '.', `__MACOSX/`),
symbolic links to directories and non-file archive entries (directories, links).

Ids are stable across runs and unique within one call, because resuming a run keys on them:
  - a file found under a directory input: its path relative to that directory (`2023/a.txt`);
  - a file named directly or matched by a glob: the path as given (`data/a.txt`);
  - an archive member: `<archive id>!<member path>`;
  - a JSONL line: its `id` field when present, else `<file id>:<line number>` (1-based);
  - a Parquet row: its `id` column when present, else `<file id>:<row number>` (1-based);
  - standard input: `<stdin>`.
The n-th document with an id already produced becomes a BadDoc with id `<id>#<n>`, so that
every id yielded, good or bad, is unique (the ids seen so far are kept for this, a few dozen bytes
each; the documents are not).

Size limit: a document whose raw bytes exceed `max_bytes` (default 5 MiB; for JSONL, one line)
is a BadDoc. The limit is checked before decoding, so an oversized file is never held in memory.

Encodings, in this order:
  1. a byte-order mark decides (UTF-8, UTF-16);
  2. NUL bytes mean binary (images, archives, executables) -> BadDoc;
  3. strict UTF-8;
  4. each legacy CJK encoding (GB18030, Big5, CP950, Big5-HKSCS) that decodes the bytes strictly
     is scored by how much of its non-ASCII text is common Chinese characters and punctuation
     (GB2312 hanzi, Big5 frequent hanzi); the best score wins, ties go to the earlier encoding;
  5. if even the best scores below 0.8 the bytes are rejected as undecodable.
charset-normalizer is deliberately not used: on short Chinese snippets (2-8 characters), restricted
to these same candidates, it picked the wrong one for 176 of 939 samples, against 8 of 1565 (all
2-4 character Big5 snippets, which are genuinely ambiguous) for the scoring above.

The text is kept exactly as decoded (a BOM is not text; line endings are left alone), because
entity offsets downstream index into it. HTML is reduced to its article text, see `html_to_text`.
"""
from __future__ import annotations

import glob
import gzip
import json
import os
import re
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import lxml.html
from lxml import etree

MAX_BYTES = 5 * 1024 * 1024
STDIN_ID = "<stdin>"


@dataclass(frozen=True)
class SourceDoc:
    id: str
    source: str
    text: str
    encoding: str


@dataclass(frozen=True)
class BadDoc:
    id: str
    source: str
    reason: str


Doc = SourceDoc | BadDoc


def iter_documents(inputs: list[str], text_field: str = "text", max_bytes: int = MAX_BYTES) -> Iterator[Doc]:
    """Every document of every input, in input order; see the module docstring for the rules."""
    first_source: dict[str, str] = {}
    repeats: dict[str, int] = {}
    for given in inputs:
        for doc in _iter_input(given, text_field, max_bytes):
            if isinstance(doc, SourceDoc):
                if doc.id in first_source:
                    repeats[doc.id] = repeats.get(doc.id, 1) + 1
                    doc = BadDoc(f"{doc.id}#{repeats[doc.id]}", doc.source,
                                 f"duplicate id {doc.id!r}, first read from {first_source[doc.id]}")
                else:
                    first_source[doc.id] = doc.source
            yield doc


# --- inputs: stdin, files, directories, globs ---------------------------------------------------

def _iter_input(given: str, text_field: str, max_bytes: int) -> Iterator[Doc]:
    if given == "-":
        yield _text_doc(STDIN_ID, given, sys.stdin.buffer.read(max_bytes + 1), "text", max_bytes)
        return
    for found in list_files([given]):
        if isinstance(found, BadDoc):
            yield found
        else:
            yield from read_file(*found, text_field=text_field, max_bytes=max_bytes)


def list_files(inputs: list[str]) -> Iterator[tuple[str, str] | BadDoc]:
    """(path, document id) of every file the inputs name, or a BadDoc for an input that names
    nothing readable. Reading is separate (`read_file`), so that a distributed run can list on
    one machine and read on many."""
    for given in inputs:
        if os.path.isdir(given):
            for found in _walk(given):
                if isinstance(found, OSError):
                    yield BadDoc(_posix(os.path.relpath(found.filename, given)), found.filename,
                                 f"cannot list directory: {found.strerror}")
                else:
                    yield found, _posix(os.path.relpath(found, given))
        elif os.path.exists(given):
            yield given, _posix(given)
        elif _GLOB_MAGIC.search(given):
            matches = sorted(glob.glob(given, recursive=True))
            if not matches:
                yield BadDoc(given, given, "glob pattern matches nothing")
            yield from list_files(matches)
        else:
            yield BadDoc(given, given, "no such file or directory")


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


def read_file(path: str, doc_id: str, text_field: str = "text", max_bytes: int = MAX_BYTES) -> Iterator[Doc]:
    """The documents of one file (several for archives, JSONL and Parquet), good or bad."""
    source = path
    kind = file_kind(path)
    try:
        if kind == "zip":
            yield from _iter_zip(path, doc_id, source, text_field, max_bytes)
        elif kind == "tar":
            yield from _iter_tar(path, doc_id, source, text_field, max_bytes)
        elif kind == "jsonl":
            with open(path, "rb") as f:
                yield from _iter_jsonl(f, doc_id, source, text_field, max_bytes)
        elif kind == "parquet":
            yield from _iter_parquet(path, doc_id, text_field, max_bytes)
        elif kind is None:
            yield BadDoc(doc_id, source, f"unsupported file type {os.path.splitext(path)[1]!r}")
        elif os.path.getsize(path) > max_bytes:
            yield BadDoc(doc_id, source, f"larger than the {max_bytes}-byte limit")
        else:
            with open(path, "rb") as f:
                yield _text_doc(doc_id, source, f.read(max_bytes + 1), kind, max_bytes)
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
                 max_bytes: int) -> Iterator[Doc]:
    kind = file_kind(name)
    if kind == "jsonl":
        yield from _iter_jsonl(stream, doc_id, source, text_field, max_bytes)
    elif kind in ("zip", "tar", "parquet"):
        yield BadDoc(doc_id, source, f"{kind} files inside archives are not read")
    elif kind is None:
        yield BadDoc(doc_id, source, f"unsupported file type {os.path.splitext(name)[1]!r}")
    else:
        yield _text_doc(doc_id, source, stream.read(max_bytes + 1), kind, max_bytes)


def _iter_zip(path: str, archive_id: str, source: str, text_field: str, max_bytes: int) -> Iterator[Doc]:
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
                    yield from _iter_member(stream, info.filename, member_id, source, text_field, max_bytes)
            except _ARCHIVE_ERRORS as e:
                yield BadDoc(member_id, source, f"corrupt archive member: {e}")


def _iter_tar(path: str, archive_id: str, source: str, text_field: str, max_bytes: int) -> Iterator[Doc]:
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
                    yield from _iter_member(stream, member.name, member_id, source, text_field, max_bytes)
                    member_id = archive_id
            while gz.read(1 << 20):
                pass
    except _ARCHIVE_ERRORS as e:
        yield BadDoc(member_id, source, f"corrupt archive, reading stopped here: {e}")


# --- JSONL -----------------------------------------------------------------------------------------

def _iter_jsonl(stream: BinaryIO, file_id: str, source: str, text_field: str, max_bytes: int) -> Iterator[Doc]:
    """One document per non-blank line: a JSON object whose `text_field` is a non-empty string.
    JSON is UTF-8 by definition (a BOM on the first line is allowed). A bad line is a BadDoc
    naming its line number; the following lines are still read."""
    lineno = 0
    while True:
        line = stream.readline(max_bytes + 1)
        if not line:
            return
        lineno += 1
        line_id = f"{file_id}:{lineno}"
        if len(line) > max_bytes and not line.endswith(b"\n"):
            while (rest := stream.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass
            yield BadDoc(line_id, source, f"line {lineno}: larger than the {max_bytes}-byte limit")
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line.decode("utf-8-sig" if lineno == 1 else "utf-8"))
        except UnicodeDecodeError as e:
            yield BadDoc(line_id, source, f"line {lineno}: not UTF-8: {e}")
            continue
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
            yield SourceDoc(line_id, source, text, "utf-8")


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
            elif len(text.encode("utf-8")) > max_bytes:
                yield BadDoc(doc_id, path, f"row {row}: larger than the {max_bytes}-byte limit")
            else:
                yield SourceDoc(doc_id, path, text, "utf-8")


# --- one document's bytes -> text --------------------------------------------------------------

def _text_doc(doc_id: str, source: str, raw: bytes, kind: str, max_bytes: int) -> Doc:
    """A plain-text or HTML document from its raw bytes (at most max_bytes + 1 of them)."""
    if len(raw) > max_bytes:
        return BadDoc(doc_id, source, f"larger than the {max_bytes}-byte limit")
    try:
        text, encoding = decode_bytes(raw)
    except UndecodableError as e:
        return BadDoc(doc_id, source, str(e))
    if kind == "html":
        text = html_to_text(text)
    if not text.strip():
        return BadDoc(doc_id, source, "empty document" if kind == "text" else "no text in HTML page")
    return SourceDoc(doc_id, source, text, encoding)


class UndecodableError(ValueError):
    """Bytes that are binary, or text in no encoding we accept."""


CJK_CANDIDATES = ("gb18030", "big5", "cp950", "big5hkscs")
MIN_CJK_SCORE = 0.8

_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def decode_bytes(raw: bytes) -> tuple[str, str]:
    """(text, encoding name) of `raw`; raises UndecodableError. See the module docstring."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                return _checked(raw.decode(encoding)), encoding
            except UnicodeDecodeError as e:
                raise UndecodableError(f"invalid {encoding} after its byte-order mark: {e}") from None
    if b"\x00" in raw:
        raise UndecodableError("binary data (NUL bytes)")
    try:
        return _checked(raw.decode("utf-8")), "utf-8"
    except UnicodeDecodeError:
        pass
    best: tuple[float, str, str] | None = None
    for encoding in CJK_CANDIDATES:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        score = cjk_score(text)
        if best is None or score > best[0]:
            best = (score, encoding, text)
    if best is None:
        raise UndecodableError("not UTF-8, GB18030 or Big5")
    score, encoding, text = best
    if score < MIN_CJK_SCORE:
        raise UndecodableError(f"no encoding gives Chinese text (best: {encoding}, score {score:.2f})")
    return _checked(text), encoding


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


# --- HTML -> article text ----------------------------------------------------------------------------

# Never article text. `header` is kept inside <article>, where it holds the title and date.
_DROP_TAGS = ("script", "style", "noscript", "template", "iframe", "svg", "canvas", "object", "embed",
              "nav", "aside", "footer", "header", "button", "select")
# class/id words that mark boilerplate containers on pages that use plain <div>s for everything.
_BOILERPLATE_WORDS = frozenset(("nav", "navbar", "menu", "breadcrumb", "breadcrumbs", "footer", "sidebar",
                                "share", "copyright", "comment", "comments", "related", "advert", "ads",
                                "banner", "toolbar", "login", "search"))
_LINK_LIST_TAGS = ("ul", "ol", "dl", "div", "section", "table", "menu")
_BLOCK_TAGS = frozenset(("p", "div", "section", "article", "main", "header", "h1", "h2", "h3", "h4", "h5",
                         "h6", "ul", "ol", "li", "dl", "dt", "dd", "table", "thead", "tbody", "tr",
                         "blockquote", "pre", "figure", "figcaption", "address", "hr", "caption", "center",
                         "details", "summary", "body"))
_CELL_TAGS = ("td", "th")
_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
_LONG_PARAGRAPH = 50  # CJK characters: a paragraph this long is article text wherever it sits


def html_to_text(html: str) -> str:
    """The article text of an HTML page, one paragraph (block element or <br> line) per line.

    1. Drop what is never content: scripts, styles, nav, header (outside <article>), footer,
       aside, noscript and the like. Then drop forms, hidden elements, containers whose class/id
       says nav/menu/footer/sidebar/..., and link lists (blocks whose text is mostly link text),
       unless they hold a long paragraph (>= 50 Chinese characters outside links): ASP.NET pages
       wrap the whole page in a <form>, and a wrapper's class may well say "has-sidebar".
    2. Start from the <article> with the most Chinese text, else <main>, else the element whose
       paragraphs hold the most Chinese text.
    3. Widen that to the smallest element that also contains every long paragraph on the page,
       so that article text is never cut off.
    Whitespace is collapsed as a browser would, and a line break between two Chinese characters
    disappears (CSS segment-break rule), so source line wrapping does not insert spaces.
    """
    parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True)
    try:
        root = lxml.html.document_fromstring(html.encode("utf-8"), parser=parser)
    except etree.ParserError:
        return ""
    _drop_boilerplate(root)
    paragraphs = [(el, n) for el in root.iter() if (n := _paragraph_cjk(el))]
    main = _main_element(root, paragraphs)
    for el, n in paragraphs:
        if n >= _LONG_PARAGRAPH:
            main = _common_ancestor(main, el)
    pieces: list = []
    _render(main, pieces)
    return _assemble(pieces)


def _drop_boilerplate(root: lxml.html.HtmlElement) -> None:
    for el in list(root.iter(*_DROP_TAGS)):
        if el.tag == "header" and any(a.tag == "article" for a in el.iterancestors()):
            continue
        el.drop_tree()
    protected = set()
    for el in root.iter():
        if _paragraph_cjk(el) >= _LONG_PARAGRAPH:
            protected.update((el, *el.iterancestors()))
    lengths: dict = {}
    _text_lengths(root, lengths, in_link=False)
    _prune(root, protected, lengths)


def _text_lengths(el: lxml.html.HtmlElement, lengths: dict, in_link: bool) -> tuple[int, int]:
    """(characters of text, of which inside links) for `el` and, into `lengths`, every descendant;
    one pass, so that judging link density stays linear in the page size."""
    in_link = in_link or el.tag == "a"
    total = len((el.text or "").strip())
    linked = total if in_link else 0
    for child in el:
        if isinstance(child.tag, str):
            child_total, child_linked = _text_lengths(child, lengths, in_link)
            total, linked = total + child_total, linked + child_linked
        tail = len((child.tail or "").strip())
        total, linked = total + tail, linked + (tail if in_link else 0)
    lengths[el] = (total, linked)
    return total, linked


def _prune(el: lxml.html.HtmlElement, protected: set, lengths: dict) -> None:
    """Top-down, drop forms, hidden elements, boilerplate-named containers and link lists (at
    least half of their text in links), except elements in `protected` (holding a long paragraph)."""
    for child in list(el):
        if not isinstance(child.tag, str):
            continue
        if child not in protected and _looks_like_boilerplate(child, lengths[child]):
            child.drop_tree()
        else:
            _prune(child, protected, lengths)


def _looks_like_boilerplate(el: lxml.html.HtmlElement, length: tuple[int, int]) -> bool:
    words = set(re.split(r"[\s_-]+", f"{el.get('class', '')} {el.get('id', '')}".lower()))
    total, linked = length
    return (el.tag == "form" or el.get("hidden") is not None or el.get("aria-hidden") == "true"
            or bool(words & _BOILERPLATE_WORDS) or (el.tag in _LINK_LIST_TAGS and 0 < total <= 2 * linked))


def _paragraph_cjk(el: lxml.html.HtmlElement) -> int:
    """Chinese characters of `el`'s own paragraph text: for <p>, headings and cells the whole of
    it, for other block elements only text directly inside, for inline elements none (it belongs
    to the enclosing block); link text never counts."""
    if el.tag not in _BLOCK_TAGS and el.tag not in _CELL_TAGS:
        return 0
    if el.tag in ("p", "h1", "h2", "h3", "h4", "h5", "h6", "td", "th", "li", "blockquote", "dd"):
        own = el.text_content()
        links = "".join(a.text_content() for a in el.iter("a"))
        return max(0, len(_CJK.findall(own)) - len(_CJK.findall(links)))
    direct = (el.text or "") + "".join(child.tail or "" for child in el)
    return len(_CJK.findall(direct))


def _main_element(root: lxml.html.HtmlElement, paragraphs: list) -> lxml.html.HtmlElement:
    articles = [(len(_CJK.findall(a.text_content())), a) for a in root.iter("article")]
    articles = [pair for pair in articles if pair[0]]
    if articles:
        return max(articles, key=lambda pair: pair[0])[1]
    mains = [el for el in root.iter() if el.tag == "main" or el.get("role") == "main"]
    if mains:
        return mains[0]
    by_parent: dict = {}
    for el, n in paragraphs:
        holder = el if el.tag in ("div", "section", "body") else el.getparent()
        by_parent[holder] = by_parent.get(holder, 0) + n
    return max(by_parent, key=by_parent.get) if by_parent else root


def _common_ancestor(a: lxml.html.HtmlElement, b: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    a_chain = [a, *a.iterancestors()]
    b_chain = {b, *b.iterancestors()}
    return next(el for el in a_chain if el in b_chain)


_BREAK, _CELL = object(), object()  # structural line break / table cell boundary in rendered pieces


def _render(el: lxml.html.HtmlElement, out: list) -> None:
    """Text pieces of `el` into `out`, with _BREAK around blocks and at <br>, _CELL before cells."""
    block = el.tag in _BLOCK_TAGS
    if block or el.tag == "br":
        out.append(_BREAK)
    elif el.tag in _CELL_TAGS:
        out.append(_CELL)
    out.append(el.text or "")
    for child in el:
        if isinstance(child.tag, str):
            _render(child, out)
        out.append(child.tail or "")
    if block:
        out.append(_BREAK)


def _assemble(pieces: list) -> str:
    """Rendered pieces -> lines: whitespace collapsed within each run of text, cells joined by
    tabs, blank lines dropped."""
    lines: list[str] = []
    cells: list[str] = []
    run: list[str] = []
    for piece in [*pieces, _BREAK]:
        if isinstance(piece, str):
            run.append(piece)
            continue
        cells.append(_collapse_whitespace("".join(run)).strip())
        run = []
        if piece is _BREAK:
            line = "\t".join(cell for cell in cells if cell)
            if line:
                lines.append(line)
            cells = []
    return "\n".join(lines)


_WHITESPACE_RUN = re.compile(r"[ \t\r\f\n]+")


def _collapse_whitespace(text: str) -> str:
    """HTML whitespace runs -> one space, or nothing for a wrapped line between Chinese characters."""
    def replace(m: re.Match) -> str:
        before, after = text[m.start() - 1: m.start()], text[m.end(): m.end() + 1]
        if "\n" in m.group() and _CJK.match(before) and _CJK.match(after):
            return ""
        return " "
    return _WHITESPACE_RUN.sub(replace, text)
