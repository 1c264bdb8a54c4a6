"""Hedge's ``batch_loss="window"`` (the seed record's loss) against a direct reading of it."""

from __future__ import annotations

import numpy as np
import pytest

from pgolf_core.errors import UsageError
from pgolf_mixers.hedge import HedgeMixer

K, N, BATCH, WINDOW, STRIDE, ETA = 3, 3000, 256, 512, 64, 0.1


def reference(lp: np.ndarray, solo: int) -> np.ndarray:
    """Per target: the log of the mixture; weights move after every ``BATCH`` mixed targets by eta
    times the mean loss over all positions of the batch's windows (each window: ``STRIDE`` scored
    targets and the ``WINDOW`` targets up to its end)."""
    lw, out = np.full(K, -np.log(K)), []
    out.extend(lp[0, :solo])
    for bs in range(solo, lp.shape[1], BATCH):
        be = min(bs + BATCH, lp.shape[1])
        w = np.exp(lw - np.logaddexp.reduce(lw))
        out.extend(np.log(w @ np.exp(lp[:, bs:be])))
        if be - bs == BATCH:
            total, count = np.zeros(K), 0
            for e in range(bs + STRIDE, be + 1, STRIDE):
                lo = max(e - WINDOW, 0)
                total -= lp[:, lo:e].sum(axis=1)
                count += e - lo
            lw = lw - ETA * total / count
            lw -= np.logaddexp.reduce(lw)
    return np.array(out)


@pytest.mark.parametrize("solo", [0, 100, 700])
def test_window_loss_is_the_seeds_mean_over_every_window_position(solo):
    lp = np.log(np.random.default_rng(solo).dirichlet(np.ones(40), size=(K, N))[..., 0] + 1e-3)
    ref = reference(lp, solo)
    runs = []
    for cuts in ([], [1, 2, 300, 301, 1200], list(range(5, N, 97))):
        m = HedgeMixer(K, 40, eta=ETA, update="batch", batch_loss="window", batch=BATCH, window=WINDOW,
                       stride=STRIDE, solo_first=solo)
        out, a = [], 0
        for b in cuts + [N]:
            out.append(m.mix(lp[:, a:b], np.zeros(b - a, dtype=np.int64)))
            a = b
        runs.append(np.concatenate(out))
    np.testing.assert_allclose(runs[0], ref, rtol=0, atol=1e-12)
    assert all(np.array_equal(r, runs[0]) for r in runs[1:])  # bitwise, however the stream is cut


def test_window_loss_differs_from_the_scored_mean_and_checks_its_geometry():
    lp = np.log(np.random.default_rng(9).dirichlet(np.ones(40), size=(K, N))[..., 0] + 1e-3)
    lp[1, :N // 2] -= 2.0  # input 1 is bad early: a window loss keeps remembering that for longer

    def weights(loss):
        m = HedgeMixer(K, 40, eta=ETA, update="batch", batch_loss=loss, batch=BATCH)
        m.mix(lp, np.zeros(N, dtype=np.int64))
        return m.weights

    assert not np.allclose(weights("window"), weights("mean"))
    with pytest.raises(UsageError, match="stride"):
        HedgeMixer(K, 40, update="batch", batch_loss="window", window=32, stride=64)
