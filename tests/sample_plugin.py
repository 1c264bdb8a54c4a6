"""A plain-module plugin used by the tests (loaded with --plugin / PGOLF_PLUGINS)."""

import numpy as np

from pgolf_core import Expert, hookimpl


class CountingExpert(Expert):
    """Add-one unigram counts: a small stateful, legal expert."""

    def __init__(self, vocab_size, alpha=1.0):
        super().__init__(vocab_size)
        self.alpha = float(alpha)
        self.counts = np.zeros(vocab_size)

    def _dist(self):
        c = self.counts + self.alpha
        return c / c.sum()

    def score(self, tokens, start, end):
        out = np.empty(end - start)
        for i, t in enumerate(range(start, end)):
            out[i] = np.log(self._dist()[tokens[t]])
            self.counts[tokens[t]] += 1
        return out

    def distributions(self, tokens, start, end):
        out = np.empty((end - start, self.vocab_size))
        for i, t in enumerate(range(start, end)):
            out[i] = self._dist()
            self.counts[tokens[t]] += 1
        return out

    def reset(self):
        self.counts[:] = 0

    def state_fingerprint(self):
        return self.counts.tobytes()


def make_counting(ctx, alpha=1.0):
    return CountingExpert(ctx.vocab_size, alpha=float(alpha))


@hookimpl
def pgolf_register_experts(register):
    register("counting", make_counting, description="add-one unigram (test plugin)")
