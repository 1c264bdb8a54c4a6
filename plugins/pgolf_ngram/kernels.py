"""numba kernels of the interpolated Witten-Bell n-gram counter.

Pure functions over NumPy arrays; the Python side (``tables.py``) owns the arrays and grows them.

Layout of the count tables (V = vocabulary size, ``n_dense`` = number of dense context rows):

- Context ids: 0 is the empty context (order 1); ``1 + a`` is the one-token context ``(a,)``
  (order 2); longer contexts get ids from ``V + 1`` on, in order of first appearance.
- A context of order ``k + 1`` is its order-``k`` suffix extended by one older token ``a``; its key is
  ``suffix_id * V + a``. The contexts thus form a trie stored in a hash table, so keys are exact at
  every order (no hashing of token tuples, no collisions) and always fit in an int64.
- ``ctx_idx`` (size, 2): open-addressing index ``[key, id]`` of the contexts of order >= 3
  (key -1 = empty slot). ``ctx_info`` (capacity, 3): ``[total count, distinct successors,
  head of the successor list]`` per context id.
- Successor counts of contexts ``id < n_dense`` live in the dense array ``dense`` (n_dense, V);
  the others in ``pair_idx`` (size, 2) ``[key, count]`` with key ``ctx_id * V + w``. Every hashed
  pair also has an entry in ``pair_keys`` / ``pair_next``: a singly linked list of the context's
  successors (head in ``ctx_info[id, 2]``), which the full-distribution kernel walks.
- ``meta``: ``[number of context ids in use, number of hashed pairs]``.

The context key never contains the target token. The pair key does: it reads one entry of the
context's successor counts, whose normalizer (total + distinct) does not depend on the target.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def slot_of(key, mask):
    """Home slot of a key: Fibonacci hashing folded so the low bits see the high ones."""
    h = np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)
    h ^= h >> np.uint64(31)
    return np.int64(h & np.uint64(mask))


@njit(cache=True)
def probe(idx, key):
    """Slot holding ``key``, or ``-1 - s`` where ``s`` is the empty slot where it would go."""
    mask = idx.shape[0] - 1
    s = slot_of(key, mask)
    while True:
        k = idx[s, 0]
        if k == key:
            return s
        if k == -1:
            return -1 - s
        s = (s + 1) & mask


@njit(cache=True)
def rehash(old, new):
    """Insert every occupied slot of index ``old`` into the empty index ``new`` (a larger power of 2)."""
    for s in range(old.shape[0]):
        if old[s, 0] != -1:
            t = -1 - probe(new, old[s, 0])
            new[t, 0] = old[s, 0]
            new[t, 1] = old[s, 1]


@njit(cache=True)
def pair_count(ctx, w, V, dense, pair_idx):
    """Count of successor ``w`` after context ``ctx`` (0 when never seen)."""
    if ctx < dense.shape[0]:
        return dense[ctx, w]
    s = probe(pair_idx, ctx * V + w)
    return pair_idx[s, 1] if s >= 0 else 0


@njit(cache=True)
def count_pair(ctx, w, V, dense, ctx_info, pair_idx, pair_keys, pair_next, meta):
    """Add one to the count of ``w`` after ``ctx``; returns the count *before* the increment."""
    if ctx < dense.shape[0]:
        c = dense[ctx, w]
        dense[ctx, w] = c + 1
    else:
        key = ctx * V + w
        s = probe(pair_idx, key)
        if s >= 0:
            c = pair_idx[s, 1]
            pair_idx[s, 1] = c + 1
        else:
            c = 0
            s = -1 - s
            pair_idx[s, 0] = key
            pair_idx[s, 1] = 1
            e = meta[1]
            meta[1] = e + 1
            pair_keys[e] = key
            pair_next[e] = ctx_info[ctx, 2]
            ctx_info[ctx, 2] = e
    if c == 0:
        ctx_info[ctx, 1] += 1
    ctx_info[ctx, 0] += 1
    return c


@njit(cache=True)
def find_child(ctx, a, V, ctx_idx):
    """Id of the context ``ctx`` extended by the older token ``a``, or -1 when never seen."""
    if ctx == 0:
        return 1 + a
    s = probe(ctx_idx, ctx * V + a)
    return ctx_idx[s, 1] if s >= 0 else -1


@njit(cache=True)
def child_context(ctx, a, V, ctx_idx, ctx_info, meta):
    """Id of the context ``ctx`` extended by the older token ``a``, created when new."""
    if ctx == 0:
        return 1 + a
    key = ctx * V + a
    s = probe(ctx_idx, key)
    if s >= 0:
        return ctx_idx[s, 1]
    s = -1 - s
    new = meta[0]
    meta[0] = new + 1
    ctx_idx[s, 0] = key
    ctx_idx[s, 1] = new
    ctx_info[new, 0] = 0
    ctx_info[new, 1] = 0
    ctx_info[new, 2] = -1
    return new


@njit(cache=True)
def context_length(tokens, t, order, bos):
    """How many context tokens target ``t`` uses: up to ``order - 1``, never past the stream start
    (position 0 of ``tokens``), and never older than the most recent BOS (BOS itself is kept)."""
    n = 0
    while n < order - 1 and t - n - 1 >= 0:
        n += 1
        if tokens[t - n] == bos:
            break
    return n


@njit(cache=True)
def has_room(order, ctx_info, ctx_idx, pair_keys, pair_idx, meta):
    """True when one more target (at most ``order`` new contexts and pairs) fits at load <= 1/2."""
    need_c = meta[0] + order
    need_p = meta[1] + order
    return (need_c <= ctx_info.shape[0] and 2 * need_c <= ctx_idx.shape[0]
            and need_p <= pair_keys.shape[0] and 2 * need_p <= pair_idx.shape[0])


@njit(cache=True)
def score_and_count(tokens, t, order, V, bos, dense, ctx_info, ctx_idx, pair_idx, pair_keys, pair_next, meta):
    """Log-probability of target ``tokens[t]``, then count it at every order (score first).

    Interpolated Witten-Bell, built up from the uniform distribution: at a context h with total
    count c(h) and N1+(h) distinct successors, p_h(w) = (c(h, w) + N1+(h) p_lower(w)) / (c(h) + N1+(h));
    a context never seen (c(h) = 0) passes p_lower through. Each order's estimate reads only that
    order's counts, so reading them and then incrementing them order by order is the same as
    scoring the whole target first and counting it afterwards.
    """
    w = tokens[t]
    p = 1.0 / V
    n_ctx = context_length(tokens, t, order, bos)
    ctx = 0
    for k in range(n_ctx + 1):
        if k > 0:
            ctx = child_context(ctx, tokens[t - k], V, ctx_idx, ctx_info, meta)
        total = ctx_info[ctx, 0]
        distinct = ctx_info[ctx, 1]
        c = count_pair(ctx, w, V, dense, ctx_info, pair_idx, pair_keys, pair_next, meta)
        if total > 0:
            p = (c + distinct * p) / (total + distinct)
    return np.log(p)


@njit(cache=True)
def distribution_row(tokens, t, order, V, bos, dense, ctx_info, ctx_idx, pair_idx, pair_keys, pair_next, row):
    """Write the full distribution for target ``t`` (from the counts before ``t``) into ``row``.

    p_k = lambda_k-weighted lower order + sparse part, so the whole mixture is
    ``scale / V`` everywhere plus, for each order k, ``coef_k * c(h_k, w)`` over h_k's successors,
    where coef_k = prod_{j > k} (1 - lambda_j) / (c(h_k) + N1+(h_k)). Dense contexts add a row;
    hashed ones walk their successor list.
    """
    ctxs = np.empty(order, dtype=np.int64)
    n_ctx = context_length(tokens, t, order, bos)
    m = 0
    ctx = 0
    for k in range(n_ctx + 1):
        if k > 0:
            ctx = find_child(ctx, tokens[t - k], V, ctx_idx)
            if ctx < 0 or ctx_info[ctx, 0] == 0:
                break
        elif ctx_info[0, 0] == 0:
            break
        ctxs[m] = ctx
        m += 1
    scale = 1.0
    coefs = np.empty(order, dtype=np.float64)
    for j in range(m - 1, -1, -1):
        total = ctx_info[ctxs[j], 0]
        distinct = ctx_info[ctxs[j], 1]
        coefs[j] = scale / (total + distinct)
        scale *= distinct / (total + distinct)
    base = scale / V
    for w in range(V):
        row[w] = base
    for j in range(m):
        add_successors(ctxs[j], coefs[j], V, dense, ctx_info, pair_idx, pair_keys, pair_next, row)


@njit(cache=True)
def add_successors(ctx, coef, V, dense, ctx_info, pair_idx, pair_keys, pair_next, row):
    """row[w] += coef * c(ctx, w) for every observed successor w of ``ctx``."""
    if ctx < dense.shape[0]:
        for w in range(V):
            row[w] += coef * dense[ctx, w]
        return
    e = ctx_info[ctx, 2]
    base = ctx * V
    while e != -1:
        key = pair_keys[e]
        s = probe(pair_idx, key)
        row[key - base] += coef * pair_idx[s, 1]
        e = pair_next[e]


@njit(cache=True)
def run_span(tokens, t0, t1, out0, order, V, bos, dense, ctx_info, ctx_idx, pair_idx, pair_keys, pair_next,
             meta, logp, dists):
    """Score and count targets ``t0..t1-1`` of ``tokens`` one by one, writing ``logp[t - out0]``
    (and, when ``dists`` has rows, the full distribution ``dists[t - out0]``).

    Returns the first target not processed: ``t1`` when done, earlier when a table needs to grow
    (the caller grows it and calls again from there).
    """
    want_dist = dists.shape[0] > 0
    for t in range(t0, t1):
        if not has_room(order, ctx_info, ctx_idx, pair_keys, pair_idx, meta):
            return t
        if want_dist:
            distribution_row(tokens, t, order, V, bos, dense, ctx_info, ctx_idx, pair_idx, pair_keys,
                             pair_next, dists[t - out0])
        logp[t - out0] = score_and_count(tokens, t, order, V, bos, dense, ctx_info, ctx_idx, pair_idx,
                                         pair_keys, pair_next, meta)
    return t1
