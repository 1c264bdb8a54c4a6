"""The n-gram tilt mixer against a plain-Python reference, and its legality."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pgolf_core import evaluate
from pgolf_core.api import BuildContext
from pgolf_core.demo import demo_tokenizer_path, demo_tokens
from pgolf_core.errors import UsageError
from pgolf_core.plugins import load_plugins
from helpers.proof import PROOF_LEVEL  # noqa: E402


@pytest.fixture(scope="module")
def plugins():
    return load_plugins()


def reference(targets, rows, order, threshold, beta):
    """log p' of each target: a dict of context -> {token: count}, the gate on the top frequency
    (ties: the token that reached the top count first), the closed-form renormalization."""
    L, table, out, top = order - 1, {}, [], {}
    for i, y in enumerate(targets):
        p = rows[i]
        lp = math.log(p[y])
        if i >= L:
            ctx = tuple(targets[i - L:i])
            counts = table.get(ctx)
            if counts:
                h, c = top[ctx]
                if c / sum(counts.values()) >= threshold:
                    q = p[h]
                    lp += beta * (y == h) - math.log1p(q * math.expm1(beta))
            counts = table.setdefault(ctx, {})
            counts[y] = counts.get(y, 0) + 1
            if ctx not in top or counts[y] > top[ctx][1]:
                top[ctx] = (y, counts[y])
        out.append(lp)
    return np.array(out)


def random_rows(rng, n, V):
    r = rng.random((n, V)) + 0.05
    return r / r.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("order,threshold,beta", [(2, 0.3, 2.625), (3, 0.5, 1.0), (4, 0.0, 0.7), (1, 0.2, 2.0)])
def test_tilt_equals_the_reference(plugins, order, threshold, beta):
    rng = np.random.default_rng(order)
    V, n = 12, 900
    pattern = rng.integers(0, V, 7)
    targets = np.where(rng.random(n) < 0.7, np.resize(pattern, n), rng.integers(0, V, n)).astype(np.int64)
    rows = random_rows(rng, n, V)
    mixer = plugins.mixers.create("tilt", BuildContext(vocab_size=V, expert_names=("a",)), order=str(order),
                                  threshold=str(threshold), beta=str(beta))
    logp = np.log(rows[np.arange(n), targets])[None, :]
    got, mixed_rows = [], []
    for a, b in [(0, 1), (1, 300), (300, 301), (301, 900)]:  # how the loop cuts the stream does not matter
        lp, r = mixer.mix(logp[:, a:b], targets[a:b], rows[None, a:b], return_distribution=True)
        got.append(lp)
        mixed_rows.append(r)
    got, mixed_rows = np.concatenate(got), np.concatenate(mixed_rows)
    np.testing.assert_allclose(got, reference(targets.tolist(), rows, order, threshold, beta), rtol=0, atol=1e-12)
    np.testing.assert_allclose(mixed_rows.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.log(mixed_rows[np.arange(n), targets]), got, atol=1e-12)
    assert mixer.describe()["fired"] > 50


def test_tilt_is_audited_and_proven_on_the_demo():
    tokens = np.asarray(demo_tokens("val")[:2500])
    res = evaluate(["bigram", "trigram"], tokens=tokens, tokenizer=demo_tokenizer_path(), mixer="tilt",
                   mixer_options={"inner": "hedge", "order": "3", "threshold": "0.6"}, audit=True, prove=True)
    assert res.level == PROOF_LEVEL, res.validity
    assert res.validity["audit"]["passed"]


def test_options_are_checked(plugins):
    two = BuildContext(vocab_size=16, expert_names=("a", "b"))
    assert plugins.mixers.create("tilt", two).inner.name == "hedge"  # several inputs: hedge under the tilt
    for bad in [{"order": "0"}, {"threshold": "1.5"}, {"beta": "x"}, {"inner": "tilt"}]:
        with pytest.raises(UsageError):
            plugins.mixers.create("tilt", two, **bad)


def test_a_tilt_that_hints_the_target_itself_fails_the_audit():
    """Planted bug: the hint of each target is the target (a look at the token being scored). The
    rows stay normalized, so only the audit's causality checks can tell."""
    from pgolf_mixers.tilt import TiltMixer

    class PeekingTilt(TiltMixer):
        def _advance(self, targets):
            super()._advance(targets)
            return np.asarray(targets, dtype=np.int64), np.ones(len(targets))

    tokens = np.asarray(demo_tokens("val")[:2500])
    honest = evaluate(["bigram", "trigram"], tokens=tokens, tokenizer=demo_tokenizer_path(),
                      mixer=TiltMixer(2, 1024, inner=load_plugins().mixers.create(
                          "hedge", BuildContext(vocab_size=1024, expert_names=("bigram", "trigram")))))
    res = evaluate(["bigram", "trigram"], tokens=tokens, tokenizer=demo_tokenizer_path(), audit=True,
                   mixer=PeekingTilt(2, 1024, inner=load_plugins().mixers.create(
                       "hedge", BuildContext(vocab_size=1024, expert_names=("bigram", "trigram")))))
    assert res.level == "invalid" and res.bpb < honest.bpb
