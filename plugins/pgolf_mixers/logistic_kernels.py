"""numba kernel of the online geometric (logistic) mixture, and its plain NumPy reference.

Per target i (see ``logistic`` for the model): pick the weight set c from a context of the first
input's distribution at i, form s_v = sum_k W[c, k] log p_k(v) (+ b_v), normalize exactly over the
vocabulary, score the target, then take one gradient step on the log loss of that target:

    d(-log p(y)) / dW[c, k] = E_p[log p_k] - log p_k(y),      d(-log p(y)) / db_v = p(v) - [v == y].

Context modes: 0 none (one weight set), 1 entropy of the first input (buckets of equal width on
[0, ln V]), 2 confidence = the first input's largest probability (buckets of equal width on [0, 1]).
Probabilities are floored at ``floor`` (a probability, e.g. 1e-300) before the log, so that a zero
probability never meets a zero or negative weight as -inf * 0.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def context_bucket(p0, lq0, mode, n_buckets):
    """Weight-set index from the first input's distribution ``p0`` (and its logs ``lq0``)."""
    if mode == 0:
        return 0
    v_size = p0.shape[0]
    if mode == 1:
        h = 0.0
        for v in range(v_size):
            if p0[v] > 0.0:
                h -= p0[v] * lq0[v]
        x = h / math.log(v_size)
    else:
        x = 0.0
        for v in range(v_size):
            if p0[v] > x:
                x = p0[v]
    b = int(x * n_buckets)
    return min(max(b, 0), n_buckets - 1)


def floored_log(dists, floor):
    """The kernel's input: log(max(p, floor)) over the whole block (NumPy's vectorized log is several
    times faster than a scalar log per entry inside the kernel)."""
    dists = np.asarray(dists)
    # float32 inputs stay float32: the log is then about 3x faster and the kernel still sums and
    # renormalizes in float64, so the mixture's mass stays exact; the floor must be representable.
    dtype = np.float32 if dists.dtype == np.float32 else np.float64
    floor = max(floor, float(np.finfo(dtype).tiny))
    out = np.maximum(dists, dtype(floor), dtype=dtype)
    return np.log(out, out=out)


@njit(cache=True)
def mixture_weights(lq, p0, w, b, use_bias, mode, y, s):
    """The unnormalized mixture of one target into ``s`` (V,) from ``lq`` (K, V) = its inputs'
    floored logs and ``p0`` (V,) the first input's row; returns (weight set c, log-probability of
    token ``y``, 1 / Z): the mixture distribution is ``s * (1 / Z)``. Reads the weights only:
    ``logistic_kernel`` (which then learns) and ``logistic_predict`` (which must not) share it, so a
    predicted row is the mixed row bit for bit."""
    k_inputs, v_size = lq.shape
    c = context_bucket(p0, lq[0], mode, w.shape[0])
    # one loop per input over the vocabulary (each vectorizes; a loop over inputs inside does not)
    for v in range(v_size):
        s[v] = b[v] if use_bias else 0.0
    for k in range(k_inputs):
        wk = w[c, k]
        for v in range(v_size):
            s[v] += wk * lq[k, v]
    m = -np.inf
    for v in range(v_size):
        m = max(m, s[v])
    sy = s[y] - m
    z = 0.0
    for v in range(v_size):
        e = math.exp(s[v] - m)
        s[v] = e
        z += e
    return c, sy - math.log(z), 1.0 / z


@njit(cache=True)
def logistic_predict(lq, p0, w, b, use_bias, mode, out):
    """The mixture row of the next target into ``out`` (V,), weights untouched (see ``mixture_weights``)."""
    _, _, inv = mixture_weights(lq, p0, w, b, use_bias, mode, 0, out)
    for v in range(out.shape[0]):
        out[v] *= inv


@njit(cache=True, inline="always")
def learn(lq, y, c, s, inv, w, b, lr, use_bias):
    """One gradient step on target ``y``'s log loss, from ``mixture_weights``' unnormalized row
    ``s`` and ``1 / Z`` (``inv``) for weight set ``c``: the gradient E_p[log p_k] - log p_k(y),
    summed over the unnormalized row and scaled once."""
    k_inputs, v_size = lq.shape
    for k in range(k_inputs):
        acc = 0.0
        for v in range(v_size):
            acc += s[v] * lq[k, v]
        w[c, k] -= lr * (acc * inv - lq[k, y])
    if use_bias:
        for v in range(v_size):
            b[v] -= lr * (s[v] * inv)
        b[y] += lr


@njit(cache=True)
def logistic_kernel(logq, p0, targets, w, b, lr, use_bias, mode, counts, out_logp, out_dist):
    """Mix and learn over the n targets of ``logq`` (K, n, V) = ``floored_log(dists)``, with ``p0``
    (n, V) the first input's distributions (for the context); ``w`` (C, K), ``b`` (V,) and
    ``counts`` (C,) are updated in place; ``out_dist`` has n rows, or 0 rows when not wanted."""
    k_inputs, n, v_size = logq.shape
    s = np.empty(v_size)
    want = out_dist.shape[0] > 0
    for i in range(n):
        lq = logq[:, i, :]
        y = targets[i]
        c, lp_y, inv = mixture_weights(lq, p0[i], w, b, use_bias, mode, y, s)
        out_logp[i] = lp_y
        counts[c] += 1
        if want:
            for v in range(v_size):
                out_dist[i, v] = s[v] * inv
        learn(lq, y, c, s, inv, w, b, lr, use_bias)


@njit(cache=True)
def grouped_context_bucket(p0, lq0, sizes, mode, n_buckets, v_size):
    """``context_bucket`` over groups of equal tokens (``pgolf_core.api.GroupedLogRows``): the
    entropy's terms weighted by the groups' sizes, the largest probability unchanged."""
    if mode == 0:
        return 0
    if mode == 1:
        h = 0.0
        for g in range(p0.shape[0]):
            if p0[g] > 0.0:
                h -= (p0[g] * lq0[g]) * sizes[g]
        x = h / math.log(v_size)
    else:
        x = 0.0
        for g in range(p0.shape[0]):
            if p0[g] > x:
                x = p0[g]
    b = int(x * n_buckets)
    return min(max(b, 0), n_buckets - 1)


@njit(cache=True)
def logistic_grouped_kernel(lv, sizes, offsets, target_group, p0, w, lr, mode, v_size, counts, out_logp):
    """``logistic_kernel`` without bias on grouped rows: target i's groups are ``offsets[i] ..
    offsets[i+1]-1`` of ``lv`` (K, G) (every input's floored log of each of a group's tokens) and
    ``sizes`` (G,) (its number of tokens); ``target_group`` (n,) the target's group; ``p0`` (G,) the
    first input's probabilities (read only for a context). A group of size m stands for m tokens with
    the same s_v, so the normalizer and the gradient's expectation weight its terms by m; each s_v,
    the maximum and the target's terms are the dense kernel's, operation for operation."""
    k_inputs = lv.shape[0]
    n = target_group.shape[0]
    s = np.empty(v_size)  # a target has at most V groups
    for i in range(n):
        g0 = offsets[i]
        n_groups = offsets[i + 1] - g0
        lq = lv[:, g0:g0 + n_groups]
        sz = sizes[g0:g0 + n_groups]
        y = target_group[i] - g0
        c = grouped_context_bucket(p0[g0:g0 + n_groups], lq[0], sz, mode, w.shape[0], v_size)
        for g in range(n_groups):
            s[g] = 0.0
        for k in range(k_inputs):
            wk = w[c, k]
            for g in range(n_groups):
                s[g] += wk * lq[k, g]
        m = -np.inf
        for g in range(n_groups):
            m = max(m, s[g])
        sy = s[y] - m
        z = 0.0
        for g in range(n_groups):
            e = math.exp(s[g] - m)
            s[g] = e
            z += sz[g] * e
        out_logp[i] = sy - math.log(z)
        inv = 1.0 / z
        counts[c] += 1
        for k in range(k_inputs):
            acc = 0.0
            for g in range(n_groups):
                acc += (sz[g] * s[g]) * lq[k, g]
            w[c, k] -= lr * (acc * inv - lq[k, y])


def logistic_reference(dists, targets, w, b, lr, use_bias, mode, floor):
    """Plain NumPy version of ``logistic_kernel``; returns (logp, dist, w, b, counts) and leaves
    its inputs untouched."""
    dists = np.asarray(dists, dtype=np.float64)
    w, b = np.array(w, dtype=np.float64), np.array(b, dtype=np.float64)
    k_inputs, n, v_size = dists.shape
    counts = np.zeros(w.shape[0], dtype=np.int64)
    logp, dist = np.empty(n), np.empty((n, v_size))
    for i in range(n):
        lq = np.log(np.maximum(dists[:, i], floor))
        p0 = dists[0, i]
        if mode == 0:
            c = 0
        else:
            x = -np.sum(p0[p0 > 0] * lq[0][p0 > 0]) / np.log(v_size) if mode == 1 else p0.max()
            c = min(max(int(x * w.shape[0]), 0), w.shape[0] - 1)
        counts[c] += 1
        s = w[c] @ lq + (b if use_bias else 0.0)
        e = np.exp(s - s.max())
        y = targets[i]
        logp[i] = s[y] - s.max() - np.log(e.sum())
        p = e / e.sum()
        dist[i] = p
        w[c] -= lr * (lq @ p - lq[:, y])
        if use_bias:
            onehot = np.zeros(v_size)
            onehot[y] = 1.0
            b -= lr * (p - onehot)
    return logp, dist, w, b, counts


# --- the compiled coding loop's step (``pgolf_core.api.StepKernel``): state (w (C, K), b (V,),
# counts (C,), lr, use_bias, mode, floor, lq (K, V) and s (V,) scratch, last (2,) = [c, 1 / Z]).
# ``predict`` keeps the target's floored logs, unnormalized row and normalizer for ``observe``,
# which learns from them exactly as ``logistic_kernel`` does after mixing a target.


@njit(cache=True)
def step_predict(state, dists, out):
    w, b, counts, lr, use_bias, mode, floor, lq, s, last = state
    k_inputs, v_size = dists.shape
    for k in range(k_inputs):
        for v in range(v_size):
            lq[k, v] = math.log(max(dists[k, v], floor))
    c, _, inv = mixture_weights(lq, dists[0], w, b, use_bias, mode, 0, s)
    for v in range(v_size):
        out[v] = s[v] * inv
    last[0], last[1] = c, inv


@njit(cache=True)
def step_observe(state, logp, token, dists):
    w, b, counts, lr, use_bias, mode, floor, lq, s, last = state
    c = np.int64(last[0])
    counts[c] += 1
    learn(lq, token, c, s, last[1], w, b, lr, use_bias)
