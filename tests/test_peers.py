"""The peers of `eastwest cv`: Baidu LAC's words mapped onto our labels."""
from __future__ import annotations

from eastwest.training.peers import LacTagger


def test_lac_words_become_our_labels():
    text = "新华社成都5月2日电 杭州市第一人民医院与黔东南州签订协议，投入资金3.3亿元，帮助1530户6021人，实施项目46个，培训车间12个。"
    spans = [(e.text, e.label) for e in LacTagger().tag(text)]
    assert ("新华社", "ORG") in spans and ("成都", "REGION") in spans and ("5月2日", "DATE") in spans
    assert ("杭州市第一人民医院", "ORG") in spans and ("黔东南州", "REGION") in spans
    assert ("3.3亿元", "MONEY") in spans
    assert ("1530户", "PEOPLE_COUNT") in spans and ("6021人", "PEOPLE_COUNT") in spans  # 6021 + 人 joined
    assert ("46个", "PROJECT_COUNT") in spans and not any(t == "12个" for t, _ in spans)  # workshops are no projects
    for e in LacTagger().tag(text):
        assert text[e.start : e.end] == e.text


def test_lac_offsets_hold_across_lines_and_blank_lines():
    text = "第一行：上海市\n\n  第二行：2020年，遵义市汇川区\r\n"
    for e in LacTagger().tag(text):
        assert text[e.start : e.end] == e.text
    assert [e.text for e in LacTagger().tag(text) if e.label == "REGION"][-1] == "遵义市汇川区"  # LOC + LOC joined
