"""Shards and token files: round trips, and a clear error for each kind of bad input."""

import json

import numpy as np
import pytest

from pgolf_core.stream.data import (load_tokens, official_trim, prepare_shards, read_npy,
                             read_shard, write_shard)
from pgolf_core.errors import DataError


def test_shard_round_trip(tmp_path):
    toks = np.array([1, 5, 7, 1023, 0], dtype=np.uint16)
    write_shard(tmp_path / "fineweb_val_000000.bin", toks)
    assert np.array_equal(read_shard(tmp_path / "fineweb_val_000000.bin", vocab_size=1024), toks)
    assert np.array_equal(load_tokens(tmp_path, vocab_size=1024), toks)


def test_shards_concatenate_in_sorted_order(tmp_path):
    write_shard(tmp_path / "fineweb_val_000001.bin", np.array([3, 4]))
    write_shard(tmp_path / "fineweb_val_000000.bin", np.array([1, 2]))
    write_shard(tmp_path / "fineweb_train_000000.bin", np.array([9, 9]))
    assert load_tokens(tmp_path).tolist() == [1, 2, 3, 4]
    assert load_tokens(tmp_path, split="train").tolist() == [9, 9]


def _corrupt(tmp_path, how):
    path = tmp_path / "fineweb_val_000000.bin"
    write_shard(path, np.arange(10, dtype=np.uint16))
    raw = bytearray(path.read_bytes())
    if how == "magic":
        raw[0:4] = np.int32(12345).tobytes()
    elif how == "version":
        raw[4:8] = np.int32(7).tobytes()
    elif how == "truncated":
        raw = raw[:-3]
    elif how == "header":
        raw = raw[:100]
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("how,message", [
    ("magic", "bad magic 12345"), ("version", "unsupported version 7"), ("truncated", "truncated"),
    ("header", "shorter than the"),
])
def test_bad_shards_name_the_file_and_the_problem(tmp_path, how, message):
    path = _corrupt(tmp_path, how)
    with pytest.raises(DataError) as err:
        read_shard(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_token_out_of_vocab_is_reported_with_position(tmp_path):
    path = tmp_path / "fineweb_val_000000.bin"
    write_shard(path, np.array([1, 2, 4000, 3]))
    with pytest.raises(DataError, match=r"token id 4000 at position 2 .* vocabulary of 1024"):
        read_shard(path, vocab_size=1024)


def test_npy_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_npy(tmp_path / "missing.npy")
    np.save(tmp_path / "two_d.npy", np.zeros((2, 2), dtype=np.int32))
    with pytest.raises(DataError, match="1-D integer"):
        read_npy(tmp_path / "two_d.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match="not a readable"):
        read_npy(tmp_path / "junk.npy")


def test_official_trim_matches_published_lengths():
    assert len(official_trim(np.zeros(62_021_846, dtype=np.uint8), 2048)) == 62_021_633


def test_prepare_writes_bos_before_each_doc_val_first(tmp_path, tokenizer_path):
    import sentencepiece as spm

    docs = tmp_path / "docs.jsonl"
    texts = ["first document", "second one here", "third", "fourth text"]
    docs.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    summary = prepare_shards(docs, tokenizer_path, tmp_path / "out", val_docs=1)
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_path))
    val = load_tokens(tmp_path / "out", vocab_size=1024, split="val")
    train = load_tokens(tmp_path / "out", vocab_size=1024, split="train")
    assert val.tolist() == [1] + sp.encode(texts[0])
    assert train.tolist() == sum(([1] + sp.encode(t) for t in texts[1:]), [])
    assert summary["val"]["docs"] == 1 and summary["train"]["docs"] == 3


def test_prepare_rejects_a_line_without_text(tmp_path, tokenizer_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"text": "ok"}\n{"body": "no text"}\n')
    with pytest.raises(DataError, match=r"docs.jsonl:2: expected a JSON object with a 'text' field"):
        prepare_shards(docs, tokenizer_path, tmp_path / "out")
