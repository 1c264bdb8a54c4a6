"""The recency cache: tokens seen recently are likely to be seen again.

Every scored token adds 1 to its count and all counts decay by ``decay`` per token, so the cache
remembers roughly the last 1 / (1 - decay) tokens. The prediction for the next token is

    p(y) = (c_y + alpha / V) / (sum_z c_z + alpha)

which sums to exactly 1 over the vocabulary whatever the counts are (C2), uses only tokens that
were already scored (C1, C3), and is updated once per target after it is scored (C4).
"""

from __future__ import annotations

import numpy as np

from pgolf_core.api import RowsExpert


class RecencyExpert(RowsExpert):
    # decay in (0, 1) and alpha > 0 are declared (and checked) with the factory's options in plugin.py.
    def __init__(self, vocab_size: int, decay: float, alpha: float):
        super().__init__(vocab_size)
        self.decay, self.alpha = decay, alpha
        self.reset()

    def reset(self) -> None:
        # counts are stored undecayed-relative-to-`scale` so one update costs O(1), not O(V):
        # the true count of y is raw[y] * scale.
        self.raw = np.zeros(self.vocab_size, dtype=np.float64)
        self.scale = 1.0
        self.total = 0.0  # sum of true counts

    def _row(self) -> np.ndarray:
        """The distribution of the next target from the counts as they are."""
        return (self.raw * self.scale + self.alpha / self.vocab_size) / (self.total + self.alpha)

    def _absorb(self, y: int) -> None:
        self.scale *= self.decay
        self.total = self.total * self.decay + 1.0
        self.raw[y] += 1.0 / self.scale
        if self.scale < 1e-200:  # renormalize before the float range runs out
            self.raw *= self.scale
            self.scale = 1.0

    # The prediction, written once: RowsExpert derives score (the log of each row's entry at the
    # target) and predict/observe (this over one-target spans), so scoring and decoding cannot drift.
    def distributions(self, tokens, start, end):
        out = np.empty((end - start, self.vocab_size), dtype=np.float64)
        for i in range(start, end):
            out[i - start] = self._row()  # predict first ...
            self._absorb(int(tokens[i]))  # ... then learn from the scored token
        return out

    def state_fingerprint(self):
        return (self.raw * self.scale).tobytes()

    def describe(self):
        return {"decay": self.decay, "alpha": self.alpha}
