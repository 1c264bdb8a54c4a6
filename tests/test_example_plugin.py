"""The example third-party plugin (examples/pgolf-recency): discovered, correct, usable in an eval."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from pgolf_core import evaluate
from pgolf_core.api import BuildContext
from pgolf_core.errors import UsageError
from pgolf_core.plugins import load_plugins
from helpers.proof import PROOF_LEVEL  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pgolf-recency"


@pytest.fixture(scope="module")
def recency_plugins():
    """Via its entry point when installed (as CI does), else registered as a plain module."""
    if importlib.util.find_spec("pgolf_recency") is not None:
        plugins = load_plugins()
        assert plugins.experts.get("recency").plugin == "recency"  # found through the entry point
        return plugins
    sys.path.insert(0, str(EXAMPLE))
    return load_plugins(modules=["pgolf_recency.plugin"])


def naive_recency(tokens, decay, alpha, vocab):
    counts = np.zeros(vocab)
    out = []
    for y in tokens[1:]:
        out.append(np.log((counts[y] + alpha / vocab) / (counts.sum() + alpha)))
        counts *= decay
        counts[y] += 1
    return np.array(out)


def test_matches_a_naive_reference_and_is_normalized(recency_plugins):
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 50, 400)
    expert = recency_plugins.experts.create("cache", BuildContext(vocab_size=64), decay="0.9", alpha="2")
    got = np.concatenate([expert.score(tokens[:e], s, e) for s, e in ((1, 150), (150, 400))])
    assert np.allclose(got, naive_recency(tokens, 0.9, 2.0, 64), atol=1e-12)
    expert.reset()
    dists = expert.distributions(tokens, 1, 400)
    assert np.allclose(dists.sum(axis=1), 1.0, atol=1e-12)


def test_bad_option_values_are_clear(recency_plugins):
    with pytest.raises(UsageError, match=r"expert 'recency': option decay must be a finite number > 0.0 and < 1.0"):
        recency_plugins.experts.create("recency", BuildContext(vocab_size=8), decay=1.5)
    with pytest.raises(UsageError, match="option alpha must be a finite number > 0.0"):
        recency_plugins.experts.create("recency", BuildContext(vocab_size=8), alpha="0")


def test_eval_with_the_example_plugin(recency_plugins):
    res = evaluate(["recency"], plugins=recency_plugins)  # the built-in demo stream
    uniform = evaluate(["uniform"], plugins=recency_plugins)
    assert res.valid and res.bpb < uniform.bpb


def test_the_example_plugin_meets_the_compressors_contract_and_is_proven(recency_plugins):
    from pgolf_core.demo import demo_tokens
    from pgolf_core.testing import check_decodable

    ctx = BuildContext(vocab_size=1024)
    check_decodable(lambda: recency_plugins.experts.create("recency", ctx), demo_tokens("val")[:800])
    res = evaluate(["recency", "bigram"], plugins=recency_plugins, limit=1500, prove=True)
    assert res.level == PROOF_LEVEL, res.validity["violations"]


@pytest.mark.skipif(importlib.util.find_spec("pgolf_recency") is None, reason="the example plugin is not installed")
def test_the_distributions_only_example_runs_plain_audited_and_proven():
    """The tutorial's expert writes its prediction once (``RowsExpert.distributions``); its score and
    its decoding are derived, so it runs at every level to the same BPB."""
    import json

    from click.testing import CliRunner

    from pgolf_core.cli import cli

    docs = {}
    for flag in ("", "--audit", "--prove"):
        res = CliRunner().invoke(cli, ["eval", "--experts", "recency", "--limit", "3000", "--no-progress", "--json",
                                       *([flag] if flag else [])], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        docs[flag] = json.loads(res.output)
    assert docs[""]["level"] == "unchecked" and docs["--audit"]["level"] == "audited"
    assert docs["--prove"]["level"] == PROOF_LEVEL
    # strict scoring sums the same rows in another order: equal to every printed digit, not to the last bit
    assert len({f"{d['metrics']['bpb']:.6f}" for d in docs.values()}) == 1
    assert docs[""]["metrics"]["bpb"] == pytest.approx(docs["--prove"]["metrics"]["bpb"], rel=1e-12)
