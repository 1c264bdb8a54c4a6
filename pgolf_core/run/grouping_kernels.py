"""numba kernel of ``pgolf_core.run.grouping`` (imported only when grouped rows are formed)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def group_span(targets, off, ids, vals, base, slope, counts, hist, active, where, sub, meta, mark, owner, slot, utok,
               g_off, g_vals, g_sizes, g_target, mass, low):
    """Group the rows of the n targets of a span, counting each target after its row is grouped.

    Inputs per expert k and target i: the support ``ids``/``vals[off[k, i]:off[k, i + 1]]`` and the
    background ``base[k, i] + slope[k, i] * counts[v]``. State: ``counts`` (V,), ``hist`` (count
    value -> tokens with that count), ``active[:meta[0]]`` the count values in use and ``where``
    their positions there (-1: not in use), ``meta = [in use, largest count, last stamp]``;
    ``sub``, ``mark``, ``owner``, ``slot``, ``utok`` are scratch (``sub`` all zero between targets).

    Writes target i's groups at ``g_off[i]:g_off[i + 1]`` of ``g_vals`` (K, G) / ``g_sizes`` (G,):
    first one group per token of the union of the supports (in order of first appearance), then
    one per count value in use that still has tokens outside the union; ``g_target[i]`` is the
    group of target i's token; ``mass``/``low`` (K, n) each expert's row sum and smallest value
    (the background's in closed form: an affine function of the count sums to base * tokens +
    slope * their counts and is smallest at the smallest or the largest count).

    Returns (0, 0, 0), or (1, k, i) for a token id outside the vocabulary and (2, k, i) for a token
    listed twice in one support (the rows would be ambiguous)."""
    k_inputs, n = base.shape
    V = counts.shape[0]
    n_active = meta[0]
    stamp = meta[2]
    acc = np.empty(k_inputs)  # each expert's mass and smallest value over the union's groups
    acc_low = np.empty(k_inputs)
    g = 0
    for i in range(n):
        g_off[i] = g
        stamp += 1
        first = g
        for k in range(k_inputs):
            key = stamp * k_inputs + k
            for j in range(off[k, i], off[k, i + 1]):
                v = ids[j]
                if v < 0 or v >= V:
                    meta[2] = stamp
                    return 1, k, i
                if owner[v] == key:
                    meta[2] = stamp
                    return 2, k, i
                owner[v] = key
                if mark[v] != stamp:  # a new token of the union: every expert's background first
                    mark[v] = stamp
                    slot[v] = g
                    c = counts[v]
                    for kk in range(k_inputs):
                        g_vals[kk, g] = base[kk, i] + slope[kk, i] * c
                    g_sizes[g] = 1.0
                    utok[g - first] = v
                    sub[c] += 1
                    g += 1
                g_vals[k, slot[v]] = vals[j]
        n_union = g - first
        for kk in range(k_inputs):
            acc[kk] = 0.0
            acc_low[kk] = np.inf
        for u in range(first, g):  # (one pass, the K sums side by side)
            for kk in range(k_inputs):
                x = g_vals[kk, u]
                acc[kk] += x
                acc_low[kk] = min(acc_low[kk], x)
        y = targets[i]
        cy = counts[y]
        ty = slot[y] if mark[y] == stamp else -1
        # the background: one group per count value with tokens left; its mass is
        # base * (tokens) + slope * (their counts) and its extremes are at the extreme counts
        n_bg, c_bg, c_min, c_max = 0, 0, V + i + meta[1] + 1, -1
        for a in range(n_active):
            c = active[a]
            m = hist[c] - sub[c]
            if m > 0:
                for kk in range(k_inputs):
                    g_vals[kk, g] = base[kk, i] + slope[kk, i] * c
                g_sizes[g] = m
                if ty < 0 and c == cy:
                    ty = g
                n_bg += m
                c_bg += m * c
                c_min = min(c_min, c)
                c_max = max(c_max, c)
                g += 1
        for u in range(n_union):
            sub[counts[utok[u]]] = 0
        g_target[i] = ty
        for kk in range(k_inputs):
            b, sl = base[kk, i], slope[kk, i]
            mass[kk, i] = acc[kk] + (b * n_bg + sl * c_bg)
            lo = acc_low[kk]
            if n_bg > 0:
                lo = min(lo, min(b + sl * c_min, b + sl * c_max))
            low[kk, i] = lo
        # count target i: its token moves from count value cy to cy + 1
        hist[cy] -= 1
        if hist[cy] == 0:
            a = where[cy]
            last = active[n_active - 1]
            active[a] = last
            where[last] = a
            where[cy] = -1
            n_active -= 1
        counts[y] = cy + 1
        hist[cy + 1] += 1
        if hist[cy + 1] == 1:
            active[n_active] = cy + 1
            where[cy + 1] = n_active
            n_active += 1
        if cy + 1 > meta[1]:
            meta[1] = cy + 1
    g_off[n] = g
    meta[0] = n_active
    meta[2] = stamp
    return 0, 0, 0
