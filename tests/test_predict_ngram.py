"""The n-gram experts' target-by-target protocol (``predict``/``observe``, the compressor's contract).

Property: driving an expert with ``predict(tokens[:t], t)`` then ``observe(tokens[:t + 1], t)`` gives,
for every target, *bitwise* the row ``distributions()`` gives, and leaves exactly the same counts.
Bitwise, not to a tolerance: both paths call the same kernel (``distribution_row``) on the same counts;
``predict`` only finds the contexts without creating them, and the contexts it cannot find have no
counts, which ``distribution_row`` passes through without a single floating-point operation.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgolf_core.demo import demo_tokens
from pgolf_core.errors import UsageError
from pgolf_ngram.expert import NgramExpert

V = 1024


@pytest.fixture(scope="module")
def stream() -> np.ndarray:
    return demo_tokens("val")  # 12,911 tokens, 9 documents: long enough to grow order >= 3 tables


def predicted_rows(expert, tokens, start, end) -> np.ndarray:
    """Rows of targets [start, end) by predict/observe, as the decoding loop calls them."""
    rows = np.empty((end - start, expert.vocab_size), dtype=expert.dtype)
    for t in range(start, end):
        rows[t - start] = expert.predict(tokens[:t], t)  # exactly the t tokens before target t
        expert.observe(tokens[:t + 1], t)
    return rows


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_predict_observe_rows_equal_distributions(order, dtype, stream):
    n = len(stream)
    batch = NgramExpert(V, order, dtype=dtype)
    expected = batch.distributions(stream, 1, n)
    decoded = NgramExpert(V, order, dtype=dtype)
    initial = table_sizes(decoded)
    rows = predicted_rows(decoded, stream, 1, n)
    assert rows.dtype == expected.dtype
    np.testing.assert_array_equal(rows, expected)
    assert decoded.state_fingerprint() == batch.state_fingerprint()
    if order >= 3:  # every table (nodes, index, successor pool) grew while observing
        assert all(now > before for now, before in zip(table_sizes(decoded), initial))


def table_sizes(expert):
    return expert.tables.node.shape[0], expert.tables.idx.shape[0], expert.tables.succ.shape[0]


def test_no_dense_bigrams_vocab(stream):
    """Vocab 1100 keeps bigram successors in pooled lists too (no dense bigram block)."""
    tokens = stream[:5000]
    expected = NgramExpert(1100, 3).distributions(tokens, 1, len(tokens))
    np.testing.assert_array_equal(predicted_rows(NgramExpert(1100, 3), tokens, 1, len(tokens)), expected)


def test_predict_changes_no_state_and_is_repeatable(stream):
    """predict() creates no node and counts nothing; a second call gives the same bits."""
    expert = NgramExpert(V, 5)
    expert.distributions(stream, 1, 3000)
    for t in (3000, 3001, 4500):
        if t > expert._next_target:
            expert.score(stream, expert._next_target, t)  # score-only: views stale, predict rebuilds them
        before, nodes = expert.state_fingerprint(), int(expert.tables.meta[0])
        first = expert.predict(stream[:t], t)
        second = expert.predict(stream[:t], t)
        assert expert.state_fingerprint() == before and int(expert.tables.meta[0]) == nodes
        np.testing.assert_array_equal(first, second)
        assert abs(first.sum() - 1.0) < 1e-12


def test_protocols_mix_within_one_stream(stream):
    """Chunks by distributions, by predict/observe (then update, a no-op), score-only and again by
    predict/observe: every row equals the rows-only expert's and the span bookkeeping follows."""
    n = 9000
    tokens = stream[:n]
    expected = NgramExpert(V, 4).distributions(tokens, 1, n)
    expert = NgramExpert(V, 4)
    np.testing.assert_array_equal(expert.distributions(tokens, 1, 1000), expected[:999])
    np.testing.assert_array_equal(predicted_rows(expert, tokens, 1000, 2500), expected[999:2499])
    counted = expert.state_fingerprint()
    expert.update(tokens[:2500], 1000, 2500)
    assert expert.state_fingerprint() == counted and expert._next_target == 2500
    logp = expert.score(tokens, 2500, 6000)
    np.testing.assert_allclose(logp, np.log(expected[np.arange(2499, 5999), tokens[2500:6000]]), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(predicted_rows(expert, tokens, 6000, 7000), expected[5999:6999])
    np.testing.assert_array_equal(expert.distributions(tokens, 7000, n), expected[6999:])


def test_two_copies_decode_identically(stream):
    """The compressor and the decompressor make the same calls: same rows, bit for bit."""
    a, b = (predicted_rows(NgramExpert(V, 3, dtype="float32"), stream[:4000], 1, 4000) for _ in range(2))
    np.testing.assert_array_equal(a, b)


def test_predict_out_of_order_is_an_error(stream):
    expert = NgramExpert(V, 3)
    with pytest.raises(UsageError, match="starting at 1"):
        expert.predict(stream[:5], 5)
    with pytest.raises(UsageError, match="bad span"):
        expert.predict(stream[:0], 1)  # target 1 needs token 0
    expert.predict(stream[:1], 1)
    expert.observe(stream[:2], 1)
    with pytest.raises(UsageError, match="starting at 2"):
        expert.observe(stream[:2], 1)  # observed twice


streams = st.lists(st.integers(0, 11), min_size=2, max_size=150).map(lambda x: np.array(x, dtype=np.uint16))


@settings(max_examples=30, deadline=None)
@given(tokens=streams, order=st.integers(1, 9))
def test_small_alphabets_with_bos(tokens, order):
    """Any stream over 12 tokens (id 1 is BOS, so contexts stop at documents): rows equal."""
    n = len(tokens)
    expected = NgramExpert(12, order).distributions(tokens, 1, n)
    np.testing.assert_array_equal(predicted_rows(NgramExpert(12, order), tokens, 1, n), expected)
