"""Mixer test helpers: building mixers through the registry as the command line does, random
Dirichlet experts over a small vocabulary, chunked mixing, and a fixed equal-weight mixer."""

from __future__ import annotations

import functools

import numpy as np

from pgolf_core.api import BuildContext, Mixer


@functools.lru_cache(maxsize=1)
def registry():
    from pgolf_core.plugins import load_plugins

    return load_plugins()


def build(name: str, k: int, vocab: int, **options):
    """A mixer from the registry, with options given as the command line gives them (strings)."""
    plugins = registry()
    ctx = BuildContext(vocab_size=vocab, expert_names=tuple(f"e{i}" for i in range(k)), plugins=plugins)
    return plugins.mixers.create(name, ctx, **{key: str(v) for key, v in options.items()})


def experts(seed: int, k: int, n: int, vocab: int, concentration: float = 0.5):
    """K random experts (Dirichlet rows) and a target stream: (dists (K, n, V), targets, logp (K, n))."""
    rng = np.random.default_rng(seed)
    dists = rng.dirichlet(np.full(vocab, concentration), size=(k, n))
    dists = np.maximum(dists, 1e-12)
    dists /= dists.sum(axis=-1, keepdims=True)
    targets = rng.integers(0, vocab, n)
    return dists, targets, target_logp(dists, targets)


def target_logp(dists, targets):
    return np.log(dists[:, np.arange(len(targets)), targets])


def mix_in_chunks(mixer, dists, targets, cuts, with_dists: bool = True):
    """Mix the stream in calls split at ``cuts``; return the concatenated log-probabilities."""
    bounds = [0, *sorted(set(int(c) for c in cuts if 0 < c < len(targets))), len(targets)]
    logp = target_logp(dists, targets)
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        out.append(mixer.mix(logp[:, a:b], targets[a:b], dists[:, a:b] if with_dists else None))
    return np.concatenate(out)


HEDGE_MODES = [
    {},
    {"eta": 0.3},
    {"share": 0.05},
    {"share": 0.2, "eta": 0.5, "bias": 1.0},
    {"update": "batch"},
    {"update": "batch", "batch_loss": "mean", "share": 0.01},
    {"eta": 0.1, "update": "batch", "batch_loss": "mean", "bias": 2.0, "solo_first": 7},  # the seed's settings
    {"solo_first": 5, "share": 0.1},
    # the seed's window loss, with windows small enough to hold several in a test's few targets
    {"eta": 0.1, "update": "batch", "batch_loss": "window", "batch": 8, "window": 6, "stride": 2, "solo_first": 3},
]


class EqualMix(Mixer):
    """Fixed equal weights: a convex combination, normalized by construction."""

    def mix(self, logp, targets, dists=None, return_distribution=False):
        return np.logaddexp.reduce(logp, axis=0) - np.log(self.n_experts)

    @property
    def weights(self):
        return np.full(self.n_experts, 1.0 / self.n_experts)
