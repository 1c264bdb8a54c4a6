"""The entropy experts: PR #700's (invalid, flagged by the audit) and the legal re-tempered one."""

from __future__ import annotations

import numpy as np
import pytest

from pgolf_core import testing as T
from pgolf_core.api import BuildContext
from pgolf_core.errors import UsageError

pytest.importorskip("pgolf_entropy.plugin", reason="pgolf_entropy is importable once installed (or PYTHONPATH=plugins)")


@pytest.fixture(scope="module")
def entropy_plugins():
    import pgolf_entropy.plugin as ep
    from pgolf_core.plugins import load_plugins

    plugins = load_plugins()
    if "entropy" not in plugins.experts.entries:
        plugins.add(ep, "entropy-test")
    if "bigram" not in plugins.experts.entries:
        pytest.skip("needs the bigram expert (pgolf_ngram) as a source")
    return plugins


@pytest.fixture(scope="module")
def stream():
    from pgolf_core.demo import demo_tokens

    return np.asarray(demo_tokens("val")[:1000])


def _factory(plugins, name, **opts):
    ctx = BuildContext(vocab_size=1024, plugins=plugins)
    return lambda: plugins.experts.create(name, ctx, **opts)


def test_pr700_entropy_scores_minus_entropy_for_every_token(entropy_plugins, stream):
    from pgolf_entropy.experts import entropy_nats

    src, seed = _factory(entropy_plugins, "bigram")(), _factory(entropy_plugins, "pr700-entropy", source="bigram")()
    assert seed.known_invalid and "C2" in seed.invalid_reason
    rows = src.distributions(stream[:600], 1, 600)
    assert np.allclose(seed.score(stream[:600], 1, 600), -entropy_nats(rows))


def test_pr700_entropy_fails_normalization_with_its_worst_mass(entropy_plugins, stream):
    with pytest.raises(AssertionError, match=r"C2: .* sums to ([2-9]|[1-9]\d+)\.") as err:
        T.check_normalized(_factory(entropy_plugins, "pr700-entropy", source="bigram"), stream)
    print(err.value)  # the worst mass, for the report


def test_pr700_entropy_fails_no_hypercompression(entropy_plugins):
    with pytest.raises(AssertionError, match="below the bound"):
        T.check_no_hypercompression(_factory(entropy_plugins, "pr700-entropy", source="bigram"), n_tokens=20_000)


def test_entropy_expert_learns_temperatures_and_beats_a_flat_source(entropy_plugins):
    """A source that is far too flat: the fitted temperatures sharpen it (T < 1) and lower the loss."""
    from pgolf_entropy.experts import EntropyTemperedExpert

    from pgolf_core.api import Expert

    class Flat(Expert):
        def distributions(self, tokens, start, end):
            logits = np.zeros((end - start, self.vocab_size))
            logits[np.arange(end - start), (np.asarray(tokens[start - 1:end - 1], dtype=np.int64) + 1) % self.vocab_size] = 3.0
            p = np.exp(logits)
            return p / p.sum(axis=1, keepdims=True)

        def score(self, tokens, start, end):
            d = self.distributions(tokens, start, end)
            return np.log(d[np.arange(end - start), np.asarray(tokens[start:end], dtype=np.int64)])

    tokens = np.arange(4000) % 1024  # each token is its predecessor + 1: the flat source is right but timid
    e = EntropyTemperedExpert(Flat(1024), buckets=4)
    lp = e.score(tokens, 1, 4000)
    assert lp[-1000:].mean() > Flat(1024).score(tokens, 3000, 4000).mean() + 0.5
    assert min(e.describe()["temperatures"]) < 1.0


def test_source_options_need_the_source_prefix(entropy_plugins):
    ctx = BuildContext(vocab_size=1024, plugins=entropy_plugins)
    with pytest.raises(UsageError, match="neural_checkpoint|<option>"):
        entropy_plugins.experts.create("entropy", ctx, checkpoint="x.pt")
    with pytest.raises(UsageError, match="buckets must be an integer >= 1"):
        entropy_plugins.experts.create("entropy", ctx, source="bigram", buckets="zero")
    e = entropy_plugins.experts.create("entropy", ctx, source="ngram", ngram_order="3")
    assert e.source.name == "ngram"
