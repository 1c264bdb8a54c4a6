"""Hostile inputs a new user produces: each is refused before any work, with one line that names the
problem and no score printed; the shard and .npy readers never raise anything but DataError."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from pgolf_core.cli import cli
from pgolf_core.stream.data import load_tokens, write_shard
from pgolf_core.demo import demo_tokenizer_path, demo_tokens
from pgolf_core.errors import DataError


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _refused(res, code: int, needle: str) -> None:
    out = res.output
    assert res.exit_code == code, out
    assert needle in out, out
    assert "BPB" not in out and "Traceback" not in out, out


@pytest.fixture
def val_npy(tmp_path):
    path = tmp_path / "val.npy"
    np.save(path, np.asarray(demo_tokens("val")[:3000]))
    return path


def test_a_tokenizer_that_did_not_write_the_data_is_refused(tmp_path, tokenizer_path):
    from pgolf_core.stream.bytes import load_sentencepiece

    sp = load_sentencepiece(tokenizer_path)  # the official sp1024: same vocabulary size as the demo's
    docs = [sp.encode("The quick brown fox jumps over the lazy dog number %d." % i) for i in range(6)]
    data = tmp_path / "val.npy"
    np.save(data, np.array([t for d in docs for t in [1, *d]] + [1], dtype=np.uint16))
    ok = _run("eval", "-e", "bigram", "--data", data, "--tokenizer", tokenizer_path, "--no-progress")
    assert ok.exit_code == 0, ok.output
    _refused(_run("eval", "-e", "bigram", "--data", data, "--tokenizer", demo_tokenizer_path(), "--no-progress"),
             1, "does not match the data")
    skipped = _run("eval", "-e", "bigram", "--data", data, "--tokenizer", demo_tokenizer_path(), "--no-progress",
                   "--no-tokenizer-check")
    assert skipped.exit_code == 0, skipped.output


def test_a_directory_with_only_training_shards_is_refused(tmp_path):
    write_shard(tmp_path / "fineweb_train_000000.bin", np.asarray(demo_tokens("val")[:500]))
    _refused(_run("eval", "-e", "bigram", "--data", tmp_path, "--tokenizer", demo_tokenizer_path(), "--no-progress"),
             1, "only train shards")


@pytest.mark.parametrize("flag", ["-o", "--save-logprobs", "--plot", "--proof"])
def test_unwritable_outputs_are_refused_before_the_run(tmp_path, val_npy, flag):
    target = tmp_path / "missing" / ("out.npz" if flag == "--save-logprobs" else "out")
    _refused(_run("eval", "-e", "bigram", "--data", val_npy, "--tokenizer", demo_tokenizer_path(), flag, target,
                  "--no-progress"), 2, "does not exist")


@pytest.mark.parametrize("args, needle", [
    (["--save-logprobs", "run.dat"], "name it *.npz"),
    (["--trim-seq-len", "0"], "positive sequence length"),
    (["--trim-seq-len", "-5"], "positive sequence length"),
    (["--chunk-size", "0"], "--chunk-size"),
    (["--mixer-opt", "eta=2"], "one expert and no mixer"),
])
def test_bad_values_are_refused_up_front(tmp_path, val_npy, args, needle, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _refused(_run("eval", "-e", "bigram", "--data", val_npy, "--tokenizer", demo_tokenizer_path(), "--no-progress",
                  *args), 2, needle)


def test_the_out_of_range_message_names_the_offending_token(tmp_path):
    toks = np.arange(40, dtype=np.uint16) % 1000
    toks[7], toks[20] = 1500, 3000
    np.save(tmp_path / "t.npy", toks)
    with pytest.raises(DataError, match="token id 1500 at position 7 .*largest id is 3000"):
        load_tokens(tmp_path / "t.npy", vocab_size=1024)


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(blob=st.binary(max_size=2048), keep_header=st.booleans())
def test_the_shard_reader_never_raises_anything_but_a_data_error(tmp_path, blob, keep_header):
    path = tmp_path / "fineweb_val_000000.bin"
    if keep_header:  # a valid header followed by garbage: the length checks must catch it
        header = np.zeros(256, dtype="<i4")
        header[:3] = (20240520, 1, len(blob) // 2 + (len(blob) % 3))
        blob = header.tobytes() + blob
    path.write_bytes(blob)
    try:
        load_tokens(path, vocab_size=1024)
    except DataError:
        pass


@FUZZ
@given(blob=st.binary(max_size=1024), arr=st.sampled_from(["empty", "2d", "float", "negative", "big", "bytes"]))
def test_the_npy_reader_never_raises_anything_but_a_data_error(tmp_path, blob, arr):
    path = tmp_path / "x.npy"
    if arr == "bytes":
        path.write_bytes(b"\x93NUMPY" + blob)
    else:
        value = {"empty": np.zeros(0, np.int64), "2d": np.zeros((3, 3), np.int64), "float": np.ones(5),
                 "negative": np.array([1, -2, 3]), "big": np.array([1, 70000])}[arr]
        np.save(path, value)
    try:
        load_tokens(path, vocab_size=1024)
    except DataError:
        pass


@pytest.mark.parametrize("content, needle", [
    (b'{"text": 5}\n', "'text' must be a string"),
    (b'{"text": "ok"}\n\xff\xfe bad\n', "not UTF-8"),
])
def test_data_prepare_refuses_bad_documents_in_one_line(tmp_path, content, needle):
    docs = tmp_path / "docs.jsonl"
    docs.write_bytes(content)
    _refused(_run("data", "prepare", "--docs", docs, "--tokenizer", demo_tokenizer_path(), "--out", tmp_path / "o"),
             1, needle)


def test_data_prepare_refuses_an_output_that_is_a_file(tmp_path):
    docs, out = tmp_path / "docs.jsonl", tmp_path / "out"
    docs.write_text('{"text": "Hello"}\n')
    out.write_text("")
    _refused(_run("data", "prepare", "--docs", docs, "--tokenizer", demo_tokenizer_path(), "--out", out),
             1, "is not a folder")


def test_plot_refuses_a_json_that_is_not_a_results_document(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    _refused(_run("plot", path), 1, "not a pgolf-core results document")


def test_train_refuses_a_non_finite_learning_rate(tmp_path):
    from pgolf_core.cli import _add_plugin_commands

    _add_plugin_commands([])  # train comes from the neural plugin's command hook
    shards = tmp_path / "s"
    shards.mkdir()
    write_shard(shards / "fineweb_train_000000.bin", np.asarray(demo_tokens("val")[:3000]))
    _refused(_run("train", shards, "--preset", "tiny-quick", "--out", tmp_path / "o", "--matrix-lr", "inf"),
             2, "must be a finite number")


@pytest.mark.parametrize("how", ["file", "glob"])
def test_training_shards_named_as_data_are_refused(tmp_path, how):
    """A training shard (or a glob that matches only training shards) is never scored as validation."""
    write_shard(tmp_path / "fineweb_train_000000.bin", np.asarray(demo_tokens("val")[:500]))
    data = tmp_path / "fineweb_train_000000.bin" if how == "file" else tmp_path / "*.bin"
    _refused(_run("eval", "-e", "bigram", "--data", data, "--tokenizer", demo_tokenizer_path(), "--no-progress"),
             1, "a training shard (split 'train'), not a validation shard")


def test_a_validation_glob_still_reads_validation_shards(tmp_path):
    write_shard(tmp_path / "fineweb_val_000000.bin", np.asarray(demo_tokens("val")[:500]))
    res = _run("eval", "-e", "bigram", "--data", tmp_path / "fineweb_val_*.bin", "--tokenizer", demo_tokenizer_path(),
               "--no-progress")
    assert res.exit_code == 0 and "BPB" in res.output, res.output


@pytest.mark.parametrize("device, needle", [("bogus", "is not a device"), ("cuda", "CUDA is not available"),
                                            ("tpu", "is not a device")])
def test_an_impossible_device_is_refused_before_any_work(device, needle):
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    _refused(_run("eval", "-e", "bigram", "--limit", 500, "--device", device, "--no-progress"), 2, needle)


@pytest.mark.parametrize("args, needle", [
    (["-e", "bigram,bigram"], "asked for twice with the same options"),
    (["-e", "bigram,,trigram"], "has an empty name"),
    (["-e", "bigram,"], "has an empty name"),
    (["-e", "bigram", "--preset", ""], "an empty name"),
    (["-e", "bigram", "--mixer", " "], "an empty name"),
    (["-e", "bigram", "--adapters", ","], "has an empty name"),
])
def test_repeated_and_empty_names_are_refused(args, needle):
    _refused(_run("eval", *args, "--limit", 500, "--no-progress"), 2, needle)


def test_a_repeated_expert_with_other_options_is_two_experts():
    res = _run("eval", "-e", "ngram,ngram", "--expert-opt", "ngram.order=2", "--expert-opt", "ngram#2.order=3",
               "--limit", 500, "--no-progress")
    assert res.exit_code == 0, res.output
    assert "ngram=" in res.output and "ngram#2=" in res.output, res.output


def test_a_context_longer_than_the_model_was_trained_at_is_refused():
    _refused(_run("eval", "-e", "neural", "--expert-opt", "neural.seq_len=100000", "--limit", 300, "--no-progress"),
             2, "exceeds the context length")


@pytest.mark.parametrize("flag", ["-o", "--save-logprobs", "--plot"])
def test_an_output_the_system_refuses_is_caught_before_the_run(flag):
    """/proc passes a permission check on its folder and still refuses the write: the write is tried."""
    _refused(_run("eval", "-e", "bigram", "--limit", 500, flag, "/proc/pgolf-out", "--no-progress"), 2, "cannot write")


def test_results_json_has_no_valid_field_only_the_level():
    import json

    res = _run("eval", "-e", "bigram", "--limit", 500, "--json", "--no-progress")
    doc = json.loads(res.output)
    assert doc["version"] == 3 and "valid" not in doc and doc["level"] == "unchecked", doc
