"""Online geometric (logistic) mixture: a log-linear pool of the inputs, learned by gradient steps.

    p(y) = exp(sum_k w_k log p_k(y) + b_y) / Z,     Z = sum over the whole vocabulary,

so the mixture is normalized exactly (C2) whatever the weights. Unlike Hedge, a log-linear pool
can be sharper than every input where they agree and can use weights that do not sum to one, which
is why it wins over linear mixing of n-gram experts (the idea behind PAQ's logistic mixing, here
over the full token alphabet rather than bits).

After each target is scored, one gradient step on its log loss (``lr``) moves the weights
(C3: target i is scored with weights learned from targets < i only). Options:

- ``lr`` (default 0.003): the inputs are log-probabilities of magnitude 1-10 nats, so gradients are
  large and the step must be small; on FineWeb with a static bigram plus online n-grams the loss is
  flat from 0.002 to 0.005 and degrades quickly above 0.02 (benchmarks/bench_mixers.py).

- ``init``: the starting weights. Default ``uniform`` = 1/K each, the normalized geometric mean of
  the inputs. That is a safe start: by the AM-GM (Hoelder) inequality its normalizer Z <= 1, so its
  log loss is at most the average of the inputs' log losses from the first target on; weights of 1
  on every input would start from the product of the inputs, far too sharp for K = 4 n-gram models.
  Or K comma-separated numbers.
- ``bias``: also learn a per-token logit bias b (V values, start 0), an online correction of the
  token frequencies the inputs get wrong together.
- ``context``: several weight sets, one chosen per target by a bucket of the first input's
  distribution at that target (``entropy``: its entropy on [0, ln V] in ``buckets`` equal bins;
  ``confidence``: its largest probability on [0, 1]). The distribution is itself built from the
  past only, so the choice is causal and never looks at the target.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from pgolf_core.api import Mixer, StepKernel
from pgolf_core.errors import UsageError

from .hedge import check_inputs, check_rows

#: probabilities are floored here before their log: 1e-300 is far below any probability a model
#: assigns on purpose, and the floor keeps 0 * log(0) and negative weights away from -inf.
PROB_FLOOR = 1e-300
CONTEXT_MODES = {"none": 0, "entropy": 1, "confidence": 2}


class LogisticMixer(Mixer):
    """Log-linear pool with online weights; see the module docstring."""

    needs_distributions = True

    def __init__(self, n_experts: int, vocab_size: int, *, lr: float = 0.003, init=None, bias: bool = False,
                 context: str = "none", buckets: int = 1, input_names=()):
        super().__init__(n_experts, vocab_size)
        self.lr, self.use_bias, self.context = float(lr), bool(bias), context
        self.buckets = 1 if context == "none" else int(buckets)
        init = np.full(self.n_experts, 1.0 / self.n_experts) if init is None else np.asarray(init, dtype=np.float64)
        self.init = init
        self.input_names = tuple(input_names)
        self.reset()

    def reset(self) -> None:
        self._w = np.tile(self.init, (self.buckets, 1))  # (C, K): one weight set per context bucket
        self._b = np.zeros(self.vocab_size)  # per-token logit bias (stays 0 unless bias is on)
        self._counts = np.zeros(self.buckets, dtype=np.int64)  # targets scored with each set

    @property
    def weights(self) -> np.ndarray:
        """The weights (K,); with context buckets, their average weighted by how many targets each
        bucket scored (the initial weights before any target)."""
        if self.buckets == 1 or self._counts.sum() == 0:
            return self._w.mean(axis=0) if self._counts.sum() == 0 else self._w[0].copy()
        return (self._counts @ self._w) / self._counts.sum()

    def state_fingerprint(self):
        return self._w.tobytes() + self._b.tobytes()

    def mix(self, logp, targets, dists=None, return_distribution=False):
        from .logistic_kernels import floored_log, logistic_kernel

        logp, dists = check_inputs(self, logp, targets, dists, return_distribution)
        targets = np.asarray(targets, dtype=np.int64)
        n = targets.shape[0]
        if n and (targets.min() < 0 or targets.max() >= self.vocab_size):
            raise UsageError(f"mixer {self.name or 'logistic'!r}: targets must be token ids in [0, {self.vocab_size})")
        out = np.empty(n)
        dist = np.empty((n if return_distribution else 0, self.vocab_size))
        p0 = np.ascontiguousarray(dists[0], dtype=np.float64)
        logistic_kernel(floored_log(dists, PROB_FLOOR), p0, targets, self._w, self._b, self.lr, self.use_bias,
                        CONTEXT_MODES[self.context], self._counts, out, dist)
        return (out, dist) if return_distribution else out

    def mix_log(self, logp, targets, log_dists):
        """``mix`` from the inputs' floored log rows (K, n, V) float32: the same kernel, without
        taking a log of every row here (the loop hands over a network's log-softmax as it is)."""
        from .logistic_kernels import logistic_kernel

        targets = np.asarray(targets, dtype=np.int64)
        n = targets.shape[0]
        if np.shape(logp) != (self.n_experts, n):
            raise UsageError(f"mixer {self.name or 'logistic'!r}: logp must have shape {(self.n_experts, n)}, "
                             f"got {np.shape(logp)}")
        lq = np.asarray(log_dists)
        if lq.shape != (self.n_experts, n, self.vocab_size):
            raise UsageError(f"mixer {self.name or 'logistic'!r}: log_dists must have shape "
                             f"{(self.n_experts, n, self.vocab_size)}, got {lq.shape}")
        if n and (targets.min() < 0 or targets.max() >= self.vocab_size):
            raise UsageError(f"mixer {self.name or 'logistic'!r}: targets must be token ids in [0, {self.vocab_size})")
        # the first input's probabilities pick the weight set; without context they are not read
        p0 = np.exp(np.asarray(lq[0], dtype=np.float64)) if self.context != "none" else np.empty((n, 1))
        out = np.empty(n)
        logistic_kernel(lq, p0, targets, self._w, self._b, self.lr, self.use_bias, CONTEXT_MODES[self.context],
                        self._counts, out, np.empty((0, self.vocab_size)))
        return out

    @property
    def mixes_grouped_rows(self) -> bool:
        """Grouped rows need every token of a group to get the same logit: not with a per-token bias."""
        return not self.use_bias

    def mix_log_grouped(self, logp, targets, grouped):
        """``mix_log`` on grouped rows (``pgolf_core.api.GroupedLogRows``): the same model and the same
        learning step, each sum over the vocabulary taken over the groups weighted by their sizes, so
        a target costs O(groups) instead of O(V) (``logistic_grouped_kernel``)."""
        from .logistic_kernels import logistic_grouped_kernel

        who = self.name or "logistic"
        if self.use_bias:
            raise UsageError(f"mixer {who!r}: grouped rows cannot carry a per-token bias (bias=true)")
        targets = np.asarray(targets, dtype=np.int64)
        n = targets.shape[0]
        if np.shape(logp) != (self.n_experts, n):
            raise UsageError(f"mixer {who!r}: logp must have shape {(self.n_experts, n)}, got {np.shape(logp)}")
        lv = np.asarray(grouped.log_values)
        offsets = np.asarray(grouped.offsets, dtype=np.int64)
        target_group = np.asarray(grouped.target_group, dtype=np.int64)
        sizes = np.asarray(grouped.sizes, dtype=np.float64)
        if lv.ndim != 2 or lv.shape[0] != self.n_experts or offsets.shape != (n + 1,) or target_group.shape != (n,) \
                or sizes.shape != (lv.shape[1],) or (n and offsets[-1] != lv.shape[1]):
            raise UsageError(f"mixer {who!r}: grouped rows of {self.n_experts} inputs and {n} targets expected")
        # the first input's probabilities pick the weight set (as in mix_log); without context unread
        p0 = np.exp(np.asarray(lv[0], dtype=np.float64)) if self.context != "none" else np.empty(0)
        out = np.empty(n)
        logistic_grouped_kernel(lv, sizes, offsets, target_group, p0, self._w, self.lr, CONTEXT_MODES[self.context],
                                self.vocab_size, self._counts, out)
        return out

    def predict(self, dists):
        """The mixture row for the next target from the inputs' rows ``dists`` (K, V): the row a
        one-target ``mix`` gives (the same numba function computes both), weights untouched."""
        from .logistic_kernels import floored_log, logistic_predict

        dists = check_rows(self, dists)
        out = np.empty(self.vocab_size)
        logistic_predict(floored_log(dists, PROB_FLOOR), np.ascontiguousarray(dists[0], dtype=np.float64), self._w,
                         self._b, self.use_bias, CONTEXT_MODES[self.context], out)
        return out

    def step_kernel(self) -> Optional[StepKernel]:
        """``predict`` and the learning step of ``mix`` as numba functions (``logistic_kernels``)."""
        from .logistic_kernels import step_observe, step_predict

        k, v = self.n_experts, self.vocab_size
        state = (self._w, self._b, self._counts, self.lr, self.use_bias, CONTEXT_MODES[self.context], PROB_FLOOR,
                 np.empty((k, v)), np.empty(v), np.zeros(2))
        return StepKernel(step_predict, step_observe, state)

    def describe(self) -> dict:
        return {"lr": self.lr, "init": self.init.tolist(), "bias": self.use_bias, "context": self.context,
                "buckets": self.buckets, "inputs": list(self.input_names), "weights": self.weights.tolist(),
                "weight_sets": self._w.tolist(), "bucket_counts": self._counts.tolist()}
