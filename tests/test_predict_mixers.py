"""The mixers' target-by-target protocol (``predict``/``observe``, the compressor's contract).

Properties, for every builtin mixer and mode:

- ``predict(rows)`` is, bit for bit, the row that a one-target ``mix(..., return_distribution=True)``
  gives, and it changes nothing (fingerprint, weights, a second call);
- ``observe`` moves the state exactly as that one-target ``mix`` does;
- two fresh copies driven by the same predict/observe calls give the same bits (the decoder's view);
- per-token mixers agree with one long ``mix`` span: logistic bit for bit (its kernel is sequential
  either way), per-token Hedge to 1e-9 relative (a span sums its losses with a cumulative sum, whose
  rounding differs from one addition per call; measured at most 1.1e-10 relative over 4096 targets
  with 8 inputs, 2.5e-14 with 2).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.mixers import HEDGE_MODES, build, experts

V = 48
CONFIGS = [("hedge", m) for m in HEDGE_MODES] + [
    ("logistic", {}),
    ("logistic", {"bias": 1, "lr": 0.02}),
    ("geometric", {"context": "entropy", "buckets": 4}),
    ("logistic", {"context": "confidence", "buckets": 3, "bias": 1}),
    ("stack", {"inputs": "hedge:share=0.01;logistic:lr=0.02;hedge:update=batch:eta=0.1"}),
    ("stack", {"inputs": "hedge;hedge:share=0.1:solo_first=3", "top": "logistic"}),
    ("tilt", {"order": 2, "threshold": 0.2}),  # fires often on short random streams
    ("tilt", {"order": 3, "threshold": 0.3, "inner": "logistic:lr=0.02", "beta": 1.5}),
]
FEW = settings(max_examples=3, deadline=None)  # per configuration: every mode is run, few streams each
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in options.items())}" for name, options in CONFIGS]


def one_target_mix(mixer, dists, target):
    """What the default protocol means: a one-target ``mix`` of the rows ``dists`` (K, V)."""
    logp = np.log(np.asarray(dists[:, target], dtype=np.float64))[:, None]
    return mixer.mix(logp, np.array([target]), dists[:, None, :], return_distribution=True)


def decode(mixer, dists, targets):
    """Rows by predict/observe over the stream (dists (K, n, V)), as the decoding loop calls them."""
    rows = []
    for i, y in enumerate(targets):
        d = dists[:, i]
        rows.append(mixer.predict(d))
        observe(mixer, d, int(y))
    return np.array(rows)


def observe(mixer, d, y):
    """``observe`` as the loop calls it: the rows only for a mixer that needs them."""
    mixer.observe(np.log(np.asarray(d[:, y], dtype=np.float64)), y, d if mixer.needs_distributions else None)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
@FEW
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 5), float32=st.booleans())
def test_predict_is_the_one_target_mix_row_and_observe_its_step(seed, k, config, float32):
    name, options = config
    dists, targets, _ = experts(seed, k, 40, V)
    dists = dists.astype(np.float32) if float32 else dists
    mixer = build(name, k, V, **options)
    for i, y in enumerate(targets):
        d = dists[:, i]
        before, weights = mixer.state_fingerprint(), np.array(mixer.weights)
        row = mixer.predict(d)
        np.testing.assert_array_equal(mixer.predict(d), row)
        assert mixer.state_fingerprint() == before
        np.testing.assert_array_equal(mixer.weights, weights)
        reference = copy.deepcopy(mixer)
        _, mixed = one_target_mix(reference, d, int(y))
        np.testing.assert_array_equal(row, mixed[0])
        assert row.dtype == np.float64 and abs(row.sum() - 1.0) < (1e-6 if float32 else 1e-12)
        observe(mixer, d, int(y))
        assert mixer.state_fingerprint() == reference.state_fingerprint()


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
@FEW
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 4))
def test_two_copies_decode_identically(seed, k, config):
    name, options = config
    dists, targets, _ = experts(seed, k, 60, V)
    a, b = (decode(build(name, k, V, **options), dists, targets) for _ in range(2))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("k,options", [(2, {}), (8, {}), (4, {"eta": 0.1}), (3, {"share": 0.01, "bias": 1.0})])
def test_per_token_hedge_agrees_with_one_long_span(k, options):
    n = 600
    dists, targets, logp = experts(k + 10, k, n, V)
    rows = decode(build("hedge", k, V, **options), dists, targets)
    out, long = build("hedge", k, V, **options).mix(logp, targets, dists, return_distribution=True)
    np.testing.assert_allclose(rows, long, rtol=1e-9, atol=0)
    np.testing.assert_allclose(np.log(rows[np.arange(n), targets]), out, rtol=0, atol=1e-9)


@pytest.mark.parametrize("options", [{}, {"bias": 1, "context": "entropy", "buckets": 4}])
def test_logistic_agrees_with_one_long_span_bit_for_bit(options):
    dists, targets, logp = experts(3, 3, 300, V)
    rows = decode(build("logistic", 3, V, **options), dists, targets)
    _, long = build("logistic", 3, V, **options).mix(logp, targets, dists, return_distribution=True)
    np.testing.assert_array_equal(rows, long)


def test_predict_rejects_misshapen_rows():
    from pgolf_core.errors import UsageError

    for name in ("hedge", "logistic"):
        with pytest.raises(UsageError, match=r"dists must have shape \(2, 48\)"):
            build(name, 2, V).predict(np.full((3, V), 1.0 / V))
