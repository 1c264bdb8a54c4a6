"""Sliding-window scoring: each target once, chunk-invariant, causal, normalized."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pgolf_neural.scoring import plan_windows, score_span  # noqa: E402

from helpers.neural import one_thread, small_model  # noqa: E402,F401  (one_thread: autouse fixture)

SEQ, STRIDE = 16, 5  # 16 is a multiple of neither 5 nor most stream lengths below


@pytest.fixture(scope="module")
def model():
    return small_model(seed=1)


@pytest.fixture(scope="module")
def stream():
    return np.random.default_rng(3).integers(0, 64, 97).astype(np.uint16)


@pytest.fixture(scope="module")
def reference(model, stream):
    return score_span(model, stream, 1, len(stream), seq_len=SEQ, stride=STRIDE, batch=4)


def _chunked(model, stream, cuts, **kw):
    bounds = [1, *sorted(set(cuts)), len(stream)]
    parts = [score_span(model, stream[:e], s, e, **kw) for s, e in zip(bounds, bounds[1:])]
    return np.concatenate(parts)


@pytest.mark.parametrize("seq_len,stride", [(16, 1), (16, 5), (16, 16), (7, 3), (1, 1)])
def test_every_target_scored_exactly_once_at_every_length(seq_len, stride):
    for n in range(2, 60):
        covered = [t for w in plan_windows(1, n, seq_len, stride) for t in range(w.lo, w.hi)]
        assert covered == list(range(1, n)), n
        for w in plan_windows(1, n, seq_len, stride):
            for t in range(w.lo, w.hi):  # context: tokens [begin, t), at most seq_len of them
                assert 0 <= w.begin < t and t - w.begin <= seq_len
                assert t - w.begin >= min(t, seq_len - stride + 1)
    # windows are placed by absolute position: splitting a span only clips them
    whole = plan_windows(1, 200, seq_len, stride)
    halves = plan_windows(1, 77, seq_len, stride) + plan_windows(77, 200, seq_len, stride)
    assert {w.begin for w in halves} == {w.begin for w in whole}
    assert [t for w in halves for t in range(w.lo, w.hi)] == list(range(1, 200))


@pytest.mark.parametrize("n", [2, 3, 9, 16, 17, 21, 40])
def test_short_streams_and_ragged_tails(model, n):
    s = np.random.default_rng(n).integers(0, 64, n)
    lp = score_span(model, s, 1, n, seq_len=SEQ, stride=STRIDE)
    assert lp.shape == (n - 1,) and np.all(lp < 0) and np.all(np.isfinite(lp))


@settings(max_examples=20, deadline=None)
@given(cuts=st.lists(st.integers(2, 96), max_size=6), batch=st.integers(1, 5))
def test_chunked_scoring_equals_single_call(model, stream, reference, cuts, batch):
    got = _chunked(model, stream, cuts, seq_len=SEQ, stride=STRIDE, batch=batch)
    np.testing.assert_allclose(got, reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("stride", [1, 4, 16])
def test_chunking_invariance_for_other_strides(model, stream, stride):
    one = score_span(model, stream, 1, len(stream), seq_len=SEQ, stride=stride)
    for cuts in ([2], [17, 18, 33], list(range(5, 97, 7))):
        np.testing.assert_allclose(_chunked(model, stream, cuts, seq_len=SEQ, stride=stride), one, atol=1e-5)


def test_each_target_uses_its_window_context(model, stream, reference):
    """Target t is predicted by the model run on tokens [begin, t) of the window that owns t."""
    for t in (1, 2, 16, 17, 20, 21, 22, 50, 96):
        (w,) = plan_windows(t, t + 1, SEQ, STRIDE)
        with torch.no_grad():
            ids = torch.from_numpy(stream[w.begin: t].astype(np.int64))[None]
            logits = model.forward_logits(ids, rope_len=SEQ)[0, -1].double()
        want = torch.log_softmax(logits, -1)[int(stream[t])].item()
        assert reference[t - 1] == pytest.approx(want, abs=1e-5)


def test_distributions_are_normalized_and_match_scores(model, stream, reference):
    lp, d = score_span(model, stream, 1, len(stream), seq_len=SEQ, stride=STRIDE, distributions=True)
    assert d.shape == (96, 64) and d.dtype == np.float64 and np.all(d >= 0)
    np.testing.assert_allclose(d.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.log(d[np.arange(96), stream[1:]]), lp, atol=1e-12)
    np.testing.assert_allclose(lp, reference, atol=1e-5)


@pytest.mark.parametrize("t", [1, 9, 16, 17, 40, 96])
def test_changing_tokens_from_t_on_leaves_earlier_predictions(model, stream, t):
    changed = stream.copy()
    changed[t:] = (changed[t:] + 7) % 64
    _, a = score_span(model, stream, 1, len(stream), seq_len=SEQ, stride=STRIDE, distributions=True)
    _, b = score_span(model, changed, 1, len(stream), seq_len=SEQ, stride=STRIDE, distributions=True)
    # the distribution for target u depends on tokens < u only: rows for u <= t are unchanged
    np.testing.assert_allclose(a[:t], b[:t], atol=1e-6)
    if t < 96:
        assert not np.allclose(a[t:], b[t:], atol=1e-6)


def test_bad_geometry_is_rejected(model, stream):
    with pytest.raises(ValueError, match="stride"):
        score_span(model, stream, 1, 10, seq_len=8, stride=9)
    with pytest.raises(ValueError, match="span"):
        plan_windows(0, 10, 8, 4)
    with pytest.raises(ValueError, match="ends at"):
        score_span(model, stream[:5], 1, 10, seq_len=8, stride=4)


def _split_worker(rank, size, port, out_dir):
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=size)
    try:
        model = small_model(seed=1)
        s = np.random.default_rng(3).integers(0, 64, 97).astype(np.uint16)
        lp, d = score_span(model, s, 1, 97, seq_len=SEQ, stride=STRIDE, batch=2, distributions=True, split=True)
        np.save(f"{out_dir}/lp{rank}.npy", lp)
        np.save(f"{out_dir}/d{rank}.npy", d)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes importing torch: ~15 s on two busy cores
def test_split_scoring_across_two_ranks_equals_one_process(model, stream, reference, tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_split_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    _, d_ref = score_span(model, stream, 1, len(stream), seq_len=SEQ, stride=STRIDE, distributions=True)
    for rank in (0, 1):  # every rank ends with the whole result
        np.testing.assert_allclose(np.load(tmp_path / f"lp{rank}.npy"), reference, atol=1e-5)
        np.testing.assert_allclose(np.load(tmp_path / f"d{rank}.npy"), d_ref, atol=1e-6)
    # without a process group, split scoring is plain scoring
    np.testing.assert_allclose(score_span(model, stream, 1, len(stream), seq_len=SEQ, stride=STRIDE, split=True),
                               reference, atol=1e-5)
