"""The coder as a format: a golden payload, and the numba kernels against the pure-Python reference
coder written from the statement in ``pgolf_core.codec.coderformat`` (including V = 8192)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pgolf_core.codec.coderformat as cf
from pgolf_core.codec import coding, rangecoder
from pgolf_core.codec.coding import RowDecoder, RowEncoder


def golden_rows(n_rows: int, vocab: int) -> np.ndarray:
    """Rows from integer arithmetic alone (no random generator whose stream could change)."""
    rows = []
    for t in range(n_rows):
        w = [((v * 7 + t * 3) % 13 + 1) ** 2 for v in range(vocab)]
        rows.append([x / sum(w) for x in w])
    return np.array(rows)


# 48 symbols at V = 11 (not a multiple of 8: the row sum's tail lane is used); one carry occurs
GOLDEN_PAYLOAD = "31934b00b9455cf5a908e85999f4fcf64f80d7fa20f918ce91c8b40f"
GOLDEN_SYMBOLS = [(t * 5) % 11 for t in range(48)]


def numba_encode(rows, symbols) -> bytes:
    enc = RowEncoder()
    enc.encode_block(np.asarray(symbols), np.asarray(rows, dtype=np.float64))
    return enc.finish()


def test_golden_payload_is_fixed_by_the_format(monkeypatch):
    """Fixed rows and tokens give these exact bytes from both coders, and decode back."""
    carries = []
    monkeypatch.setattr(cf, "_carry", lambda words, real=cf._carry: (carries.append(1), real(words)))
    rows = golden_rows(48, 11)
    assert cf.reference_encode(rows, GOLDEN_SYMBOLS).hex() == GOLDEN_PAYLOAD
    assert carries, "the golden stream should exercise the carry"
    assert numba_encode(rows, GOLDEN_SYMBOLS).hex() == GOLDEN_PAYLOAD
    payload = bytes.fromhex(GOLDEN_PAYLOAD)
    assert cf.reference_decode(payload, rows) == GOLDEN_SYMBOLS
    assert RowDecoder(payload, 48).decode_block(rows).tolist() == GOLDEN_SYMBOLS


def test_row_sum_order_is_the_stated_one():
    """The kernels' row sum is the eight-lane order, which differs from a left-to-right sum."""
    row = np.array([1.0, 1e-16, 1e-16, 1e-16, 1e-16, 1e-16, 1e-16, 1e-16, 1e-16, 3e-16])
    stated = cf.reference_row_sum(row)
    assert rangecoder.row_sum(row) == stated
    assert stated != sum(row.tolist())  # the order matters: this row rounds differently left to right


def test_one_definition_of_the_precision():
    from pgolf_core.codec.compress import CODER
    from pgolf_core.proof import score

    assert rangecoder.PRECISION == coding.QUANTIZATION_BITS == cf.PRECISION == CODER["precision_bits"]
    assert score.overhead_bound_bits is cf.overhead_bound_bits


def _rows(seed: int, n: int, vocab: int, kind: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "dirichlet":
        return rng.dirichlet(np.full(vocab, 0.05), size=n)
    if kind == "peaked":  # one symbol near 1, the rest tiny; exercises counts of 1
        logits = rng.standard_normal((n, vocab)) * 12
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)
    if kind == "zeros":  # exact zeros: coded through the leak
        p = rng.random((n, vocab)) * (rng.random((n, vocab)) < 0.3)
        p[:, 0] += 1e-3
        return p / p.sum(axis=1, keepdims=True)
    p = rng.random((n, vocab)).astype(np.float32)  # float32 rows, widened exactly
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), vocab=st.sampled_from([2, 3, 8, 9, 257, 1024, 8192]),
       kind=st.sampled_from(["dirichlet", "peaked", "zeros", "float32"]), n=st.integers(0, 40))
def test_kernels_agree_with_the_reference_coder(seed, vocab, kind, n):
    rows = _rows(seed, n, vocab, kind)
    rng = np.random.default_rng(seed + 1)
    symbols = [int(rng.integers(vocab)) for _ in range(n)]  # any symbol, also improbable ones
    wide = rows.astype(np.float64)
    payload = numba_encode(rows, symbols)
    assert cf.reference_encode(wide, symbols) == payload
    assert cf.reference_decode(payload, wide) == symbols
    assert RowDecoder(payload, n).decode_block(rows).tolist() == symbols


def test_reference_decoder_refuses_a_payload_not_coded_under_the_rows():
    rows = np.array([[1 - 1e-9, 1e-9, 0.0]] * 4)
    payload = cf.reference_encode(rows, [2, 2, 2, 2])  # symbols at the leak: the top of the interval
    with pytest.raises(ValueError, match="not coded under these rows"):
        cf.reference_decode(b"\xff" * len(payload) + b"\xff" * 8, np.array([[0.5, 0.5 - 1e-7, 0.0]] * 4))
    assert cf.reference_decode(payload, rows) == [2, 2, 2, 2]
