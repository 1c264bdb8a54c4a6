"""Byte sidecars (fineweb_val_bytes_*.bin): one interface with the tokenizer's table, chosen per
dataset, validated, recorded in results. Built-in demo data only: no ../shared needed."""

from __future__ import annotations

import numpy as np
import pytest

from pgolf_core import evaluate
from pgolf_core.stream.bytes import byte_table_from_sentencepiece
from pgolf_core.stream.data import write_shard
from pgolf_core.demo import demo_tokenizer_path, demo_tokens
from pgolf_core.errors import DataError

TOK = demo_tokenizer_path()


@pytest.fixture
def shards(tmp_path):
    tokens = np.asarray(demo_tokens("val")[:3000])
    counts = np.concatenate([[0], byte_table_from_sentencepiece(TOK).target_bytes(tokens)])  # token 0: no target
    write_shard(tmp_path / "fineweb_val_000000.bin", tokens[:1800])
    write_shard(tmp_path / "fineweb_val_000001.bin", tokens[1800:])
    return tmp_path, tokens, counts


def _sidecars(folder, counts, split=1800):
    write_shard(folder / "fineweb_val_bytes_000000.bin", counts[:split])
    write_shard(folder / "fineweb_val_bytes_000001.bin", counts[split:])


def test_sidecars_beside_the_shards_replace_the_table(shards):
    folder, tokens, counts = shards
    table = evaluate(["bigram"], tokens=folder, tokenizer=TOK)
    assert table.config["bytes"]["method"] == "tokenizer table"
    _sidecars(folder, counts)
    same = evaluate(["bigram"], tokens=folder, tokenizer=TOK)
    assert same.targets == len(tokens) - 1  # the sidecars are not read as token shards
    assert same.config["bytes"]["method"] == "sidecar" and same.bytes == table.bytes and same.bpb == table.bpb
    _sidecars(folder, 2 * counts)
    double = evaluate(["bigram"], tokens=folder, tokenizer=TOK)
    assert double.bytes == 2 * table.bytes and double.bpb == pytest.approx(table.bpb / 2, rel=1e-12)
    cut = evaluate(["bigram"], tokens=folder, tokenizer=TOK, limit=1000)
    assert cut.bytes == int(2 * counts[1:1000].sum())  # --limit cuts the sidecar with the tokens


def test_an_explicit_sidecar_is_used_and_validated(shards, tmp_path):
    folder, tokens, counts = shards
    side = tmp_path / "elsewhere.bin"
    write_shard(side, 3 * counts)
    res = evaluate(["bigram"], tokens=folder, tokenizer=TOK, byte_counts=side)
    assert res.bytes == int(3 * counts[1:].sum())
    write_shard(side, counts[:-5])
    with pytest.raises(DataError, match=r"elsewhere.bin: 2995 counts for 3000 tokens"):
        evaluate(["bigram"], tokens=folder, tokenizer=TOK, byte_counts=side)
    side.write_bytes(b"\0" * 2048)
    with pytest.raises(DataError, match="bad magic"):
        evaluate(["bigram"], tokens=folder, tokenizer=TOK, byte_counts=side)


def test_a_missing_sidecar_among_present_ones_is_an_error(shards):
    folder, tokens, counts = shards
    write_shard(folder / "fineweb_val_bytes_000000.bin", counts[:1800])
    with pytest.raises(DataError, match="fineweb_val_bytes_000001.bin is missing"):
        evaluate(["bigram"], tokens=folder, tokenizer=TOK)


def test_a_sidecar_run_round_trips_and_codes_against_the_sidecar_bytes(shards, tmp_path):
    from pgolf_core.codec.compress import compress, decompress

    folder, tokens, counts = shards
    _sidecars(folder, 2 * counts)
    enc = compress(["bigram"], tokens=folder, tokenizer=TOK, output=tmp_path / "s.pgz")
    assert enc.bytes == int(2 * counts[1:].sum())
    out, dec = decompress(tmp_path / "s.pgz", byte_counts=folder)  # the header's word is not taken for the bytes
    assert np.array_equal(out, tokens) and dec.bytes == enc.bytes and dec.ideal_bpb == pytest.approx(enc.ideal_bpb)
