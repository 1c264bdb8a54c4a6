"""Log-space helpers shared by the mixers (NumPy only)."""

from __future__ import annotations

import math

import numpy as np


def logsumexp(a: np.ndarray, axis: int = 0) -> np.ndarray:
    """log(sum(exp(a))) along ``axis``; -inf where every entry is -inf (an input that gave zero
    probability to everything), never NaN."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:  # the per-target path (a few weights): the same operations, less call overhead
        top = a.max()
        top = top if math.isfinite(top) else 0.0
        with np.errstate(divide="ignore"):
            return np.log(np.exp(a - top).sum()) + top
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(a - m), axis=axis)) + np.squeeze(m, axis=axis)
    return out


def normalize_log(logw: np.ndarray) -> np.ndarray:
    """Log-weights shifted so that they exponentiate to a point of the simplex."""
    return logw - logsumexp(logw, axis=0)


def mixture_logp(logw: np.ndarray, logp: np.ndarray) -> np.ndarray:
    """log sum_k w[i, k] p[k, i] for normalized log-weights ``logw`` (n, K) and ``logp`` (K, n)."""
    return logsumexp(logw.T + logp, axis=0)


def mixture_distribution(logw: np.ndarray, dists: np.ndarray) -> np.ndarray:
    """sum_k w[i, k] dists[k, i, :] -> (n, V) for normalized log-weights ``logw`` (n, K)."""
    w = np.exp(logw)  # (n, K)
    return np.einsum("nk,knv->nv", w, np.asarray(dists, dtype=np.float64))
