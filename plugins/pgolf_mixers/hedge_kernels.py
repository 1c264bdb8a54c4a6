"""numba kernel of sequential (per-token) Hedge with fixed share, and its plain NumPy reference.

Per target i, with normalized log-weights lw (K,):

    used[i] = lw                                   (the weights that score target i)
    v_k     = lw_k + eta * logp[k, i];  v -= logsumexp(v)      (the Hedge step on the log loss)
    lw_k    = log((1 - alpha) exp(v_k) + alpha / K)            (fixed share, alpha = 0: plain Hedge)

A target that every input gives probability 0 carries no information about the inputs: the weights
stay as they were (the mixture itself is -inf there, which the evaluator reports).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def hedge_share_kernel(lw, logp, eta, alpha, used):
    """Run the update over ``logp`` (K, n); write the log-weights used per target into ``used``
    (n, K); update ``lw`` (K,) in place to the weights for the next target."""
    k_inputs, n = logp.shape
    v = np.empty(k_inputs)
    log_keep = math.log1p(-alpha) if alpha < 1.0 else -np.inf
    log_spread = math.log(alpha / k_inputs) if alpha > 0.0 else -np.inf
    for i in range(n):
        m = -np.inf
        for k in range(k_inputs):
            used[i, k] = lw[k]
            v[k] = lw[k] + eta * logp[k, i]
            if v[k] > m:
                m = v[k]
        if m == -np.inf:
            continue
        s = 0.0
        for k in range(k_inputs):
            s += math.exp(v[k] - m)
        norm = m + math.log(s)
        for k in range(k_inputs):
            x = v[k] - norm + log_keep
            if alpha > 0.0:
                hi = max(x, log_spread)
                lo = min(x, log_spread)
                x = hi + math.log1p(math.exp(lo - hi))
            lw[k] = x


def hedge_share_reference(lw, logp, eta, alpha):
    """Plain NumPy version of ``hedge_share_kernel``; returns (used (n, K), final lw)."""
    lw = np.array(lw, dtype=np.float64)
    k_inputs, n = logp.shape
    used = np.empty((n, k_inputs))
    for i in range(n):
        used[i] = lw
        v = lw + eta * logp[:, i]
        m = v.max()
        if m == -np.inf:
            continue
        v = v - (m + np.log(np.sum(np.exp(v - m))))
        if alpha > 0.0:
            lw = np.logaddexp(np.log1p(-alpha) + v, np.log(alpha / k_inputs))
        else:
            lw = v
    return used, lw


# --- the compiled coding loop's step (``pgolf_core.api.StepKernel``) for plain per-token Hedge:
# state (lw (K,) normalized log-weights, seen (1,) targets mixed so far, eta, solo_first), the
# computations of ``HedgeMixer.predict`` / ``observe`` in that mode.


@njit(cache=True)
def _normalized(lw, w):
    """w = exp(lw - logsumexp(lw)) (``logspace.logsumexp`` with an infinite max read as 0)."""
    top = -np.inf
    for k in range(lw.shape[0]):
        top = max(top, lw[k])
    top = top if math.isfinite(top) else 0.0
    z = 0.0
    for k in range(lw.shape[0]):
        z += math.exp(lw[k] - top)
    lse = math.log(z) + top
    for k in range(lw.shape[0]):
        w[k] = lw[k] - lse
    return lse


@njit(cache=True)
def step_predict(state, dists, out):
    lw, seen, eta, solo_first = state
    k_inputs, v_size = dists.shape
    if seen[0] < solo_first:  # the first input alone (``solo_first``)
        for v in range(v_size):
            out[v] = dists[0, v]
        return
    w = np.empty(k_inputs)
    _normalized(lw, w)
    for k in range(k_inputs):
        w[k] = math.exp(w[k])
    # one pass per input over the vocabulary (each vectorizes), adding inputs in order as einsum does
    w0 = w[0]
    for v in range(v_size):
        out[v] = w0 * dists[0, v]
    for k in range(1, k_inputs):
        wk = w[k]
        for v in range(v_size):
            out[v] += wk * dists[k, v]


@njit(cache=True)
def step_observe(state, logp, token, dists):
    lw, seen, eta, solo_first = state
    moved = seen[0] >= solo_first
    seen[0] += 1
    if not moved:  # a solo target does not move the weights
        return
    for k in range(lw.shape[0]):
        lw[k] += eta * logp[k]
    _normalized(lw, lw)
