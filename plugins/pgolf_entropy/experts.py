"""The entropy experts: the seed's invalid one (kept to reproduce PR #700) and a legal one.

Both read the full distribution p_t of a *source* expert (``neural`` by default; any registered
expert that provides ``distributions``), built through the registry with the options given to them
under the prefix ``<source>_`` (``neural_checkpoint=...``). The source is their own instance, driven
over the same spans as they are: the evaluator has no way yet to share one expert's distributions
with another, so a neural source is run twice (once as the ``neural`` expert, once here), and a TTT
adapter adapts only the evaluator's ``neural`` expert, not this copy.
"""

from __future__ import annotations

import numpy as np

from pgolf_core.api import Expert
from pgolf_core.errors import UsageError

TINY = 1e-300  # floor before log: a zero-probability entry stays finite, and is renormalized away


def build_source(ctx, expert: str, source: str, options: dict) -> Expert:
    """Build the source expert through the registry; ``<source>_key=value`` options go to it."""
    prefix = source.replace("-", "_") + "_"
    bad = [k for k in options if not k.startswith(prefix)]
    if bad:
        raise UsageError(f"expert {expert!r} has no option {bad[0]!r}; options for its source {source!r} are "
                         f"written {prefix}<option> (e.g. {prefix}checkpoint=...)")
    if source in ("entropy", "pr700-entropy"):
        raise UsageError(f"expert {expert!r}: source {source!r} would feed an entropy expert to itself")
    plugins = ctx.plugins
    if plugins is None:
        from pgolf_core.plugins import load_plugins

        plugins = load_plugins()
    src = plugins.experts.create(source, ctx, **{k[len(prefix):]: v for k, v in options.items()})
    if not src.provides_distributions:
        raise UsageError(f"expert {expert!r}: source {source!r} does not provide full distributions")
    return src


def entropy_nats(p: np.ndarray) -> np.ndarray:
    """H(p) = -sum p log p per row, 0 log 0 = 0 (float64)."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-1)


class _SourceDriven(Expert):
    """Shared plumbing: the source advances over exactly the spans this expert is asked for."""

    def __init__(self, source: Expert):
        super().__init__(source.vocab_size)
        self.source = source

    def _source_rows(self, tokens, start, end) -> np.ndarray:
        rows = np.asarray(self.source.distributions(tokens, start, end), dtype=np.float64)
        if rows.shape != (end - start, self.vocab_size):
            raise ValueError(f"source {self.source.name!r} returned distributions of shape {rows.shape}")
        return rows

    def _source_row(self, tokens, t) -> np.ndarray:
        """The source's predicted row of target ``t`` as a (1, V) float64 block (the shape a one-target
        span has, so that predicting and scoring a span share every computation below)."""
        row = np.asarray(self.source.predict(tokens, t), dtype=np.float64)
        if row.shape != (self.vocab_size,):
            raise ValueError(f"source {self.source.name!r} predicted a row of shape {row.shape}")
        return row[None, :]

    @property
    def decodable(self) -> bool:
        """Target by target only when the source is."""
        return self.source.decodable

    def observe(self, tokens, t):
        self.source.observe(tokens, t)

    def update(self, tokens, start, end):
        self.source.update(tokens, start, end)

    def reset(self):
        self.source.reset()

    def state_fingerprint(self):
        return self.source.state_fingerprint()


class PR700EntropyExpert(_SourceDriven):
    """PR #700's "entropy expert": its NLL is H(p_t) whatever the target, so it gives exp(-H) to every
    one of the V tokens. Reproduced exactly to score the seed's configuration; it is not a
    distribution (the mass is V*exp(-H), e.g. about 19 at H = 4 nats)."""

    known_invalid = True
    invalid_reason = ("C2: gives probability exp(-H) to every token (H = entropy of the source distribution), "
                      "so its 'distribution' sums to V*exp(-H), not 1 (PR #700's entropy expert)")

    def score(self, tokens, start, end):
        return -entropy_nats(self._source_rows(tokens, start, end))

    def distributions(self, tokens, start, end):
        return self._flat(self._source_rows(tokens, start, end))

    def predict(self, tokens, t):
        """exp(-H) everywhere, from the source's predicted row (as invalid as ``distributions``)."""
        return self._flat(self._source_row(tokens, t))[0]

    def _flat(self, rows: np.ndarray) -> np.ndarray:
        return np.repeat(np.exp(-entropy_nats(rows))[:, None], self.vocab_size, axis=1)

    def describe(self):
        return {"source": self.source.name, "invalid": self.invalid_reason}


TEMPERATURES = np.geomspace(0.5, 2.0, 9)  # candidate temperatures per bucket; index 4 is exactly 1.0
TIE_BREAK = 1e-9 * np.abs(np.log(TEMPERATURES))  # equal losses (e.g. at the start) choose T = 1


def logsumexp_rows(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1)
    return m + np.log(np.exp(z - m[:, None]).sum(axis=1))


def tempered(logp: np.ndarray, temps: np.ndarray) -> np.ndarray:
    """softmax(logp / T) per row, ``temps`` (n,) one temperature per row of ``logp`` (n, V)."""
    z = logp / temps[:, None]
    return np.exp(z - logsumexp_rows(z)[:, None])


class EntropyTemperedExpert(_SourceDriven):
    """q_t = softmax(log p_t / T) with T chosen for the entropy bucket of p_t.

    The entropy H(p_t) in [0, log V] falls in one of ``buckets`` equal-width buckets. Each bucket keeps
    the cumulative log-loss that every candidate temperature would have had on the scored targets
    that fell in it; target t uses the temperature with the smallest loss so far (follow the leader),
    then its own loss is added. The choice for t depends only on targets < t, and q_t is an exact
    softmax: normalized by construction (C1-C3 hold whenever they hold for the source).
    """

    def __init__(self, source: Expert, buckets: int = 8):
        super().__init__(source)
        self.buckets = int(buckets)
        self.cum_loss = np.zeros((self.buckets, len(TEMPERATURES)))
        self._predicted = None  # (t, source row) of the last predict, so observe(t) need not ask again

    def _bucket(self, h: np.ndarray) -> np.ndarray:
        return np.minimum((h / np.log(self.vocab_size) * self.buckets).astype(np.int64), self.buckets - 1)

    def _leader(self, b: int, before: np.ndarray) -> np.ndarray:
        """Temperature index with the least loss in bucket ``b``, for each row of ``before`` (the losses
        of the span's earlier targets in that bucket, added to the ones absorbed so far)."""
        return np.argmin(self.cum_loss[b] + before + TIE_BREAK, axis=1)

    def _choose(self, logp: np.ndarray, targets: np.ndarray, buckets: np.ndarray):
        """Per target: the chosen temperature index and every candidate's loss; absorbs the losses."""
        n = len(targets)
        loss = np.empty((n, len(TEMPERATURES)))
        for j, temp in enumerate(TEMPERATURES):
            z = logp / temp
            loss[:, j] = logsumexp_rows(z) - z[np.arange(n), targets]
        choice = np.empty(n, dtype=np.int64)
        for b in np.unique(buckets):
            idx = np.nonzero(buckets == b)[0]
            before = np.vstack([np.zeros((1, loss.shape[1])), np.cumsum(loss[idx], axis=0)[:-1]])
            choice[idx] = self._leader(b, before)
            self.cum_loss[b] += loss[idx].sum(axis=0)
        return choice, loss

    def _span(self, tokens, start, end):
        self._predicted = None  # a span moves the source past any predicted target
        rows = self._source_rows(tokens, start, end)
        return self._absorb(rows, np.asarray(tokens[start:end], dtype=np.int64))

    def _absorb(self, rows: np.ndarray, targets: np.ndarray):
        """(log source rows, chosen temperature indices, every candidate's loss) of these targets,
        whose losses are then absorbed."""
        logp = np.log(np.maximum(rows, TINY))
        choice, loss = self._choose(logp, targets, self._bucket(entropy_nats(rows)))
        return logp, choice, loss

    def score(self, tokens, start, end):
        _, choice, loss = self._span(tokens, start, end)
        return -loss[np.arange(len(choice)), choice]

    def distributions(self, tokens, start, end):
        logp, choice, _ = self._span(tokens, start, end)
        return tempered(logp, TEMPERATURES[choice])

    def predict(self, tokens, t):
        """The row of target ``t``: the temperature a one-target span would choose (the leader of
        its bucket), applied to the source's predicted row; nothing is absorbed."""
        rows = self._source_row(tokens, t)
        self._predicted = (int(t), rows)
        b = int(self._bucket(entropy_nats(rows))[0])
        choice = self._leader(b, np.zeros((1, len(TEMPERATURES))))
        return tempered(np.log(np.maximum(rows, TINY)), TEMPERATURES[choice])[0]

    def observe(self, tokens, t):
        """Absorb target ``t``'s losses as a one-target span would, then let the source absorb it."""
        t = int(t)
        cached, self._predicted = self._predicted, None
        # The source row predict(t) used: the source has not moved since (observe follows predict).
        rows = cached[1] if cached is not None and cached[0] == t else self._source_row(tokens[:t], t)
        self._absorb(rows, np.asarray(tokens[t:t + 1], dtype=np.int64))
        super().observe(tokens, t)

    def reset(self):
        super().reset()
        self.cum_loss[:] = 0.0
        self._predicted = None

    def state_fingerprint(self):
        return (self.source.state_fingerprint() or b"") + self.cum_loss.tobytes()

    def describe(self):
        best = TEMPERATURES[np.argmin(self.cum_loss + TIE_BREAK, axis=1)]
        return {"source": self.source.name, "buckets": self.buckets, "temperatures": best.tolist()}
