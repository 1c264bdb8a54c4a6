"""The log-space fast path: a geometric mixer fed the inputs' log rows (``Mixer.mix_log``), and
experts that hand them over without a log (``Expert.log_distributions``), outside strict scoring."""

from __future__ import annotations

import numpy as np
import pytest

from pgolf_core.api import Expert
from pgolf_core.demo import demo_tokenizer_path, demo_tokens
from pgolf_core.evaluate import evaluate
from pgolf_core.run.loop import LOG_FLOOR32
from pgolf_mixers.logistic import LogisticMixer

V = 40


def inputs(k=3, n=300, seed=0):
    rng = np.random.default_rng(seed)
    dists = rng.dirichlet(np.full(V, 0.3), size=(k, n))
    targets = rng.integers(0, V, n)
    logp = np.log(dists[:, np.arange(n), targets])
    return logp, targets, dists


@pytest.mark.parametrize("options", [{}, {"bias": True, "lr": 0.02}, {"context": "entropy", "buckets": 3}])
def test_mix_log_is_mix_to_float32_rounding_with_the_same_learning(options):
    logp, targets, dists = inputs()
    a, b = LogisticMixer(3, V, **options), LogisticMixer(3, V, **options)
    slow = a.mix(logp, targets, dists)
    fast = b.mix_log(logp, targets, np.log(np.maximum(dists, LOG_FLOOR32)).astype(np.float32))
    assert np.max(np.abs(fast - slow)) < 1e-5
    assert np.allclose(a.weights, b.weights, atol=1e-5) and not np.allclose(b.weights, 1 / 3)


def test_mix_log_checks_its_shapes():
    logp, targets, dists = inputs(n=5)
    m = LogisticMixer(3, V)
    with pytest.raises(Exception, match="log_dists must have shape"):
        m.mix_log(logp, targets, np.zeros((3, 4, V), dtype=np.float32))
    with pytest.raises(Exception, match="logp must have shape"):
        m.mix_log(logp[:2], targets, np.zeros((3, 5, V), dtype=np.float32))


class LogRowsCounter(Expert):
    """Add-one counts that also hand over their log rows; ``scale`` != 1 makes them unnormalized."""

    def __init__(self, vocab_size, scale=1.0):
        super().__init__(vocab_size)
        self.scale, self.calls = scale, {"distributions": 0, "log_distributions": 0}
        self.reset()

    def reset(self):
        self.counts = np.ones(self.vocab_size)

    def _rows(self, tokens, start, end):
        rows = np.empty((end - start, self.vocab_size))
        for i, t in enumerate(range(start, end)):
            rows[i] = self.scale * self.counts / self.counts.sum()
            self.counts[tokens[t]] += 1
        return rows

    def score(self, tokens, start, end):
        rows = self._rows(tokens, start, end)
        return np.log(rows[np.arange(end - start), tokens[start:end]])

    def distributions(self, tokens, start, end):
        self.calls["distributions"] += 1
        return self._rows(tokens, start, end)

    def log_distributions(self, tokens, start, end):
        self.calls["log_distributions"] += 1
        return np.log(self._rows(tokens, start, end)).astype(np.float32)


def run(strict, scale=1.0, limit=4000):
    from pgolf_core.plugins import load_plugins

    experts = [LogRowsCounter(1024, scale), "bigram", "trigram"]
    res = evaluate(experts, mixer="logistic", tokens=demo_tokens("val")[:limit], tokenizer=demo_tokenizer_path(),
                   plugins=load_plugins(), strict=strict)
    return res, experts[0]


def test_plain_eval_takes_the_log_path_and_scores_as_strict_scoring_does():
    fast, counter = run(strict=False)
    assert counter.calls["log_distributions"] > 0 and counter.calls["distributions"] == 0
    slow, counter = run(strict=True)
    assert counter.calls["distributions"] > 0 and counter.calls["log_distributions"] == 0
    assert fast.valid and slow.valid
    assert abs(fast.bpb - slow.bpb) < 1e-6 * slow.bpb


def test_unnormalized_log_rows_are_still_caught_in_a_plain_run():
    res, _ = run(strict=False, scale=1.5, limit=3000)
    assert not res.valid and any("C2" in v for v in res.validity["violations"])


@pytest.mark.parametrize("order", [1, 3])
def test_ngram_log_rows_are_the_logs_of_its_rows_with_the_same_counting(order):
    from pgolf_ngram.expert import NgramExpert

    tokens = demo_tokens("val")[:700].astype(np.int64)
    a, b = NgramExpert(1024, order), NgramExpert(1024, order)
    rows = np.concatenate([a.distributions(tokens[:e], s, e) for s, e in [(1, 300), (300, 700)]])
    logs = np.concatenate([b.log_distributions(tokens[:e], s, e) for s, e in [(1, 300), (300, 700)]])
    assert logs.dtype == np.float32 and np.max(np.abs(logs - np.log(rows))) < 1e-5
    assert a.state_fingerprint() == b.state_fingerprint()
