"""The target-by-target protocol (``predict``/``observe``) of the small experts: ``uniform``, the
example plugin's ``recency``, and the entropy experts (over an n-gram source, which is decodable).

Property: predict/observe rows equal ``distributions()`` rows bit for bit (each expert computes a
predicted row with the very expression its span path uses, on the same state), the state after
them is the state after the span, and predict changes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from pgolf_core.api import BuildContext
from pgolf_core.demo import demo_tokens
from pgolf_core.plugins import load_plugins

N = 2500
CHECK_EVERY = 500  # an n-gram fingerprint hashes millions of node rows: check the state now and then


@pytest.fixture(scope="module")
def registry():
    plugins = load_plugins()
    if "recency" not in plugins.experts.entries:  # the example package is not installed: load it as a module
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "pgolf-recency"))
        plugins = load_plugins(modules=["pgolf_recency.plugin"])
    return plugins


@pytest.fixture(scope="module")
def stream():
    return np.asarray(demo_tokens("val")[:N])


def build(plugins, name, **options):
    return plugins.experts.create(name, BuildContext(vocab_size=1024, plugins=plugins), **options)


def decode_rows(expert, tokens):
    """Rows by predict/observe; predict is checked to be repeatable and to leave the state alone."""
    rows = np.empty((len(tokens) - 1, expert.vocab_size))
    for t in range(1, len(tokens)):
        before = expert.state_fingerprint() if t % CHECK_EVERY == 0 else None
        rows[t - 1] = expert.predict(tokens[:t], t)
        if before is not None:
            assert expert.state_fingerprint() == before
            np.testing.assert_array_equal(expert.predict(tokens[:t], t), rows[t - 1])
        expert.observe(tokens[:t + 1], t)
    return rows


@pytest.mark.parametrize("name,options", [
    ("uniform", {}),
    ("recency", {"decay": "0.99", "alpha": "4"}),
    ("entropy", {"source": "trigram"}),
    ("entropy", {"source": "bigram", "buckets": "3"}),
    ("pr700-entropy", {"source": "bigram"}),
])
def test_rows_equal_distributions(registry, stream, name, options):
    decoded, batch = build(registry, name, **options), build(registry, name, **options)
    assert decoded.decodable
    rows = decode_rows(decoded, stream)
    np.testing.assert_array_equal(rows, batch.distributions(stream, 1, len(stream)))
    assert decoded.state_fingerprint() == batch.state_fingerprint()


def test_entropy_observe_without_predict_asks_the_source(registry, stream):
    """observe(t) reuses the row predict(t) got from the source; without it, it asks the source."""
    a, b = build(registry, "entropy", source="bigram"), build(registry, "entropy", source="bigram")
    for t in range(1, 200):
        a.predict(stream[:t], t)
        a.observe(stream[:t + 1], t)
        b.observe(stream[:t + 1], t)
    assert a.state_fingerprint() == b.state_fingerprint()
