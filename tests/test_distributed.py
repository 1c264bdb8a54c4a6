"""Distributed evaluation: `torchrun --nproc_per_node=2 -m pgolf_core eval` gives the one-process BPB.

Two gloo processes on CPU score a random-init tiny neural expert; the windows of each chunk are
split across the ranks and gathered, and the ttt adapter's gradients are summed across ranks, so
the reported numbers must match one process: to 1e-9 without TTT, to 1e-4 with it. One run covers
both: two copies of the expert ("neural", adapted by ttt, and "neural#2", left alone) under Hedge.
"""

from __future__ import annotations


import pytest

pytest.importorskip("torch")

from helpers.cli import eval_json  # noqa: E402

NEURAL = ["--expert-opt", "neural.preset=tiny", "--expert-opt", "neural.init_seed=0",
          "--expert-opt", "neural.seq_len=128", "--expert-opt", "neural.stride=32"]
TTT = ["-a", "ttt", "--adapter-opt", "ttt.chunk_tokens=384", "--adapter-opt", "ttt.seq_len=128",
       "--adapter-opt", "ttt.batch=3", "--adapter-opt", "ttt.lr=1e-2", "--adapter-opt", "ttt.epochs=2",
       "--adapter-opt", "ttt.polyak=0.5"]


def _eval(nproc: int) -> dict:
    args = ["eval", "-e", "neural,neural", *NEURAL, *TTT, "--limit", "1300", "--chunk-size", "256"]
    return eval_json(args, nproc, timeout=300)


@pytest.fixture(scope="module")
def runs():
    return _eval(1), _eval(2)


@pytest.mark.slow
def test_two_processes_give_the_one_process_bpb_without_ttt(runs):
    one, two = runs
    assert two["config"]["world_size"] == 2 and one["config"]["world_size"] == 1
    assert abs(one["metrics"]["experts"]["neural#2"]["bpb"] - two["metrics"]["experts"]["neural#2"]["bpb"]) < 1e-9


@pytest.mark.slow
def test_two_processes_give_the_one_process_bpb_with_ttt(runs):
    one, two = runs
    adapted = [r["metrics"]["experts"]["neural"]["bpb"] for r in runs]
    assert abs(adapted[0] - adapted[1]) < 1e-4
    assert abs(one["metrics"]["bpb"] - two["metrics"]["bpb"]) < 1e-4  # the Hedge mixture of both
    assert one["adapters"]["ttt"]["chunks_trained"] == two["adapters"]["ttt"]["chunks_trained"] == 3
    # TTT did change the scores, so the comparison means something
    assert abs(adapted[0] - one["metrics"]["experts"]["neural#2"]["bpb"]) > 1e-4
