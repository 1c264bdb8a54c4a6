"""The growable count tables of the n-gram experts (NumPy arrays; the kernels are in ``kernels.py``)."""

from __future__ import annotations

import hashlib

import numpy as np

from . import kernels

#: Bigram nodes are implicit (a V x V block of 20-byte rows and int32 counts) up to this vocabulary: 25 MB at V = 1024.
MAX_DENSE_BIGRAM_VOCAB = 1024
_INITIAL_HASHED = 1 << 12
MAX_COUNT = 2**31 - 1  # node fields are int32: ids, counts and totals stay below this


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n - 1).bit_length())


def _index_size(n_keys: int) -> int:
    """Smallest power-of-2 index that holds ``n_keys`` at load <= 0.7 (the kernels' ``has_room``)."""
    return _next_pow2(max(16, -(-10 * n_keys // 7)))


class SparseBuffers:
    """Output of the sparse rows of one span (``kernels.run_span``): per-target offsets into a pool
    of support entries that grows (doubles) when fewer than V entries are left, the backgrounds,
    and the kernel's scratch."""

    def __init__(self, n: int, vocab_size: int):
        self.off = np.zeros(n + 1, dtype=np.int64)
        self.base = np.empty(n)
        self.slope = np.empty(n)
        cap = 2 * vocab_size + 256 * n  # FineWeb's trigram contexts list ~150 successors on average; grown if not
        self.ids = np.empty(cap, dtype=np.int64)
        self.vals = np.empty(cap)
        self.mark = np.zeros(vocab_size, dtype=np.int64)
        self.val = np.empty(vocab_size)

    def make_room(self, i: int, vocab_size: int) -> None:
        """Room for V more entries after target ``i``'s offset."""
        used = int(self.off[i])
        if used + vocab_size > self.ids.shape[0]:
            cap = max(2 * self.ids.shape[0], used + vocab_size)
            for name in ("ids", "vals"):
                old = getattr(self, name)
                new = np.empty(cap, dtype=old.dtype)
                new[:used] = old[:used]
                setattr(self, name, new)


#: what ``run`` hands the kernel when no sparse rows are wanted (no entries: the kernel skips them)
NO_SPARSE = SparseBuffers(0, 0)


class CountTables:
    """Counts of every order up to ``order`` as a trie of nodes (layout described in ``kernels``).

    Every empty value is 0 and arrays come from ``np.zeros``, so untouched capacity costs no memory.
    """

    def __init__(self, vocab_size: int, order: int):
        V = self.vocab_size = int(vocab_size)
        self.order = int(order)
        self.dense_bigrams = order >= 2 and V <= MAX_DENSE_BIGRAM_VOCAB
        self.first_hashed = 1 + V + (V * V if self.dense_bigrams else 0)
        self.max_new = max(0, order - (2 if self.dense_bigrams else 1))  # hashed nodes one target may add
        cap = self.first_hashed + (_INITIAL_HASHED if self.max_new else 0)
        self.node = np.zeros((cap, 5), dtype=np.int32)  # [count, total, distinct, succ, last]
        # Views for full distributions (see ``kernels``), current while ``views_current``.
        self.dense = np.zeros(self.first_hashed, dtype=np.int32)
        self.views_current = True
        self.idx = np.zeros((_index_size(cap - self.first_hashed + self.max_new), 2), dtype=np.int64)
        self.succ = np.zeros(self._succ_need(0) + (4 * _INITIAL_HASHED if self.max_new else 0), dtype=np.int32)
        self.meta = np.array([self.first_hashed, 0], dtype=np.int64)  # [node ids in use, pool entries in use]

    def _succ_need(self, used: int) -> int:
        """Pool size that lets one more target append (the kernels' ``has_list_room``)."""
        return used + self.max_new * (2 * self.vocab_size + 4)

    @property
    def n_nodes(self) -> int:
        """Strings counted at least once (all orders, the empty string included)."""
        return int(np.count_nonzero(self.node[: self.meta[0], 0])) + 1

    def grow(self) -> None:
        """Double whichever table lacks room for one more target (called when a kernel stops)."""
        need = int(self.meta[0]) + self.max_new
        if need > self.node.shape[0]:
            cap = min(2 * self.node.shape[0], MAX_COUNT)
            if need > cap:
                raise MemoryError(f"n-gram tables are full ({MAX_COUNT} nodes)")
            node = np.zeros((cap, 5), dtype=np.int32)
            node[: self.node.shape[0]] = self.node
            self.node = node
        if self._succ_need(int(self.meta[1])) > self.succ.shape[0]:
            succ = np.zeros(max(2 * self.succ.shape[0], self._succ_need(int(self.meta[1]))), dtype=np.int32)
            succ[: self.succ.shape[0]] = self.succ
            self.succ = succ
        size = _index_size(need - self.first_hashed)
        if size > self.idx.shape[0]:
            new = np.zeros((size, 2), dtype=np.int64)
            kernels.rehash(self.idx, new)
            self.idx = new

    def run(self, tokens: np.ndarray, t0: int, t1: int, bos: int, logp: np.ndarray, dists: np.ndarray,
            keep_views: bool = False, sparse: "SparseBuffers | None" = None) -> None:
        """Score-then-count targets ``t0..t1-1`` of ``tokens`` (int64), growing tables as needed.

        With ``dists`` rows or ``sparse`` rows (a ``SparseBuffers`` for the span), or ``keep_views``
        (targets counted one by one after ``predict``), the views of the full distributions are
        brought up to date first and kept so; a score-only run leaves them stale (it is faster
        without them)."""
        keep_views = bool(keep_views or dists.shape[0] > 0 or sparse is not None)
        self.current_views(keep_views)
        sp = NO_SPARSE if sparse is None else sparse
        t = t0
        while t < t1:
            t = kernels.run_span(tokens, t, t1, t0, self.order, self.vocab_size, self.dense_bigrams, bos, self.first_hashed,
                                 self.idx, self.node, self.dense, self.succ, self.meta, logp, dists, keep_views,
                                 sp.off, sp.ids, sp.vals, sp.base, sp.slope, sp.mark, sp.val)
            if t < t1:
                self.grow()
                if sparse is not None:
                    sparse.make_room(t - t0, self.vocab_size)
        self.views_current = keep_views

    def predict(self, tokens: np.ndarray, t: int, bos: int, out: np.ndarray) -> None:
        """The full distribution of target ``t`` of ``tokens`` (int64, at least ``t`` entries) into
        ``out``, from the counts as they are: nothing is counted and no node is created."""
        self.current_views(True)
        kernels.predict_row(tokens, t, self.order, self.vocab_size, self.dense_bigrams, bos, self.idx, self.node,
                            self.dense, self.succ, out)

    def current_views(self, needed: bool) -> None:
        """Rebuild stale views when they are ``needed`` (they are derived from the counts alone, so
        this changes no count and no fingerprint)."""
        if needed and not self.views_current:
            self.rebuild_views()
            self.views_current = True

    def rebuild_views(self) -> None:
        """Dense counts and successor lists from the node rows (after score-only runs)."""
        self.dense[:] = self.node[: self.first_hashed, 0]
        n = int(self.meta[0])
        lo = 1 + self.vocab_size if self.dense_bigrams else 1  # first context whose children are hashed
        self.node[:, 3] = 0
        used = int(kernels.successor_layout(self.node, n, lo))
        if self._succ_need(used) > self.succ.shape[0]:
            self.succ = np.zeros(2 * self._succ_need(used), dtype=np.int32)
        kernels.fill_successors(self.vocab_size, lo, self.idx, self.node, self.succ)
        self.meta[1] = used

    def memory_bytes(self) -> int:
        return int(self.node.nbytes + self.dense.nbytes + self.idx.nbytes + self.succ.nbytes + self.meta.nbytes)

    def fingerprint(self) -> bytes:
        """Digest of every count: the node rows in use (ids are assigned deterministically)."""
        h = hashlib.blake2b(digest_size=16)
        h.update(self.meta[:1].tobytes())
        h.update(self.node[: self.meta[0], :3].tobytes())  # counts, totals, distinct
        return h.digest()
