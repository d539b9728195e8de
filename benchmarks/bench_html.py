"""Article extraction from HTML pages: eastwest's own (inference/article.py) against trafilatura
and readability-lxml, on the same pages, scored against the known article text.

The pages are built here: each report of annotations/written/texts/ (team-written) is wrapped in
one of five page templates written for this benchmark, in the manner of Chinese government and
news sites (navigation bars, breadcrumbs, publication lines, related-link lists, share bars,
comment boxes, footers with copyright and ICP numbers, scripts and styles); one template is an
old table-layout page declared and encoded as GB2312/GBK. Every extractor gets the page's raw
bytes (as a crawler would), ours through readers.decode_bytes first.

Scores, per page then averaged (macro) over pages:
  chars: precision/recall/F1 of the article's characters (whitespace ignored), matched in order
         (difflib matching blocks between the extracted and the true text);
  lines: precision/recall/F1 of the article's paragraphs, as exact lines (stripped).
Speed: milliseconds per page (median of the pages, one run each).

usage: python benchmarks/bench_html.py [--texts N] [--extractors eastwest,trafilatura,readability]
(trafilatura and readability-lxml are not dependencies: pip install them to compare)
"""
from __future__ import annotations

import argparse
import html
import statistics
import sys
import time
from difflib import SequenceMatcher
from pathlib import Path

TEXTS = Path(__file__).resolve().parents[1] / "annotations" / "written" / "texts"

_STYLE = "<style>body{margin:0;font:14px/1.6 'Microsoft YaHei'}.w1200{width:1200px;margin:0 auto}</style>"
_SCRIPT = ("<script>var _hmt=_hmt||[];(function(){var hm=document.createElement('script');"
           "hm.src='/stat/count.js';document.body.appendChild(hm);})();</script>")


def _nav(items: list[str], cls: str = "nav") -> str:
    return f'<div class="{cls}"><ul>' + "".join(f'<li><a href="/{i}/">{w}</a></li>' for i, w in enumerate(items)) + "</ul></div>"


def _links(titles: list[str]) -> str:
    return "".join(f'<li><a href="/art/2020/{k}.html">{t}</a><span>2020-0{k % 9 + 1}-1{k % 10}</span></li>'
                   for k, t in enumerate(titles))


_MENU = ["首页", "机构概况", "政务公开", "政策文件", "工作动态", "东西部协作", "对口支援", "办事服务", "互动交流"]
_RELATED = ["我市召开东西部协作工作推进会", "帮扶干部深入村组调研产业发展", "劳务协作专场招聘会在县城举办",
            "消费帮扶产品展销活动启动", "两地签署新一轮协作框架协议", "援建学校秋季学期正式开学"]
_FOOTER = ("主办单位：某某市人民政府办公室　承办单位：某某市大数据中心<br>"
           "版权所有 © 2020 某某市人民政府　地址：某某市人民路1号　邮编：730000<br>"
           "网站标识码：6200000001　<a href='https://beian.miit.gov.cn'>陇ICP备05000001号-1</a>　公安机关备案号 62010202000001")


def _paragraphs(lines: list[str], open_tag: str = "<p>", close_tag: str = "</p>") -> str:
    return "\n".join(f"{open_tag}{html.escape(line)}{close_tag}" for line in lines)


def gov_div(title: str, lines: list[str]) -> str:
    """A provincial portal: all <div>s with pinyin class names, breadcrumb, info line, related list."""
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}_某某市人民政府</title>{_STYLE}{_SCRIPT}</head>
<body><div class="top"><div class="w1200"><span>欢迎访问某某市人民政府门户网站</span><a href="/wza">无障碍</a><a href="/m">手机版</a><a href="/en">English</a></div></div>
<div class="logo"><img src="/img/logo.png" alt="某某市人民政府"></div>{_nav(_MENU, "dh")}
<div class="w1200"><div class="weizhi">当前位置：<a href="/">首页</a> &gt; <a href="/zwgk/">政务公开</a> &gt; <a href="/dxbxz/">东西部协作</a></div>
<div class="zw"><div class="bt"><h1>{html.escape(title)}</h1></div>
<div class="xinxi"><span>发布时间：2020-06-18 09:30</span><span>来源：市乡村振兴局</span><span>浏览次数：1024</span><span>字号：<a>大</a> <a>中</a> <a>小</a></span></div>
<div class="zhengwen">{_paragraphs(lines)}</div>
<div class="fx"><span>分享到：</span><a class="wx">微信</a><a class="wb">微博</a><a class="qq">QQ空间</a></div>
<div class="dayin"><a href="javascript:window.print()">【打印本页】</a><a href="javascript:window.close()">【关闭窗口】</a></div></div>
<div class="xgxx"><h3>相关信息</h3><ul>{_links(_RELATED)}</ul></div></div>
<div class="bottom">{_nav(["网站地图", "联系我们", "隐私声明"], "dibu-lj")}<p>{_FOOTER}</p></div>{_SCRIPT}</body></html>"""


def news_html5(title: str, lines: list[str]) -> str:
    """A news site with HTML5 structure: header/nav/article/aside/footer and a comment section."""
    return f"""<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8"><title>{html.escape(title)} - 某某日报网</title>{_STYLE}</head>
<body><header class="site-header"><a class="brand" href="/">某某日报网</a><nav>{_nav(["要闻", "时政", "经济", "社会", "乡村振兴", "视频", "专题"])}</nav>
<form class="search"><input name="q" placeholder="搜索"><button>搜索</button></form></header>
<main><article><header><h1>{html.escape(title)}</h1><p class="meta">2021-03-02 07:15　来源：某某日报　记者 张某某</p></header>
{_paragraphs(lines)}
<p class="editor">（责任编辑：李某某）</p></article>
<section class="comments"><h3>网友评论</h3><div class="comment"><b>网友甲</b>：为帮扶干部点赞！</div><div class="comment"><b>网友乙</b>：希望产业越办越好。</div>
<textarea placeholder="我来说两句"></textarea></section>
<aside><h3>热点推荐</h3><ul>{_links(_RELATED[::-1])}</ul><h3>专题</h3><ul>{_links(_RELATED[:3])}</ul></aside></main>
<footer><p>某某日报社版权所有，未经书面授权禁止使用</p><p>互联网新闻信息服务许可证：62120170001　<a href="https://beian.miit.gov.cn">陇ICP备12000002号</a></p></footer>
<script>document.querySelectorAll('.share').forEach(function(b){{b.onclick=function(){{}}}})</script></body></html>"""


def table_gbk(title: str, lines: list[str]) -> str:
    """An old county site: table layout, <font> tags, <br>-separated paragraphs, GB2312 declared."""
    body = "<br>\n".join("　　" + html.escape(line) for line in lines)
    return f"""<html><head><meta http-equiv="Content-Type" content="text/html; charset=gb2312"><title>{html.escape(title)}</title></head>
<body bgcolor="#ffffff"><table width="980" align="center" cellpadding="0" cellspacing="0">
<tr><td><img src="/images/banner.jpg"></td></tr>
<tr><td class="menu">""" + "　|　".join(f'<a href="/list{i}.asp">{w}</a>' for i, w in enumerate(_MENU)) + f"""</td></tr>
<tr><td><table width="100%"><tr><td width="200" valign="top" class="left"><b>栏目导航</b><br>""" + "<br>".join(
        f'<a href="/list{i}.asp">{w}</a>' for i, w in enumerate(_MENU[3:])) + f"""</td>
<td valign="top"><table width="100%"><tr><td align="center"><font size="5" color="#cc0000"><b>{html.escape(title)}</b></font></td></tr>
<tr><td align="center"><font color="#666666">作者：办公室　发布时间：2019-11-05　点击数：356</font></td></tr>
<tr><td><font style="font-size:15px;line-height:28px">{body}</font></td></tr>
<tr><td align="right"><a href="javascript:window.print()">打印</a>　<a href="javascript:window.close()">关闭</a></td></tr>
<tr><td>上一篇：<a href="/show.asp?id=101">县扶贫办召开帮扶工作会议</a><br>下一篇：<a href="/show.asp?id=103">东西部协作资金项目公示</a></td></tr></table></td></tr></table></td></tr>
<tr><td align="center" class="copyright">{_FOOTER}</td></tr></table></body></html>"""


def aspnet_trs(title: str, lines: list[str]) -> str:
    """An ASP.NET page wrapped in one <form>, content in a TRS editor div, spans inside paragraphs."""
    paras = "\n".join(f'<p style="text-indent:2em"><span style="font-family:仿宋">{html.escape(line)}</span></p>' for line in lines)
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>{_STYLE}</head>
<body><form method="post" action="./Detail.aspx?id=2045" id="form1"><input type="hidden" name="__VIEWSTATE" value="dDwtMTA4MzE0MjEwNTs7Pg==">
<div id="header"><div class="logo">某某县人民政府网</div>{_nav(_MENU, "menu")}</div>
<div id="position">您现在的位置：<a href="/">网站首页</a> &gt;&gt; <a href="/xw/">新闻中心</a> &gt;&gt; 正文</div>
<div class="content-box"><div class="title">{html.escape(title)}</div>
<div class="info">【来源：县政府办　发布日期：2022-08-09　字体：<a>大</a> <a>中</a> <a>小</a>】</div>
<div class="TRS_Editor">{paras}</div>
<div class="bdsharebuttonbox"><a class="bds_more">分享到：</a><a class="bds_weixin">微信</a><a class="bds_tsina">新浪微博</a></div>
<div class="pre-next"><p>上一篇：<a href="/xw/2044.html">县领导调研协作产业园</a></p><p>下一篇：<a href="/xw/2046.html">援建卫生院投入使用</a></p></div></div>
<div class="related"><div class="hd">相关新闻</div><ul>{_links(_RELATED)}</ul></div>
<div id="footer"><p>{_FOOTER}</p></div></form>{_SCRIPT}</body></html>"""


def wechat_like(title: str, lines: list[str]) -> str:
    """A mobile article page: <section>s and <span>s, QR code prompt, read count, like button."""
    paras = "\n".join(f'<section><span style="font-size:16px;letter-spacing:1px">{html.escape(line)}</span></section>' for line in lines)
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>{html.escape(title)}</title>{_STYLE}</head>
<body><div id="app"><div class="rich_media"><h2 class="rich_media_title">{html.escape(title)}</h2>
<div class="rich_media_meta_list"><span>某某乡村振兴</span> <em>2023-04-12 18:02</em> <em>发表于甘肃</em></div>
<div class="rich_media_content" id="js_content">{paras}
<p style="text-align:center"><img src="/qr.png"><br><span>长按识别二维码 关注我们</span></p>
<p><span>来源：某某县融媒体中心</span><br><span>编辑：王某　审核：赵某</span></p></div>
<div class="rich_media_tool"><a id="js_view_source">阅读原文</a><span>阅读 2361</span><a class="like">赞 18</a><a class="share">分享</a><a class="like">在看</a></div></div>
<div class="comment-list"><h4>精选留言</h4><ul><li><b>山里人</b><p>家乡变化真大，感谢帮扶！</p></li><li><b>小陈</b><p>点赞</p></li></ul></div></div>
<script>window.__INITIAL_STATE__={{"articleId":2361,"comments":[]}};</script></body></html>"""


TEMPLATES = {"gov_div": (gov_div, "utf-8"), "news_html5": (news_html5, "utf-8"), "table_gbk": (table_gbk, "gbk"),
             "aspnet_trs": (aspnet_trs, "utf-8"), "wechat_like": (wechat_like, "utf-8")}


def build_pages(n_texts: int) -> list[tuple[str, str, bytes, str]]:
    """(template, text file, page bytes, the article text: title line then paragraphs)."""
    pages = []
    files = sorted(TEXTS.glob("*.txt"))[:n_texts]
    for name, (template, encoding) in TEMPLATES.items():
        for path in files:
            lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            title, body = lines[0], lines[1:]
            page = template(title, body).encode(encoding, errors="xmlcharrefreplace")
            pages.append((name, path.name, page, "\n".join([title, *body])))
    return pages


def ours(raw: bytes) -> str:
    from eastwest.inference.article import html_to_text
    from eastwest.inference.readers import decode_bytes

    return html_to_text(decode_bytes(raw, errors="replace")[0])


def with_trafilatura(raw: bytes) -> str:
    import trafilatura

    return trafilatura.extract(raw, include_comments=False, include_tables=True, deduplicate=False) or ""


def with_readability(raw: bytes) -> str:
    import lxml.html
    from readability import Document

    summary = Document(raw).summary(html_partial=True)
    root = lxml.html.fromstring(summary)
    for el in root.iter():  # a line per block and per <br>, as the others give
        if el.tag in ("p", "div", "section", "h1", "h2", "h3", "li", "tr", "br", "td"):
            el.tail = "\n" + (el.tail or "")
    title = Document(raw).short_title()  # readability keeps the title apart from the content
    return f"{title}\n{root.text_content()}"


EXTRACTORS = {"eastwest": ours, "trafilatura": with_trafilatura, "readability": with_readability}


def f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def score(got: str, gold: str) -> dict:
    a, b = "".join(gold.split()), "".join(got.split())
    matched = sum(block.size for block in SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks())
    cp, cr = (matched / len(b) if b else 0.0), (matched / len(a) if a else 0.0)
    gold_lines = [line.strip() for line in gold.splitlines() if line.strip()]
    got_lines = [line.strip() for line in got.splitlines() if line.strip()]
    hits = len(set(gold_lines) & set(got_lines))
    lp, lr = (hits / len(set(got_lines)) if got_lines else 0.0), (hits / len(set(gold_lines)) if gold_lines else 0.0)
    return {"char_p": cp, "char_r": cr, "char_f1": f1(cp, cr), "line_p": lp, "line_r": lr, "line_f1": f1(lp, lr)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=20, help="texts per template (default 20)")
    parser.add_argument("--extractors", default=",".join(EXTRACTORS))
    args = parser.parse_args(argv)
    pages = build_pages(args.texts)
    print(f"{len(pages)} pages ({len(TEMPLATES)} templates × {len(pages) // len(TEMPLATES)} texts), "
          f"{sum(len(p[2]) for p in pages) / len(pages) / 1024:.1f} KiB per page")
    keys = ("char_p", "char_r", "char_f1", "line_p", "line_r", "line_f1")
    print(f"{'extractor':12s} {'template':12s} " + " ".join(f"{k:>7s}" for k in keys) + "  ms/page")
    for name in args.extractors.split(","):
        extract = EXTRACTORS[name]
        try:
            extract(pages[0][2])
        except ImportError as exc:
            print(f"{name:12s} not installed ({exc.name})", file=sys.stderr)
            continue
        results: dict[str, list] = {}
        for template, _, raw, gold in pages:
            t0 = time.perf_counter()
            got = extract(raw)
            ms = 1000 * (time.perf_counter() - t0)
            results.setdefault(template, []).append((score(got, gold), ms))
        for template in [*TEMPLATES, "all"]:
            rows = [r for t, rs in results.items() if template in (t, "all") for r in rs]
            means = [statistics.mean(s[k] for s, _ in rows) for k in keys]
            print(f"{name:12s} {template:12s} " + " ".join(f"{m:7.3f}" for m in means)
                  + f"  {statistics.median(ms for _, ms in rows):7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
