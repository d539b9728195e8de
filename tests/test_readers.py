"""inference.readers on fixtures generated here: encodings, archives, JSONL, HTML, bad inputs."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from eastwest.inference.readers import BadDoc, SourceDoc, UndecodableError, decode_bytes, html_to_text, iter_documents

REPO_ROOT = Path(__file__).resolve().parents[1]

SIMPLIFIED = ("2023年，福建省与宁夏回族自治区深化东西部协作，共建产业园区12个，"
              "投入财政援助资金5.2亿元，带动当地群众就业3000余人。\n闽宁协作二十多年来成果丰硕。")
TRADITIONAL = ("2023年，福建省與寧夏回族自治區深化東西部協作，共建產業園區12個，"
               "投入財政援助資金5.2億元，帶動當地群眾就業3000餘人。\n閩寧協作二十多年來成果豐碩。")


def docs(*inputs: str, **kwargs) -> list:
    return list(iter_documents(list(inputs), **kwargs))


def by_id(results: list) -> dict:
    return {d.id: d for d in results}


@pytest.mark.parametrize("text, encoding", [
    (SIMPLIFIED, "gb18030"),
    (SIMPLIFIED, "gbk"),
    (SIMPLIFIED, "utf-8"),
    (SIMPLIFIED, "utf-8-sig"),
    (TRADITIONAL, "big5"),
    (TRADITIONAL, "gb18030"),
    (TRADITIONAL, "utf-8-sig"),
    (SIMPLIFIED, "utf-16"),
], ids=lambda value: value if value in ("gb18030", "gbk", "utf-8", "utf-8-sig", "big5", "utf-16") else "")
def test_same_text_in_every_encoding_decodes_to_the_original(tmp_path, text, encoding):
    (tmp_path / "doc.txt").write_bytes(text.encode(encoding))
    [doc] = docs(str(tmp_path / "doc.txt"))
    assert isinstance(doc, SourceDoc)
    assert doc.text == text


@pytest.mark.parametrize("text, encoding", [
    ("东西部协作", "gb18030"), ("北京市", "gb18030"), ("当地", "gb18030"), ("，宁夏", "gbk"),
    ("東西部協作", "big5"), ("寧夏與福建開展東西部協作", "big5"), ("天津市與甘肅", "big5"),
])
def test_short_chinese_snippets_are_not_misdetected(text, encoding):
    assert decode_bytes(text.encode(encoding))[0] == text


def test_line_endings_and_bom_handling_keep_text_exact(tmp_path):
    text = "第一行\r\n第二行\r\n\r\n第三行\n"
    (tmp_path / "crlf").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    [doc] = docs(str(tmp_path / "crlf"))
    assert doc.text == text and doc.encoding == "utf-8-sig"


def test_binary_empty_undecodable_and_oversized_files_are_bad_docs(tmp_path):
    (tmp_path / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (tmp_path / "random").write_bytes(bytes((i * 97 + 13) % 255 + 1 for i in range(800)))
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.txt").write_text(" \n\t\u3000\n", encoding="utf-8")
    (tmp_path / "big.txt").write_text("东" * 400, encoding="utf-8")
    (tmp_path / "ok.txt").write_text("东西部协作", encoding="utf-8")
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4")
    results = by_id(docs(str(tmp_path), max_bytes=1000))
    assert isinstance(results["ok.txt"], SourceDoc)
    bad = {k: v.reason for k, v in results.items() if isinstance(v, BadDoc)}
    assert set(bad) == {"image.txt", "random", "empty.txt", "blank.txt", "big.txt", "report.pdf"}
    assert "binary" in bad["image.txt"]
    assert "Chinese" in bad["random"] or "not UTF-8" in bad["random"]
    assert "empty" in bad["empty.txt"] and "empty" in bad["blank.txt"]
    assert "limit" in bad["big.txt"]
    assert "unsupported" in bad["report.pdf"]


def test_directory_is_walked_recursively_in_sorted_order_with_relative_ids(tmp_path):
    for name in ["b/2.txt", "b/1.txt", "a.txt", "c/d/e", ".hidden/x.txt", ".DS_Store"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"文档{name}", encoding="utf-8")
    results = docs(str(tmp_path))
    assert [d.id for d in results] == ["a.txt", "b/1.txt", "b/2.txt", "c/d/e"]
    assert all(d.source == str(tmp_path / d.id) for d in results)
    assert docs(str(tmp_path)) == results


def test_globs_missing_paths_and_duplicate_ids(tmp_path):
    (tmp_path / "a.txt").write_text("甲文档", encoding="utf-8")
    (tmp_path / "b.txt").write_text("乙文档", encoding="utf-8")
    (tmp_path / "c.jsonl").write_text('{"id": "a.txt", "text": "重复"}\n', encoding="utf-8")
    pattern = str(tmp_path / "*.txt")
    results = docs(pattern, str(tmp_path / "missing.txt"), str(tmp_path / "*.nothing"), str(tmp_path))
    # the directory's a.txt and b.txt were read through the glob already; its JSONL line chose an
    # id that a file has: the one kind of id that can repeat
    assert [(type(d).__name__, d.id) for d in results] == [
        ("SourceDoc", "a.txt"), ("SourceDoc", "b.txt"), ("BadDoc", "missing.txt"), ("BadDoc", "*.nothing"),
        ("BadDoc", "a.txt#2")]
    assert "duplicate id 'a.txt'" in results[-1].reason


def test_two_folders_holding_the_same_file_name_are_both_read(tmp_path):
    for folder in ("crawl-1", "crawl-2/site"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "report.txt").write_text(f"{folder}的报告", encoding="utf-8")
    results = docs(str(tmp_path / "crawl-1"), str(tmp_path / "crawl-2/site"))
    assert [(type(d).__name__, d.id, d.text) for d in results] == [
        ("SourceDoc", "crawl-1/report.txt", "crawl-1的报告"), ("SourceDoc", "crawl-2/site/report.txt", "crawl-2/site的报告")]


def test_an_id_is_the_same_however_the_input_is_named(tmp_path, monkeypatch):
    (tmp_path / "data" / "2023").mkdir(parents=True)
    (tmp_path / "data" / "2023" / "a.txt").write_text("甲文档", encoding="utf-8")
    (tmp_path / "data" / "b.txt").write_text("乙文档", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    spellings = [["data"], ["data/"], ["./data"], [str(tmp_path / "data")], ["data/2023/a.txt", "data/b.txt"],
                 ["data/b.txt", str(tmp_path / "data/2023/a.txt")], ["data/*/a.txt", "data/*.txt"],
                 ["data/2023/a.txt", "data"]]  # a file named twice is read once
    for inputs in spellings:
        assert sorted(d.id for d in docs(*inputs)) == ["2023/a.txt", "b.txt"], inputs
    assert [d.id for d in docs("data/b.txt")] == [d.id for d in docs(str(tmp_path / "data" / "b.txt"))] == ["b.txt"]


def test_stdin_is_one_document():
    code = "import sys; from eastwest.inference.readers import iter_documents; print(repr(list(iter_documents(['-']))))"
    out = subprocess.run([sys.executable, "-c", code], input=TRADITIONAL.encode("big5"), cwd=REPO_ROOT,
                         capture_output=True, check=True).stdout.decode()
    assert out.strip() == repr([SourceDoc("<stdin>", "-", TRADITIONAL, "big5")])


def _zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def test_zip_with_a_corrupt_member_yields_the_others(tmp_path):
    bad_body = ("这一段会被损坏。" * 400).encode("utf-8")
    archive = tmp_path / "reports.zip"
    _zip(archive, {"2023/a.txt": SIMPLIFIED.encode("gb18030"), "2023/bad.txt": bad_body,
                   "b.html": f"<p>{SIMPLIFIED}</p>".encode(), "lines.jsonl": b'{"text": "\xe7\xac\xac"}\n',
                   "__MACOSX/._a.txt": b"\x00\x05", "c.txt": TRADITIONAL.encode("big5")})
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("2023/bad.txt")
    data = bytearray(archive.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start + 10, start + info.compress_size - 10, 7):
        data[i] ^= 0x5A
    archive.write_bytes(bytes(data))

    results = docs(str(tmp_path))
    assert [d.id for d in results] == ["reports.zip!2023/a.txt", "reports.zip!2023/bad.txt", "reports.zip!b.html",
                                       "reports.zip!lines.jsonl:1", "reports.zip!c.txt"]
    assert {d.source for d in results} == {str(archive)}
    good = {d.id: d.text for d in results if isinstance(d, SourceDoc)}
    assert good == {"reports.zip!2023/a.txt": SIMPLIFIED, "reports.zip!b.html": SIMPLIFIED.replace("\n", " "),
                    "reports.zip!lines.jsonl:1": "第", "reports.zip!c.txt": TRADITIONAL}
    assert isinstance(results[1], BadDoc) and "corrupt" in results[1].reason


def test_corrupt_zip_archive_is_one_bad_doc_and_reading_continues(tmp_path):
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "z.txt").write_text("后续文档", encoding="utf-8")
    results = docs(str(tmp_path))
    assert [(type(d).__name__, d.id) for d in results] == [("BadDoc", "broken.zip"), ("SourceDoc", "z.txt")]


def _tar_gz(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_tar_gz_members_are_streamed(tmp_path):
    _tar_gz(tmp_path / "batch.tar.gz", {"x/one.txt": SIMPLIFIED.encode("gbk"), "two": TRADITIONAL.encode("big5"),
                                        "three.jsonl": b'{"id": "t3", "text": "\xe4\xb8\x89"}\n'})
    results = docs(str(tmp_path))
    assert [(d.id, d.text) for d in results] == [("batch.tar.gz!x/one.txt", SIMPLIFIED),
                                                 ("batch.tar.gz!two", TRADITIONAL), ("t3", "三")]


def test_truncated_tgz_keeps_members_before_the_damage(tmp_path):
    filler = os.urandom(300_000)  # incompressible, so truncation lands inside this member
    _tar_gz(tmp_path / "t.tgz", {"first.txt": SIMPLIFIED.encode(), "second.txt": filler, "third.txt": b"x"})
    data = (tmp_path / "t.tgz").read_bytes()
    (tmp_path / "t.tgz").write_bytes(data[: len(data) // 2])
    results = docs(str(tmp_path))
    assert [type(d).__name__ for d in results] == ["SourceDoc", "BadDoc"]
    assert results[0].text == SIMPLIFIED
    assert results[1].id == "t.tgz!second.txt" and "corrupt" in results[1].reason


def test_jsonl_lines_ids_and_bad_lines(tmp_path):
    lines = [
        json.dumps({"id": "doc-1", "text": SIMPLIFIED}, ensure_ascii=False),
        json.dumps({"body": "没有text字段"}, ensure_ascii=False),
        '{"id": "broken", "text": "未闭合',
        "",
        json.dumps({"text": "第五行"}, ensure_ascii=False),
        "[1, 2]",
        json.dumps({"id": 7, "content": "自定义字段", "text": 1}, ensure_ascii=False),
    ]
    path = tmp_path / "batch.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode() + b"\n" + b'{"text": "\xff"}\n')
    results = docs(str(path))
    summary = [(type(d).__name__, d.id) for d in results]
    assert summary == [("SourceDoc", "doc-1"), ("BadDoc", "batch.jsonl:2"), ("BadDoc", "batch.jsonl:3"),
                       ("SourceDoc", "batch.jsonl:5"), ("BadDoc", "batch.jsonl:6"), ("BadDoc", "7"),
                       ("BadDoc", "batch.jsonl:8")]
    assert results[0].text == SIMPLIFIED
    assert results[2].reason.startswith("line 3: invalid JSON")
    assert "UTF-8" in results[-1].reason
    assert [d.text for d in docs(str(path), text_field="content") if isinstance(d, SourceDoc)] == ["自定义字段"]
    lenient = docs(str(path), errors="replace")  # the stray byte of line 8 is replaced, and counted
    assert (lenient[-1].id, lenient[-1].text, lenient[-1].replaced) == ("batch.jsonl:8", "\ufffd", 1)


def test_oversized_jsonl_line_is_skipped_and_the_next_line_read(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps({"text": "长" * 5000}, ensure_ascii=False) + "\n"
                    + json.dumps({"text": "短"}, ensure_ascii=False) + "\n", encoding="utf-8")
    results = docs(str(path), max_bytes=1000)
    assert [(type(d).__name__, d.id) for d in results] == [("BadDoc", "big.jsonl:1"), ("SourceDoc", "big.jsonl:2")]
    assert [type(d).__name__ for d in docs(str(path), max_bytes=0)] == ["SourceDoc", "SourceDoc"]  # 0: no limit


def test_max_bytes_zero_reads_documents_of_any_size(tmp_path):
    (tmp_path / "big.txt").write_text("东" * 2000, encoding="utf-8")
    [small_limit] = docs(str(tmp_path / "big.txt"), max_bytes=1000)
    assert isinstance(small_limit, BadDoc) and "1000-byte limit" in small_limit.reason
    [unlimited] = docs(str(tmp_path / "big.txt"), max_bytes=0)
    assert isinstance(unlimited, SourceDoc) and unlimited.text == "东" * 2000


SEED = sorted((REPO_ROOT.parent / "shared" / "seeds").glob("*.txt"))[0]


@pytest.mark.parametrize("damage", ["stray byte", "cut last character"])
def test_errors_replace_keeps_a_report_with_a_stray_byte_or_a_cut_character(tmp_path, damage):
    text = SEED.read_text(encoding="utf-8")  # 6.5 KB
    if damage == "stray byte":  # between two characters, after the first line
        k = text.index("\n") + 1
        raw, expected = text[:k].encode() + b"\xff" + text[k:].encode(), text[:k] + "\ufffd" + text[k:]
    else:  # the last Chinese character loses its last byte, and the file ends there
        text = text[: max(i for i, ch in enumerate(text) if ch > "\x7f") + 1]
        raw, expected = text.encode()[:-1], text[:-1] + "\ufffd"
    (tmp_path / "report.txt").write_bytes(raw)
    [strict] = docs(str(tmp_path / "report.txt"))
    assert isinstance(strict, BadDoc) and "not UTF-8" in strict.reason
    [lenient] = docs(str(tmp_path / "report.txt"), errors="replace")
    assert isinstance(lenient, SourceDoc)
    assert (lenient.text, lenient.encoding, lenient.replaced) == (expected, "utf-8", 1)


def test_errors_replace_still_rejects_what_is_not_text(tmp_path):
    cut_gbk = SIMPLIFIED.encode("gb18030")[:-1]  # a legacy encoding, cut in half at the end
    assert decode_bytes(cut_gbk, "replace") == (SIMPLIFIED[:-1] + "\ufffd", "gb18030", 1)
    garbage = bytes(range(0x80, 0x100)) * 20  # far more than 1% undecodable
    with pytest.raises(UndecodableError):
        decode_bytes(garbage, "replace")
    with pytest.raises(UndecodableError, match="binary"):
        decode_bytes(b"\x89PNG\r\n\x1a\n\x00\x00", "replace")


def test_stdin_lines_are_documents():
    code = ("from eastwest.inference.readers import iter_documents; print(repr([(type(d).__name__, d.id, getattr(d, 'text', None)) "
            "for d in iter_documents(['-'], max_bytes=40, lines=True)]))")
    stdin = "天津市和平区\r\n\n会宁县\n" + "长" * 20 + "\n甘肃省"
    out = subprocess.run([sys.executable, "-c", code], input=stdin.encode("utf-8"), cwd=REPO_ROOT,
                         capture_output=True, check=True).stdout.decode()
    assert out.strip() == repr([("SourceDoc", "<stdin>:1", "天津市和平区"), ("SourceDoc", "<stdin>:3", "会宁县"),
                                ("BadDoc", "<stdin>:4", None), ("SourceDoc", "<stdin>:5", "甘肃省")])


ARTICLE_PAGE = """<!DOCTYPE html>
<html><head><meta charset="gbk"><title>闽宁协作 - 新闻中心</title>
<style>.x { color: red } /* 样式里的中文 */</style>
<script>var banner = "脚本里的中文广告";</script></head>
<body>
<div class="top-header"><a href="/">首页</a> | <a href="/news">新闻中心</a> | <a href="/gov">政务公开</a></div>
<nav><ul><li><a href="/a">导航栏目一</a></li><li><a href="/b">导航栏目二</a></li></ul></nav>
<div class="breadcrumb">当前位置：首页 &gt; 新闻中心</div>
<div class="wrap">
  <div class="article-body">
    <h1>闽宁协作再结硕果</h1>
    <p>　　2023年，福建省与宁夏回族自治区深化东西部协作，共建产业园区
十二个，带动当地群众就业三千余人，投入财政援助资金五亿元。</p>
    <p>双方还在教育、医疗等领域开展<a href="/t">人才交流</a>活动，选派专业技术人员二百余名。</p>
    <div class="para-two">福州市与银川市签订劳务协作协议，组织农村劳动力转移就业一千多人次。<br>
    厦门市帮助固原市建设消费帮扶中心。</div>
  </div>
  <div class="sidebar"><h3>热点新闻</h3><p>侧栏中的说明文字，不属于正文</p></div>
  <ul class="links"><li><a href="/1">相关报道：东西部协作推进会召开</a></li><li><a href="/2">更多新闻</a></li></ul>
</div>
<noscript>请启用浏览器脚本功能</noscript>
<form><input name="q"><button>搜索本站</button></form>
<footer><p>版权所有：宁夏回族自治区人民政府办公厅　地址：银川市</p></footer>
<script>document.write("页脚脚本");</script>
</body></html>"""

ARTICLE_PARAGRAPHS = [
    "闽宁协作再结硕果",
    "2023年，福建省与宁夏回族自治区深化东西部协作，共建产业园区十二个，带动当地群众就业三千余人，投入财政援助资金五亿元。",
    "双方还在教育、医疗等领域开展人才交流活动，选派专业技术人员二百余名。",
    "福州市与银川市签订劳务协作协议，组织农村劳动力转移就业一千多人次。",
    "厦门市帮助固原市建设消费帮扶中心。",
]


def test_html_page_yields_article_paragraphs_without_boilerplate(tmp_path):
    (tmp_path / "page.html").write_bytes(ARTICLE_PAGE.encode("gbk"))
    [doc] = docs(str(tmp_path / "page.html"))
    assert doc.text.split("\n") == ARTICLE_PARAGRAPHS
    for boilerplate in ["脚本", "样式", "导航", "首页", "当前位置", "侧栏", "相关报道", "版权所有", "请启用", "搜索"]:
        assert boilerplate not in doc.text


def test_html_article_element_and_split_body_keep_every_paragraph():
    page = """<body><article><header><h1>标题：东西部协作</h1></header><p>第一段正文，讲述协作的背景。</p>
      <footer>责任编辑：某某</footer></article>
      <aside><p>侧栏推荐阅读</p></aside></body>"""
    assert html_to_text(page) == "标题：东西部协作\n第一段正文，讲述协作的背景。"
    long_a, long_b = "甲" * 60, "乙" * 60
    split = f"""<body><div id="part1"><p>{long_a}</p><p>短段落</p></div>
      <div class="x"><div><p>{long_b}</p></div></div></body>"""
    assert html_to_text(split) == f"{long_a}\n短段落\n{long_b}"


def test_html_without_text_is_a_bad_doc(tmp_path):
    (tmp_path / "empty.htm").write_text("<html><script>只有脚本</script><nav>导航</nav></html>", encoding="utf-8")
    [doc] = docs(str(tmp_path / "empty.htm"))
    assert isinstance(doc, BadDoc) and "no text" in doc.reason


def test_html_wrappers_named_like_boilerplate_keep_long_paragraphs():
    body = "宁夏与福建开展东西部协作，" * 5
    page = f"""<body><form id="form1" action="x.aspx"><div class="page has-sidebar">
      <div class="menu"><a href="/">首页</a></div><input type="hidden" name="__VIEWSTATE">
      <div class="text"><p>{body}</p><p>短段落也保留</p></div>
      <form class="search"><input name="q"><span>站内搜索</span></form></div></form></body>"""
    assert html_to_text(page) == f"{body}\n短段落也保留"
