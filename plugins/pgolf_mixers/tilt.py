"""The n-gram tilt: a base distribution with one hinted token boosted, renormalized exactly.

The idea of the field's token-only n-gram tilt (PR #1145, used by #2130/#2135), in our own terms.
An online table maps the last ``order - 1`` targets to the token that most often followed them so
far, with its frequency in that context. When the frequency reaches ``threshold`` (the gate), the
hinted token h gets ``beta`` added to its logit and the distribution is renormalized in closed form:

    p'(a) = p(a) * exp(beta * [a == h]) / Z,    Z = 1 + p(h) * (exp(beta) - 1)

so log p'(y) = log p(y) + beta * [y == h] - log Z. Otherwise p' = p.

Why it is legal: the hint of target t comes from targets < t only (the table is updated with a
target after it is scored), and p' sums to one over the whole vocabulary because Z is computed from
the full base row. The mixer therefore asks for full distributions.

The base p is input 0's distribution (one input) or the mixture of an ``inner`` mixer over all
inputs (``inner=hedge``, ``inner=logistic:lr=0.02``, ...; default hedge when there are several).
Contexts run across document boundaries, as in the field's version (tokens only).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from pgolf_core.api import Mixer
from pgolf_core.errors import UsageError

from .hedge import check_inputs, check_rows

DEFAULT_ORDER = 16  # #2135: TOKEN_ORDER=16 (a context of 15 targets)
DEFAULT_THRESHOLD = 0.8  # TOKEN_THRESHOLD
DEFAULT_BETA = 2.625  # TOKEN_BOOST
INITIAL_SLOTS = 1 << 16


class TiltMixer(Mixer):
    needs_distributions = True  # Z needs the base row's mass at the hint

    def __init__(self, n_experts: int, vocab_size: int, *, inner=None, order: int = DEFAULT_ORDER,
                 threshold: float = DEFAULT_THRESHOLD, beta: float = DEFAULT_BETA):
        super().__init__(n_experts, vocab_size)
        if inner is None and n_experts != 1:
            raise UsageError(f"mixer 'tilt': {n_experts} inputs need an inner mixer (inner=hedge, inner=logistic, ...)")
        self.inner, self.order, self.threshold, self.beta = inner, int(order), float(threshold), float(beta)
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        if self.inner is not None:
            self.inner.reset()
        self.ctx_keys = np.zeros(INITIAL_SLOTS, dtype=np.uint64)
        self.ctx_vals = np.zeros((INITIAL_SLOTS, 3), dtype=np.int64)
        self.pair_keys = np.zeros(INITIAL_SLOTS, dtype=np.uint64)
        self.pair_vals = np.zeros((INITIAL_SLOTS, 1), dtype=np.int64)
        self.used = np.zeros(2, dtype=np.int64)
        self.tail = np.zeros(0, dtype=np.int64)  # the last order - 1 targets
        self.fired = 0  # targets where the gate opened
        self.hits = 0  # ... and the hint was the target

    def _room(self, n: int) -> None:
        """Grow the tables so that n more entries keep them at most half full."""
        from .tilt_kernels import rehash

        for which in ("ctx", "pair"):
            keys, vals = getattr(self, f"{which}_keys"), getattr(self, f"{which}_vals")
            need = int(self.used[0 if which == "ctx" else 1]) + n
            size = keys.shape[0]
            while 2 * need > size:
                size *= 2
            if size != keys.shape[0]:
                new_keys, new_vals = np.zeros(size, dtype=np.uint64), np.zeros((size, vals.shape[1]), dtype=np.int64)
                rehash(keys, vals, new_keys, new_vals)
                setattr(self, f"{which}_keys", new_keys)
                setattr(self, f"{which}_vals", new_vals)

    def _advance(self, targets: np.ndarray):
        """Hints (token or -1) and frequencies of ``targets`` from the table, which then counts them."""
        from .tilt_kernels import run

        targets = np.asarray(targets, dtype=np.int64)
        n = len(targets)
        self._room(n)
        buf = np.concatenate([self.tail, targets])
        hint, freq = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.float64)
        run(buf, len(self.tail), self.order - 1, self.ctx_keys, self.ctx_vals, self.pair_keys, self.pair_vals,
            hint, freq, self.used)
        self.tail = buf[max(0, len(buf) - (self.order - 1)):].copy()
        return hint, freq

    def _peek(self):
        """The next target's (hint, frequency), without counting anything."""
        from .tilt_kernels import lookup

        h, f = lookup(self.tail, len(self.tail), self.order - 1, self.ctx_keys, self.ctx_vals)
        return np.array([h], dtype=np.int64), np.array([f], dtype=np.float64)

    # ------------------------------------------------------------------ mixing

    def _gate(self, hint, freq):
        return (hint >= 0) & (freq >= self.threshold)

    def _tilt_rows(self, rows: np.ndarray, hint, gate) -> np.ndarray:
        """Tilted copies of ``rows`` (n, V), float64: the one formula ``mix`` and ``predict`` share."""
        out = np.array(rows, dtype=np.float64)
        idx = np.flatnonzero(gate)
        if idx.size:
            h = hint[idx]
            q = out[idx, h]
            z = 1.0 + q * math.expm1(self.beta)
            out[idx] /= z[:, None]
            out[idx, h] = q * math.exp(self.beta) / z
        return out

    def _base(self, logp, targets, dists):
        """The base's log-probs of the targets and its rows (input 0's, or the inner mixture's)."""
        if self.inner is None:
            return logp[0], np.asarray(dists[0], dtype=np.float64)
        base_logp, base_rows = self.inner.mix(logp, targets, dists, return_distribution=True)
        return np.asarray(base_logp, dtype=np.float64), np.asarray(base_rows, dtype=np.float64)

    def mix(self, logp, targets, dists=None, return_distribution=False):
        logp, dists = check_inputs(self, logp, targets, dists, return_distribution)
        targets = np.asarray(targets, dtype=np.int64)
        base_logp, base_rows = self._base(logp, targets, dists)
        hint, freq = self._advance(targets)
        gate = self._gate(hint, freq)
        out = np.array(base_logp, dtype=np.float64)
        idx = np.flatnonzero(gate)
        if idx.size:
            q = base_rows[idx, hint[idx]]
            hit = targets[idx] == hint[idx]
            out[idx] = base_logp[idx] + self.beta * hit - np.log1p(q * math.expm1(self.beta))
            self.fired += int(idx.size)
            self.hits += int(hit.sum())
        if not return_distribution:
            return out
        return out, self._tilt_rows(base_rows, hint, gate)

    def predict(self, dists: np.ndarray) -> np.ndarray:
        dists = check_rows(self, dists)
        base = np.asarray(dists[0] if self.inner is None else self.inner.predict(dists), dtype=np.float64)
        hint, freq = self._peek()
        return self._tilt_rows(base[None, :], hint, self._gate(hint, freq))[0]

    def observe(self, logp, target, dists=None) -> None:
        if self.inner is not None:
            self.inner.observe(logp, target, dists)
        hint, freq = self._advance(np.array([target]))
        if self._gate(hint, freq)[0]:
            self.fired += 1
            self.hits += int(hint[0] == target)

    @property
    def weights(self) -> np.ndarray:
        return np.ones(1) if self.inner is None else np.asarray(self.inner.weights, dtype=np.float64)

    def state_fingerprint(self):
        h = hashlib.sha256()
        for a in (self.ctx_keys, self.ctx_vals, self.pair_keys, self.pair_vals, self.tail):
            h.update(np.ascontiguousarray(a).tobytes())
        inner = self.inner.state_fingerprint() if self.inner is not None else b""
        return h.digest() + (inner or b"")

    def describe(self) -> dict:
        return {"order": self.order, "threshold": self.threshold, "beta": self.beta,
                "inner": None if self.inner is None else {"name": self.inner.name, **self.inner.describe()},
                "contexts": int(self.used[0]), "fired": self.fired, "hits": self.hits,
                "weights": self.weights.tolist()}
