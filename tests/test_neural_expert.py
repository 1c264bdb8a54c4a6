"""The ``neural`` expert through the registry: building, options, checkpoints, errors."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pgolf_core.api import BuildContext  # noqa: E402
from pgolf_core.errors import DataError, UsageError  # noqa: E402
from pgolf_neural import artifact  # noqa: E402
from pgolf_neural.scoring import score_span  # noqa: E402

from helpers.neural import SMALL, one_thread, small_model  # noqa: E402,F401  (one_thread: autouse)

TINY = {"preset": "tiny", "init_seed": "0", "seq_len": "32", "stride": "8"}  # options as the CLI gives them


def build(plugins, vocab=1024, dataset=None, **options):
    return plugins.experts.create("neural", BuildContext(vocab_size=vocab, dataset=dataset), **options)


def test_registry_builds_a_random_tiny_model(plugins):
    e = build(plugins, **TINY)
    assert e.name == "neural" and e.vocab_size == 1024 and e.provides_distributions
    info = e.describe()
    assert info["parameters"] == e.model.num_params() > 0 and info["config"]["num_layers"] == 4
    assert (info["seq_len"], info["stride"], info["batch"], info["dtype"]) == (32, 8, 32, "auto")
    s = np.random.default_rng(0).integers(0, 1024, 70).astype(np.uint16)
    lp = np.concatenate([e.score(s[:30], 1, 30), e.score(s, 30, 70)])
    np.testing.assert_allclose(lp, score_span(e.model, s, 1, 70, seq_len=32, stride=8), atol=1e-5)
    d = e.distributions(s, 1, 70)
    np.testing.assert_allclose(d.sum(1), 1.0, atol=1e-12)
    # the same seed gives the same model; defaults follow the preset's training length
    again = build(plugins, preset="tiny", init_seed=0)
    assert again.state_fingerprint() == e.state_fingerprint() and again.seq_len == 256 and again.stride == 64


def test_fingerprint_follows_parameters_and_reset_restores(plugins):
    e = build(plugins, **TINY)
    before = e.state_fingerprint()
    e.update(np.zeros(10, dtype=np.uint16), 1, 10)  # scoring and update change nothing
    assert e.state_fingerprint() == before
    with torch.no_grad():
        e.model.blocks[3].mlp_scale.add_(0.5)  # what a test-time-training adapter does
    assert e.state_fingerprint() != before
    e.reset()
    assert e.state_fingerprint() == before


@pytest.mark.parametrize("options,message", [
    ({}, "needs checkpoint=PATH"),
    ({"preset": "tiny"}, "needs init_seed=N and preset=NAME"),
    ({"init_seed": 1}, "needs init_seed=N and preset=NAME"),
    ({"preset": "tiny", "init_seed": 1, "config": "tiny"}, "either preset=NAME or config"),
    ({"config": "tiny:nope=1"}, "override .nope=1."),
    ({"preset": "tiy", "init_seed": 1}, "Did you mean 'tiny'"),
    ({**TINY, "checkpoint": "x.pt"}, "not both"),
    ({**TINY, "stride": "64"}, r"stride \(64\) must not exceed seq_len \(32\)"),
    ({**TINY, "seq_len": "abc"}, "seq_len must be an integer"),
    ({**TINY, "dtype": "fp8"}, "dtype must be one of"),
    ({**TINY, "dtype": "bf16"}, "needs a CUDA device"),
    ({**TINY, "device": "nonsense"}, "torch device"),
    ({**TINY, "strid": 8}, "Did you mean 'stride'"),
])
def test_bad_options_are_usage_errors(plugins, options, message):
    with pytest.raises(UsageError, match=message):
        build(plugins, **options)


def test_vocab_mismatch_and_out_of_range_tokens(plugins):
    with pytest.raises(UsageError, match="vocab_size 1024 but the token stream's vocabulary has 512"):
        build(plugins, vocab=512, **TINY)
    e = build(plugins, **TINY)
    with pytest.raises(DataError, match="token id 2000"):
        e.score(np.array([1, 5, 2000, 3], dtype=np.uint16), 1, 4)


def test_checkpoint_round_trip_and_mismatch_errors(plugins, tmp_path):
    model = small_model(seed=4, vocab_size=1024)
    path = tmp_path / "small.pt"
    artifact.save_checkpoint(path, model.state_dict(), model.config.to_dict())
    e = build(plugins, checkpoint=str(path), seq_len="16", stride="4")
    s = np.random.default_rng(1).integers(0, 1024, 50)
    np.testing.assert_allclose(e.score(s, 1, 50), score_span(model, s, 1, 50, seq_len=16, stride=4), atol=1e-6)
    assert str(path) in e.describe()["source"]

    sd = dict(model.state_dict())
    sd["blocks.0.attn.c_q.weight"] = torch.zeros(3, 3)
    bad = tmp_path / "bad_shape.pt"
    artifact.save_checkpoint(bad, sd, model.config.to_dict())
    with pytest.raises(artifact.ArtifactError, match=r"bad_shape\.pt.*blocks\.0\.attn\.c_q\.weight: shape"):
        build(plugins, checkpoint=str(bad))
    typo = tmp_path / "bad_config.pt"
    artifact.save_checkpoint(typo, model.state_dict(), {**model.config.to_dict(), "num_layer": 3})
    with pytest.raises(artifact.ArtifactError, match=r"bad_config\.pt.*Did you mean 'num_layers'"):
        build(plugins, checkpoint=str(typo))
    with pytest.raises(artifact.ArtifactError, match="no such file"):
        build(plugins, checkpoint=str(tmp_path / "missing.pt"))


def test_demo_dataset_uses_the_committed_checkpoint(plugins):
    if not artifact.DEMO_FILE.is_file():
        pytest.skip("the demo checkpoint is not committed yet")
    e = build(plugins, dataset="demo")
    assert "tiny_demo" in e.describe()["source"]


def test_evaluator_runs_the_expert_chunk_by_chunk():
    """Through the streaming evaluator (chunks of 37 tokens) the log-probs equal one direct call."""
    from pgolf_core.demo import demo_tokens
    from pgolf_core.evaluate import evaluate

    opts = {"neural": {"preset": "tiny", "init_seed": 3, "seq_len": 64, "stride": 16}}
    res = evaluate(["neural"], expert_options=opts, limit=300, chunk_size=37, keep_logprobs=True)
    assert res.targets == 299 and res.valid
    tokens = demo_tokens("val")[:300]
    from pgolf_neural.expert import random_model
    from pgolf_neural.config import PRESETS

    direct = score_span(random_model(PRESETS["tiny"], 3), tokens, 1, 300, seq_len=64, stride=16)
    np.testing.assert_allclose(res.logprobs["experts"][0], direct, atol=1e-5)


def test_float32_distributions_option(plugins):
    e = build(plugins, preset="tiny", init_seed=0, seq_len="32", stride="8", dist_dtype="float32")
    s = np.random.default_rng(1).integers(0, 1024, 40).astype(np.uint16)
    d = e.distributions(s, 1, 40)
    assert d.dtype == np.float32
    np.testing.assert_allclose(d.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.log(d[np.arange(39), s[1:]]), score_span(e.model, s, 1, 40, seq_len=32, stride=8),
                               atol=1e-5)
    with pytest.raises(UsageError, match="dist_dtype must be one of float64, float32"):
        build(plugins, preset="tiny", init_seed=0, dist_dtype="half")
