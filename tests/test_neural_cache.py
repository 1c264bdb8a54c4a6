"""The cached scorer (``scorer=cache``) and document isolation (``isolate_docs``).

Independent references: the model's own full-sequence forward with an explicit band mask (one call,
absolute positions, no cache) for the cached scorer; the window scorer where both must agree
(streams shorter than a window); scoring a document on its own for isolation.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pgolf_core.api import BuildContext  # noqa: E402
from pgolf_core.errors import UsageError  # noqa: E402
from pgolf_core.testing import check_decodable  # noqa: E402
from pgolf_neural.expert import NeuralExpert  # noqa: E402

from helpers.neural import SMALL, one_thread, small_model  # noqa: E402,F401  (one_thread: autouse)

TOL = 2e-5  # absolute, on log-probabilities: float32 rounding of differently shaped kernels
CPU = torch.device("cpu")
BOS = 1


def expert(scorer="cache", block=8, seq_len=16, bos=None, seed=0):
    return NeuralExpert(small_model(seed), seq_len=seq_len, stride=4, batch=8, device=CPU, dtype=None,
                        source="test", scorer=scorer, block=block if scorer == "cache" else None, bos=bos)


def stream(n, seed=0, bos_every=None):
    toks = np.random.default_rng(seed).integers(2, SMALL["vocab_size"], n).astype(np.uint16)
    if bos_every:
        toks[::bos_every] = BOS
    return toks


def band_reference(model, tokens, seq_len):
    """log p of every target from one forward over the whole stream: position i attends to
    positions (i - seq_len, i], nothing cached, rotary angles by absolute position."""
    n = len(tokens) - 1
    ids = torch.from_numpy(tokens[:n].astype(np.int64))[None]
    i = torch.arange(n)
    band = (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] < seq_len)
    with torch.no_grad():
        logits = model.head(model.hidden(ids, rope_len=seq_len, mask=band)[0])
        logp = torch.log_softmax(logits.double(), -1)
    return logp.gather(1, torch.from_numpy(tokens[1:].astype(np.int64))[:, None])[:, 0].numpy()


@pytest.mark.parametrize("block", [1, 5, 8, 16, 32, 48])  # 32, 48: attention in tiles of seq_len
def test_cached_scorer_equals_one_banded_forward(block):
    tokens = stream(150)
    e = expert(block=block)
    got = e.score(tokens, 1, len(tokens))
    assert np.max(np.abs(got - band_reference(e.model, tokens, 16))) < TOL


def test_cached_scorer_equals_windows_while_the_stream_fits_in_one_window():
    tokens = stream(16)
    a = expert("cache").score(tokens, 1, 16)
    b = expert("windows").score(tokens, 1, 16)
    assert np.max(np.abs(a - b)) < TOL


@pytest.mark.parametrize("block", [8, 48])
def test_rows_do_not_depend_on_how_the_stream_is_cut(block):
    tokens = stream(200)
    whole = expert(block=block).distributions(tokens, 1, 200)
    e = expert(block=block)
    cut = [1, 2, 9, 16, 17, 63, 64, 65, 130, 200]
    parts = np.concatenate([e.distributions(tokens[:b], a, b) for a, b in zip(cut, cut[1:])])
    assert np.array_equal(parts, whole)  # bitwise: blocks always run at their full shape


@pytest.mark.parametrize("block", [8, 32])
def test_predict_is_decodable_bitwise(block):
    tokens = stream(120)
    report = check_decodable(lambda: expert(block=block), tokens, chunk=37, tol=0.0)
    assert report["bitwise_repeatable"] and report["max_vs_distributions"] == 0.0


def test_tiled_blocks_give_the_rows_of_blocks_of_seq_len():
    tokens = stream(230, bos_every=61)
    for bos in (None, BOS):
        ref = expert(block=16, bos=bos).distributions(tokens, 1, 230)
        for block in (32, 64):
            assert np.max(np.abs(np.log(expert(block=block, bos=bos).distributions(tokens, 1, 230)) - np.log(ref))) < TOL


def test_rows_never_depend_on_later_tokens():
    a, b = stream(120), stream(120)
    b[70:] = stream(50, seed=9)
    ra, rb = expert().score(a, 1, 120), expert().score(b, 1, 120)
    assert np.array_equal(ra[:69], rb[:69]) and not np.array_equal(ra[69:], rb[69:])


def test_a_weight_change_rebuilds_the_cache_from_the_new_weights():
    tokens = stream(200)
    e = expert()
    e.score(tokens[:100], 1, 100)
    with torch.no_grad():  # what a TTT step does: in place, version counters move
        for p in e.model.parameters():
            p.mul_(0.9)
    after = e.score(tokens, 100, 200)
    fresh = expert()
    with torch.no_grad():
        for p in fresh.model.parameters():
            p.mul_(0.9)
    # a fresh scorer asked for the same span restarts at the same point (one band before it)
    assert np.array_equal(after, fresh.score(tokens, 100, 200))
    stale = expert()
    stale.score(tokens[:100], 1, 100)
    stale.cache.stamp = None  # pretend nothing changed: the old keys and values would be used
    stale.cache.adopt = True
    with torch.no_grad():
        for p in stale.model.parameters():
            p.mul_(0.9)
    stale.cache.adopt = True
    assert not np.array_equal(after, stale.score(tokens, 100, 200))


def test_copies_continue_like_the_original():
    tokens = stream(160)
    e = expert()
    e.score(tokens[:90], 1, 90)
    twin = copy.deepcopy(e)
    assert np.array_equal(twin.score(tokens, 90, 160), e.score(tokens, 90, 160))


def test_reset_empties_the_cache():
    tokens = stream(100)
    e = expert()
    first = e.score(tokens, 1, 100)
    e.reset()
    assert e.cache.pos == 0 and np.array_equal(e.score(tokens, 1, 100), first)


@pytest.mark.parametrize("scorer,block", [("cache", 8), ("cache", 48), ("windows", None)])
def test_isolated_documents_do_not_see_each_other(scorer, block):
    a = stream(130, bos_every=43)  # documents at 0, 43, 86, 129
    b = a.copy()
    b[1:43] = stream(42, seed=5)  # another first document

    def make(bos=None):
        return expert(scorer, bos=bos, **({"block": block} if block else {}))

    ra = make(BOS).score(a, 1, 130)
    rb = make(BOS).score(b, 1, 130)
    assert np.max(np.abs(ra[43:] - rb[43:])) < TOL  # targets 44.. belong to later documents
    # a document scored alone (its own stream, from its BOS) gets the same log-probs
    alone = make(BOS).score(a[43:86], 1, 43)
    assert np.max(np.abs(ra[43:85] - alone)) < TOL
    # without isolation the earlier document is seen
    assert np.max(np.abs(make().score(a, 1, 130)[43:] - make().score(b, 1, 130)[43:])) > 1e-3


def test_isolated_cached_scorer_is_decodable():
    tokens = stream(90, bos_every=29)
    check_decodable(lambda: expert(block=8, bos=BOS), tokens, chunk=31, tol=0.0)


def test_options(plugins):
    ctx = BuildContext(vocab_size=1024, dataset="demo")
    e = plugins.experts.create("neural", ctx, scorer="cache", block="32", isolate_docs="true")
    assert e.describe()["scorer"] == "cache" and e.block == 32 and e.bos == BOS
    for bad, what in [({"block": "32"}, "scorer=cache"), ({"scorer": "cache", "stride": "8"}, "block=N"),
                      ({"scorer": "kv"}, "scorer"), ({"isolate_docs": "maybe"}, "isolate_docs"),
                      ({"scorer": "cache", "block": "300"}, "multiple")]:
        with pytest.raises(UsageError, match=what):
            plugins.experts.create("neural", ctx, **bad)


@pytest.fixture(scope="module")
def plugins():
    from pgolf_core.plugins import load_plugins

    return load_plugins()


def test_document_windows_score_every_target_once_inside_its_document():
    from pgolf_neural.scoring import plan_document_windows

    tokens = stream(300, seed=3)
    tokens[[0, 5, 6, 40, 41, 200]] = BOS  # empty and one-token documents too
    for start, end in [(1, 300), (1, 41), (6, 7), (41, 250), (150, 300)]:
        windows = plan_document_windows(tokens, start, end, seq_len=16, stride=4, bos=BOS)
        targets = [t for w in windows for t in range(w.lo, w.hi)]
        assert targets == list(range(start, end))
        for w in windows:
            inputs = tokens[w.begin: w.hi - 1]
            assert BOS not in inputs[1:], (w, start, end)  # never a token of another document
            assert 0 < w.lo - w.begin and w.hi - 1 - w.begin <= 16


def test_the_seeds_adaptive_temperature():
    from pgolf_neural.scoring import adaptive_temperature

    logits = torch.tensor([[4.0, 0.0, 0.0, 0.0], [0.1, 0.0, 0.0, 0.0], [30.0, 0.0, 0.0, 0.0]])
    out = adaptive_temperature(logits, 0.98)
    p = np.exp(logits.numpy() - logits.numpy().max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    h = -(p * np.log(p + 1e-10)).sum(1)
    t = np.clip(1 - 0.02 * (1 - h / np.log(4)), 0.9, 1.05)
    np.testing.assert_allclose(out.numpy(), logits.numpy() / t[:, None], rtol=1e-6)
    assert torch.equal(adaptive_temperature(logits, 1.0), logits)
    tokens = stream(16)
    for scorer in ("windows", "cache"):
        hot = NeuralExpert(small_model(), seq_len=16, stride=4, batch=8, device=CPU, dtype=None, source="t",
                           scorer=scorer, block=8 if scorer == "cache" else None, temperature=0.9)
        rows = hot.distributions(tokens, 1, 16)
        np.testing.assert_allclose(rows.sum(1), 1.0, atol=1e-9)
        assert np.max(np.abs(np.log(rows[np.arange(15), tokens[1:]]) - expert(scorer).score(tokens, 1, 16))) > 1e-4
    check_decodable(lambda: NeuralExpert(small_model(), seq_len=16, stride=4, batch=8, device=CPU, dtype=None,
                                         source="t", scorer="cache", block=8, temperature=0.98), stream(60), chunk=23,
                    tol=0.0)


@pytest.mark.parametrize("scorer", ["cache", "windows"])
def test_log_rows_are_the_logs_of_the_rows(scorer):
    tokens = stream(90)
    rows = expert(scorer).distributions(tokens, 1, 90)
    logs = expert(scorer).log_distributions(tokens, 1, 90)
    assert logs.dtype == np.float32 and np.max(np.abs(logs - np.log(rows))) < 1e-5
