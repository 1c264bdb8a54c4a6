"""The range coder's kernels (numba): quantize a probability row, code one symbol under it.

Why our own coder: decoding is sequential (target t's row needs token t - 1), so the coder is
called once per target. A library call from Python costs several microseconds per symbol
(constriction 0.5 measured ~9 us at V=1024, most of it building its model), which caps decoding
far below an n-gram evaluation's 300K targets/s. These kernels are plain numba functions, so the
compiled coding loop (``pgolf_core.codec.compiled``) calls them inline, and ``coding.RowEncoder`` /
``RowDecoder`` call the very same ones from Python: one coder, one payload format.

The coder is a carry-propagating range coder in the style of Schindler's and LZMA's, with a
64-bit state and 32-bit output words. Its payload format (the row-sum order, the counts, the
state updates, the sealing) is stated once in ``pgolf_core.codec.coderformat``, beside a pure-Python
reference coder these kernels are tested against (``tests/test_coder_format.py``). Two notes on
this implementation: ``range >= 2**32`` before each symbol keeps ``r = range // F >= 2**8``, so
truncation costs at most 2**-8 of the interval (measured on real rows: under 0.01%); and a carry
never ripples past the first word written, since every interval lies inside the first one: read as
a fraction, the coded value stays below 1.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .coderformat import PRECISION

TOTAL = 1 << PRECISION

_ZERO = np.uint64(0)
_ONE = np.uint64(1)
_WORD_BITS = np.uint64(32)
_FULL = np.uint64(0xFFFFFFFFFFFFFFFF)
_RENORM = np.uint64(1 << 32)

# the encoder's state (uint64): low, range, words written; the decoder's: d, range, next word
ENC_LOW, ENC_RANGE, ENC_WORDS = 0, 1, 2
DEC_D, DEC_RANGE, DEC_NEXT = 0, 1, 2


def new_encoder_state() -> np.ndarray:
    return np.array([0, 0xFFFFFFFFFFFFFFFF, 0], dtype=np.uint64)


@njit(cache=True, inline="always")
def row_sum(row):
    """The sum of ``row`` in a fixed order: eight running sums over v mod 8, then combined
    pairwise. The order is part of the format (it fixes the rounding); eight independent chains
    run in parallel, where one chain is bound by the latency of each addition."""
    v_size = row.shape[0]
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    v = 0
    while v + 8 <= v_size:
        a0 += row[v]
        a1 += row[v + 1]
        a2 += row[v + 2]
        a3 += row[v + 3]
        a4 += row[v + 4]
        a5 += row[v + 5]
        a6 += row[v + 6]
        a7 += row[v + 7]
        v += 8
    while v < v_size:
        a0 += row[v]
        v += 1
    return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))


@njit(cache=True)
def frequencies(row, mass, freq, symbol):
    """Quantize ``row`` (of sum ``mass`` = ``row_sum(row)``) into ``freq`` (int64, V); returns
    (total, cumulative count before ``symbol``) as uint64 (pass symbol -1 when it is not known)."""
    v_size = row.shape[0]
    scale = (TOTAL - v_size) / mass
    total = 0
    for v in range(v_size):
        f = np.int64(row[v] * scale) + 1  # truncation of a non-negative value is its floor
        freq[v] = f
        total += f
    cum = 0
    for v in range(max(symbol, 0)):
        cum += freq[v]
    return np.uint64(total), np.uint64(cum)


@njit(cache=True)
def encode_symbol(state, words, row, symbol, freq):
    """Code ``symbol`` under ``row`` (float64, validated), appending to ``words`` (uint32, with room
    for one more word: the caller reserves it)."""
    encode_under(state, words, row, row_sum(row), symbol, freq)


@njit(cache=True)
def encode_under(state, words, row, mass, symbol, freq):
    """``encode_symbol`` for a caller that has ``row_sum(row)`` already (``mass``)."""
    total, cum = frequencies(row, mass, freq, symbol)
    low, rng, n = state[ENC_LOW], state[ENC_RANGE], state[ENC_WORDS]
    r = rng // total
    new = low + r * cum
    if new < low:  # the sum wrapped: carry into the words written (never past the first, see module doc)
        i = np.int64(n) - 1
        while words[i] == np.uint32(0xFFFFFFFF):
            words[i] = np.uint32(0)
            i -= 1
        words[i] += np.uint32(1)
    low = new
    rng = r * np.uint64(freq[symbol])
    if rng < _RENORM:
        words[n] = np.uint32(low >> _WORD_BITS)
        n += _ONE
        low = low << _WORD_BITS
        rng = rng << _WORD_BITS
    state[ENC_LOW], state[ENC_RANGE], state[ENC_WORDS] = low, rng, n


@njit(cache=True)
def seal(state, words):
    """Write the final word (``words`` has room for it); returns the payload's length in words,
    trailing zero words dropped. A stream of no symbols is empty."""
    low, rng, n = state[ENC_LOW], state[ENC_RANGE], state[ENC_WORDS]
    if rng == _FULL:
        return 0
    point = low + (_RENORM - _ONE)  # the top word of this, then zeros, lies in [low, low + range)
    if point < low:
        i = np.int64(n) - 1
        while words[i] == np.uint32(0xFFFFFFFF):
            words[i] = np.uint32(0)
            i -= 1
        words[i] += np.uint32(1)
    words[n] = np.uint32(point >> _WORD_BITS)
    m = np.int64(n) + 1
    while m > 0 and words[m - 1] == np.uint32(0):
        m -= 1
    return m


@njit(cache=True)
def _word(words, i):
    return np.uint64(words[i]) if i < words.shape[0] else _ZERO


@njit(cache=True)
def decoder_state(words):
    state = np.empty(3, dtype=np.uint64)
    state[DEC_D] = (_word(words, 0) << _WORD_BITS) | _word(words, 1)
    state[DEC_RANGE] = _FULL
    state[DEC_NEXT] = np.uint64(2)
    return state


@njit(cache=True)
def decode_symbol(state, words, row, freq):
    """The symbol coded under ``row`` (float64, validated) next in ``words``, or -1 when the payload
    cannot have been coded under this row."""
    return decode_under(state, words, row, row_sum(row), freq)


@njit(cache=True)
def decode_under(state, words, row, mass, freq):
    """``decode_symbol`` for a caller that has ``row_sum(row)`` already (``mass``)."""
    total, _ = frequencies(row, mass, freq, -1)
    d, rng = state[DEC_D], state[DEC_RANGE]
    r = rng // total
    q = d // r
    if q >= total:
        return -1
    target = np.int64(q)  # below the total, so below 2**25
    cum = 0
    s = 0
    v_size = row.shape[0]
    while s < v_size - 1 and cum + freq[s] <= target:
        cum += freq[s]
        s += 1
    d -= r * np.uint64(cum)
    rng = r * np.uint64(freq[s])
    if rng < _RENORM:
        nxt = state[DEC_NEXT]
        d = (d << _WORD_BITS) | _word(words, np.int64(nxt))
        rng = rng << _WORD_BITS
        state[DEC_NEXT] = nxt + _ONE
    state[DEC_D], state[DEC_RANGE] = d, rng
    return s


@njit(cache=True)
def encode_rows(state, words, rows, symbols, freq):
    """``encode_symbol`` for each row in order (``words`` has room for one word per row)."""
    for i in range(rows.shape[0]):
        encode_symbol(state, words, rows[i], symbols[i], freq)


@njit(cache=True)
def decode_rows(state, words, rows, freq, out):
    """``decode_symbol`` for each row in order into ``out``; returns the index of the first row the
    payload cannot have been coded under, or -1."""
    for i in range(rows.shape[0]):
        s = decode_symbol(state, words, rows[i], freq)
        if s < 0:
            return i
        out[i] = s
    return -1
