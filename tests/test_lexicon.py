"""Lexicon-constrained decoding: word boundaries in Viterbi, gazetteer parsing of REGION spans."""
from __future__ import annotations

import numpy as np

from eastwest.inference.bio import boundary_penalties, tags_to_spans, viterbi_decode_many
from eastwest.inference.lexicon import (CONSTRAINED_LABELS, WORD_FEATURE_TYPES, LexiconConstraint, is_place_name, segment,
                               token_mid_word, token_word_types, word_starts)
from eastwest.inference.schema import LABELS, Entity

TAGS = list(LABELS.tags)


def _probs(text: str, wanted: dict[int, str], confidence: float) -> np.ndarray:
    """Per-character distributions whose argmax is `wanted` (index → tag, else O) at `confidence`."""
    probs = np.full((len(text), len(TAGS)), (1 - confidence) / (len(TAGS) - 1), dtype=np.float32)
    for i in range(len(text)):
        probs[i, TAGS.index(wanted.get(i, "O"))] = confidence
    return probs


def _decode(text, probs, lexicon: LexiconConstraint | None):
    offsets = [(i, i + 1) for i in range(len(text))]
    if lexicon is None:
        [(tags, scores)] = viterbi_decode_many([probs], TAGS)
    else:
        penalties = boundary_penalties(TAGS, CONSTRAINED_LABELS, lexicon.penalty)
        [(tags, scores)] = viterbi_decode_many([probs], TAGS, [token_mid_word(offsets, text)], penalties)
    return [(e.text, e.label) for e in tags_to_spans(tags, offsets, text, scores)]


def test_word_starts_follow_words_and_gazetteer_names():
    text = "遵义市安排资金，毕节新建车间，黔東南州人民醫院"
    starts = word_starts(text)
    assert len(starts) == len(text) + 1 and starts[0] and starts[-1]
    assert starts[3] and not starts[4]  # 遵义市|安排
    assert starts[text.index("新建")] and not starts[text.index("节")]  # 毕节|新建
    assert starts[text.index("人民")] and not starts[text.index("東")]  # traditional script read as simplified


def test_word_types_say_where_a_character_sits_and_what_its_word_is():
    text = "黔東南州人民醫院，帮扶工作队来了"
    words = segment(text)
    assert "".join(words) == "黔东南州人民医院，帮扶工作队来了"  # simplified, same length, same order
    types = token_word_types([(i, i + 1) for i in range(len(text))], text, words)
    assert all(0 < t < WORD_FEATURE_TYPES for t in types)  # 0 is left to [CLS], [SEP] and padding
    place, org, other = types[0:4], types[text.index("工作队"):text.index("来")], types[text.index("帮扶"):][:2]
    assert place[0] != place[1] == place[2] != place[3]  # begin, inside, inside, end of one word
    assert len({place[0], org[0], other[0]}) == 3  # a place name, an organisation head, another word
    assert types[text.index("，")] != other[0] and types[text.index("了")] == types[text.index("，")]  # one-character words
    # a token takes its first character's type; the same text gives the same types with or without words given
    assert token_word_types([(0, 2), (2, 4)], text) == [types[0], types[2]]


def test_rule_patterns_override_words_with_their_own_span_and_label():
    text = "投入3.3亿元，帮扶2086人，新建项目12个"
    types = token_word_types([(i, i + 1) for i in range(len(text))], text)
    money, people, projects = (types[text.index(s):text.index(s) + len(s)] for s in ("3.3亿元", "2086人", "12个"))
    assert money[0] != money[1] == money[2] == money[3] != money[4]  # one span: begin, inside …, end
    assert len({money[0], people[0], projects[0], types[0]}) == 4  # MONEY, PEOPLE_COUNT, PROJECT_COUNT, a word


def test_boundary_penalty_moves_an_end_out_of_a_word_unless_the_model_is_sure():
    text = "遵义市安排资金"
    run_on = {0: "B-REGION", 1: "I-REGION", 2: "I-REGION", 3: "I-REGION"}  # 遵义市安: ends inside 安排
    unsure = _probs(text, run_on, 0.6)
    assert _decode(text, unsure, None) == [("遵义市安", "REGION")]
    assert _decode(text, unsure, LexiconConstraint(penalty=4.0)) == [("遵义市", "REGION")]
    sure = _probs(text, run_on, 0.99999)
    assert _decode(text, sure, LexiconConstraint(penalty=4.0)) == [("遵义市安", "REGION")]


def test_boundary_penalty_leaves_numbers_alone():
    text = "实施29个项目"  # 29个 ends inside no word jieba knows of, and counts are not constrained anyway
    wanted = {2: "B-PROJECT_COUNT", 3: "I-PROJECT_COUNT", 4: "I-PROJECT_COUNT"}
    probs = _probs(text, wanted, 0.6)
    assert _decode(text, probs, LexiconConstraint()) == _decode(text, probs, None) == [("29个", "PROJECT_COUNT")]


def test_unparsable_regions_are_dropped_unless_confident():
    lexicon = LexiconConstraint(keep_score=0.9)
    spans = [Entity(0, 2, "REGION", "沪遵", 0.7), Entity(3, 7, "REGION", "黔东南州", 0.6),
             Entity(8, 13, "REGION", "罗霄山片区", 0.95), Entity(14, 17, "ORG", "省委会", 0.5),
             Entity(18, 27, "REGION", "从江县丙妹镇岜沙村", 0.5), Entity(28, 31, "REGION", "岜沙村", 0.5)]
    kept = [e.text for e in lexicon.filter_regions(spans)]
    assert kept == ["黔东南州", "罗霄山片区", "省委会", "从江县丙妹镇岜沙村", "岜沙村"]
    assert not is_place_name("全县") and not is_place_name("大别山区") and is_place_name("恩施州")


def test_the_word_table_is_built_once_into_the_cache_and_segments_the_same(tmp_path):
    """A process without the cached table builds it (jieba + every gazetteer name), a later one
    loads it: both cut text the same; an unreadable table is rebuilt, not an error."""
    import json
    import os
    import subprocess
    import sys

    script = ("import json, sys; from eastwest.inference.lexicon import segment; "
              "print(json.dumps(segment(sys.argv[1]), ensure_ascii=False))")
    text = "遵义市安排资金，毕节新建车间，黔東南州人民醫院，会宁县韩家集镇杨集村"
    env = {**os.environ, "EASTWEST_CACHE": str(tmp_path)}

    def cut() -> list[str]:
        proc = subprocess.run([sys.executable, "-c", script, text], capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    assert not (tmp_path / "words").exists()
    built = cut()
    [table] = (tmp_path / "words").glob("jieba-gazetteer-*.marshal")
    assert "黔东南州" in built and "遵义市" in built  # gazetteer names are words (traditional read as simplified)
    assert cut() == built == segment(text)  # loaded from the table, and as this process cuts it
    table.write_bytes(b"not a table")
    assert cut() == built and table.stat().st_size > 1_000_000  # rebuilt and rewritten
