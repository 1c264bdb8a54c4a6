"""Grouped rows: the experts' sparse rows (``api.SparseRows``) of a span joined into one partition of
the vocabulary per target (``api.GroupedLogRows``), for a mixer's ``mix_log_grouped``.

Why it is exact. At target t let U be the union of the experts' supports. A token v outside U gets
from every expert k the value base_k + slope_k * count_t(v): its values depend on v only through
count_t(v), the number of earlier targets equal to v. So the vocabulary splits into the singletons
of U and, for each count value c in use, the tokens outside U counted c times: hist_t[c] minus the
tokens of U counted c times, all given the same value by every expert. A sum over the vocabulary
of any function of the K values (a normalizer, an expectation) is then a sum over the groups, each
weighted by its size, and a maximum is a maximum over the groups. The values of each group are
computed with the same float64 operations as the dense rows (base + slope * c), so the inputs are
bitwise those of the dense path; only the order of the sums over the vocabulary differs.

What it costs. The loop owns the counts (``StreamCounts``: counts of scored targets only, C3), a
histogram of them and the list of the count values in use, kept current target by target, so a
target costs O(|U| + distinct counts) instead of O(V): on FineWeb at V = 8192 a trigram's |U| is
about 140 on average and the distinct counts a few hundred.

This module imports numba only inside ``StreamCounts.group`` (the core imports neither torch nor
numba at load).
"""

from __future__ import annotations

import numpy as np

from ..errors import PgolfError


class StreamCounts:
    """count_t(v) for the target t the loop is at (``upto``): occurrences of v among targets
    1 .. upto - 1, a histogram of those counts and the count values in use.

    ``sync(view, start)`` brings the counts to target ``start`` from the sealed stream (a loop that
    resumed from a saved state, or that took the dense path before, recounts once); ``group``
    counts the span's targets one by one as it groups their rows."""

    def __init__(self, vocab_size: int):
        self.vocab_size = V = int(vocab_size)
        self.counts = np.zeros(V, dtype=np.int64)
        self.upto = 1
        # meta = [count values in use, largest count, last stamp]
        self.meta = np.zeros(3, dtype=np.int64)
        self.hist = np.zeros(0, dtype=np.int64)
        self.where = np.zeros(0, dtype=np.int64)
        self.sub = np.zeros(0, dtype=np.int64)
        self.active = np.zeros(V + 1, dtype=np.int64)  # count values in use (at most V distinct)
        self.mark = np.zeros(V, dtype=np.int64)  # a token's stamp: in the union of this target
        self.owner = np.zeros(V, dtype=np.int64)  # a token's (stamp, expert) key: seen twice in one support
        self.slot = np.zeros(V, dtype=np.int64)  # a token's group when it is in the union
        self.utok = np.zeros(V, dtype=np.int64)  # the union's tokens, in group order
        self._vals = np.zeros((0, 0))
        self._sizes = np.zeros(0)
        self._recount(np.zeros(0, dtype=np.int64))

    def _recount(self, targets: np.ndarray) -> None:
        """Counts, histogram and count values in use from ``targets`` (all targets before ``upto``)."""
        V = self.vocab_size
        self.counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=V).astype(np.int64)
        top = int(self.counts.max()) if V else 0
        self._hist_room(top + 2)
        self.hist[:] = 0
        np.add.at(self.hist, self.counts, 1)
        used = np.flatnonzero(self.hist)
        self.active[:len(used)] = used
        self.where[:] = -1
        self.where[used] = np.arange(len(used))
        self.meta[0], self.meta[1] = len(used), top

    def _hist_room(self, size: int) -> None:
        if self.hist.shape[0] < size:
            size = max(size, 2 * self.hist.shape[0])
            hist, where = np.zeros(size, dtype=np.int64), np.full(size, -1, dtype=np.int64)
            hist[:self.hist.shape[0]] = self.hist
            where[:self.where.shape[0]] = self.where
            self.hist, self.where, self.sub = hist, where, np.zeros(size, dtype=np.int64)

    def sync(self, view: np.ndarray, start: int) -> None:
        """Counts of the targets before ``start`` (``view`` holds at least ``start`` tokens)."""
        if self.upto != start:
            self._recount(view[1:start])
            self.upto = int(start)

    def group(self, sparse: list, targets: np.ndarray, who: list, floor: float):
        """Group the span's rows (``sparse``: one ``SparseRows`` per expert, ``who`` their names) and
        count its ``targets``. Returns ``(GroupedLogRows, values, mass, low)``: the groups with the
        log path's float32 logs of the values (cast to float32, floored at ``floor``, NumPy's log:
        the same functions on the same numbers as the dense log path, so the same logs), every
        expert's float64 value on each group (K, G), and each expert's row mass and smallest entry
        per target (K, n) (for the guards)."""
        from ..api import GroupedLogRows
        from .grouping_kernels import group_span

        k_inputs, n, V = len(sparse), len(targets), self.vocab_size
        off = np.empty((k_inputs, n + 1), dtype=np.int64)
        base, slope = np.empty((k_inputs, n)), np.empty((k_inputs, n))
        pos = 0
        for k, sp in enumerate(sparse):
            off[k] = sp.offsets + pos
            pos += int(sp.offsets[-1])
            base[k], slope[k] = sp.base, sp.slope
        ids = np.concatenate([np.asarray(sp.ids, dtype=np.int64) for sp in sparse])
        vals = np.concatenate([np.asarray(sp.values, dtype=np.float64) for sp in sparse])
        # at most min(V, |supports| + count values in use) groups per target; one more value per target
        support = (off[:, 1:] - off[:, :-1]).sum(axis=0)
        cap = int(np.minimum(V, support + int(self.meta[0]) + np.arange(1, n + 1)).sum())
        if self._vals.shape[0] != k_inputs or self._vals.shape[1] < cap:
            self._vals = np.empty((k_inputs, max(cap, 2 * self._vals.shape[1] if self._vals.shape[0] == k_inputs else 0)))
            self._sizes = np.empty(self._vals.shape[1])
        self._hist_room(int(self.meta[1]) + n + 2)
        g_off, g_target = np.empty(n + 1, dtype=np.int64), np.empty(n, dtype=np.int64)
        mass, low = np.empty((k_inputs, n)), np.empty((k_inputs, n))
        err, bad_k, bad_i = group_span(np.asarray(targets, dtype=np.int64), off, ids, vals, base, slope, self.counts,
                                       self.hist, self.active, self.where, self.sub, self.meta, self.mark, self.owner,
                                       self.slot, self.utok, g_off, self._vals, self._sizes, g_target, mass, low)
        if err:
            what = "a token id outside the vocabulary" if err == 1 else "a token twice"
            raise PgolfError(f"expert {who[bad_k]!r}'s sparse rows list {what} in the support of target "
                             f"{self.upto + bad_i}")
        self.upto += n
        g = int(g_off[n])
        values = self._vals[:, :g]
        log_values = values.astype(np.float32)
        if low.size and low.min() < floor:  # (a float64 value at or above the floor casts at or above it)
            np.maximum(log_values, np.float32(floor), out=log_values)
        np.log(log_values, out=log_values)
        return GroupedLogRows(log_values, self._sizes[:g], g_off, g_target), values, mass, low
