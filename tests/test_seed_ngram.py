"""The seed record's n-gram experts (``pr700-unigram/bigram/trigram``) against a plain-Python reading
of its formulas, and the contracts every expert obeys (cut invariance, decoding, C2 verdicts)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pgolf_core import testing
from pgolf_core.api import BuildContext
from pgolf_core.errors import UsageError
from pgolf_core.plugins import load_plugins
from pgolf_ngram.seed import HASH_A, HASH_B, SeedNgramExpert

V, CHUNK, BUCKETS = 13, 7, 5  # a tiny hash forces colliding trigram contexts


def reference_logp(tokens, order: int, alpha: float, chunk: int, buckets: int, empty: str) -> list:
    """log p of every target, straight from the seed's description: tables that absorb
    tokens[k*chunk .. (k+1)*chunk] (both ends) once target (k+1)*chunk is scored."""
    counts, totals, n_tokens, out = {}, {}, 0, []
    for t in range(1, len(tokens)):
        k = (t - 1) // chunk  # chunks 0..k-1 are counted when target t is predicted
        while n_tokens_chunks(counts) < k:
            j = n_tokens_chunks(counts)
            x = [int(v) for v in tokens[j * chunk:(j + 1) * chunk + 1]]
            n_tokens += len(x)
            for i in range(len(x) - order + 1):
                ctx = (() if order == 1 else (x[i],) if order == 2
                       else (((x[i] * HASH_A) ^ (x[i + 1] * HASH_B)) % buckets,))
                counts[ctx + (x[i + order - 1],)] = counts.get(ctx + (x[i + order - 1],), 0) + 1
                totals[ctx] = totals.get(ctx, 0) + 1
            counts["chunks"] = j + 1
        y = int(tokens[t])
        if order == 1:
            ctx = ()
        elif order == 2:
            ctx = (int(tokens[t - 1]),)
        else:
            prev2 = int(tokens[t - 2]) if t >= 2 else 0
            ctx = (((prev2 * HASH_A) ^ (int(tokens[t - 1]) * HASH_B)) % buckets,)
        if order == 3 and n_tokens == 0:
            out.append(-math.log(V))
            continue
        total = n_tokens if order == 1 else totals.get(ctx, 0)
        if order == 3 and empty == "seed":
            total = max(total, 1)
        out.append(math.log((counts.get(ctx + (y,), 0) + alpha) / (total + alpha * V)))
    return out


def n_tokens_chunks(counts: dict) -> int:
    return counts.get("chunks", 0)


def stream(n=60, seed=0):
    return np.random.default_rng(seed).integers(0, V, n).astype(np.int64)


CASES = [(1, 0.1, "seed"), (2, 0.1, "seed"), (3, 0.01, "seed"), (3, 0.01, "uniform"), (3, 0.5, "seed")]


@pytest.mark.parametrize("order,alpha,empty", CASES)
def test_seed_ngrams_follow_the_seeds_formulas_over_any_cut(order, alpha, empty):
    toks = stream()
    ref = np.array(reference_logp(toks, order, alpha, CHUNK, BUCKETS, empty))
    for cuts in ([], [1, 2, 3, 9, 30], list(range(2, 60, 4)), [7, 8, 14, 15, 22]):
        e = SeedNgramExpert(V, order, alpha, chunk=CHUNK, buckets=BUCKETS, empty=empty)
        got, a = [], 1
        for b in cuts + [len(toks)]:
            if b > a:
                got.append(e.score(toks[:b], a, b))
                a = b
        np.testing.assert_allclose(np.concatenate(got), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("order,alpha,empty", CASES)
def test_seed_ngram_rows_match_scores_and_decode_bitwise(order, alpha, empty):
    toks = stream(45, seed=3)
    e = SeedNgramExpert(V, order, alpha, chunk=CHUNK, buckets=BUCKETS, empty=empty)
    rows = e.distributions(toks, 1, len(toks))
    lp = SeedNgramExpert(V, order, alpha, chunk=CHUNK, buckets=BUCKETS, empty=empty).score(toks, 1, len(toks))
    np.testing.assert_allclose(np.log(rows[np.arange(len(lp)), toks[1:]]), lp, rtol=0, atol=1e-12)
    report = testing.check_decodable(SeedNgramExpert(V, order, alpha, chunk=CHUNK, buckets=BUCKETS, empty=empty),
                                     toks, chunk=10, tol=0.0)
    assert report["bitwise_repeatable"] and report["max_vs_distributions"] == 0.0


def test_the_seeds_trigram_is_sub_normalized_on_empty_buckets_and_flagged():
    toks = stream(40, seed=1)
    seed = SeedNgramExpert(V, 3, 0.01, chunk=CHUNK, buckets=4096, empty="seed")  # most buckets stay empty
    rows = seed.distributions(toks, 1, len(toks))
    mass = rows.sum(axis=1)
    np.testing.assert_allclose(mass[:CHUNK], 1.0, atol=1e-12)  # before the first update: uniform
    empty_mass = 0.01 * V / (1 + 0.01 * V)
    assert np.isclose(mass[CHUNK:], empty_mass).any() and np.all(mass <= 1 + 1e-12)
    assert seed.known_invalid and "C2" in seed.invalid_reason
    legal = SeedNgramExpert(V, 3, 0.01, chunk=CHUNK, buckets=4096, empty="uniform")
    np.testing.assert_allclose(legal.distributions(toks, 1, len(toks)).sum(axis=1), 1.0, atol=1e-12)
    assert not legal.known_invalid
    for order in (1, 2):
        e = SeedNgramExpert(V, order, 0.1, chunk=CHUNK)
        np.testing.assert_allclose(e.distributions(toks, 1, len(toks)).sum(axis=1), 1.0, atol=1e-12)
        assert not e.known_invalid


def test_the_audit_catches_the_seeds_trigram_and_passes_the_legal_variant():
    toks = stream(300, seed=5)
    with pytest.raises(AssertionError):
        testing.check_normalized(SeedNgramExpert(V, 3, 0.01, chunk=CHUNK, buckets=BUCKETS * 50), toks, chunk=64)
    testing.check_normalized(SeedNgramExpert(V, 3, 0.01, chunk=CHUNK, buckets=BUCKETS * 50, empty="uniform"),
                             toks, chunk=64)
    testing.check_causal(SeedNgramExpert(V, 2, 0.1, chunk=CHUNK), toks, chunk=64)
    testing.check_score_first(SeedNgramExpert(V, 3, 0.01, chunk=CHUNK, empty="uniform"), toks, chunk=64)


def test_registered_with_the_seeds_defaults_and_checked_options():
    plugins = load_plugins()
    ctx = BuildContext(vocab_size=1024)
    tri = plugins.experts.create("pr700-trigram", ctx)
    assert tri.describe() == {"estimator": "add-0.01", "order": 3, "chunk": 131072, "buckets": 65536, "empty": "seed"}
    assert tri.known_invalid and "0.911" in tri.invalid_reason
    assert plugins.experts.create("pr700-bigram", ctx).describe()["estimator"] == "add-0.1"
    for bad in ({"empty": "zero"}, {"chunk": "0"}, {"alpha": "-1"}, {"buckets": "x"}):
        with pytest.raises(UsageError):
            plugins.experts.create("pr700-trigram", ctx, **bad)
    with pytest.raises(UsageError, match="contiguous"):
        SeedNgramExpert(V, 2, 0.1).score(stream(), 5, 9)
