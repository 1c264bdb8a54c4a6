"""Byte accounting: golden counts of the official validation head and the UTF-8 property."""

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pgolf_core.stream.bytes import bits_per_byte
from pgolf_core.stream.data import BOS_ID


def test_golden_val_head_targets_and_bytes(val_head_tokens, byte_table):
    b = byte_table.target_bytes(val_head_tokens)
    assert len(b) == 131_071
    assert int(b.sum()) == 315_257


def test_bytes_of_each_document_equal_its_utf8_length(val_docs_path, byte_table, tokenizer_path):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_path))
    for line in open(val_docs_path, encoding="utf-8"):
        doc = json.loads(line)
        stream = np.array([BOS_ID] + doc["token_ids"], dtype=np.int64)
        counted = int(byte_table.target_bytes(stream).sum())
        assert counted == len(sp.decode(doc["token_ids"]).encode("utf-8")), doc["val_doc_index"]


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=200))
def test_bytes_equal_utf8_length_of_decoded_text(byte_table, tokenizer_path, text):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_path))
    ids = sp.encode(text)
    stream = np.array([BOS_ID] + ids, dtype=np.int64)
    assert int(byte_table.target_bytes(stream).sum()) == len(sp.decode(ids).encode("utf-8"))


def test_bits_per_byte_is_a_ratio_of_sums():
    assert bits_per_byte(np.log(2) * 10, 5) == 2.0
