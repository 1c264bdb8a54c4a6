"""Hedge: a linear mixture whose weights follow the inputs' cumulative log loss.

    w_k  proportional to  prior_k * exp(bias * [k == 0]) * exp(-eta * L_k),

with L_k the log loss of input k on the targets scored so far. With eta = 1, per-token updates and
no share this is exactly the Bayesian mixture: the total loss is -ln sum_k prior_k prod_t p_k,t.
Every weight vector is on the simplex and only ever depends on targets already scored, so the
mixture sum_k w_k p_k is a normalized distribution for every target (C2) built from the past (C1, C3).

Modes:
- ``update="token"``: weights move after every target (cumulative sums, or the numba kernel of
  ``hedge_kernels`` when fixed share is on, since sharing makes the recursion non-linear).
- ``update="batch"``: weights move once every ``batch`` targets of the stream (default 2,048, the
  seed's 32 windows of 64 scored targets), on that batch's summed (``batch_loss="sum"``) or mean
  (``"mean"``) loss. Batches are counted along the stream, not per ``mix`` call, so the mixture
  does not depend on how the loop splits the stream (an evaluation's blocks and the compressor's
  single targets give the same weights).
- ``batch_loss="window"``: the seed record's loss. Its batch is 32 sliding windows, each scoring
  ``stride`` (64) targets with ``window`` (2,048) positions of context, and it moves the weights on
  the mean log loss over *every position of every window*, so a target weighs once per window that
  holds it (up to 32 times) and most of the loss is context scored earlier. Here each window is
  the ``stride`` targets of the batch ending at e and the ``window`` targets before e, and each
  position's loss is the one the input gave it when it was scored (the seed re-scores a context
  position inside the window, with a shorter neural context and the current n-gram tables; see
  docs/seed-pr700.md). Only scored targets enter, so it is as legal as the other losses.
- ``share=alpha``: fixed share (Herbster & Warmuth 1998): after each update w <- (1-alpha) w + alpha/K,
  so an input that was bad for a while can come back quickly.
- ``solo_first=N``: the first N targets of the stream are scored by the first input alone and do
  not move the weights (the seed scores its first 10,000 targets with the network only, while the
  n-gram counts warm up). A fixed rule of the position, so it is causal.

Everything is kept in log space; the stored log-weights are renormalized after every call.
"""

from __future__ import annotations


from typing import Optional

import numpy as np

from pgolf_core.api import Mixer, StepKernel
from pgolf_core.errors import UsageError

from .logspace import logsumexp, mixture_distribution, mixture_logp, normalize_log
from .options import HEDGE_OPTIONS


def check_inputs(mixer: Mixer, logp, targets, dists, return_distribution: bool):
    """Validate the shapes of a ``mix`` call; return (logp float64 (K, n), dists or None)."""
    logp = np.asarray(logp, dtype=np.float64)
    name = mixer.name or type(mixer).__name__
    if logp.ndim != 2 or logp.shape[0] != mixer.n_experts:
        raise UsageError(f"mixer {name!r}: logp must have shape (K={mixer.n_experts}, n), got {logp.shape}")
    n = logp.shape[1]
    if np.shape(targets) != (n,):
        raise UsageError(f"mixer {name!r}: targets must have shape ({n},), got {np.shape(targets)}")
    if dists is None:
        if return_distribution or mixer.needs_distributions:
            why = "return_distribution=True" if return_distribution else "this mixer"
            raise UsageError(f"mixer {name!r}: {why} needs the inputs' full distributions (dists), got None")
        return logp, None
    dists = np.asarray(dists)
    if dists.shape != (mixer.n_experts, n, mixer.vocab_size):
        raise UsageError(f"mixer {name!r}: dists must have shape {(mixer.n_experts, n, mixer.vocab_size)}, got {dists.shape}")
    return logp, dists


def check_rows(mixer: Mixer, dists) -> np.ndarray:
    """Validate the inputs' rows of one target for ``predict``: shape (K, V)."""
    dists = np.asarray(dists)
    if dists.shape != (mixer.n_experts, mixer.vocab_size):
        raise UsageError(f"mixer {mixer.name or type(mixer).__name__!r}: dists must have shape "
                         f"{(mixer.n_experts, mixer.vocab_size)}, got {dists.shape}")
    return dists


class HedgeMixer(Mixer):
    """Exponentially weighted average of the inputs under log loss; see the module docstring.

    The options are ``HEDGE_OPTIONS`` (``pgolf_mixers.options``), parsed and range-checked by the
    registered factory; built directly, the mixer takes the declared defaults for those not given
    and trusts the values it is handed. ``prior`` is K positive weights (None: uniform)."""

    def __init__(self, n_experts: int, vocab_size: int, *, prior: Optional[np.ndarray] = None, input_names=(),
                 **options):
        super().__init__(n_experts, vocab_size)
        unknown = sorted(set(options) - set(HEDGE_OPTIONS))
        if unknown:
            raise TypeError(f"HedgeMixer got unknown option(s) {', '.join(unknown)}")
        o = {name: opt.default for name, opt in HEDGE_OPTIONS.items() if name != "prior"} | options
        k = self.n_experts
        prior = np.full(k, 1.0 / k) if prior is None else np.asarray(prior, dtype=np.float64)
        self.prior = prior / prior.sum()
        self.eta, self.update, self.share = float(o["eta"]), o["update"], float(o["share"])
        self.bias, self.batch_loss, self.solo_first = float(o["bias"]), o["batch_loss"], int(o["solo_first"])
        self.batch, self.window, self.stride = int(o["batch"]), int(o["window"]), int(o["stride"])
        # a relation between two options, which no single declaration can state
        if self.batch_loss == "window" and self.stride > self.window:
            raise UsageError(f"mixer 'hedge': batch_loss=window needs 1 <= stride <= window, got stride={self.stride} "
                             f"window={self.window}")
        self.input_names = tuple(input_names)
        lw0 = np.log(self.prior)
        lw0[0] += self.bias
        self._lw0 = normalize_log(lw0)
        self.reset()

    def reset(self) -> None:
        self._lw = self._lw0.copy()  # normalized log-weights for the next target
        self._seen = 0  # targets mixed so far (for solo_first)
        self._acc = np.zeros(self.n_experts)  # batch mode: summed log loss of the open batch
        self._acc_n = 0  # and its number of targets
        # batch_loss="window": log losses of the latest targets (K, H), the first one's index from 0
        self._hist, self._hist0 = np.zeros((self.n_experts, 0)), 0

    @property
    def weights(self) -> np.ndarray:
        """Current weights on the simplex (during the solo_first phase: the initial ones)."""
        return np.exp(self._lw)

    def mix(self, logp, targets, dists=None, return_distribution=False):
        logp, dists = check_inputs(self, logp, targets, dists, return_distribution)
        n = logp.shape[1]
        solo = int(np.clip(self.solo_first - self._seen, 0, n))
        if self.batch_loss == "window":
            self._remember(logp)
        self._seen += n
        used = self._step(logp[:, solo:])  # (n - solo, K) log-weights that scored each target
        out = np.concatenate([logp[0, :solo], mixture_logp(used, logp[:, solo:])])
        if not return_distribution:
            return out
        dist = np.concatenate([np.asarray(dists[0, :solo], dtype=np.float64),
                               mixture_distribution(used, dists[:, solo:])])
        return out, dist

    def predict(self, dists: np.ndarray) -> np.ndarray:
        """The mixture row for the next target from the inputs' rows ``dists`` (K, V), without
        changing the state: the weights a one-target ``mix`` would use (``_plan`` with a placeholder
        loss, which the weights of a span's first target never depend on), then the same mixing."""
        dists = check_rows(self, dists)
        if self._seen < self.solo_first:
            return np.asarray(dists[0], dtype=np.float64)
        if self.update == "batch":  # the open batch's weights, whatever its loss will be
            used = self._lw[None, :]
        elif self.share <= 0.0:  # what _plan computes for one target, without its cumulative sums
            used = (self._lw - logsumexp(self._lw))[None, :]
        else:
            used, _ = self._plan(np.zeros((self.n_experts, 1)))
        return mixture_distribution(used, dists[:, None, :])[0]

    def observe(self, logp, target, dists=None) -> None:
        """One scored target. Plain per-token Hedge takes its step directly (the same expression a
        one-target ``mix`` evaluates, so the weights are bitwise the same); every other mode is the
        one-target ``mix``."""
        lp = np.asarray(logp, dtype=np.float64)
        simple = self.update == "token" and self.share <= 0.0 and self._seen >= self.solo_first
        if not (simple and lp.shape == (self.n_experts,) and np.all(np.isfinite(lp))):
            super().observe(logp, target, dists)
            return
        self._seen += 1
        self._lw = normalize_log(self._lw + self.eta * lp)

    def step_kernel(self) -> Optional[StepKernel]:
        """Plain per-token Hedge (``update=token``, no share) as numba functions (``hedge_kernels``);
        the other modes stay on the Python path."""
        if self.update != "token" or self.share > 0.0:
            return None
        from . import hedge_kernels

        self._lw = np.array(self._lw, dtype=np.float64)  # the kernel moves this array in place
        seen = np.array([self._seen], dtype=np.int64)

        def done(end: int) -> None:
            self._seen = int(seen[0])

        return StepKernel(hedge_kernels.step_predict, hedge_kernels.step_observe,
                          (self._lw, seen, self.eta, self.solo_first), done=done)

    def _step(self, lp: np.ndarray) -> np.ndarray:
        """Weights used for each target of ``lp`` (K, m); moves the state past them."""
        if self.update == "batch":
            used, (self._lw, self._acc, self._acc_n) = self._plan_batch(lp)
            return used
        used, self._lw = self._plan(lp)
        return used

    def _remember(self, logp: np.ndarray) -> None:
        """Keep the losses a window loss can still reach: from ``window + batch`` targets before this
        call's first one (the earliest any batch closing in this call reads) to its last."""
        drop = self._seen - self.window - self.batch - self._hist0
        if drop > self.window + self.batch:  # trim now and then, not on every one-target call
            self._hist, self._hist0 = self._hist[:, drop:].copy(), self._hist0 + drop
        with np.errstate(invalid="ignore"):
            self._hist = np.concatenate([self._hist, -logp], axis=1)

    def _window_mean(self, end: int) -> np.ndarray:
        """Mean loss (K,) over every position of the windows of the batch ending at target index
        ``end`` (exclusive, counted from 0): windows end every ``stride`` targets of the batch.

        Written as sum_j (number of windows holding j) * loss_j with an exactly rounded sum
        (``math.fsum``), so the result does not depend on where the calls cut the stream."""
        import math

        ends = np.arange(end - self.batch + self.stride, end + 1, self.stride)
        if ends.size == 0 or ends[-1] != end:
            ends = np.append(ends, end)
        los = np.maximum(ends - self.window, 0)
        first = int(los.min())
        edges = np.zeros(end - first + 1, dtype=np.int64)
        np.add.at(edges, los - first, 1)
        np.add.at(edges, ends - first, -1)
        times = np.cumsum(edges)[:-1].astype(np.float64)  # windows holding each position
        losses = self._hist[:, first - self._hist0:end - self._hist0]
        with np.errstate(invalid="ignore"):
            return np.array([math.fsum(times * row) for row in losses]) / float(times.sum())

    def _plan_batch(self, lp: np.ndarray):
        """Batch mode: every ``batch`` targets of the stream (counted from its first mixed target,
        however the loop splits it into calls), the weights move once on that batch's summed, mean
        or window loss. Returns (weights used (m, K), (log-weights, open loss sum, open count)); pure."""
        m, k = lp.shape[1], self.n_experts
        first = self._seen - m  # index (from 0) of lp's first target; mix has counted the call already
        used, lw, acc, cnt, i = np.empty((m, k)), self._lw, self._acc.copy(), self._acc_n, 0
        while i < m:
            take = min(m - i, self.batch - cnt)
            used[i:i + take] = lw
            with np.errstate(invalid="ignore"):
                acc = acc - lp[:, i:i + take].sum(axis=1)
            cnt, i = cnt + take, i + take
            if cnt == self.batch:
                loss = (acc if self.batch_loss == "sum" else acc / cnt if self.batch_loss == "mean"
                        else self._window_mean(first + i))
                v = lw - self.eta * loss
                lw = self._shared(normalize_log(v)) if np.isfinite(v.max()) else lw
                acc, cnt = np.zeros(k), 0
        return used, (lw, acc, cnt)

    def _plan(self, lp: np.ndarray):
        """Per-token modes: (log-weights used for each target of ``lp`` (m, K), log-weights after
        them); pure."""
        m = lp.shape[1]
        if m == 0:
            return np.empty((0, self.n_experts)), self._lw
        if self.share > 0.0 or not np.all(np.isfinite(lp)):
            from .hedge_kernels import hedge_share_kernel

            used = np.empty((m, self.n_experts))
            lw = self._lw.copy()
            hedge_share_kernel(lw, np.ascontiguousarray(lp), self.eta, self.share, used)
            return used, normalize_log(lw)
        # Plain per-token Hedge: log-weights are prior + eta * (cumulative log-prob before i).
        csum = np.cumsum(lp, axis=1)  # (K, m), inclusive
        before = np.concatenate([np.zeros((self.n_experts, 1)), csum[:, :-1]], axis=1)
        raw = self._lw[:, None] + self.eta * before
        used = (raw - logsumexp(raw, axis=0)).T
        return used, normalize_log(self._lw + self.eta * csum[:, -1])

    def _shared(self, lw: np.ndarray) -> np.ndarray:
        if self.share <= 0.0:
            return lw
        return np.logaddexp(np.log1p(-self.share) + lw, np.log(self.share / self.n_experts))

    def describe(self) -> dict:
        return {"eta": self.eta, "prior": self.prior.tolist(), "update": self.update, "batch": self.batch, "share": self.share,
                "bias": self.bias, "batch_loss": self.batch_loss, "solo_first": self.solo_first,
                **({"window": self.window, "stride": self.stride} if self.batch_loss == "window" else {}),
                "inputs": list(self.input_names), "weights": self.weights.tolist()}
