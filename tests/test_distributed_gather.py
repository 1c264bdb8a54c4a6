"""The collective helpers on two gloo processes: split scoring with full distributions, summed gradients.

Each rank scores its share of the windows of a span (``score_span(split=True)``) and every rank must
end with exactly the one-process log-probs and full distributions (what a mixer that needs
distributions gets); ``sum_gradients`` must give every rank the sum of all ranks' gradients.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mp = pytest.importorskip("torch.multiprocessing")

from helpers.neural import MICRO, demo_stream  # noqa: E402

SPAN = (37, 301)  # a span that starts and ends inside windows


def _score(model, tokens, split):
    from pgolf_neural.scoring import score_span

    return score_span(model, tokens, *SPAN, seq_len=32, stride=8, batch=5, distributions=True, split=split)


def _model():
    from pgolf_neural.config import GPTConfig
    from pgolf_neural.expert import random_model

    return random_model(GPTConfig(**MICRO), 0)


def _worker(rank, world, init_file, out_dir):
    import torch.distributed as dist

    from pgolf_core.run.distributed import sum_gradients

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        logp, dists = _score(_model(), demo_stream(301), split=True)
        p = torch.nn.Parameter(torch.zeros(3))
        p.grad = torch.full((3,), float(rank + 1))
        q = torch.nn.Parameter(torch.zeros(2))  # no gradient on any rank: counts as zeros
        extra = sum_gradients([p, q], extra=torch.tensor([10.0 * (rank + 1)], dtype=torch.float64))
        np.savez(f"{out_dir}/rank{rank}.npz", logp=logp, dists=dists, grad=p.grad.numpy(), qgrad=q.grad.numpy(),
                 extra=extra.numpy())
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_split_scoring_and_gradient_sums_match_one_process(tmp_path):
    torch.set_num_threads(1)
    logp, dists = _score(_model(), demo_stream(301), split=False)
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        got = np.load(tmp_path / f"rank{rank}.npz")
        assert np.array_equal(got["logp"], logp)
        assert np.array_equal(got["dists"], dists)
        assert got["grad"].tolist() == [3.0, 3.0, 3.0] and got["qgrad"].tolist() == [0.0, 0.0]
        assert got["extra"].tolist() == [30.0]
