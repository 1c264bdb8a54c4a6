"""The seed record's n-gram experts (PR #700), reproduced to decompose its published number.

The seed keeps three count tables and turns them into probabilities with additive smoothing:

    unigram   p(v)           = (c(v) + 0.1) / (N + 0.1 V)
    bigram    p(v | a)       = (c(a, v) + 0.1) / (c(a) + 0.1 V)
    trigram   p(v | a, b)    = (c(h, v) + 0.01) / (max(c(h), 1) + 0.01 V),   h = hash(a, b) mod 65,536

with ``hash(a, b) = (a * 36313) XOR (b * 27191)`` and ``a = 0`` for the stream's first target. The
tables are **not** updated token by token: after the seed's chunk ``k`` of ``chunk`` targets
(131,072) is scored, it adds the tokens ``k * chunk .. (k + 1) * chunk`` (both ends included, so
each boundary token is counted twice by the unigram and the triple across a boundary never), and
every target of the next chunk is predicted from those tables. The update is a fixed rule of the
stream position, so the rows do not depend on how the evaluator cuts the stream into spans.

Legality. Unigram and bigram rows sum to 1. The seed's trigram clamps an empty bucket's total to 1,
so once any chunk is counted, a bucket never seen gives each token 0.01 / (1 + 0.01 V): at V = 1024
the row sums to 0.911. That only costs bits (a sub-normalized code is never shorter than its
normalized completion), but it is not a distribution, so ``empty="seed"`` (the default, faithful)
is known invalid (C2) and runs only with ``--allow-invalid``; ``empty="uniform"`` gives an empty
bucket the uniform row instead, a legal variant for the part of the number that does not depend on
it. Before the first update every row is uniform, as in the seed.

Counts are stored sparsely (sorted keys ``context * V + token``), so memory follows the data and
not the 65,536 x V table the seed keeps on its GPU. Rows are computed in float64 (the seed's are
float32 on the GPU: its figures agree to float32 rounding).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from pgolf_core.api import Expert
from pgolf_core.errors import UsageError

SEED_CHUNK = 131072  # TTT_CHUNK_TOKENS of the seed: its tables change once per chunk
SEED_BUCKETS = 65536  # the seed's trigram hash size
HASH_A, HASH_B = 36313, 27191  # the seed's trigram hash multipliers
EMPTY = ("seed", "uniform")


class SparseCounts:
    """Counts of integer keys, as sorted unique keys and their counts (memory follows the data)."""

    def __init__(self):
        self.keys = np.zeros(0, dtype=np.int64)
        self.counts = np.zeros(0, dtype=np.int64)

    def _find(self, keys: np.ndarray):
        """(insertion index, stored?) of each key."""
        idx = np.searchsorted(self.keys, keys)
        found = idx < len(self.keys)
        found[found] = self.keys[idx[found]] == keys[found]
        return idx, found

    def add(self, keys: np.ndarray) -> None:
        new, c = np.unique(np.asarray(keys, dtype=np.int64), return_counts=True)
        idx, hit = self._find(new)
        self.counts[idx[hit]] += c[hit]
        miss = ~hit
        self.keys = np.insert(self.keys, idx[miss], new[miss])
        self.counts = np.insert(self.counts, idx[miss], c[miss])

    def get(self, keys: np.ndarray) -> np.ndarray:
        keys = np.asarray(keys, dtype=np.int64)
        idx, found = self._find(keys)
        out = np.zeros(keys.shape, dtype=np.int64)
        out[found] = self.counts[idx[found]]
        return out

    def scatter_rows(self, contexts: np.ndarray, width: int, out: np.ndarray, scale: np.ndarray) -> None:
        """``out[i, v] += counts[contexts[i] * width + v] * scale[i]`` for every stored key."""
        lo = np.searchsorted(self.keys, contexts * width)
        hi = np.searchsorted(self.keys, (contexts + 1) * width)
        lens = hi - lo
        total = int(lens.sum())
        if not total:
            return
        rows = np.repeat(np.arange(len(contexts)), lens)
        pos = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens) + np.repeat(lo, lens)
        cols = self.keys[pos] - contexts[rows] * width
        out[rows, cols] += self.counts[pos] * scale[rows]

    def nbytes(self) -> int:
        return self.keys.nbytes + self.counts.nbytes


class SeedNgramExpert(Expert):
    """One of the seed's count tables (order 1, 2 or 3) with its additive estimator; see the module."""

    def __init__(self, vocab_size: int, order: int, alpha: float, chunk: int = SEED_CHUNK,
                 buckets: int = SEED_BUCKETS, empty: str = "seed"):
        super().__init__(vocab_size)
        if order not in (1, 2, 3):
            raise UsageError(f"the seed's n-gram experts have order 1, 2 or 3, got {order}")
        if empty not in EMPTY:
            raise UsageError(f"option empty must be one of {', '.join(EMPTY)}, got {empty!r}")
        self.order, self.alpha, self.chunk = int(order), float(alpha), int(chunk)
        self.buckets, self.empty = int(buckets), empty
        if self.order == 3 and empty == "seed":
            self.known_invalid = True
            mass = 0.01 * self.vocab_size / (1 + 0.01 * self.vocab_size) if self.alpha == 0.01 else None
            self.invalid_reason = (
                "the seed's hashed trigram clamps an empty bucket's total to 1, so its row sums to "
                f"alpha V / (1 + alpha V){f' = {mass:.3f}' if mass is not None else ''}, not 1 (C2); "
                "empty=uniform is the legal variant")
        self.reset()

    def reset(self) -> None:
        self.table = SparseCounts()
        self.totals = np.zeros(self.vocab_size if self.order == 2 else self.buckets if self.order == 3 else 1,
                               dtype=np.int64)
        self.unigram = np.zeros(self.vocab_size, dtype=np.int64)
        self.n_tokens = 0  # the seed's total_tokens: every token of every update, boundaries twice
        self.chunks_counted = 0
        self._next_target = 1

    # --- the seed's update rule

    def _absorb_through(self, tokens: np.ndarray, last_scored: int) -> None:
        """Apply every chunk update whose last target (``(k + 1) * chunk``) is ``<= last_scored``."""
        while (self.chunks_counted + 1) * self.chunk <= last_scored:
            k = self.chunks_counted
            x = np.asarray(tokens[k * self.chunk:(k + 1) * self.chunk + 1], dtype=np.int64)
            self.n_tokens += len(x)
            if self.order == 1:
                self.unigram += np.bincount(x, minlength=self.vocab_size)
            elif self.order == 2 and len(x) >= 2:
                self.table.add(x[:-1] * self.vocab_size + x[1:])
                self.totals += np.bincount(x[:-1], minlength=self.vocab_size)
            elif self.order == 3 and len(x) >= 3:
                h = self._hash(x[:-2], x[1:-1])
                self.table.add(h * self.vocab_size + x[2:])
                self.totals += np.bincount(h, minlength=self.buckets)
            self.chunks_counted += 1

    def _hash(self, prev2: np.ndarray, prev1: np.ndarray) -> np.ndarray:
        return ((prev2 * HASH_A) ^ (prev1 * HASH_B)) % self.buckets

    # --- rows

    def _contexts(self, tokens: np.ndarray, start: int, end: int) -> Optional[np.ndarray]:
        """Context id of each target in [start, end) (None for the unigram); reads tokens < end - 1 only."""
        if self.order == 1:
            return None
        if end <= start:
            return np.zeros(0, dtype=np.int64)
        lo = max(start - 2, 0)
        seg = np.asarray(tokens[lo:end - 1], dtype=np.int64)
        prev1 = seg[start - 1 - lo:]
        if self.order == 2:
            return prev1
        prev2 = seg[start - 2 - lo:end - 2 - lo] if start >= 2 else np.concatenate([[0], seg[:end - 2 - lo]])
        return self._hash(prev2, prev1)

    def _denominators(self, ctx: Optional[np.ndarray], n: int) -> np.ndarray:
        a, v = self.alpha, self.vocab_size
        if self.order == 1:
            return np.full(n, self.n_tokens + a * v, dtype=np.float64)
        tot = self.totals[ctx].astype(np.float64)
        if self.order == 3:
            tot = np.maximum(tot, 1.0) if self.empty == "seed" else tot
        return tot + a * v

    def _uniform(self) -> bool:
        """Before any update the seed's trigram is uniform (its ``has_data`` branch)."""
        return self.order == 3 and self.n_tokens == 0

    def _logp(self, tokens, start: int, end: int) -> np.ndarray:
        n = end - start
        if self._uniform():
            return np.full(n, -np.log(self.vocab_size))
        ctx = self._contexts(tokens, start, end)
        y = np.asarray(tokens[start:end], dtype=np.int64)
        count = self.unigram[y] if self.order == 1 else self.table.get(ctx * self.vocab_size + y)
        return np.log((count + self.alpha) / self._denominators(ctx, n))

    def _rows(self, tokens, start: int, end: int) -> np.ndarray:
        n = end - start
        if self._uniform():
            return np.full((n, self.vocab_size), 1.0 / self.vocab_size)
        ctx = self._contexts(tokens, start, end)
        inv = 1.0 / self._denominators(ctx, n)
        if self.order == 1:
            return np.broadcast_to((self.unigram + self.alpha) * inv[0], (n, self.vocab_size)).copy()
        out = np.repeat((self.alpha * inv)[:, None], self.vocab_size, axis=1)
        self.table.scatter_rows(ctx, self.vocab_size, out, inv)
        return out

    # --- the Expert protocol: spans are cut at the seed's chunk boundaries

    def _walk(self, tokens, start: int, end: int, fn) -> np.ndarray:
        start, end = int(start), int(end)
        if start != self._next_target or end < start or end > len(tokens):
            raise UsageError(f"expert {self.name or 'pr700 n-gram'!r}: spans must be contiguous from target 1 "
                             f"within the stream; expected one starting at {self._next_target}, got [{start}, {end})")
        parts, t = [], start
        while t < end:
            stop = min(end, (t - 1) // self.chunk * self.chunk + self.chunk + 1)  # last target of t's chunk + 1
            parts.append(fn(tokens, t, stop))
            self._absorb_through(tokens, stop - 1)
            t = stop
        self._next_target = end
        if not parts:
            return fn(tokens, start, start)
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def score(self, tokens, start, end):
        return self._walk(tokens, start, end, self._logp)

    def distributions(self, tokens, start, end):
        return self._walk(tokens, start, end, self._rows)

    def predict(self, tokens, t):
        t = int(t)
        if t != self._next_target or len(tokens) < t:
            raise UsageError(f"expert {self.name or 'pr700 n-gram'!r}: predict({t}) out of order; "
                             f"expected target {self._next_target}")
        return self._rows(tokens, t, t + 1)[0]  # rows read only the tokens before the target

    def observe(self, tokens, t):
        self._walk(tokens, int(t), int(t) + 1, lambda *_: np.zeros(0))

    def state_fingerprint(self) -> bytes:
        return b"".join([np.int64([self.n_tokens, self.chunks_counted]).tobytes(), self.unigram.tobytes(),
                         self.totals.tobytes(), self.table.keys.tobytes(), self.table.counts.tobytes()])

    def stats(self) -> dict:
        return {"chunks_counted": self.chunks_counted, "table_bytes": self.table.nbytes()}

    def describe(self) -> dict:
        d = {"estimator": f"add-{self.alpha:g}", "order": self.order, "chunk": self.chunk}
        if self.order == 3:
            d.update(buckets=self.buckets, empty=self.empty)
        return d
