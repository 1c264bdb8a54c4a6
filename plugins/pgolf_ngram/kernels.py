"""numba kernels of the interpolated Witten-Bell n-gram counter.

Pure functions over NumPy arrays; the Python side (``tables.py``) owns the arrays and grows them.

The counts live in a trie of *nodes*, one per token string that has been counted (V = vocabulary):

- node 0 is the empty string; node ``1 + w`` is the string ``(w,)``; when the vocabulary is small
  enough (``dense_bigrams``), node ``V + 1 + a * V + w`` is ``(a, w)``; longer strings (and bigrams
  otherwise) get ids in order of first appearance, found through ``idx``, an open-addressing index
  ``[key, node id]`` with key ``parent id * V + last token``. A hashed node's parent is never the
  root, so keys are >= V and key 0 marks an empty slot. Keys are exact at every order: no two
  strings ever share counts.
- ``node[i] = [count, total, distinct, head, next, last]`` (int32, 24 bytes): as an n-gram,
  ``count`` = c(h, w) for the string h + w; as a context h, ``total`` = c(h) = sum_w c(h, w) and
  ``distinct`` = N1+(h), the number of w with c(h, w) > 0. ``head`` starts the list of h's hashed
  successors, linked by ``next`` (0 ends it: the root is nobody's successor); ``last`` is the node's
  final token. The full-distribution kernel walks these lists.
- Every "empty" value is 0, so the tables are allocated with ``np.zeros`` and the operating system
  only maps the pages that counting actually touches.
- ``meta = [number of node ids in use]``.

The contexts of target t are the strings tokens[t-k+1..t-1]; the one of order k + 1 is the string
counted at order k for target t - 1, so the kernel carries those node ids from one target to the
next (``carry``) instead of looking contexts up. The context never contains the target token; the
lookup of (context, target) reads one count of a distribution whose normalizer c(h) + N1+(h) does
not depend on the target.
"""

from __future__ import annotations

import numpy as np
from numba import njit

COUNT, TOTAL, DISTINCT, HEAD, NEXT, LAST = 0, 1, 2, 3, 4, 5  # columns of ``node`` (documentation; kernels use literals)


@njit(cache=True, inline="always")
def slot_of(key, size):
    """Home slot of a key in an index of ``size`` slots (a power of 2 up to 2**32).

    Multiplicative hashing, then the top 32 bits scaled to ``size``: the slot is monotone in the
    hash, so growing the index keeps neighbours together and ``rehash`` streams through memory.
    """
    h = np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)
    return np.int64(((h >> np.uint64(32)) * np.uint64(size)) >> np.uint64(32))


@njit(cache=True, inline="always")
def probe(idx, key):
    """Slot holding ``key``, or ``-1 - s`` where ``s`` is the empty slot where it would go."""
    mask = idx.shape[0] - 1
    s = slot_of(key, idx.shape[0])
    while True:
        k = idx[s, 0]
        if k == key:
            return s
        if k == 0:
            return -1 - s
        s = (s + 1) & mask


@njit(cache=True)
def rehash(old, new):
    """Insert every occupied slot of index ``old`` into the empty index ``new`` (a larger power of 2)."""
    for s in range(old.shape[0]):
        if old[s, 0] != 0:
            t = -1 - probe(new, old[s, 0])
            new[t, 0] = old[s, 0]
            new[t, 1] = old[s, 1]


@njit(cache=True, inline="always")
def dense_child(parent, w, V, dense_bigrams):
    """Id of the child of ``parent`` by token ``w`` when it is implicit (dense), else -1."""
    if parent == 0:
        return 1 + w
    if dense_bigrams and parent <= V:
        return V + 1 + (parent - 1) * V + w
    return -1


@njit(cache=True, inline="always")
def find_child(parent, w, V, dense_bigrams, idx):
    """Id of the string ``parent + (w,)``, or -1 when it was never counted."""
    c = dense_child(parent, w, V, dense_bigrams)
    if c >= 0:
        return c
    s = probe(idx, parent * V + w)
    return idx[s, 1] if s >= 0 else -1


@njit(cache=True, inline="always")
def child(parent, w, V, dense_bigrams, idx, node, meta):
    """Id of the string ``parent + (w,)``, created (count 0, linked to its parent) when new."""
    c = dense_child(parent, w, V, dense_bigrams)
    if c >= 0:
        return c
    key = parent * V + w
    s = probe(idx, key)
    if s >= 0:
        return idx[s, 1]
    new = meta[0]
    meta[0] = new + 1
    idx[-1 - s, 0] = key
    idx[-1 - s, 1] = new
    node[new, 4] = node[parent, 3]
    node[new, 5] = w
    node[parent, 3] = new
    return new


@njit(cache=True, inline="always")
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
def context_nodes(tokens, t, order, V, dense_bigrams, bos, idx, node, meta, ctxs):
    """Fill ``ctxs[0..n]`` with the context nodes of target ``t`` (orders 1..n+1) by walking the trie;
    returns n. Used where no carry is available (the first target of a call)."""
    n = context_length(tokens, t, order, bos)
    ctxs[0] = 0
    for k in range(1, n + 1):
        cur = 0
        for j in range(t - k, t):
            cur = child(cur, tokens[j], V, dense_bigrams, idx, node, meta)
        ctxs[k] = cur
    return n


@njit(cache=True, inline="always")
def score_and_count(w, n_orders, V, dense_bigrams, idx, node, meta, ctxs, carry):
    """Log-probability of target ``w`` given its context nodes ``ctxs[:n_orders]``, then count it.

    Interpolated Witten-Bell, built up from the uniform distribution: at a context h,
    p_h(w) = (c(h, w) + N1+(h) p_lower(w)) / (c(h) + N1+(h)); a context never seen passes p_lower
    through. Each order's estimate reads only that order's counts, so reading and incrementing them
    order by order equals scoring the target first and counting it afterwards. The node of each
    counted string goes to ``carry`` (it is the next target's context one order up).
    """
    p = 1.0 / V
    for k in range(n_orders):
        h = ctxs[k]
        total = node[h, 1]
        distinct = node[h, 2]
        g = child(h, w, V, dense_bigrams, idx, node, meta)
        c = node[g, 0]
        if total > 0:
            p = (c + distinct * p) / (total + distinct)
        node[g, 0] = c + 1
        node[h, 1] = total + 1
        if c == 0:
            node[h, 2] = distinct + 1
        carry[k] = g
    return np.log(p)


@njit(cache=True, inline="always")
def add_successors(h, coef, V, dense_bigrams, node, row):
    """row[w] += coef * c(h, w) for every observed successor w of context node ``h``."""
    first = dense_child(h, 0, V, dense_bigrams)
    if first >= 0:  # implicit children: a contiguous block of V nodes
        for w in range(V):
            row[w] += coef * node[first + w, 0]
        return
    g = node[h, 3]
    while g != 0:
        row[node[g, 5]] += coef * node[g, 0]
        g = node[g, 4]


@njit(cache=True)
def distribution_row(n_orders, V, dense_bigrams, node, ctxs, coefs, row):
    """Write the full distribution given context nodes ``ctxs[:n_orders]`` into ``row``.

    Unrolled, the interpolation is ``scale / V`` everywhere plus, for each order k with a seen
    context, ``coef_k * c(h_k, w)`` over h_k's successors, where coef_k = prod_{j > k} (1 - lambda_j)
    / (c(h_k) + N1+(h_k)) and 1 - lambda_j = N1+(h_j) / (c(h_j) + N1+(h_j)): V writes plus the
    successor lists, not V lookups per order.
    """
    scale = 1.0
    for k in range(n_orders - 1, -1, -1):
        total = node[ctxs[k], 1]
        distinct = node[ctxs[k], 2]
        if total == 0:
            coefs[k] = 0.0
            continue
        coefs[k] = scale / (total + distinct)
        scale *= distinct / (total + distinct)
    base = scale / V
    for w in range(V):
        row[w] = base
    for k in range(n_orders):
        if coefs[k] > 0.0:
            add_successors(ctxs[k], coefs[k], V, dense_bigrams, node, row)


@njit(cache=True, inline="always")
def has_room(max_new, first_hashed, node, idx, meta):
    """True when one more target (at most ``max_new`` new nodes) fits, with the index at load <= 0.7."""
    need = meta[0] + max_new
    return need <= node.shape[0] and 10 * (need - first_hashed) <= 7 * idx.shape[0]


@njit(cache=True)
def run_span(tokens, t0, t1, out0, order, V, dense_bigrams, bos, first_hashed, idx, node, meta, logp, dists):
    """Score and count targets ``t0..t1-1`` of ``tokens`` one by one, writing ``logp[t - out0]``
    (and, when ``dists`` has rows, the full distribution ``dists[t - out0]``, from the counts
    before ``t``).

    Returns the first target not processed: ``t1`` when done, earlier when a table needs to grow
    (the caller grows it and calls again from there).
    """
    want_dist = dists.shape[0] > 0
    max_new = max(0, order - (2 if dense_bigrams else 1))  # orders whose strings are hashed nodes
    ctxs = np.zeros(order, dtype=np.int64)
    carry = np.zeros(order, dtype=np.int64)
    coefs = np.zeros(order, dtype=np.float64)
    for t in range(t0, t1):
        if not has_room(max_new, first_hashed, node, idx, meta):
            return t
        if t == t0:
            n = context_nodes(tokens, t, order, V, dense_bigrams, bos, idx, node, meta, ctxs)
        else:
            n = context_length(tokens, t, order, bos)
            ctxs[0] = 0
            for k in range(n):
                ctxs[k + 1] = carry[k]
        if want_dist:
            distribution_row(n + 1, V, dense_bigrams, node, ctxs, coefs, dists[t - out0])
        logp[t - out0] = score_and_count(tokens[t], n + 1, V, dense_bigrams, idx, node, meta, ctxs, carry)
    return t1
