"""compress / decompress: round trips, sizes, and loud failures (built-in demo: no ../shared needed)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from pgolf_core.codec.compress import RoundTripError, compress, decompress
from pgolf_core.codec.container import ContainerError, read_container
from pgolf_core.demo import demo_tokenizer_path, demo_tokens
from pgolf_core.errors import DataError, UsageError
from pgolf_core.plugins import load_plugins
from helpers.proof import PROOF_LEVEL  # noqa: E402


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(["planted_plugin"])


def _roundtrip(tmp_path, experts, plugins, n, **kw):
    tokens = np.asarray(demo_tokens("val")[:n])
    path = tmp_path / "s.pgz"
    enc = compress(experts, tokens=tokens, tokenizer=demo_tokenizer_path(), output=path, plugins=plugins,
                   plugin_modules=["planted_plugin"], **kw)
    out, dec = decompress(path, plugins=plugins)
    return tokens, out, enc, dec


@pytest.mark.parametrize("experts, kw", [
    (["bigram", "trigram"], {}),
    (["bigram", "trigram"], {"mixer": "logistic", "chunk_size": 500}),
    (["unigram", "bigram"], {"mixer": "hedge", "mixer_options": {"update": "batch", "batch": "300", "eta": "0.1"}}),
    (["bigram", "trigram"], {"mixer": "tilt", "mixer_options": {"inner": "logistic", "order": "4", "threshold": "0.5"}}),
])
def test_ngram_configurations_round_trip_byte_identical(tmp_path, plugins, experts, kw):
    tokens, out, enc, dec = _roundtrip(tmp_path, experts, plugins, 3000, **kw)
    assert out.dtype == tokens.dtype and np.array_equal(out, tokens)  # BOS tokens included
    assert dec.ideal_bpb == enc.ideal_bpb  # the same rows, bit for bit
    assert enc.coded_bpb == pytest.approx(enc.ideal_bpb, rel=5e-3)
    header, payload = read_container(tmp_path / "s.pgz")
    assert header["tokens"]["count"] == len(tokens) and len(payload) == enc.payload_bytes


def _neural():
    from pgolf_neural.artifact import demo_checkpoint_path

    return {"checkpoint": str(demo_checkpoint_path())}


def test_the_neural_expert_round_trips(tmp_path, plugins):
    tokens, out, enc, dec = _roundtrip(tmp_path, ["neural", "bigram"], plugins, 300, mixer="logistic",
                                       expert_options={"neural": _neural()})
    assert np.array_equal(out, tokens)


def test_ttt_round_trips(tmp_path, plugins):
    tokens, out, enc, _ = _roundtrip(tmp_path, ["neural"], plugins, 400, adapters=["ttt"], chunk_size=130,
                                     expert_options={"neural": _neural()},
                                     adapter_options={"ttt": {"chunk_tokens": "130", "epochs": "1"}})
    assert np.array_equal(out, tokens)


def test_the_cached_scorer_with_isolated_documents_and_ttt_round_trips(tmp_path, plugins):
    """The cached scorer's rows are the same bits target by target as in blocks, and a TTT step
    (weights changed between chunks) rebuilds its cache the same way on both sides."""
    from pgolf_core import evaluate

    opts = {"neural": {**_neural(), "scorer": "cache", "block": "32", "isolate_docs": "true"}}
    ttt = {"ttt": {"chunk_tokens": "130", "epochs": "1"}}
    tokens, out, enc, _ = _roundtrip(tmp_path, ["neural"], plugins, 400, adapters=["ttt"], chunk_size=130,
                                     expert_options=opts, adapter_options=ttt)
    assert np.array_equal(out, tokens)
    res = evaluate(["neural"], tokens=tokens, tokenizer=demo_tokenizer_path(), chunk_size=130, strict=True,
                   adapters=["ttt"], expert_options=opts, adapter_options=ttt, plugins=plugins)
    assert res.bpb == pytest.approx(enc.ideal_bpb, abs=1e-12)


def test_coded_size_is_the_evaluated_score(tmp_path, plugins):
    from pgolf_core import evaluate

    tokens = np.asarray(demo_tokens("val")[:3000])
    res = evaluate(["bigram", "trigram"], tokens=tokens, tokenizer=demo_tokenizer_path(), prove=True)
    assert res.level == PROOF_LEVEL
    proof = res.validity["proof"]
    assert proof["ideal_bpb"] == pytest.approx(res.bpb, abs=1e-8)
    assert proof["coded_bpb"] == pytest.approx(res.bpb, rel=5e-3)


def test_a_nondeterministic_expert_is_caught_by_the_checksum(tmp_path, plugins):
    # the decoder either finishes and the chunk digest differs, or stops at a symbol the payload
    # cannot hold under the rows it now sees: a round-trip error either way, never wrong tokens
    with pytest.raises(RoundTripError, match="did not predict bit for bit"):
        _roundtrip(tmp_path, ["noisy-decodable"], plugins, 2000)
    tokens = np.asarray(demo_tokens("val")[:2000])
    from pgolf_core import evaluate

    res = evaluate(["noisy-decodable"], tokens=tokens, tokenizer=demo_tokenizer_path(), prove=True, plugins=plugins,
                   plugin_modules=["planted_plugin"])
    said = " ".join(res.validity["violations"])
    assert res.level == "invalid" and "round trip failed" in said and "differs from the original at position" in said


def test_a_changed_artifact_byte_fails_loudly(tmp_path, plugins):
    from pgolf_neural.artifact import demo_checkpoint_path

    ckpt = tmp_path / "model.ptz"
    shutil.copy(demo_checkpoint_path(), ckpt)
    tokens = np.asarray(demo_tokens("val")[:50])
    path = tmp_path / "s.pgz"
    compress(["neural"], tokens=tokens, tokenizer=demo_tokenizer_path(), output=path, plugins=plugins,
             expert_options={"neural": {"checkpoint": str(ckpt)}})
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 1
    bad = tmp_path / "other.ptz"
    bad.write_bytes(bytes(data))
    with pytest.raises(DataError, match="sha256 differs"):
        decompress(path, plugins=plugins, expert_options={"neural": {"checkpoint": str(bad)}})
    ckpt.write_bytes(bytes(data))
    with pytest.raises(DataError, match="sha256 differs"):
        decompress(path, plugins=plugins)


def test_a_changed_option_or_header_fails_loudly(tmp_path, plugins):
    tokens = np.asarray(demo_tokens("val")[:500])
    path = tmp_path / "s.pgz"
    compress(["bigram", "trigram"], tokens=tokens, tokenizer=demo_tokenizer_path(), output=path, plugins=plugins)
    with pytest.raises(UsageError, match="only options that name a file"):
        decompress(path, plugins=plugins, expert_options={"trigram": {"order": "4"}})
    raw = bytearray(path.read_bytes())
    raw[40] ^= 0x20  # inside the JSON header
    path.write_bytes(bytes(raw))
    with pytest.raises(ContainerError):
        decompress(path, plugins=plugins)


def test_components_that_cannot_decode_are_refused_before_encoding(tmp_path, plugins):
    with pytest.raises(UsageError, match="cannot decode"):
        compress(["counting"], tokens=np.asarray(demo_tokens("val")[:100]), tokenizer=demo_tokenizer_path(),
                 output=tmp_path / "x.pgz", plugins=load_plugins(["sample_plugin"]))
    assert not (tmp_path / "x.pgz").exists()


def test_the_decoding_contract_check_passes_builtins_and_catches_nondeterminism(plugins):
    from pgolf_core.api import BuildContext
    from pgolf_core.testing import check_decodable

    import planted

    tokens = np.asarray(demo_tokens("val")[:1500])
    ctx = BuildContext(vocab_size=1024)
    ev = check_decodable(lambda: plugins.experts.create("trigram", ctx), tokens)
    assert ev["bitwise_repeatable"] and ev["max_vs_distributions"] == 0.0
    check_decodable(lambda: planted.DecodableCounter(1024), tokens)
    with pytest.raises(AssertionError, match="differ"):
        check_decodable(lambda: planted.NoisyDecodable(1024), tokens)


def test_the_demo_with_its_default_checkpoint_is_proven():
    """The demo's neural expert picks its checkpoint itself: the proof must rebuild it the same way
    (and record its sha256 among the files the components resolved)."""
    from pgolf_core import evaluate

    res = evaluate(["neural", "bigram"], limit=200, prove=True)
    assert res.level == PROOF_LEVEL, res.validity["violations"]
    assert abs(res.validity["proof"]["ideal_bpb"] - res.bpb) < 1e-6


def test_the_compress_and_decompress_commands(tmp_path):
    from click.testing import CliRunner

    from pgolf_core.cli import cli

    run = lambda *a: CliRunner().invoke(cli, [str(x) for x in a], catch_exceptions=False)  # noqa: E731
    coded = run("compress", "-e", "bigram,trigram", "--limit", 800, "-o", tmp_path / "s.pgz", "--no-progress")
    assert coded.exit_code == 0 and "coded" in coded.output and "header" in coded.output, coded.output
    decoded = run("decompress", tmp_path / "s.pgz", "-o", tmp_path / "t.npy", "--no-progress")
    assert decoded.exit_code == 0, decoded.output
    assert np.array_equal(np.load(tmp_path / "t.npy"), np.asarray(demo_tokens("val")[:800]))
    proven = run("eval", "-e", "bigram,trigram", "--limit", 800, "--prove", "--no-progress")
    assert proven.exit_code == 0 and PROOF_LEVEL.upper() in proven.output.splitlines()[0], proven.output
    missing = run("decompress", tmp_path / "nope.pgz", "-o", tmp_path / "t2.npy", "--no-progress")
    assert missing.exit_code == 1 and "Traceback" not in missing.output
