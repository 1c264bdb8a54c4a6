"""The neural expert's target-by-target protocol (``predict``; ``observe`` is a no-op).

``predict(tokens[:t], t)`` runs the sliding window that owns ``t`` whole, as a batch of one, with the
inputs from ``t`` on set to token 0. Properties:

- its row equals ``distributions()``'s row for ``t`` to float32 rounding: the network runs in
  float32 and the batch path runs windows in batches (and clips the last window of a span), which
  gives the kernels other shapes. Measured on the demo checkpoint (CPU, one thread): bitwise equal
  wherever the batch path ran the window at its full width, at most 1.4e-6 absolute (6e-6
  relative) where it ran a clipped window alone; the tolerance 1e-5 absolute leaves a margin;
- it is deterministic and stateless: the same call gives the same bits, before or after other
  calls, on a second copy of the expert; it never changes the weights (the fingerprint);
- it follows the weights: nothing is cached across calls, so a test-time-training step shows.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pgolf_core.api import BuildContext  # noqa: E402
from pgolf_core.demo import demo_tokens  # noqa: E402
from pgolf_neural.expert import NeuralExpert  # noqa: E402

from helpers.neural import SMALL, one_thread, small_model  # noqa: E402,F401  (one_thread: autouse)

TOLERANCE = 1e-5  # absolute, on probabilities: float32 rounding of the network (see the module docstring)


def small_expert(seq_len=16, stride=4, batch=32, dist_dtype="float64"):
    """Every architectural feature on (bigram, VE, XSA, GQA, partial RoPE, U-Net), tiny sizes."""
    return NeuralExpert(small_model(), seq_len=seq_len, stride=stride, batch=batch, device=torch.device("cpu"),
                        dtype=None, source="test", dist_dtype=dist_dtype)


def stream(n, vocab=SMALL["vocab_size"], seed=0):
    return np.random.default_rng(seed).integers(0, vocab, n).astype(np.uint16)


@pytest.fixture(scope="module")
def demo_expert(plugins_module):
    return plugins_module.experts.create("neural", BuildContext(vocab_size=1024, dataset="demo"))


@pytest.fixture(scope="module")
def plugins_module():
    from pgolf_core.plugins import load_plugins

    return load_plugins()


@pytest.mark.parametrize("seq_len,stride", [(16, 4), (16, 16), (8, 1)])
def test_rows_match_distributions_on_every_target(seq_len, stride):
    tokens = stream(90)
    expert = small_expert(seq_len, stride)
    expected = expert.distributions(tokens, 1, len(tokens))
    rows = np.stack([expert.predict(tokens[:t], t) for t in range(1, len(tokens))])
    assert np.max(np.abs(rows - expected)) < TOLERANCE
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-12)


def test_demo_checkpoint_rows_match_distributions(demo_expert):
    """Window 0's edges, the first and last target of later windows, and a clipped last window."""
    tokens = np.asarray(demo_tokens("val")[:700])
    expected = demo_expert.distributions(tokens, 1, len(tokens))
    seq_len, stride = demo_expert.seq_len, demo_expert.stride
    targets = [1, 2, seq_len, seq_len + 1, seq_len + stride, seq_len + stride + 1, 650, 699]
    rows = np.stack([demo_expert.predict(tokens[:t], t) for t in targets])
    assert np.max(np.abs(rows - expected[np.array(targets) - 1])) < TOLERANCE


def test_predict_is_deterministic_and_stateless(demo_expert, plugins_module):
    tokens = np.asarray(demo_tokens("val")[:400])
    weights = demo_expert.state_fingerprint()
    first = demo_expert.predict(tokens[:300], 300)
    demo_expert.predict(tokens[:17], 17)
    demo_expert.distributions(tokens, 1, 400)
    demo_expert.observe(tokens[:301], 300)  # a no-op: the weights are the only state
    np.testing.assert_array_equal(demo_expert.predict(tokens[:300], 300), first)
    assert demo_expert.state_fingerprint() == weights
    copy = plugins_module.experts.create("neural", BuildContext(vocab_size=1024, dataset="demo"))
    np.testing.assert_array_equal(copy.predict(tokens[:300], 300), first)


def test_predict_follows_the_weights():
    """What a test-time-training adapter changes between chunks is what the next predict uses."""
    tokens = stream(40)
    expert = small_expert()
    before = expert.predict(tokens[:30], 30)
    with torch.no_grad():
        expert.model.blocks[0].mlp_scale.add_(0.5)
    changed = expert.predict(tokens[:30], 30)
    assert np.max(np.abs(changed - before)) > 1e-4
    assert np.max(np.abs(changed - expert.distributions(tokens, 30, 31)[0])) < TOLERANCE
    expert.reset()
    np.testing.assert_array_equal(expert.predict(tokens[:30], 30), before)


def test_float32_rows():
    tokens = stream(30)
    expert = small_expert(dist_dtype="float32")
    row = expert.predict(tokens[:25], 25)
    assert row.dtype == np.float32
    assert np.max(np.abs(row - expert.distributions(tokens, 25, 26)[0])) < TOLERANCE


def test_predict_needs_the_tokens_before_the_target():
    from pgolf_core.errors import UsageError

    with pytest.raises(UsageError, match="bad span"):
        small_expert().predict(stream(5), 6)
