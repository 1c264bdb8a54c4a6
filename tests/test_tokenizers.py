"""Tokenizers behind one interface: a plugin's own format is found, counts bytes and is checked."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pgolf_core import hookimpl
from pgolf_core.stream.bytes import ByteTable
from pgolf_core.stream.data import BOS_ID
from pgolf_core.demo import demo_tokenizer_path
from pgolf_core.errors import DataError
from pgolf_core.evaluate import evaluate
from pgolf_core.tokenizers import SentencePieceTokenizer, load_tokenizer

OFFSET = 2  # ids 0 and 1 (BOS) are reserved; byte b is token b + 2


class ByteTokenizer:
    """One token per UTF-8 byte: a format no builtin knows, in files ending ``.bytetok``."""

    vocab_size = 256 + OFFSET

    def __init__(self, path):
        self.path = str(path)

    def byte_table(self):
        base = np.zeros(self.vocab_size, dtype=np.int64)
        base[OFFSET:] = 1
        return ByteTable(base, np.zeros(self.vocab_size, dtype=bool), base == 0)

    def encode(self, text):
        return [b + OFFSET for b in text.encode("utf-8")]

    def decode(self, ids):
        return bytes(i - OFFSET for i in ids if i >= OFFSET).decode("utf-8", errors="replace")


class BytePlugin:
    @hookimpl
    def pgolf_register_tokenizers(register):
        register("bytes", lambda path: ByteTokenizer(path) if str(path).endswith(".bytetok") else None)


@pytest.fixture
def byte_plugins(plugins, tmp_path):
    plugins.add(BytePlugin, "bytes-test")
    path = tmp_path / "t.bytetok"
    path.write_text(json.dumps({"format": "bytes"}))
    yield plugins, str(path)
    plugins.remove("bytes-test")


def stream(tok, texts):
    ids = []
    for text in texts:
        ids += [BOS_ID] + tok.encode(text)
    return np.array(ids + [BOS_ID], dtype=np.int64)


def test_a_plugin_format_is_found_and_counts_its_own_bytes(byte_plugins):
    plugins, path = byte_plugins
    tok = load_tokenizer(path, plugins)
    assert isinstance(tok, ByteTokenizer)
    assert isinstance(load_tokenizer(demo_tokenizer_path(), plugins), SentencePieceTokenizer)
    texts = ["hello world", "déjà vu", "a third document"]
    toks = stream(tok, texts)
    res = evaluate(["uniform"], tokens=toks, tokenizer=path, plugins=plugins, check_tokenizer=True)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    assert res.bytes == n_bytes  # BOS counts no byte
    assert res.bpb == pytest.approx((len(toks) - 1) * math.log2(tok.vocab_size) / n_bytes, rel=1e-12)


def test_the_data_check_uses_the_plugin_tokenizer(byte_plugins):
    plugins, path = byte_plugins
    wrong = np.array([BOS_ID, 500, 501, BOS_ID, 502, BOS_ID], dtype=np.int64)
    with pytest.raises(DataError):
        evaluate(["uniform"], tokens=wrong, tokenizer=path, plugins=plugins)  # outside its vocabulary
    bad = np.array([BOS_ID, 0, 0, 0, BOS_ID, 0, 0, BOS_ID, 0, BOS_ID], dtype=np.int64)  # decodes to nothing
    with pytest.raises(DataError, match="does not match the data"):
        evaluate(["uniform"], tokens=bad, tokenizer=path, plugins=plugins, check_tokenizer=True)


def test_a_file_no_format_recognizes_is_refused_clearly(plugins, tmp_path):
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"not a tokenizer")
    with pytest.raises(DataError, match="not a SentencePiece model"):
        load_tokenizer(junk, plugins)
