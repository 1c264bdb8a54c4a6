"""numba kernels of the ``tilt`` mixer: an online table of (context of the last L targets) -> the
most frequent next token, with its count and the context's total, built from scored targets only.

Contexts and (context, token) pairs are keyed by 64-bit hashes in open-addressing tables (linear
probing; key 0 marks an empty slot, hashes are forced odd). Two different contexts with the same
64-bit hash would share a row: at most a wrong hint, never an unnormalized distribution, and never
a look at an unscored token.
"""

from __future__ import annotations

import numpy as np
from numba import njit

MIX = np.uint64(0x9E3779B97F4A7C15)
FNV = np.uint64(0x100000001B3)
SEED = np.uint64(0xCBF29CE484222325)


@njit(cache=True)
def context_key(buf, end, L):
    """Hash of buf[end - L: end] (int64 tokens); odd, so never the empty key 0."""
    h = SEED
    for j in range(end - L, end):
        h = (h ^ np.uint64(buf[j] + 1)) * FNV
    return h | np.uint64(1)


@njit(cache=True)
def pair_key(ctx, tok):
    return ((ctx * MIX) ^ (np.uint64(tok + 1) * FNV)) | np.uint64(1)


@njit(cache=True)
def _slot(keys, key):
    """Index of ``key`` in ``keys``, or of the empty slot where it would go."""
    mask = np.uint64(keys.shape[0] - 1)
    i = (key * MIX) & mask
    while keys[i] != 0 and keys[i] != key:
        i = (i + np.uint64(1)) & mask
    return i


@njit(cache=True)
def lookup(buf, end, L, ctx_keys, ctx_vals):
    """(hinted token, its frequency in the context) for the target after buf[:end]; (-1, 0.0) when
    the history is shorter than L or the context was never seen."""
    if end < L:
        return -1, 0.0
    i = _slot(ctx_keys, context_key(buf, end, L))
    if ctx_keys[i] == 0:
        return -1, 0.0
    return ctx_vals[i, 2], ctx_vals[i, 1] / ctx_vals[i, 0]


@njit(cache=True)
def run(buf, first, L, ctx_keys, ctx_vals, pair_keys, pair_vals, hint, freq, used):
    """Targets buf[first:], in order: the hint of each from the targets before it, then its count.

    ``ctx_vals`` (n, 3) = total, top count, top token of each context; ``pair_vals`` (n, 1) the
    count of each (context, token). ``used`` = [contexts, pairs] stored, updated in place; the
    caller leaves room for every target.
    """
    for p in range(first, buf.shape[0]):
        h, f = lookup(buf, p, L, ctx_keys, ctx_vals)
        hint[p - first] = h
        freq[p - first] = f
        if p < L:
            continue
        ctx = context_key(buf, p, L)
        tok = buf[p]
        j = _slot(pair_keys, pair_key(ctx, tok))
        if pair_keys[j] == 0:
            pair_keys[j] = pair_key(ctx, tok)
            used[1] += 1
        pair_vals[j, 0] += 1
        i = _slot(ctx_keys, ctx)
        if ctx_keys[i] == 0:
            ctx_keys[i] = ctx
            ctx_vals[i, 2] = tok
            used[0] += 1
        ctx_vals[i, 0] += 1
        if pair_vals[j, 0] > ctx_vals[i, 1]:  # ties keep the earlier token
            ctx_vals[i, 1] = pair_vals[j, 0]
            ctx_vals[i, 2] = tok


@njit(cache=True)
def rehash(keys, values, new_keys, new_values):
    """Move every stored entry (keys, value columns (n, c)) into larger tables."""
    for i in range(keys.shape[0]):
        if keys[i] != 0:
            j = _slot(new_keys, keys[i])
            new_keys[j] = keys[i]
            for c in range(values.shape[1]):
                new_values[j, c] = values[i, c]
