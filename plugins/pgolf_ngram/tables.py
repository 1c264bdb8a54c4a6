"""The growable count tables of the n-gram experts (NumPy arrays; the kernels are in ``kernels.py``)."""

from __future__ import annotations

import hashlib

import numpy as np

from . import kernels

#: Dense successor rows cost V * V int64; above this vocabulary only the unigram row is dense.
MAX_DENSE_VOCAB = 4096
_INITIAL_ENTRIES = 1 << 12


def _empty_index(size: int) -> np.ndarray:
    idx = np.empty((size, 2), dtype=np.int64)
    idx[:, 0] = -1
    idx[:, 1] = 0
    return idx


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n - 1).bit_length())


class CountTables:
    """Counts of every order up to ``order`` (layout described in ``kernels``)."""

    def __init__(self, vocab_size: int, order: int):
        V = self.vocab_size = int(vocab_size)
        self.order = int(order)
        n_dense = V + 1 if (order >= 2 and V <= MAX_DENSE_VOCAB) else 1
        self.dense = np.zeros((n_dense, V), dtype=np.int64)
        first_hashed = V + 1  # ids 0..V are the empty context and the one-token contexts
        ctx_cap = _next_pow2(first_hashed + _INITIAL_ENTRIES)
        self.ctx_info = np.zeros((ctx_cap, 3), dtype=np.int64)
        self.ctx_info[:, 2] = -1
        self.ctx_idx = _empty_index(2 * ctx_cap)
        self.pair_idx = _empty_index(2 * _INITIAL_ENTRIES)
        self.pair_keys = np.zeros(_INITIAL_ENTRIES, dtype=np.int64)
        self.pair_next = np.zeros(_INITIAL_ENTRIES, dtype=np.int64)
        self.meta = np.array([first_hashed, 0], dtype=np.int64)

    @property
    def n_contexts(self) -> int:
        """Contexts with at least one count (all orders, the empty context included)."""
        return int(np.count_nonzero(self.ctx_info[: self.meta[0], 0]))

    @property
    def n_hashed_pairs(self) -> int:
        return int(self.meta[1])

    def grow(self) -> None:
        """Double whichever table lacks room for one more target (called when a kernel stops)."""
        need_c = int(self.meta[0]) + self.order
        need_p = int(self.meta[1]) + self.order
        if need_c > self.ctx_info.shape[0]:
            info = np.zeros((2 * self.ctx_info.shape[0], 3), dtype=np.int64)
            info[:, 2] = -1
            info[: self.ctx_info.shape[0]] = self.ctx_info
            self.ctx_info = info
        if 2 * need_c > self.ctx_idx.shape[0]:
            self.ctx_idx = self._rehashed(self.ctx_idx)
        if need_p > self.pair_keys.shape[0]:
            self.pair_keys = np.concatenate([self.pair_keys, np.zeros_like(self.pair_keys)])
            self.pair_next = np.concatenate([self.pair_next, np.zeros_like(self.pair_next)])
        if 2 * need_p > self.pair_idx.shape[0]:
            self.pair_idx = self._rehashed(self.pair_idx)

    @staticmethod
    def _rehashed(idx: np.ndarray) -> np.ndarray:
        new = _empty_index(2 * idx.shape[0])
        kernels.rehash(idx, new)
        return new

    def run(self, tokens: np.ndarray, t0: int, t1: int, bos: int, logp: np.ndarray, dists: np.ndarray) -> None:
        """Score-then-count targets ``t0..t1-1`` of ``tokens`` (int64), growing tables as needed."""
        t = t0
        while t < t1:
            t = kernels.run_span(tokens, t, t1, t0, self.order, self.vocab_size, bos, self.dense, self.ctx_info,
                                 self.ctx_idx, self.pair_idx, self.pair_keys, self.pair_next, self.meta, logp, dists)
            if t < t1:
                self.grow()

    def memory_bytes(self) -> int:
        arrays = (self.dense, self.ctx_info, self.ctx_idx, self.pair_idx, self.pair_keys, self.pair_next)
        return int(sum(a.nbytes for a in arrays))

    def fingerprint(self) -> bytes:
        """Digest of every count (dense rows, context totals, hashed pair counts and keys)."""
        h = hashlib.blake2b(digest_size=16)
        h.update(self.meta.tobytes())
        h.update(self.dense.tobytes())
        h.update(self.ctx_info[: self.meta[0], :2].tobytes())
        h.update(self.pair_idx.tobytes())
        return h.digest()
