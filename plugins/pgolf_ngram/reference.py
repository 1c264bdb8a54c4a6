"""Plain-Python reference of the n-gram estimator (dicts of token tuples), for tests.

Written for clarity, not speed: it restates the estimator of ``expert.py`` with exact tuple
contexts so that the numba kernels can be checked against it.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from pgolf_core.stream.data import BOS_ID


class ReferenceNgram:
    """Interpolated Witten-Bell of order ``order``, contexts cut after the most recent BOS."""

    def __init__(self, vocab_size: int, order: int, bos_id: int = BOS_ID):
        self.V = vocab_size
        self.order = order
        self.bos_id = bos_id
        self.successors = defaultdict(lambda: defaultdict(int))  # context tuple -> {w: count}
        self.totals = defaultdict(int)  # context tuple -> sum of its counts

    def contexts(self, tokens, t):
        """Contexts of target t from shortest (the empty tuple) to longest."""
        ctx = ()
        out = [ctx]
        for k in range(1, self.order):
            if t - k < 0:
                break
            ctx = (int(tokens[t - k]),) + ctx
            out.append(ctx)
            if tokens[t - k] == self.bos_id:
                break
        return out

    def distribution(self, tokens, t) -> np.ndarray:
        p = np.full(self.V, 1.0 / self.V)
        for ctx in self.contexts(tokens, t):
            seen = self.successors.get(ctx)
            if not seen:
                continue
            total, distinct = self.totals[ctx], len(seen)
            counts = np.zeros(self.V)
            for w, c in seen.items():
                counts[w] = c
            p = (counts + distinct * p) / (total + distinct)
        return p

    def prob(self, tokens, t) -> float:
        w = int(tokens[t])
        p = 1.0 / self.V
        for ctx in self.contexts(tokens, t):
            seen = self.successors.get(ctx)
            if not seen:
                continue
            total, distinct = self.totals[ctx], len(seen)
            p = (seen.get(w, 0) + distinct * p) / (total + distinct)
        return p

    def count(self, tokens, t) -> None:
        for ctx in self.contexts(tokens, t):
            self.successors[ctx][int(tokens[t])] += 1
            self.totals[ctx] += 1

    def score(self, tokens, start, end) -> np.ndarray:
        out = np.empty(end - start)
        for t in range(start, end):
            out[t - start] = np.log(self.prob(tokens, t))
            self.count(tokens, t)
        return out
