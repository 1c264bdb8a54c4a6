"""Online geometric (logistic) mixer and stacking: normalization, causality, chunking, kernels, options."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pgolf_core.errors import UsageError
from helpers.mixers import build, experts, mix_in_chunks, target_logp

SETTINGS = settings(max_examples=25, deadline=None)
seeds = st.integers(0, 2**31 - 1)

LOGISTIC_MODES = [
    {},
    {"lr": 0.1},
    {"lr": 0.05, "bias": 1},
    {"context": "entropy", "buckets": 4},
    {"context": "confidence", "buckets": 3, "bias": "true"},
]
STACKS = [
    {"inputs": "hedge:share=0.01;logistic:lr=0.02"},
    {"inputs": "hedge;hedge:update=batch:eta=0.1", "top": "hedge", "top_opts": "share=0.05"},
    {"inputs": "hedge:share=0.1;logistic:context=entropy:buckets=3", "top": "logistic:lr=0.05"},
]
ALL = [("logistic", m) for m in LOGISTIC_MODES] + [("stack", s) for s in STACKS]


@SETTINGS
@given(seed=seeds, k=st.integers(1, 4), n=st.integers(1, 40), which=st.sampled_from(ALL),
       cuts=st.lists(st.integers(1, 39), max_size=3))
def test_distributions_are_normalized_and_match_the_scores(seed, k, n, which, cuts):
    name, opts = which
    dists, targets, logp = experts(seed, k, n, 9)
    mixer = build(name, k, 9, **opts)
    bounds = [0, *sorted(set(c for c in cuts if c < n)), n]
    for a, b in zip(bounds[:-1], bounds[1:]):
        out, dist = mixer.mix(logp[:, a:b], targets[a:b], dists[:, a:b], return_distribution=True)
        assert dist.shape == (b - a, 9) and np.all(dist >= 0)
        np.testing.assert_allclose(dist.sum(axis=1), 1.0, rtol=0, atol=1e-9)
        np.testing.assert_allclose(np.log(dist[np.arange(b - a), targets[a:b]]), out, rtol=0, atol=1e-9)


@SETTINGS
@given(seed=seeds, k=st.integers(1, 4), n=st.integers(2, 40), which=st.sampled_from(ALL),
       cuts=st.lists(st.integers(1, 39), max_size=3), data=st.data())
def test_changing_the_future_leaves_the_past_unchanged(seed, k, n, which, cuts, data):
    name, opts = which
    t = data.draw(st.integers(1, n - 1))
    dists, targets, _ = experts(seed, k, n, 7)
    dists2, targets2, _ = experts(seed + 11, k, n, 7)
    dists2[:, :t], targets2[:t] = dists[:, :t], targets[:t]
    a = mix_in_chunks(build(name, k, 7, **opts), dists, targets, cuts)
    b = mix_in_chunks(build(name, k, 7, **opts), dists2, targets2, cuts)
    np.testing.assert_array_equal(a[:t], b[:t])


PER_TOKEN = [w for w in ALL if "batch" not in str(w[1])]


@SETTINGS
@given(seed=seeds, k=st.integers(1, 4), n=st.integers(1, 50), which=st.sampled_from(PER_TOKEN),
       cuts=st.lists(st.integers(1, 49), max_size=4))
def test_per_token_mixers_do_not_depend_on_chunking(seed, k, n, which, cuts):
    name, opts = which
    dists, targets, logp = experts(seed, k, n, 7)
    whole = build(name, k, 7, **opts).mix(logp, targets, dists)
    split = mix_in_chunks(build(name, k, 7, **opts), dists, targets, cuts)
    np.testing.assert_allclose(split, whole, rtol=0, atol=1e-9)


@SETTINGS
@given(seed=seeds, k=st.integers(1, 4), n=st.integers(1, 30))
def test_logistic_of_identical_experts_without_learning_is_that_expert(seed, k, n):
    # With weights 1/K summing to 1, the normalized geometric mean of K copies of p is p. (With
    # lr > 0 the weights move together and temper p, which is the point of learning them.)
    dists, targets, logp = experts(seed, 1, n, 8)
    out, dist = build("logistic", k, 8, lr=0).mix(np.repeat(logp, k, 0), targets, np.repeat(dists, k, 0),
                                                  return_distribution=True)
    np.testing.assert_allclose(out, logp[0], atol=1e-12)
    np.testing.assert_allclose(dist, dists[0], atol=1e-12)


@SETTINGS
@given(seed=seeds, k=st.integers(1, 4), n=st.integers(1, 30), m=st.sampled_from(["hedge", "hedge:share=0.2"]))
def test_stack_of_hedges_over_identical_experts_is_that_expert(seed, k, n, m):
    dists, targets, logp = experts(seed, 1, n, 8)
    mixer = build("stack", k, 8, inputs=f"{m};hedge:update=batch", top="hedge")
    out = mixer.mix(np.repeat(logp, k, 0), targets, np.repeat(dists, k, 0))
    np.testing.assert_allclose(out, logp[0], atol=1e-12)


def test_logistic_starts_at_the_geometric_mean_and_learns_to_trust_the_better_expert():
    rng = np.random.default_rng(0)
    n, vocab = 400, 16
    targets = rng.integers(0, vocab, n)
    good = np.full((n, vocab), 0.2 / (vocab - 1))
    good[np.arange(n), targets] = 0.8  # a sharp, right expert
    dists = np.stack([good, rng.dirichlet(np.full(vocab, 0.3), n)])  # ... and a random one
    mixer = build("logistic", 2, vocab, lr=0.05)
    out = mixer.mix(target_logp(dists, targets), targets, dists)
    assert out[-50:].mean() > out[:50].mean()
    assert mixer.weights[0] > 0.8 and mixer.weights[1] < 0.2


@SETTINGS
@given(seed=seeds, k=st.integers(1, 4), n=st.integers(1, 25), mode=st.integers(0, 2), buckets=st.integers(1, 5),
       bias=st.booleans(), lr=st.floats(0.0, 0.3))
def test_logistic_kernel_matches_its_reference(seed, k, n, mode, buckets, bias, lr):
    from pgolf_mixers.logistic import PROB_FLOOR
    from pgolf_mixers.logistic_kernels import floored_log, logistic_kernel, logistic_reference

    dists, targets, _ = experts(seed, k, n, 10, concentration=0.2)
    dists[0, 0, :] = 0.0  # a zero probability must stay finite through the floor
    dists[0, 0, targets[0]] = 1.0
    rng = np.random.default_rng(seed)
    w0, b0 = rng.normal(0.3, 0.2, (buckets, k)), rng.normal(0, 0.1, 10)
    ref = logistic_reference(dists, targets, w0, b0, lr, bias, mode, PROB_FLOOR)
    w, b, counts = w0.copy(), b0.copy(), np.zeros(buckets, dtype=np.int64)
    out, dist = np.empty(n), np.empty((n, 10))
    logistic_kernel(floored_log(dists, PROB_FLOOR), dists[0], targets, w, b, lr, bias, mode, counts, out, dist)
    for got, want in zip((out, dist, w, b if bias else b0, counts), ref):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


def test_context_buckets_use_separate_weight_sets():
    dists, targets, logp = experts(5, 3, 200, 12, concentration=0.3)
    mixer = build("logistic", 3, 12, context="entropy", buckets=6, lr=0.1)
    mixer.mix(logp, targets, dists)
    info = mixer.describe()
    used = [c for c in info["bucket_counts"] if c]
    assert sum(info["bucket_counts"]) == 200 and len(used) >= 2
    sets = np.array(info["weight_sets"])
    assert not np.allclose(sets[np.argmax(info["bucket_counts"])], 1 / 3)
    assert mixer.weights.shape == (3,)


def test_stack_reports_the_top_weights_and_describes_every_part():
    dists, targets, logp = experts(1, 3, 30, 6)
    mixer = build("stack", 3, 6, inputs="hedge:share=0.01;logistic:lr=0.02;hedge:eta=0.5", top="hedge",
                  top_opts="share=0.001:eta=1")
    assert mixer.needs_distributions
    mixer.mix(logp, targets, dists)
    info = mixer.describe()
    assert [p["label"] for p in info["inputs"]] == ["hedge", "logistic", "hedge#2"]
    assert info["inputs"][0]["share"] == 0.01 and info["inputs"][2]["eta"] == 0.5
    assert info["top"]["name"] == "hedge" and info["top"]["share"] == 0.001
    assert info["top"]["inputs"] == ["hedge", "logistic", "hedge#2"]
    assert mixer.weights.shape == (3,) and abs(mixer.weights.sum() - 1) < 1e-12
    assert not build("stack", 3, 6, inputs="hedge;hedge:share=0.1").needs_distributions


@pytest.mark.parametrize("name, options, message", [
    ("logistic", {"lr": "-0.1"}, "option lr must be a finite number >= 0.0"),
    ("logistic", {"context": "topic"}, "option context must be one of none, entropy, confidence"),
    ("logistic", {"buckets": "0"}, "option buckets must be an integer >= 1"),
    ("logistic", {"bias": "maybe"}, "option bias must be a boolean"),
    ("logistic", {"init": "1,2"}, "option init must be 3 comma-separated numbers"),
    ("stack", {}, "option inputs must name at least one sub-mixer"),
    ("stack", {"inputs": "hedge:share"}, "expected key=value, got 'share'"),
    ("stack", {"inputs": "hedge:share=2"}, "option share must be"),
    ("stack", {"inputs": "hedgehog"}, "unknown mixer 'hedgehog'. Did you mean 'hedge'?"),
    ("stack", {"inputs": "hedge", "top_opts": "eta"}, "top_opts"),
    ("stack", {"inputs": "hedge", "top": "hedge:prior=1,2,3"}, "prior must be 1 comma-separated"),
])
def test_option_errors_are_clear(name, options, message):
    with pytest.raises(UsageError) as info:
        build(name, 3, 8, **options)
    assert message in str(info.value)


def test_geometric_is_an_alias_of_logistic():
    assert type(build("geometric", 2, 8)).__name__ == "LogisticMixer"


def test_logistic_needs_distributions():
    mixer = build("logistic", 2, 8)
    with pytest.raises(UsageError, match="needs the inputs' full distributions"):
        mixer.mix(np.zeros((2, 3)), np.zeros(3, dtype=int))
