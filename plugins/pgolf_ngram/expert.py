"""The n-gram expert: interpolated Witten-Bell counts of scored tokens, updated token by token.

Estimator (Witten & Bell 1991, interpolated form as in Chen & Goodman 1998). For a target w with
context h of order k (the k-1 previous tokens) and its suffix h' of order k-1:

    p_k(w | h) = (c(h, w) + N1+(h) * p_{k-1}(w | h')) / (c(h) + N1+(h)),     p_0(w) = 1 / V,

where c(h, w) counts w after h, c(h) = sum_w c(h, w) and N1+(h) is the number of distinct w seen
after h; a context never seen passes p_{k-1} through. Starting from empty counts, each level is a
convex combination of exact counts and the lower level, so every distribution sums to 1 over the
vocabulary (to rounding) and gives every token positive mass. Witten-Bell needs no discount
parameters, which suits a one-pass online counter that cannot tune on held-out data.

Stream start and documents. Target t uses up to ``order - 1`` previous tokens, but never reaches
before position 0 and never past the most recent BOS (id 1): BOS itself stays in the context (the
first tokens of a document are predicted from ``(BOS,)``, ``(BOS, a)``, ...), the previous document
does not. Documents of the validation set are unrelated web pages in arbitrary order, so their
tail says nothing about the next one, while "start of document" is a strong context of its own.
A target with a shorter context simply uses fewer orders. BOS is itself an ordinary target (the
end of a document is predictable from its last tokens).

Decoding target by target (``predict``/``observe``, the compressor's protocol) reads and counts the
same tables with the same kernels, so its rows are the rows of ``distributions`` bit for bit.

Counts come only from scored targets: each target is scored from the counts of targets before it,
then counted at every order it used (score first, C3). Strings are stored exactly (a trie keyed by
``parent id * V + token``, see ``kernels``), so no two contexts ever share counts and nothing is hashed
into a coarser context, at any order.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from pgolf_core.api import Expert, SparseRows, StepKernel
from pgolf_core.stream.data import BOS_ID
from pgolf_core.errors import DataError, UsageError

from .tables import CountTables, SparseBuffers

MAX_ORDER = 16


class NgramExpert(Expert):
    """Online interpolated Witten-Bell n-gram model of order ``order`` (1 = unigram).

    ``dtype`` is the precision of the rows ``distributions`` returns: each row is computed in float64
    and stored as float64 (the default: log of the target's entry equals ``score`` to rounding, so
    BPB is the same whether a mixer asks for full distributions or not) or float32 (half the memory
    traffic for the mixer; rows still sum to 1 within 1e-6, entries carry a relative rounding of
    6e-8). ``score`` is always float64.
    """

    def __init__(self, vocab_size: int, order: int, bos_id: int = BOS_ID, dtype="float64"):
        super().__init__(vocab_size)
        if not 1 <= int(order) <= MAX_ORDER:
            raise UsageError(f"n-gram order must be from 1 to {MAX_ORDER}, got {order}")
        try:
            self.dtype = np.dtype(dtype) if dtype is not None else None
        except TypeError:
            self.dtype = None
        if self.dtype not in (np.float64, np.float32):
            raise UsageError(f"n-gram dtype must be float64 or float32, got {dtype!r}")
        self.order = int(order)
        self.bos_id = int(bos_id)
        self.reset()

    def reset(self) -> None:
        self.tables = CountTables(self.vocab_size, self.order)
        self._next_target = 1  # spans must arrive in order, without gaps (C4)

    def score(self, tokens: np.ndarray, start: int, end: int) -> np.ndarray:
        return self._run(tokens, start, end, want_dist=False)[0]

    def distributions(self, tokens: np.ndarray, start: int, end: int) -> np.ndarray:
        return self._run(tokens, start, end, want_dist=True)[1]

    def sparse_rows(self, tokens: np.ndarray, start: int, end: int) -> SparseRows:
        """The rows of ``distributions`` as ``SparseRows`` (same counting): the support of a target
        is the set of tokens counted after its contexts of order >= 2, and every other token gets
        the unigram level's value, which is affine in its count (the unigram counts are the counts
        of the targets before t: every target is counted at the root from target 1 on). Each
        entry is the float64 value ``distributions`` computes, bit for bit (``kernels.sparse_row``)."""
        _, _, sp = self._run(tokens, start, end, want_dist=False, sparse=True)
        m = int(sp.off[-1])
        return SparseRows(sp.off, sp.ids[:m], sp.vals[:m], sp.base, sp.slope)

    def log_distributions(self, tokens: np.ndarray, start: int, end: int) -> np.ndarray:
        """The logs of the rows, float32 (for a geometric mixer outside strict scoring): the rows
        are formed in float32 and their log taken in place. No entry is 0 (every order mixes in
        the uniform 1 / V), so no floor is needed."""
        rows = self._run(tokens, start, end, want_dist=True, dtype=np.float32)[1]
        return np.log(rows, out=rows)

    # --- decoding, target by target (see ``Expert``): the same counts and rows as ``distributions``

    def predict(self, tokens: np.ndarray, t: int) -> np.ndarray:
        """Row of target ``t`` (``self.dtype``) from the counts of targets < t, without counting: a
        read-only lookup of its contexts (a context never seen passes the lower order through), so
        the row is the one ``distributions`` would give for ``t`` and the state stays as it is."""
        t = int(t)
        self._check_span(t, t, len(tokens))  # an empty span at t: target t itself need not exist yet
        lo, window = self._window(tokens, t, t)
        row = np.empty(self.vocab_size, dtype=self.dtype)
        self.tables.predict(window, t - lo, self.bos_id, row)
        return row

    def observe(self, tokens: np.ndarray, t: int) -> None:
        """Count target ``t`` as ``distributions`` would (views of the full distributions kept
        current, so later ``predict`` and ``distributions`` calls need no rebuild)."""
        self._run(tokens, int(t), int(t) + 1, want_dist=False, keep_views=True)

    def step_kernel(self) -> Optional[StepKernel]:
        """``predict``/``observe`` as the kernels they call (see ``kernels.step_predict``), over the
        tables' current arrays; float32 rows stay on the Python path (their rounding is ``predict``'s)."""
        if self.dtype != np.float64:
            return None
        from . import kernels

        tb = self.tables
        tb.current_views(True)
        state = (self.order, self.vocab_size, tb.dense_bigrams, self.bos_id, tb.first_hashed, tb.idx, tb.node, tb.dense,
                 tb.succ, tb.meta, np.zeros((3, self.order), dtype=np.int64), np.zeros(self.order))
        return StepKernel(kernels.step_predict, kernels.step_observe, state, room=kernels.step_room, grow=tb.grow,
                          done=self._stepped)

    def _stepped(self, end: int) -> None:
        self._next_target = int(end)

    # --- spans

    def _run(self, tokens, start: int, end: int, want_dist: bool, keep_views: bool = False, dtype=None,
             sparse: bool = False):
        """(log-probabilities, full rows or none, ``SparseBuffers`` or None) of targets [start, end)."""
        start, end = int(start), int(end)
        self._check_span(start, end, len(tokens))
        lo, window = self._window(tokens, start, end)
        n = end - start
        logp = np.empty(n, dtype=np.float64)
        dists = np.empty((n if want_dist else 0, self.vocab_size), dtype=dtype or self.dtype)
        sp = SparseBuffers(n, self.vocab_size) if sparse else None
        if n:
            self.tables.run(window, start - lo, end - lo, self.bos_id, logp, dists, keep_views, sp)
        self._next_target = end
        return logp, dists, sp

    def _check_span(self, start: int, end: int, n_tokens: int) -> None:
        """Targets ``[start, end)`` must continue the ones counted so far (C4) and fit ``n_tokens``."""
        if start != self._next_target:
            raise UsageError(
                f"expert {self.name or 'ngram'!r}: spans must be contiguous from target 1; expected a span "
                f"starting at {self._next_target}, got [{start}, {end})"
            )
        if end < start or end > n_tokens:
            raise UsageError(f"expert {self.name or 'ngram'!r}: bad span [{start}, {end}) for {n_tokens} tokens")

    def _window(self, tokens, start: int, end: int):
        """(offset, int64 copy of ``tokens[offset:end]``): only the span and the order-1 tokens before
        it are needed, so that window is copied, not the stream."""
        lo = max(0, start - (self.order - 1))
        window = np.ascontiguousarray(tokens[lo:end], dtype=np.int64)
        self._check_ids(window, lo)
        return lo, window

    def _check_ids(self, window: np.ndarray, offset: int) -> None:
        if window.size <= 16:  # target by target: a few ids, cheaper as Python ints than as reductions
            ids = window.tolist()
            bad_range = bool(ids) and (min(ids) < 0 or max(ids) >= self.vocab_size)
        else:
            bad_range = bool(window.min() < 0 or window.max() >= self.vocab_size)
        if bad_range:
            bad = int(np.argmax((window < 0) | (window >= self.vocab_size)))
            raise DataError(
                f"expert {self.name or 'ngram'!r}: token id {int(window[bad])} at position {offset + bad} is out of "
                f"range for a vocabulary of {self.vocab_size}"
            )

    def state_fingerprint(self) -> Optional[bytes]:
        return self.tables.fingerprint()

    def describe(self) -> dict:
        t = self.tables
        return {
            "order": self.order,
            "estimator": "interpolated Witten-Bell",
            "documents": f"contexts stop at BOS (id {self.bos_id})",
            "nodes": t.n_nodes,
            "hashed_nodes": int(t.meta[0]) - t.first_hashed,
            "dense_bigrams": bool(t.dense_bigrams),
            "dtype": self.dtype.name,
            "memory_bytes": t.memory_bytes(),
        }
