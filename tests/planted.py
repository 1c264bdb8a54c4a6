"""Planted-bug plugins: each breaks one rule the way an adversary would, written against the public
API only. ``tests/test_verdicts.py`` shows which check catches each; the honest ones are the control.

The experts are small NumPy add-one unigram counters (score, then count, token by token) so the
checks run in seconds without numba or torch.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pgolf_core.api import Expert, Mixer


class HonestCounter(Expert):
    """Add-one unigram counts of scored targets: legal, the control for every planted bug."""

    name = "honest"

    def __init__(self, vocab_size: int):
        super().__init__(vocab_size)
        self.counts = np.ones(vocab_size, dtype=np.float64)

    def reset(self):
        self.counts[:] = 1.0

    def _rows(self, tokens, start, end):
        rows = np.empty((end - start, self.vocab_size))
        for i, t in enumerate(range(start, end)):
            rows[i] = self.counts / self.counts.sum()
            self.counts[int(tokens[t])] += 1
        return rows

    def distributions(self, tokens, start, end):
        return self._rows(tokens, start, end)

    def score(self, tokens, start, end):
        rows = self._rows(tokens, start, end)
        return np.log(rows[np.arange(end - start), np.asarray(tokens[start:end], dtype=np.int64)])

    def state_fingerprint(self):
        return self.counts.tobytes()


def _peek(rows, tokens, start, end, share=0.5):
    """Move ``share`` of each row's mass onto its own target: still normalized, reads the target."""
    tg = np.asarray(tokens[start:end], dtype=np.int64)
    rows *= 1.0 - share
    rows[np.arange(end - start), tg] += share
    return rows


class ReadsTarget(HonestCounter):
    """Rows put half their mass on the target they are about to be scored on (C1)."""

    name = "reads-target"

    def distributions(self, tokens, start, end):
        return _peek(self._rows(tokens, start, end), tokens, start, end)

    def score(self, tokens, start, end):
        rows = self.distributions(tokens, start, end)
        return np.log(rows[np.arange(end - start), np.asarray(tokens[start:end], dtype=np.int64)])


class Unnormalized(HonestCounter):
    """Every row has mass 1.5 (C2)."""

    name = "unnormalized"

    def distributions(self, tokens, start, end):
        return 1.5 * self._rows(tokens, start, end)

    def score(self, tokens, start, end):
        return super().score(tokens, start, end) + np.log(1.5)


class ScoreDisagrees(HonestCounter):
    """``score()`` claims twice the probability its own distribution gives (C2: the fast path lies)."""

    name = "score-disagrees"

    def score(self, tokens, start, end):
        return np.minimum(super().score(tokens, start, end) + np.log(2.0), 0.0)


class CountsFirst(HonestCounter):
    """Counts the whole span before scoring it (C3: state absorbs unscored targets)."""

    name = "counts-first"

    def _rows(self, tokens, start, end):
        np.add.at(self.counts, np.asarray(tokens[start:end], dtype=np.int64), 1.0)
        return np.broadcast_to(self.counts / self.counts.sum(), (end - start, self.vocab_size)).copy()


class ReadsPastEnd(HonestCounter):
    """Reads the token after the span through the array's base and bets on it (sealed stream)."""

    name = "reads-past-end"
    seen_future: list = []

    def distributions(self, tokens, start, end):
        rows = self._rows(tokens, start, end)
        base = tokens.base if tokens.base is not None else tokens
        if len(base) > end:
            nxt = int(base[end])
            ReadsPastEnd.seen_future.append(nxt)
            rows[-1] *= 0.5
            rows[-1, nxt] += 0.5  # a bet on what the next target will be
        return rows


class LongStreamCheat(HonestCounter):
    """Honest on short streams (the audit's 2,048 tokens) and on its 50,000-token random stream; on
    other long ones (judged from the buffer it is handed) it reads the target."""

    name = "long-stream-cheat"
    threshold = 4000
    audit_random_stream = 50_000

    def distributions(self, tokens, start, end):
        rows = self._rows(tokens, start, end)
        base = tokens.base if tokens.base is not None else tokens
        cheat = self.threshold < len(base) != self.audit_random_stream
        return _peek(rows, tokens, start, end) if cheat else rows


class MidCallUnnormalized(HonestCounter):
    """Score-only; mass 2 everywhere except the first target of each call (where audits used to look)."""

    name = "mid-call-unnormalized"
    distributions = Expert.distributions  # score-only

    def score(self, tokens, start, end):
        lp = super().score(tokens, start, end)
        lp[1:] = np.minimum(lp[1:] + np.log(2.0), 0.0)
        return lp


class Nondeterministic(HonestCounter):
    """Honest but noisy: tiny random perturbations of every row (normalized)."""

    name = "nondeterministic"

    def distributions(self, tokens, start, end):
        rows = self._rows(tokens, start, end) * (1.0 + 1e-3 * np.random.default_rng().random((end - start, self.vocab_size)))
        return rows / rows.sum(axis=1, keepdims=True)


class SeededAtBuild(HonestCounter):
    """Honest but noisy from a random generator seeded once, unseeded, when it is built: every copy
    of it draws the same noise, so replays of copies agree; only a second build differs."""

    name = "seeded-at-build"

    def __init__(self, vocab_size: int):
        super().__init__(vocab_size)
        self.rng = np.random.default_rng()

    def distributions(self, tokens, start, end):
        rows = self._rows(tokens, start, end) * (1.0 + 1e-3 * self.rng.random((end - start, self.vocab_size)))
        return rows / rows.sum(axis=1, keepdims=True)


class EqualMixer(Mixer):
    """Fixed equal weights: the honest mixer of the control."""

    name = "equal"
    needs_distributions = True

    def mix(self, logp, targets, dists=None, return_distribution=False):
        out = np.log(np.mean(np.exp(logp), axis=0))
        if not return_distribution:
            return out
        return out, np.asarray(dists, dtype=np.float64).mean(axis=0)

    @property
    def weights(self):
        return np.full(self.n_experts, 1.0 / self.n_experts)


class BestOfMixer(EqualMixer):
    """Its fast path scores each target by the best expert; asked for distributions, it is honest."""

    name = "best-of"

    def mix(self, logp, targets, dists=None, return_distribution=False):
        if return_distribution:
            return super().mix(logp, targets, dists, True)
        return np.max(logp, axis=0)


class PeekingMixer(EqualMixer):
    """Reads the target when every input is confident (never on the synthetic audit inputs)."""

    name = "peeking"

    def mix(self, logp, targets, dists=None, return_distribution=False):
        out, rows = super().mix(logp, targets, dists, True)
        sure = np.asarray(dists).max(axis=-1).min(axis=0) > 0.02
        rows[sure] *= 0.5
        rows[np.nonzero(sure)[0], np.asarray(targets)[sure]] += 0.5
        out = np.log(rows[np.arange(len(targets)), targets])
        return (out, rows) if return_distribution else out


class PeakyUnnormalizedMixer(EqualMixer):
    """Mass 1.5 whenever every input is confident (never on the synthetic audit inputs); its fast
    path agrees with its rows, so only a check of the mixture's rows on real inputs sees it."""

    name = "peaky-unnormalized"

    def mix(self, logp, targets, dists=None, return_distribution=False):
        _, rows = super().mix(logp, targets, dists, True)
        rows[np.asarray(dists).max(axis=-1).min(axis=0) > 0.02] *= 1.5
        out = np.minimum(np.log(rows[np.arange(len(targets)), targets]), 0.0)
        return (out, rows) if return_distribution else out


class SelfContradictingMixer(EqualMixer):
    """Asked for rows, it returns honest rows but the best expert's log-probability beside them."""

    name = "self-contradicting"

    def mix(self, logp, targets, dists=None, return_distribution=False):
        out, rows = super().mix(logp, targets, dists, True)
        best = np.max(logp, axis=0)
        return (best, rows) if return_distribution else best


class DecodableCounter(HonestCounter):
    """The honest counter with the target-by-target protocol: it can be compressed."""

    name = "decodable-counter"

    def predict(self, tokens, t):
        return self.counts / self.counts.sum()

    def observe(self, tokens, t):
        self.counts[int(tokens[t])] += 1


class NoisyDecodable(DecodableCounter):
    """Decodable but nondeterministic: the decoder cannot reproduce its rows."""

    name = "noisy-decodable"

    def predict(self, tokens, t):
        row = super().predict(tokens, t) * (1.0 + 1e-2 * np.random.default_rng().random(self.vocab_size))
        return row / row.sum()


# --- compiled coding-loop kernels (pgolf_core.api.StepKernel) for the counter above


@njit(cache=True)
def _counter_predict(state, tokens, t, out):
    counts, spy, mode = state
    total = counts.sum()
    for v in range(out.shape[0]):
        out[v] = counts[v] / total * (1.5 if mode == 2 else 1.0)
    for i in range(t, tokens.shape[0]):  # what a kernel that reads ahead would find
        if tokens[i] != 0:
            spy[0] = 1


@njit(cache=True)
def _counter_observe(state, tokens, t):
    counts, spy, mode = state
    counts[tokens[t]] += 1.0


class KernelCounter(DecodableCounter):
    """The decodable counter with a compiled step. ``mode``: ``honest``; ``spy`` also records
    whether its kernel ever found a nonzero token at or after the target in its buffer; ``heavy``
    gives rows of mass 1.5."""

    name = "kernel-counter"
    SPY = np.zeros(1, dtype=np.int64)  # shared by every instance: the tests read it after a run

    def __init__(self, vocab_size, mode="honest"):
        super().__init__(vocab_size)
        self.mode = mode
        self.spy = KernelCounter.SPY

    def predict(self, tokens, t):
        return super().predict(tokens, t) * (1.5 if self.mode == "heavy" else 1.0)

    def step_kernel(self):
        from pgolf_core.api import StepKernel

        self.counts = np.asarray(self.counts, dtype=np.float64)
        mode = {"honest": 0, "spy": 1, "heavy": 2}[self.mode]
        return StepKernel(_counter_predict, _counter_observe, (self.counts, self.spy, mode))
