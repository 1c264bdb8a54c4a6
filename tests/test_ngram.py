"""The builtin n-gram experts against the plain-Python reference, and the expert contract (C1-C4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgolf_core.api import BuildContext
from pgolf_core.stream.bytes import bits_per_byte
from pgolf_core.errors import UsageError
from pgolf_ngram.expert import NgramExpert
from pgolf_ngram.reference import ReferenceNgram

V = 1024
SLICE = 6000  # val-head tokens compared against the (slow) reference


@pytest.mark.parametrize("order", [1, 2, 3, 5, 8])
def test_matches_reference_on_val_head(order, val_head_tokens, byte_table):
    tokens = val_head_tokens[:SLICE]
    fast = NgramExpert(V, order).score(tokens, 1, SLICE)
    ref = ReferenceNgram(V, order).score(tokens, 1, SLICE)
    assert np.max(np.abs(fast - ref)) < 1e-9
    n_bytes = int(byte_table.target_bytes(tokens, 1).sum())
    assert abs(bits_per_byte(-fast.sum(), n_bytes) - bits_per_byte(-ref.sum(), n_bytes)) < 1e-9


def test_trigram_val_head_bpb(val_head_tokens, byte_table):
    """Interpolated Witten-Bell at order 3 on the whole 131,072-token head, against the plain-Python
    reference over the same head (the figure the README quotes, 2.6026, is this number)."""
    n = len(val_head_tokens)
    n_bytes = int(byte_table.target_bytes(val_head_tokens, 1).sum())
    bpb = bits_per_byte(-NgramExpert(V, 3).score(val_head_tokens, 1, n).sum(), n_bytes)
    ref = bits_per_byte(-ReferenceNgram(V, 3).score(val_head_tokens, 1, n).sum(), n_bytes)
    assert abs(bpb - ref) < 1e-9 and round(ref, 4) == 2.6026


def test_distributions_match_reference_and_score(val_head_tokens):
    tokens = val_head_tokens[:1500]
    dists = NgramExpert(V, 4).distributions(tokens, 1, 1500)
    ref = ReferenceNgram(V, 4)
    for t in range(1, 1500):
        if t % 97 == 0:
            assert np.max(np.abs(dists[t - 1] - ref.distribution(tokens, t))) < 1e-12
        ref.count(tokens, t)
    logp = NgramExpert(V, 4).score(tokens, 1, 1500)
    assert np.max(np.abs(np.log(dists[np.arange(1499), tokens[1:1500]]) - logp)) < 1e-9


@pytest.mark.parametrize("order,vocab", [(1, V), (2, V), (3, V), (5, V), (3, 1100)])
def test_distributions_in_blocks_match_reference(order, vocab, val_head_tokens):
    """Full distributions asked block by block (as the evaluator does), across table growth, equal the
    reference's; vocab 1100 has no dense bigrams, so its bigram successors are pooled lists too."""
    n = 9000
    tokens = val_head_tokens[:n]
    expert = NgramExpert(vocab, order)
    bounds = [1, 700, 701, 4797, n]
    dists = np.concatenate([expert.distributions(tokens, s, e) for s, e in zip(bounds, bounds[1:])])
    if order >= 3:
        assert expert.tables.node.shape[0] > expert.tables.first_hashed + 4096  # the tables grew
    ref = ReferenceNgram(vocab, order)
    for t in range(1, n):
        if t % 53 == 1 or t in bounds:
            assert np.max(np.abs(dists[t - 1] - ref.distribution(tokens, t))) < 1e-12
        ref.count(tokens, t)
    assert expert.state_fingerprint() == _counted(NgramExpert(vocab, order), tokens).state_fingerprint()


@pytest.mark.parametrize("order,vocab", [(3, V), (4, 1100)])
def test_distributions_after_score_only_spans(order, vocab, val_head_tokens):
    """Score-only spans skip the distributions' views (dense counts, successor lists); the next
    distributions call rebuilds them, giving exactly the rows of an expert that only gave rows."""
    n = 8000
    tokens = val_head_tokens[:n]
    rows_only = NgramExpert(vocab, order).distributions(tokens, 1, n)
    mixed = NgramExpert(vocab, order)
    bounds = [1, 3000, 3500, 6000, 6001, n]
    for i, (s, e) in enumerate(zip(bounds, bounds[1:])):
        if i % 2:
            np.testing.assert_array_equal(mixed.distributions(tokens, s, e), rows_only[s - 1:e - 1])
        else:
            logp = np.log(rows_only[np.arange(s - 1, e - 1), tokens[s:e]])
            assert np.max(np.abs(mixed.score(tokens, s, e) - logp)) < 1e-9


def _counted(expert, tokens):
    expert.score(tokens, 1, len(tokens))
    return expert


def test_float32_distributions(val_head_tokens):
    """float32 rows are the float64 rows rounded: they sum to 1 within 1e-6 in float32 arithmetic,
    and score (float64) is unchanged by the option."""
    tokens = val_head_tokens[:5000]
    d64 = NgramExpert(V, 3).distributions(tokens, 1, 5000)
    d32 = NgramExpert(V, 3, dtype="float32").distributions(tokens, 1, 5000)
    assert d32.dtype == np.float32 and d64.dtype == np.float64
    assert np.max(np.abs(d32.sum(axis=1) - 1.0)) < 1e-6 and np.all(d32 > 0)
    np.testing.assert_array_equal(d32, d64.astype(np.float32))
    np.testing.assert_array_equal(NgramExpert(V, 3, dtype=np.float32).score(tokens, 1, 5000),
                                  NgramExpert(V, 3).score(tokens, 1, 5000))
    with pytest.raises(UsageError, match="dtype"):
        NgramExpert(V, 3, dtype="float16")


streams = st.lists(st.integers(0, 11), min_size=2, max_size=120).map(lambda x: np.array(x, dtype=np.uint16))


@settings(max_examples=40, deadline=None)
@given(tokens=streams, order=st.integers(1, 16))
def test_distributions_are_normalized_and_consistent(tokens, order):
    n = len(tokens)
    dists = NgramExpert(12, order).distributions(tokens, 1, n)
    assert dists.shape == (n - 1, 12)
    assert np.all(dists > 0)
    assert np.max(np.abs(dists.sum(axis=1) - 1.0)) < 1e-9
    logp = NgramExpert(12, order).score(tokens, 1, n)
    assert np.max(np.abs(np.log(dists[np.arange(n - 1), tokens[1:].astype(int)]) - logp)) < 1e-9
    assert np.max(np.abs(logp - ReferenceNgram(12, order).score(tokens, 1, n))) < 1e-9


@settings(max_examples=40, deadline=None)
@given(tokens=streams, order=st.integers(1, 9), cut=st.integers(1, 119), seed=st.integers(0, 2**16))
def test_causal(tokens, order, cut, seed):
    """Changing tokens at positions >= t leaves every log-prob before t unchanged (C1)."""
    n = len(tokens)
    t = min(cut, n - 1)
    changed = tokens.copy()
    changed[t:] = np.random.default_rng(seed).integers(0, 12, n - t)
    a = NgramExpert(12, order).score(tokens, 1, n)
    b = NgramExpert(12, order).score(changed, 1, n)
    np.testing.assert_array_equal(a[: t - 1], b[: t - 1])


@settings(max_examples=30, deadline=None)
@given(tokens=streams, order=st.integers(1, 8), cuts=st.lists(st.integers(1, 119), max_size=4))
def test_chunked_equals_one_span(tokens, order, cuts):
    n = len(tokens)
    bounds = sorted({1, n, *[c for c in cuts if c < n]})
    whole = NgramExpert(12, order).score(tokens, 1, n)
    expert = NgramExpert(12, order)
    parts = [expert.score(tokens[:e], s, e) for s, e in zip(bounds, bounds[1:])]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_score_first_state_and_fingerprint():
    tokens = np.array([1, 5, 6, 5, 6, 5, 1, 5, 6], dtype=np.uint16)
    expert = NgramExpert(12, 3)
    empty = expert.state_fingerprint()
    first = expert.score(tokens, 1, 5)
    assert first[0] == pytest.approx(-math.log(12))  # nothing counted yet: uniform
    after = expert.state_fingerprint()
    assert after != empty
    expert.update(tokens, 1, 5)  # counting happens inside score; update must not count again
    assert expert.state_fingerprint() == after
    expert.reset()
    assert expert.state_fingerprint() == empty
    np.testing.assert_array_equal(expert.score(tokens, 1, 5), first)


def test_spans_must_be_contiguous():
    tokens = np.arange(10, dtype=np.uint16) % 5
    expert = NgramExpert(12, 2)
    expert.score(tokens, 1, 4)
    with pytest.raises(UsageError, match="starting at 4"):
        expert.score(tokens, 5, 8)


def test_contexts_stop_at_bos(val_head_tokens):
    """Right after a BOS only the orders whose context fits inside the document are used, so an
    order-5 model predicts exactly as an order-2 (then order-3) model does there."""
    tokens = val_head_tokens[:20000]
    n = len(tokens)
    lp = {k: NgramExpert(V, k).score(tokens, 1, n) for k in (2, 3, 5)}
    after_bos = np.flatnonzero(tokens[:-1] == 1) + 1  # targets whose previous token is BOS
    assert len(after_bos) > 5
    np.testing.assert_array_equal(lp[5][after_bos - 1], lp[2][after_bos - 1])
    second = after_bos[after_bos + 1 < n] + 1
    np.testing.assert_array_equal(lp[5][second - 1], lp[3][second - 1])
    assert not np.array_equal(lp[5], lp[2])


@pytest.mark.parametrize("value", [0, 17, "x", "2.5", -1, None, True, 3.0])
def test_order_validation(plugins, value):
    with pytest.raises(UsageError, match="order must be an integer from 1 to 16"):
        plugins.experts.create("ngram", BuildContext(vocab_size=64), order=value)


def test_order_from_cli_string(plugins):
    for value, order in ((" 7", 7), (16, 16), ("1", 1)):
        assert plugins.experts.create("ngram", BuildContext(vocab_size=64), order=value).order == order


def test_registry_builds_experts(plugins):
    ctx = BuildContext(vocab_size=V)
    for name, order in [("unigram", 1), ("bigram", 2), ("trigram", 3)]:
        expert = plugins.experts.create(name, ctx)
        assert expert.name == name and expert.order == order and expert.provides_distributions
    expert = plugins.experts.create("ngram", ctx, order="6")
    assert expert.order == 6 and expert.describe()["estimator"] == "interpolated Witten-Bell"
    with pytest.raises(UsageError, match="order"):
        plugins.experts.create("ngram", ctx, order="99")
    with pytest.raises(UsageError, match="no option"):
        plugins.experts.create("trigram", ctx, order=4)
    assert plugins.experts.create("bigram", ctx).dtype == np.float64  # the documented default
    assert plugins.experts.create("ngram", ctx, order="2", dtype=" float32").dtype == np.float32
    with pytest.raises(UsageError, match="'unigram': option dtype must be one of float64, float32"):
        plugins.experts.create("unigram", ctx, dtype="half")


def test_out_of_range_token_is_an_error():
    from pgolf_core.errors import DataError

    with pytest.raises(DataError, match="out of range"):
        NgramExpert(12, 2).score(np.array([1, 2, 40], dtype=np.uint16), 1, 3)
