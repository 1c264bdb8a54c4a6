"""The audit's checks catch what they are meant to catch, and pass legal components."""

from __future__ import annotations

import numpy as np
import pytest

from pgolf_core import testing as T
from pgolf_core.api import Expert, Mixer
from pgolf_core.hookspecs import hookimpl

V = 1024


class AddOneBigram(Expert):
    """Legal: add-one bigram counts, each target scored before it is counted."""

    def __init__(self, vocab_size=V):
        super().__init__(vocab_size)
        self.counts = np.zeros((vocab_size, vocab_size))

    def _row(self, prev):
        c = self.counts[prev] + 1.0
        return c / c.sum()

    def distributions(self, tokens, start, end):
        out = np.empty((end - start, self.vocab_size))
        for t in range(start, end):
            out[t - start] = self._row(tokens[t - 1])
            self.counts[tokens[t - 1], tokens[t]] += 1
        return out

    def score(self, tokens, start, end):
        rows = self.distributions(tokens, start, end)
        return np.log(rows[np.arange(end - start), np.asarray(tokens[start:end], dtype=np.int64)])

    def state_fingerprint(self):
        return self.counts.tobytes()


class PeekingExpert(AddOneBigram):
    """Broken (C1): half of the mass of target t goes to the token after it, read from the stream."""

    def distributions(self, tokens, start, end):
        out = super().distributions(tokens, start, end)
        for t in range(start, min(end, len(tokens) - 1)):
            out[t - start] *= 0.5
            out[t - start, tokens[t + 1]] += 0.5
        return out


class UnnormalizedExpert(AddOneBigram):
    """Broken (C2): counts + 1 divided by V, as if every row held V observations."""

    def _row(self, prev):
        return (self.counts[prev] + 1.0) / self.vocab_size


class CountFirstExpert(AddOneBigram):
    """Broken (C3): counts the target, then scores it."""

    def distributions(self, tokens, start, end):
        out = np.empty((end - start, self.vocab_size))
        for t in range(start, end):
            self.counts[tokens[t - 1], tokens[t]] += 1
            out[t - start] = self._row(tokens[t - 1])
        return out


class FixedMixer(Mixer):
    """Legal: a fixed convex combination."""

    def mix(self, logp, targets, dists=None, return_distribution=False):
        w = np.full(self.n_experts, 1.0 / self.n_experts)
        out = np.log(np.exp(logp).T @ w)
        if return_distribution:
            return out, np.einsum("k,knv->nv", w, dists)
        return out

    @property
    def weights(self):
        return np.full(self.n_experts, 1.0 / self.n_experts)


class BestOfMixer(FixedMixer):
    """Broken: takes, for each target, the expert that gave it the most probability (gates on the target)."""

    def mix(self, logp, targets, dists=None, return_distribution=False):
        best = np.argmax(logp, axis=0)
        out = logp.max(axis=0)
        if return_distribution:
            return out, dists[best, np.arange(len(targets))]
        return out


class AuditTestPlugin:
    @hookimpl
    def pgolf_register_experts(self, register):
        register("t-bigram", lambda ctx: AddOneBigram(ctx.vocab_size))
        register("t-peek", lambda ctx: PeekingExpert(ctx.vocab_size))
        register("t-unnorm", lambda ctx: UnnormalizedExpert(ctx.vocab_size))
        register("t-countfirst", lambda ctx: CountFirstExpert(ctx.vocab_size))

    @hookimpl
    def pgolf_register_mixers(self, register):
        register("t-fixed", lambda ctx: FixedMixer(len(ctx.expert_names), ctx.vocab_size))
        register("t-bestof", lambda ctx: BestOfMixer(len(ctx.expert_names), ctx.vocab_size))


@pytest.fixture(scope="module")
def stream():
    from pgolf_core.demo import demo_tokens

    return np.asarray(demo_tokens("val")[:1200])


def test_legal_expert_passes_every_check(stream):
    ev = T.audit_expert(AddOneBigram, stream, random_tokens=5000)
    assert ev["C2"]["positions"] == len(stream) - 1
    assert abs(ev["C2"]["worst_mass"] - 1) < 1e-9
    assert ev["C4"]["targets"] == len(stream) - 1


def test_peeking_expert_fails_causality(stream):
    with pytest.raises(AssertionError, match="C1"):
        T.check_causal(PeekingExpert, stream)
    T.check_normalized(PeekingExpert, stream)  # it is normalized: only the check meant for it fires


def test_unnormalized_expert_fails_normalization_with_worst_mass(stream):
    with pytest.raises(AssertionError, match=r"C2: .* sums to") as err:
        T.check_normalized(UnnormalizedExpert, stream)
    assert "not 1" in str(err.value)
    T.check_causal(UnnormalizedExpert, stream)


def test_count_first_expert_fails_causality_of_its_own_target(stream):
    with pytest.raises(AssertionError, match="C1|C3"):
        T.check_causal(CountFirstExpert, stream)
    with pytest.raises(AssertionError, match="C3"):
        T.check_score_first(CountFirstExpert, stream)


class _ScoreOnly(Expert):
    """Hides distributions(): the probes must rebuild them from score() alone."""

    def __init__(self, inner):
        super().__init__(inner.vocab_size)
        self.inner = inner

    def score(self, tokens, start, end):
        return self.inner.score(tokens, start, end)

    def state_fingerprint(self):
        return self.inner.state_fingerprint()


def test_probes_rebuild_the_distribution_of_a_score_only_expert(stream):
    ev = T.check_normalized(lambda: _ScoreOnly(AddOneBigram()), stream, probe_positions=1)
    assert abs(ev["worst_mass"] - 1) < 1e-9 and "probes" in ev["method"]
    with pytest.raises(AssertionError, match="C2"):
        T.check_normalized(lambda: _ScoreOnly(CountFirstExpert()), stream, probe_positions=1)


def test_mixer_checks():
    T.check_mixer(lambda: FixedMixer(3, V))
    with pytest.raises(AssertionError, match="C3: .* looked at the target"):
        T.check_mixer(lambda: BestOfMixer(3, V))


def test_no_hypercompression_bound():
    assert T.code_length_bound(10, 1024) == pytest.approx(80.0)
    T.check_code_lengths({"uniform": 100.0}, 10, 1024)
    with pytest.raises(AssertionError, match="below the bound"):
        T.check_code_lengths({"cheat": 79.0}, 10, 1024)
