"""Silver data from the People's Daily 1998 corpus: the POS → label mapping, and the cached stage."""
from __future__ import annotations

import json

import pytest

from eastwest.inference.rules import RuleTagger
from eastwest.inference.schema import LABELS
from eastwest.training.config import load_config
from eastwest.training.silver import label_paragraph, parse_line, silver_documents


@pytest.fixture(scope="module")
def rules():
    return RuleTagger()


def spans(line, rules):
    text, entities = label_paragraph(parse_line(line), rules)
    return text, [(e.text, e.label) for e in entities]


def test_regions_need_both_the_gazetteer_and_an_ns_tag(rules):
    text, found = spans("天津市/ns  和平区/ns  帮扶/v  会宁县/ns  ，/w  江/nr  泽民/nr  讲话/v  ，/w  世界/n  和平/n", rules)
    assert text == "天津市和平区帮扶会宁县，江泽民讲话，世界和平"
    assert found == [("天津市和平区", "REGION"), ("会宁县", "REGION")]  # not 江 (a person), not 和平 (peace)


def test_places_outside_the_gazetteer_stay_outside(rules):
    _, found = spans("美国/ns  、/w  长江/ns  和/c  欧洲/ns", rules)
    assert found == []


def test_nt_words_become_org_unless_a_rule_span_covers_them(rules):
    _, found = spans("新华社/nt  北京/ns  １月/t  ３日/t  电/n  国务院/nt  拨款/v  ３０００万/m  元/q", rules)
    assert found == [("新华社", "ORG"), ("北京", "REGION"), ("１月３日", "DATE"), ("国务院", "ORG"), ("３０００万元", "MONEY")]


def test_lac_adds_multi_word_organisations_the_corpus_supports(rules):
    from eastwest.training.peers import LacTagger

    line = "中共/j  贵州/ns  省委/n  和/c  南宁市/ns  财政局/n  联合/v  发文/v  ，/w  同/p  外国/n  交流/v"
    text, entities = label_paragraph(parse_line(line), rules, LacTagger())
    found = [(e.text, e.label) for e in entities]
    assert ("南宁市财政局", "ORG") in found  # replaces the REGION 南宁市 inside it
    assert ("南宁市", "REGION") not in found
    assert all(e.text != "同" for e in entities)  # LAC's one-character ORG guesses are not taken
    without = [(e.text, e.label) for e in label_paragraph(parse_line(line), rules)[1]]
    assert ("南宁市", "REGION") in without and ("南宁市财政局", "ORG") not in without


def test_silver_documents_are_valid_and_reproducible():
    docs = silver_documents(40, seed=3)
    assert len(docs) == 40
    assert [d.id for d in docs] == [d.id for d in silver_documents(40, seed=3)]
    assert [d.id for d in docs] != [d.id for d in silver_documents(40, seed=4)]
    assert sum(len(d.entities) for d in docs) > 20
    for doc in docs:
        assert len(doc.text) >= 20
        previous_end = 0
        for e in doc.entities:
            assert e.text == doc.text[e.start : e.end] and e.label in LABELS.names
            assert e.start >= previous_end  # sorted, no overlaps
            previous_end = e.end


def test_silver_stage_trains_once_and_is_reused(tmp_path, tiny_base_dir, gold_tasks, monkeypatch, capsys):
    import eastwest.training.stages as stages
    from eastwest.training.train import run_training

    monkeypatch.setattr(stages, "CACHE_DIR", tmp_path / "cache")
    export = tmp_path / "one.json"
    export.write_text(json.dumps([gold_tasks[2]], ensure_ascii=False), encoding="utf-8")
    overrides = [f"model.base={tiny_base_dir}", f"data.train=[{export}]", "train.epochs=1", "train.batch_size=8",
                 "data.window=64", "data.stride=16", "silver.documents=30", "silver.epochs=1"]
    run_training(load_config(None, overrides + [f"output.dir={tmp_path / 'a'}"]), progress=False)
    (stage,) = (tmp_path / "cache").iterdir()
    summary = json.loads((stage / "stage.json").read_text())
    assert summary["documents"] == 30 and summary["key"]["silver"] == {"documents": 30, "epochs": 1.0, "lac": False}
    assert "silver stage written" in capsys.readouterr().out
    run_training(load_config(None, overrides + [f"output.dir={tmp_path / 'b'}"]), progress=False)
    assert "silver stage: cached" in capsys.readouterr().out
    assert len(list((tmp_path / "cache").iterdir())) == 1
    run_training(load_config(None, overrides + ["silver.documents=31", f"output.dir={tmp_path / 'c'}"]), progress=False)
    assert len(list((tmp_path / "cache").iterdir())) == 2  # a different silver set is a different stage
