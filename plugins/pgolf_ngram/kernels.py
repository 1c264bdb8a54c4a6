"""numba kernels of the interpolated Witten-Bell n-gram counter.

Pure functions over NumPy arrays; the Python side (``tables.py``) owns the arrays and grows them.

The counts live in a trie of *nodes*, one per token string that has been counted (V = vocabulary):

- node 0 is the empty string; node ``1 + w`` is the string ``(w,)``; when the vocabulary is small
  enough (``dense_bigrams``), node ``V + 1 + a * V + w`` is ``(a, w)``; longer strings (and bigrams
  otherwise) get ids in order of first appearance, found through ``idx``, an open-addressing index
  ``[key, node id]`` with key ``parent id * V + last token``. A hashed node's parent is never the
  root, so keys are >= V and key 0 marks an empty slot. Keys are exact at every order: no two
  strings ever share counts.
- ``node[i] = [count, total, distinct, succ, last]`` (int32, 20 bytes): as an n-gram, ``count`` =
  c(h, w) for the string h + w; as a context h, ``total`` = c(h) = sum_w c(h, w) and ``distinct`` =
  N1+(h), the number of w with c(h, w) > 0; ``last`` is the node's final token (set for hashed
  nodes). Scoring reads and writes only these rows.
- Two views serve the full distributions (``distribution_row``), kept up to date while
  distributions are computed (or predicted by ``predict_row`` and counted one target at a time) and
  rebuilt by ``successor_layout``/``fill_successors`` (and a copy of the dense counts) after
  score-only runs, which skip them:
  ``dense[i] = node[i, 0]`` for the implicit nodes i < ``first_hashed``, contiguous so that the
  unigram counts and a context's bigram counts are rows one vectorized pass reads; and ``succ``, a
  pool of successor lists: a context h whose children are hashed keeps the ids of its N1+(h)
  counted successors contiguously at ``succ[node[h, 3]:][:N1+(h)]``, in a segment of capacity
  max(4, next power of 2); a full segment moves to a new one of twice the size at the end of the
  pool (the old one is abandoned: at most 4 pool entries per listed successor). Reading a list is
  independent loads, not a pointer chase.
- Every "empty" value is 0, so the tables are allocated with ``np.zeros`` and the operating system
  only maps the pages that counting actually touches.
- ``meta = [number of node ids in use, number of pool entries in use]``.

The contexts of target t are the strings tokens[t-k+1..t-1]; the one of order k + 1 is the string
counted at order k for target t - 1, so the kernel carries those node ids from one target to the
next (``carry``) instead of looking contexts up. The context never contains the target token; the
lookup of (context, target) reads one count of a distribution whose normalizer c(h) + N1+(h) does
not depend on the target.
"""

from __future__ import annotations

import numpy as np
from numba import njit

COUNT, TOTAL, DISTINCT, SUCC, LAST = 0, 1, 2, 3, 4  # columns of ``node`` (documentation; kernels use literals)


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
    """Id of the string ``parent + (w,)``, created (count 0, not yet a listed successor) when new."""
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
    node[new, 4] = w
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


@njit(cache=True)
def find_context_nodes(tokens, t, order, V, dense_bigrams, bos, idx, ctxs):
    """Read-only ``context_nodes``: fill ``ctxs`` with the context nodes of target ``t`` that exist and
    return how many orders they give (at least 1, the root), creating nothing.

    The walk stops at the first context never seen: every longer context ends with it, and a target
    counted with a longer context also counted this one, so the longer ones have no counts either
    and ``distribution_row`` would pass them through anyway (same row, bit for bit)."""
    n = context_length(tokens, t, order, bos)
    ctxs[0] = 0
    for k in range(1, n + 1):
        cur = 0
        for j in range(t - k, t):
            cur = find_child(cur, tokens[j], V, dense_bigrams, idx)
            if cur < 0:
                return k
        ctxs[k] = cur
    return n + 1


@njit(cache=True)
def append_successor(h, g, n, node, succ, meta):
    """Append node ``g`` to the successor list of context ``h``, which holds ``n`` = N1+(h) ids so far
    (segment capacity max(4, next power of 2 of n): a full one moves to twice the size at the pool end)."""
    if n == 0:
        off = meta[1]
        meta[1] = off + 4
        node[h, 3] = off
    elif n >= 4 and (n & (n - 1)) == 0:
        old = node[h, 3]
        off = meta[1]
        meta[1] = off + 2 * n
        for i in range(n):
            succ[off + i] = succ[old + i]
        node[h, 3] = off
    else:
        off = node[h, 3]
    succ[off + n] = g


@njit(cache=True, inline="always")
def score_and_count(w, n_orders, V, dense_bigrams, first_hashed, idx, node, dense, succ, meta, ctxs, carry, lists):
    """Log-probability of target ``w`` given its context nodes ``ctxs[:n_orders]``, then count it.

    Interpolated Witten-Bell, built up from the uniform distribution: at a context h,
    p_h(w) = (c(h, w) + N1+(h) p_lower(w)) / (c(h) + N1+(h)); a context never seen passes p_lower
    through. Each order's estimate reads only that order's counts, so reading and incrementing them
    order by order equals scoring the target first and counting it afterwards. The node of each
    counted string goes to ``carry`` (it is the next target's context one order up). When ``lists``,
    the views of the full distributions follow: ``dense`` gets the implicit nodes' counts and a hashed
    node counted for the first time joins its context's successor list.
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
        if lists and g < first_hashed:
            dense[g] = c + 1
        if c == 0:
            node[h, 2] = distinct + 1
            if lists and g >= first_hashed:
                append_successor(h, g, distinct, node, succ, meta)
        carry[k] = g
    return np.log(p)


@njit(cache=True, inline="always")
def add_successors(h, coef, node, succ, row):
    """row[w] += coef * c(h, w) for every counted successor w of context node ``h`` (its pooled list)."""
    off = node[h, 3]
    for i in range(node[h, 2]):
        g = succ[off + i]
        row[node[g, 4]] += coef * node[g, 0]


@njit(cache=True, inline="always")
def interpolation_coefs(n_orders, node, ctxs, coefs):
    """The unrolled interpolation of the contexts ``ctxs[:n_orders]``: ``coefs[k]`` (0 for a context
    never seen) and the returned ``scale``, such that the row is scale / V + sum_k coefs[k] * c(h_k, w)
    (see ``distribution_row``). Shared by the dense and the sparse rows, so both form it alike."""
    scale = 1.0
    for k in range(n_orders - 1, -1, -1):
        total = node[ctxs[k], 1]
        distinct = node[ctxs[k], 2]
        if total == 0:
            coefs[k] = 0.0
            continue
        coefs[k] = scale / (total + distinct)
        scale *= distinct / (total + distinct)
    return scale


@njit(cache=True)
def distribution_row(n_orders, V, dense_bigrams, node, dense, succ, ctxs, coefs, row):
    """Write the full distribution given context nodes ``ctxs[:n_orders]`` into ``row`` (float64).

    Order by order, p_h = (1 - lambda_h) p_lower + c(h, .) / (c(h) + N1+(h)) with
    1 - lambda_h = N1+(h) / (c(h) + N1+(h)): the lower order's vector scaled, plus a correction over
    h's successors. Unrolled from the top order down, every order k with a seen context adds
    coef_k * c(h_k, w), coef_k = prod_{j > k} (1 - lambda_j) / (c(h_k) + N1+(h_k)), on top of
    ``scale / V``. The unigram and dense-bigram levels are one vectorized pass over their contiguous
    rows of ``dense``; the hashed orders add their successor lists (about N1+(h) entries each).
    """
    base = interpolation_coefs(n_orders, node, ctxs, coefs) / V
    c0 = coefs[0]
    uni = dense[1:V + 1]
    lo = 2 if dense_bigrams else 1  # first order whose context has hashed (listed) successors
    if dense_bigrams and n_orders >= 2 and coefs[1] > 0.0:
        c1 = coefs[1]
        first = dense_child(ctxs[1], 0, V, dense_bigrams)
        bi = dense[first:first + V]
        for w in range(V):
            row[w] = base + c0 * uni[w] + c1 * bi[w]
    else:
        for w in range(V):
            row[w] = base + c0 * uni[w]
    for k in range(lo, n_orders):
        if coefs[k] > 0.0:
            add_successors(ctxs[k], coefs[k], node, succ, row)


@njit(cache=True)
def sparse_row(n_orders, V, dense_bigrams, node, dense, succ, ctxs, coefs, scale, mark, stamp, val, ids, values, pos):
    """The row of ``distribution_row`` as a support and a background (``pgolf_core.api.SparseRows``):
    writes the support's token ids and probabilities at ``ids[pos:]``/``values[pos:]`` and returns
    (entries written, base, slope), the background being base + slope * c(w) with c(w) = the unigram
    count of w, and at most V entries. ``coefs`` and ``scale`` come from ``interpolation_coefs``;
    ``mark``/``val`` (V,) are scratch, ``mark[w] == stamp`` meaning that w is in the support being
    built.

    Exact: a token w that no context of order >= 2 has seen gets base + c0 * uni[w] in
    ``distribution_row`` (plus c1 * 0 on a dense bigram row, and adding +0.0 to a positive number
    changes no bit), i.e. the background at w's unigram count; every other token gets the same
    float64 operations in the same order as there (the dense levels first, then each successor
    order from the lowest up)."""
    base = scale / V
    c0 = coefs[0]
    uni = dense[1:V + 1]
    n = 0
    lo = 2 if dense_bigrams else 1
    if dense_bigrams and n_orders >= 2 and coefs[1] > 0.0:
        c1 = coefs[1]
        first = dense_child(ctxs[1], 0, V, dense_bigrams)
        bi = dense[first:first + V]
        for w in range(V):
            if bi[w] != 0:
                mark[w] = stamp
                val[w] = base + c0 * uni[w] + c1 * bi[w]
                ids[pos + n] = w
                n += 1
    for k in range(lo, n_orders):
        coef = coefs[k]
        if coef > 0.0:
            h = ctxs[k]
            off = node[h, 3]
            for i in range(node[h, 2]):
                g = succ[off + i]
                w = node[g, 4]
                if mark[w] != stamp:  # not on the dense bigram row: its dense value is base + c0 * uni[w]
                    mark[w] = stamp
                    val[w] = base + c0 * uni[w]
                    ids[pos + n] = w
                    n += 1
                val[w] += coef * node[g, 0]
    for j in range(pos, pos + n):
        values[j] = val[ids[j]]
    return n, base, c0


@njit(cache=True)
def successor_layout(node, n_nodes, lo):
    """Give every context ``lo <= h < n_nodes`` with N1+(h) > 0 an empty segment of the capacity
    ``append_successor`` expects (max(4, next power of 2)), consecutively from pool offset 0, its
    offset in ``node[h, 3]``; returns the pool entries used."""
    off = 0
    for h in range(lo, n_nodes):
        n = node[h, 2]
        if n == 0:
            continue
        node[h, 3] = off
        cap = 4
        while cap < n:
            cap *= 2
        off += cap
    return off


@njit(cache=True)
def fill_successors(V, lo, idx, node, succ):
    """List every counted hashed node in its parent's segment (laid out by ``successor_layout``;
    ``node[h, 3]`` serves as the write cursor and is wound back at the end)."""
    for s in range(idx.shape[0]):
        key = idx[s, 0]
        if key == 0:
            continue
        g = idx[s, 1]
        if node[g, 0] > 0:
            h = key // V
            succ[node[h, 3]] = g
            node[h, 3] += 1
    for h in range(lo, node.shape[0]):
        if node[h, 2] > 0:
            node[h, 3] -= node[h, 2]


@njit(cache=True, inline="always")
def has_room(max_new, first_hashed, node, idx, meta):
    """True when one more target (at most ``max_new`` new nodes) fits, with the index at load <= 0.7."""
    need = meta[0] + max_new
    return need <= node.shape[0] and 10 * (need - first_hashed) <= 7 * idx.shape[0]


@njit(cache=True, inline="always")
def has_list_room(max_new, V, succ, meta):
    """True when the pool takes one more target's ``max_new`` successor appends, each of which may
    move a segment (at most 2V + 4 entries)."""
    return meta[1] + max_new * (2 * V + 4) <= succ.shape[0]


@njit(cache=True)
def predict_row(tokens, t, order, V, dense_bigrams, bos, idx, node, dense, succ, out):
    """The full distribution of target ``t`` (``tokens`` holds at least the positions before it) from
    the counts as they are, into ``out`` (computed in float64, stored as ``out``'s dtype), without
    counting or creating anything: the row ``run_span`` would write for ``t`` (the views must be current)."""
    ctxs = np.zeros(order, dtype=np.int64)
    coefs = np.zeros(order, dtype=np.float64)
    row = np.empty(V, dtype=np.float64)
    n_orders = find_context_nodes(tokens, t, order, V, dense_bigrams, bos, idx, ctxs)
    distribution_row(n_orders, V, dense_bigrams, node, dense, succ, ctxs, coefs, row)
    for w in range(V):
        out[w] = row[w]


@njit(cache=True)
def run_span(tokens, t0, t1, out0, order, V, dense_bigrams, bos, first_hashed, idx, node, dense, succ, meta, logp,
             dists, lists, sp_off, sp_ids, sp_vals, sp_base, sp_slope, mark, val):
    """Score and count targets ``t0..t1-1`` of ``tokens`` one by one, writing ``logp[t - out0]``
    (and, when ``dists`` has rows, the full distribution ``dists[t - out0]``, from the counts
    before ``t``, computed in float64 and stored as ``dists``' dtype). ``lists``: keep the views of
    the full distributions up to date (always when ``dists`` has rows; also for a target that is
    only counted, when its row was computed by ``predict_row``).

    Sparse rows (when ``sp_base`` has entries, ``sparse_row``): target i = t - out0 gets its support
    at ``sp_ids``/``sp_vals[sp_off[i]:sp_off[i + 1]]`` and its background in ``sp_base[i]``,
    ``sp_slope[i]``; ``sp_off[0]`` must be 0 and ``mark``/``val`` (V,) are scratch (``mark`` zero).

    Returns the first target not processed: ``t1`` when done, earlier when a table (or the sparse
    pool, which must have room for V more entries) needs to grow (the caller grows it and calls
    again from there).
    """
    want_dist = dists.shape[0] > 0
    want_sparse = sp_base.shape[0] > 0
    lists = lists or want_dist or want_sparse
    max_new = max(0, order - (2 if dense_bigrams else 1))  # orders whose strings are hashed nodes
    ctxs = np.zeros(order, dtype=np.int64)
    carry = np.zeros(order, dtype=np.int64)
    coefs = np.zeros(order, dtype=np.float64)
    row = np.empty(V, dtype=np.float64)
    for t in range(t0, t1):
        if not has_room(max_new, first_hashed, node, idx, meta):
            return t
        if lists and not has_list_room(max_new, V, succ, meta):  # (only then: cheaper score-only loop)
            return t
        if want_sparse and sp_off[t - out0] + V > sp_ids.shape[0]:
            return t
        if t == t0:
            n = context_nodes(tokens, t, order, V, dense_bigrams, bos, idx, node, meta, ctxs)
        else:
            n = context_length(tokens, t, order, bos)
            ctxs[0] = 0
            for k in range(n):
                ctxs[k + 1] = carry[k]
        if want_dist:
            distribution_row(n + 1, V, dense_bigrams, node, dense, succ, ctxs, coefs, row)
            out = dists[t - out0]
            for w in range(V):
                out[w] = row[w]
        if want_sparse:
            i = t - out0
            scale = interpolation_coefs(n + 1, node, ctxs, coefs)
            m, b0, s0 = sparse_row(n + 1, V, dense_bigrams, node, dense, succ, ctxs, coefs, scale, mark, t + 1, val,
                                   sp_ids, sp_vals, sp_off[i])
            sp_off[i + 1] = sp_off[i] + m
            sp_base[i] = b0
            sp_slope[i] = s0
        if lists:
            logp[t - out0] = score_and_count(tokens[t], n + 1, V, dense_bigrams, first_hashed, idx, node, dense, succ,
                                             meta, ctxs, carry, True)
        else:  # a literal, so that the inlined score-only path carries no view upkeep
            logp[t - out0] = score_and_count(tokens[t], n + 1, V, dense_bigrams, first_hashed, idx, node, dense, succ,
                                             meta, ctxs, carry, False)
    return t1


# --- the compiled coding loop's step (``pgolf_core.api.StepKernel``): ``NgramExpert.step_kernel``
# packs (order, V, dense_bigrams, bos, first_hashed, idx, node, dense, succ, meta, scratch (3, order)
# int64 for context nodes and carries, coefficient scratch (order,)). ``step_predict`` is
# ``predict_row`` writing into the loop's float64 row, ``step_observe`` the one-target body of
# ``run_span`` (context walk, then ``score_and_count`` with the views kept current): the same calls
# as ``NgramExpert.predict`` / ``observe``, without their per-call allocations.


@njit(cache=True)
def step_room(state):
    order, V, dense_bigrams, bos, first_hashed, idx, node, dense, succ, meta, scratch, coefs = state
    max_new = max(0, order - (2 if dense_bigrams else 1))
    return has_room(max_new, first_hashed, node, idx, meta) and has_list_room(max_new, V, succ, meta)


@njit(cache=True)
def step_predict(state, tokens, t, out):
    order, V, dense_bigrams, bos, first_hashed, idx, node, dense, succ, meta, scratch, coefs = state
    ctxs = scratch[0]
    n_orders = find_context_nodes(tokens, t, order, V, dense_bigrams, bos, idx, ctxs)
    distribution_row(n_orders, V, dense_bigrams, node, dense, succ, ctxs, coefs, out)


@njit(cache=True)
def step_observe(state, tokens, t):
    order, V, dense_bigrams, bos, first_hashed, idx, node, dense, succ, meta, scratch, coefs = state
    ctxs, carry = scratch[1], scratch[2]
    n = context_nodes(tokens, t, order, V, dense_bigrams, bos, idx, node, meta, ctxs)
    score_and_count(tokens[t], n + 1, V, dense_bigrams, first_hashed, idx, node, dense, succ, meta, ctxs, carry, True)
