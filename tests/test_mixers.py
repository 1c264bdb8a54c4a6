"""Hedge mixer properties.

Experts are random Dirichlet distributions over a small vocabulary; mixers are built through the
registry with string options, as the command line builds them (``helpers.mixers``).
"""

from __future__ import annotations

import numpy as np

from helpers.mixers import HEDGE_MODES, build, experts, mix_in_chunks


def logsumexp(a, axis=0):
    m = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(a - m), axis=axis))


# ---------------------------------------------------------------------------------------------------
# Hedge

import pytest  # noqa: E402
from hypothesis import given, settings, strategies as st  # noqa: E402

from pgolf_core.errors import UsageError  # noqa: E402

SETTINGS = settings(max_examples=40, deadline=None)
seeds = st.integers(0, 2**31 - 1)

TOKEN_MODES = [m for m in HEDGE_MODES if m.get("update", "token") == "token"]


@SETTINGS
@given(seed=seeds, k=st.integers(1, 5), n=st.integers(1, 60), mode=st.sampled_from(HEDGE_MODES),
       cuts=st.lists(st.integers(1, 59), max_size=4))
def test_hedge_weights_stay_on_the_simplex(seed, k, n, mode, cuts):
    dists, targets, logp = experts(seed, k, n, 6)
    mixer = build("hedge", k, 6, **mode)
    bounds = [0, *sorted(set(c for c in cuts if c < n)), n]
    for a, b in zip(bounds[:-1], bounds[1:]):
        mixer.mix(logp[:, a:b], targets[a:b])
        w = mixer.weights
        assert w.shape == (k,) and np.all(w >= 0) and abs(w.sum() - 1.0) < 1e-12


@SETTINGS
@given(seed=seeds, k=st.integers(1, 5), n=st.integers(1, 80), cuts=st.lists(st.integers(1, 79), max_size=3))
def test_per_token_hedge_with_eta_1_is_the_bayesian_mixture(seed, k, n, cuts):
    dists, targets, logp = experts(seed, k, n, 7)
    prior = np.random.default_rng(seed + 1).uniform(0.1, 1.0, k)
    mixer = build("hedge", k, 7, eta=1, prior=",".join(f"{p:.17g}" for p in prior))
    total = -mix_in_chunks(mixer, dists, targets, cuts, with_dists=False).sum()
    bayes = -logsumexp(np.log(prior / prior.sum()) + logp.sum(axis=1))  # -ln sum_k prior_k prod_t p_k,t
    assert total == pytest.approx(bayes, abs=1e-9)


@SETTINGS
@given(seed=seeds, k=st.integers(1, 6), n=st.integers(1, 120), eta=st.floats(0.01, 1.0))
def test_hedge_regret_against_the_best_expert_is_at_most_ln_k_over_eta(seed, k, n, eta):
    # Log loss is eta-mixable for eta <= 1 (Jensen: sum w p^eta <= (sum w p)^eta), hence the bound.
    dists, targets, logp = experts(seed, k, n, 5, concentration=0.3)
    mixer = build("hedge", k, 5, eta=eta)
    loss = -mixer.mix(logp, targets).sum()
    assert loss - (-logp.sum(axis=1)).min() <= np.log(k) / eta + 1e-9


def fixed_share_bound(k, eta, alpha, n, switches):
    """Regret bound of our fixed share against any expert sequence with S switches over T targets.

    Our update: v = w * exp(-eta * loss) / Z, then w' = (1 - alpha) v + alpha / K. With m_t the
    mixture's loss and j_t the comparator's expert, eta-mixability (eta <= 1) gives
    m_t <= l_t(j_t) + (1/eta) (ln v_t(j_t) - ln w_t(j_t)). Summing over t and telescoping with
    w_{t+1}(j) >= (1 - alpha) v_t(j) when j_{t+1} = j_t, w_{t+1}(j') >= alpha / K >= (alpha / K) v_t(j_t)
    at a switch, w_1(j) = 1/K and v_T <= 1:

        regret <= (1/eta) [ ln K + S ln(K / alpha) + (T - 1 - S) ln(1 / (1 - alpha)) ].
    """
    return (np.log(k) + switches * np.log(k / alpha) + (n - 1 - switches) * -np.log1p(-alpha)) / eta


@SETTINGS
@given(seed=seeds, k=st.integers(2, 5), n=st.integers(2, 150), eta=st.floats(0.05, 1.0),
       alpha=st.floats(0.001, 0.5), n_switch=st.integers(0, 6))
def test_fixed_share_regret_against_switching_experts(seed, k, n, eta, alpha, n_switch):
    dists, targets, logp = experts(seed, k, n, 5, concentration=0.3)
    rng = np.random.default_rng(seed + 2)
    cuts = np.unique(rng.integers(1, n, n_switch)) if n_switch else np.array([], dtype=int)
    bounds = [0, *cuts.tolist(), n]
    # The comparator: the best expert on each segment (a hard comparator with S = len(cuts) switches).
    comparator = sum((-logp[:, a:b].sum(axis=1)).min() for a, b in zip(bounds[:-1], bounds[1:]))
    mixer = build("hedge", k, 5, eta=eta, share=alpha)
    loss = -mixer.mix(logp, targets).sum()
    assert loss - comparator <= fixed_share_bound(k, eta, alpha, n, len(cuts)) + 1e-9


@SETTINGS
@given(seed=seeds, k=st.integers(1, 4), n=st.integers(1, 40), mode=st.sampled_from(HEDGE_MODES))
def test_mixture_of_identical_experts_is_that_expert(seed, k, n, mode):
    dists, targets, logp = experts(seed, 1, n, 8)
    same = np.repeat(dists, k, axis=0)
    out, dist = build("hedge", k, 8, **mode).mix(np.repeat(logp, k, axis=0), targets, same, return_distribution=True)
    np.testing.assert_allclose(out, logp[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(dist, dists[0], rtol=0, atol=1e-12)


@SETTINGS
@given(seed=seeds, k=st.integers(2, 4), n=st.integers(2, 40), loss=st.sampled_from(["sum", "mean"]))
def test_batch_update_scores_a_batch_with_weights_from_before_it(seed, k, n, loss):
    dists, targets, logp = experts(seed, k, 2 * n, 6)
    mixer = build("hedge", k, 6, update="batch", batch_loss=loss, eta=0.7, batch=n)
    mixer.mix(logp[:, :n], targets[:n])  # a first batch moves the weights
    before = mixer.weights.copy()
    out = mixer.mix(logp[:, n:], targets[n:])
    np.testing.assert_allclose(out, logsumexp(np.log(before)[:, None] + logp[:, n:]), rtol=0, atol=1e-12)
    # ... and the batch moved them only afterwards, by its own loss
    step = logp[:, n:].sum(axis=1) if loss == "sum" else logp[:, n:].mean(axis=1)
    after = np.log(before) + 0.7 * step
    np.testing.assert_allclose(mixer.weights, np.exp(after - logsumexp(after)), rtol=1e-9, atol=1e-300)


@SETTINGS
@given(seed=seeds, n=st.integers(2, 60), batch=st.integers(1, 25), cuts=st.lists(st.integers(1, 59), max_size=4))
def test_batch_updates_do_not_depend_on_how_the_stream_is_split_into_calls(seed, n, batch, cuts):
    dists, targets, logp = experts(seed, 3, n, 6)
    whole = build("hedge", 3, 6, update="batch", batch_loss="mean", eta=0.5, batch=batch)
    ref = whole.mix(logp, targets, dists, return_distribution=True)[1]
    parts, rows = build("hedge", 3, 6, update="batch", batch_loss="mean", eta=0.5, batch=batch), []
    bounds = [0, *sorted({c for c in cuts if c < n}), n]
    for s, e in zip(bounds, bounds[1:]):
        rows.append(parts.mix(logp[:, s:e], targets[s:e], dists[:, s:e], return_distribution=True)[1])
    np.testing.assert_allclose(np.concatenate(rows), ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(parts.weights, whole.weights, rtol=1e-12)


@SETTINGS
@given(seed=seeds, k=st.integers(1, 4), n=st.integers(2, 50), mode=st.sampled_from(HEDGE_MODES),
       cuts=st.lists(st.integers(1, 49), max_size=3), data=st.data())
def test_hedge_is_causal(seed, k, n, mode, cuts, data):
    t = data.draw(st.integers(1, n - 1))
    dists, targets, _ = experts(seed, k, n, 6)
    dists2, targets2, _ = experts(seed + 7, k, n, 6)
    dists2[:, :t], targets2[:t] = dists[:, :t], targets[:t]  # same past, different future from t on
    a = mix_in_chunks(build("hedge", k, 6, **mode), dists, targets, cuts)
    b = mix_in_chunks(build("hedge", k, 6, **mode), dists2, targets2, cuts)
    np.testing.assert_array_equal(a[:t], b[:t])


@SETTINGS
@given(seed=seeds, k=st.integers(1, 4), n=st.integers(1, 80), mode=st.sampled_from(TOKEN_MODES),
       cuts=st.lists(st.integers(1, 79), max_size=5))
def test_per_token_hedge_does_not_depend_on_chunking(seed, k, n, mode, cuts):
    dists, targets, logp = experts(seed, k, n, 6)
    whole = build("hedge", k, 6, **mode).mix(logp, targets)
    split = mix_in_chunks(build("hedge", k, 6, **mode), dists, targets, cuts, with_dists=False)
    np.testing.assert_allclose(split, whole, rtol=0, atol=1e-9)


def test_seed_settings_score_the_first_targets_with_the_first_expert_then_hedge_on_batch_means():
    dists, targets, logp = experts(3, 4, 30, 6)
    mixer = build("hedge", 4, 6, eta=0.1, update="batch", batch_loss="mean", bias=2.0, solo_first=10, batch=2)
    first = mixer.mix(logp[:, :12], targets[:12])
    np.testing.assert_array_equal(first[:10], logp[0, :10])
    w0 = np.exp([2.0, 0, 0, 0]) / np.exp([2.0, 0, 0, 0]).sum()
    np.testing.assert_allclose(first[10:], logsumexp(np.log(w0)[:, None] + logp[:, 10:12]), atol=1e-12)
    expected = np.log(w0) + 0.1 * logp[:, 10:12].mean(axis=1)  # only the mixed targets count
    np.testing.assert_allclose(mixer.weights, np.exp(expected - logsumexp(expected)), atol=1e-12)
    mixer.reset()
    np.testing.assert_allclose(mixer.weights, w0, atol=1e-15)
    np.testing.assert_array_equal(mixer.mix(logp[:, :12], targets[:12]), first)


def test_a_zero_probability_expert_loses_its_weight_without_nans():
    with np.errstate(divide="ignore"):
        logp = np.log(np.array([[0.5, 0.5, 0.5], [0.0, 0.5, 0.5]]))
    for mode in ({}, {"share": 0.1}, {"update": "batch", "batch": 3}):
        mixer = build("hedge", 2, 4, **mode)
        out = mixer.mix(logp, np.zeros(3, dtype=int))
        assert np.all(np.isfinite(out)) and np.all(np.isfinite(mixer.weights))
        assert mixer.weights[1] < 0.2


@SETTINGS
@given(seed=seeds, k=st.integers(1, 5), n=st.integers(1, 60), eta=st.floats(0.01, 2.0),
       alpha=st.one_of(st.just(0.0), st.floats(1e-6, 0.9)))
def test_fixed_share_kernel_matches_its_reference(seed, k, n, eta, alpha):
    from pgolf_mixers.hedge_kernels import hedge_share_kernel, hedge_share_reference

    _, _, logp = experts(seed, k, n, 5)
    lw0 = np.log(np.random.default_rng(seed).dirichlet(np.ones(k)))
    used_ref, lw_ref = hedge_share_reference(lw0, logp, eta, alpha)
    lw, used = lw0.copy(), np.empty((n, k))
    hedge_share_kernel(lw, logp, eta, alpha, used)
    np.testing.assert_allclose(used, used_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(lw, lw_ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("options, message", [
    ({"prior": "0.5,0.5"}, "3 comma-separated positive numbers, one per input (e0, e1, e2)"),
    ({"prior": "0.5,-0.25,0.25"}, "option prior must be 3"),
    ({"prior": "a,b,c"}, "option prior must be"),
    ({"eta": "-0.1"}, "option eta must be a finite number > 0.0"),
    ({"eta": "0"}, "option eta"),
    ({"eta": "nan"}, "option eta"),
    ({"share": "1"}, "option share must be a finite number >= 0.0 and < 1.0"),
    ({"share": "-0.01"}, "option share"),
    ({"update": "sometimes"}, "option update must be one of token, batch"),
    ({"batch_loss": "max"}, "option batch_loss must be one of sum, mean"),
    ({"solo_first": "-1"}, "option solo_first must be an integer >= 0"),
    ({"solo_first": "1.5"}, "option solo_first"),
    ({"bias": "big"}, "option bias must be a finite number"),
])
def test_hedge_option_errors_name_the_option_and_what_was_expected(options, message):
    with pytest.raises(UsageError, match="mixer 'hedge'") as info:
        build("hedge", 3, 8, **options)
    assert message in str(info.value)


def test_unknown_hedge_option_is_refused_with_a_suggestion():
    with pytest.raises(UsageError, match="Did you mean 'share'"):
        build("hedge", 2, 8, shar="0.1")


def test_hedge_rejects_misshapen_inputs():
    mixer = build("hedge", 2, 8)
    with pytest.raises(UsageError, match=r"logp must have shape \(K=2, n\)"):
        mixer.mix(np.zeros((3, 4)), np.zeros(4, dtype=int))
    with pytest.raises(UsageError, match="return_distribution=True needs"):
        mixer.mix(np.zeros((2, 4)), np.zeros(4, dtype=int), return_distribution=True)
