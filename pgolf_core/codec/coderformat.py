"""The range coder's payload format, stated once, with a pure-Python reference coder.

A payload is a function of the rows and the symbols alone; any implementation that follows the
steps below writes the same bytes. ``pgolf_core.codec.rangecoder`` is the fast one (numba kernels, also
inlined in the compiled loop); ``reference_encode`` / ``reference_decode`` here are the plain one,
written from this statement with Python integers masked to 64 bits, so that a reader can check
the format without numba and the tests can check the kernels against it (``test_coder_format``).

1. **Row sum.** ``mass`` is the float64 sum of the row in this order: eight running sums
   ``a_j = sum of row[v] for v = j, j + 8, j + 16, ...`` over the largest multiple of eight, the
   remaining ``V mod 8`` entries added to ``a_0`` in order, then
   ``((a_0 + a_1) + (a_2 + a_3)) + ((a_4 + a_5) + (a_6 + a_7))``. The order fixes the rounding.
2. **Counts.** ``scale = (2**PRECISION - V) / mass``; ``f_v = trunc(row[v] * scale) + 1`` (float64
   multiply, truncation of a non-negative value). The total ``F = sum f_v`` is at most 2**PRECISION
   up to rounding. The "+ 1" is the leak: every symbol stays codable.
3. **Encoder state.** ``low = 0``, ``range = 2**64 - 1`` (64-bit unsigned). Coding symbol ``s`` of
   cumulative count ``c_s = f_0 + ... + f_(s-1)``: ``r = range // F``; ``low += r * c_s`` (a sum
   past 2**64 wraps and carries +1 into the words already written, rippling through 0xFFFFFFFF
   words); ``range = r * f_s``. If then ``range < 2**32``: write ``low >> 32`` as the next word,
   ``low <<= 32``, ``range <<= 32`` (mod 2**64).
4. **Seal.** A stream of no symbols is empty. Otherwise ``point = low + 2**32 - 1`` (with the same
   carry if it wraps), write ``point >> 32``, then drop trailing zero words.
5. **Bytes.** The words are written as unsigned 32-bit little-endian integers.
6. **Decoder.** ``d`` = the first two words as one 64-bit number, ``range = 2**64 - 1``; words past
   the end read as zero. For each row: counts as in 2; ``r = range // F``; ``q = d // r``; ``q >= F``
   means the payload was not coded under these rows; the symbol is the first ``s`` whose cumulative
   count up to and including it exceeds ``q`` (the last symbol if none); ``d -= r * c_s``,
   ``range = r * f_s``, and when ``range < 2**32``: ``d = (d << 32) | next word``, ``range <<= 32``.

Overhead: ``f_v >= p_v (2**PRECISION - V)``, so each symbol costs at most
``log2(2**PRECISION / (2**PRECISION - V))`` bits beyond ``-log2 p``, plus the truncation of
``range // F`` (at most 2**-8 of the interval, ``range >= 2**32`` and ``F <= 2**24``) and the sealing
words (``SEAL_BITS``). ``overhead_bound_bits`` is the bound a proof holds the file to. There is no
such bound below: a symbol of probability under about ``1 / F`` still gets a count of 1, so it is
coded above its probability, and a stream of such targets can code below the rows' ideal length
(an add-one bigram on the 131,071 targets of the val head: 180 bits below).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

PRECISION = 24  # bits of the frequency total: the leak costs V * 2**-24 of the mass (6e-5 at V=1024)
STATE_BITS = 64
WORD_BITS = 32
SEAL_BITS = 96  # the final words: what sealing can add beyond the coded intervals
CODER = {"name": "pgolf-core range coder", "state_bits": STATE_BITS, "word_bits": WORD_BITS,
         "precision_bits": PRECISION}  # as the compressed file's header records it

_MASK = (1 << STATE_BITS) - 1
_WORD_MASK = (1 << WORD_BITS) - 1
_RENORM = 1 << WORD_BITS


def overhead_bound_bits(n_targets: int, vocab_size: int) -> float:
    """How many bits the coder may spend beyond the rows' ideal code length, at most."""
    leak = -math.log2(1.0 - vocab_size / 2.0 ** PRECISION)
    return float(n_targets * leak + SEAL_BITS)


def reference_row_sum(row: Sequence[float]) -> float:
    """Step 1, in Python floats (IEEE float64, like the kernels')."""
    lanes = [0.0] * 8
    whole = len(row) - len(row) % 8
    for v in range(whole):
        lanes[v % 8] += float(row[v])
    for v in range(whole, len(row)):
        lanes[0] += float(row[v])
    a = lanes
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))


def reference_counts(row: Sequence[float]) -> list:
    """Step 2: the integer counts of one row."""
    scale = float((1 << PRECISION) - len(row)) / reference_row_sum(row)
    return [int(float(p) * scale) + 1 for p in row]


def _carry(words: list) -> None:
    i = len(words) - 1
    while words[i] == _WORD_MASK:
        words[i] = 0
        i -= 1
    words[i] += 1


def reference_encode(rows, symbols: Sequence[int]) -> bytes:
    """Steps 2-5: the payload of ``symbols`` coded under ``rows`` (float64 rows, validated by the caller)."""
    low, rng, words = 0, _MASK, []
    for row, s in zip(rows, symbols):
        f = reference_counts(row)
        total, cum = sum(f), sum(f[:s])
        r = rng // total
        new = low + r * cum
        if new > _MASK:
            _carry(words)
        low, rng = new & _MASK, r * f[s]
        if rng < _RENORM:
            words.append(low >> WORD_BITS)
            low, rng = (low << WORD_BITS) & _MASK, (rng << WORD_BITS) & _MASK
    if len(symbols) == 0:
        return b""
    point = low + _RENORM - 1
    if point > _MASK:
        _carry(words)
    words.append((point & _MASK) >> WORD_BITS)
    while words and words[-1] == 0:
        words.pop()
    return np.asarray(words, dtype="<u4").tobytes()


def reference_decode(payload: bytes, rows) -> list:
    """Step 6: the symbols ``payload`` holds under ``rows``; raises ValueError where it cannot have
    been coded under them."""
    words = np.frombuffer(payload, dtype="<u4").tolist()

    def word(i):
        return words[i] if i < len(words) else 0

    d, rng, nxt, out = (word(0) << WORD_BITS) | word(1), _MASK, 2, []
    for i, row in enumerate(rows):
        f = reference_counts(row)
        r = rng // sum(f)
        q = d // r
        if q >= sum(f):
            raise ValueError(f"row {i}: the payload was not coded under these rows")
        s, cum = 0, 0
        while s < len(f) - 1 and cum + f[s] <= q:
            cum += f[s]
            s += 1
        d, rng = d - r * cum, r * f[s]
        if rng < _RENORM:
            d = ((d << WORD_BITS) & _MASK) | word(nxt)
            rng = (rng << WORD_BITS) & _MASK
            nxt += 1
        out.append(s)
    return out
