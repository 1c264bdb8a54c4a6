"""The properties ``helpers.neural.TinyExpert`` must have to be a fair stand-in for the neural
expert in the adapter tests."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers.neural import TinyExpert, demo_stream, one_thread  # noqa: E402,F401  (one_thread: autouse)

def test_tiny_expert_is_normalized_and_causal():
    e = TinyExpert()
    tokens = demo_stream(200)
    d = e.distributions(tokens[:150], 1, 150)
    assert np.allclose(d.sum(axis=1), 1.0, atol=1e-9)
    changed = tokens.copy()
    changed[100:] = (changed[100:] + 7) % 1024
    d2 = TinyExpert().distributions(changed[:150], 1, 150)
    assert np.allclose(d[:99], d2[:99])  # targets 1..99 see only tokens < 100
    assert not np.allclose(d[99:], d2[99:])


def test_tiny_expert_scores_do_not_depend_on_span_cuts():
    tokens = demo_stream(300)
    whole = TinyExpert().score(tokens[:300], 1, 300)
    e = TinyExpert()
    parts = np.concatenate([e.score(tokens[:b], a, b) for a, b in ((1, 37), (37, 38), (38, 201), (201, 300))])
    assert np.allclose(whole, parts, atol=1e-12)
