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
