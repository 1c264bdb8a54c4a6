"""Throughput of the neural expert's sliding-window scoring against the model's compute floor.

The floor is independent of the scorer: the model's own forward (``forward_logits`` plus a
log-softmax) over non-overlapping ``seq_len`` windows, every token computed once. Against it, the
scorer at stride = seq_len and at stride 64 (``score_span``, as the expert scores). All three use
the same model (the ``tiny`` preset, randomly initialised: speed does not depend on the weights)
and the same stream, and their repeats are interleaved (floor, stride seq_len, stride 64, floor,
...) so a busy machine slows them alike; medians are printed, the first round apart as warm-up.

    python benchmarks/bench_neural.py [--preset tiny] [--tokens 16384] [--seq-len N] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from pgolf_neural.config import preset
from pgolf_neural.expert import random_model
from pgolf_neural.scoring import score_span


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def scorer(model, tokens, seq_len, stride, batch, device):
    def run():
        score_span(model, tokens, 1, len(tokens), seq_len=seq_len, stride=stride, batch=batch, device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return run


def floor(model, tokens, seq_len, batch, device):
    """Every token once: full windows of seq_len through the model, batched, with a log-softmax."""
    n = (len(tokens) - 1) // seq_len * seq_len
    ids = torch.as_tensor(tokens[:n].astype(np.int64), device=device).view(-1, seq_len)

    def run():
        with torch.inference_mode():
            for i in range(0, ids.shape[0], batch):
                torch.log_softmax(model.forward_logits(ids[i:i + batch]), dim=-1)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return run, n


def interleaved(runs: dict, repeats: int) -> dict:
    """{name: (warm-up seconds, median seconds)} with the repeats of all runs interleaved."""
    warm = {k: timed(fn) for k, fn in runs.items()}
    times = {k: [] for k in runs}
    for _ in range(repeats):
        for k, fn in runs.items():
            times[k].append(timed(fn))
    return {k: (warm[k], statistics.median(v)) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--tokens", type=int, default=16384, help="stream length (random token ids)")
    ap.add_argument("--seq-len", type=int, default=None, help="window length (default: the preset's train_seq_len)")
    ap.add_argument("--stride", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = preset(args.preset)
    seq_len = args.seq_len or cfg.train_seq_len
    model = random_model(cfg, seed=0).to(device)
    tokens = np.random.default_rng(0).integers(0, cfg.vocab_size, args.tokens).astype(np.uint16)
    print(f"preset {args.preset} ({model.num_params():,} parameters), {args.tokens} tokens, seq_len {seq_len}, "
          f"batch {args.batch}, device {device}, threads {torch.get_num_threads()}, repeats {args.repeats}")
    model.eval()
    floor_run, floor_targets = floor(model, tokens, seq_len, args.batch, device)
    runs = {"floor (forward, each token once)": floor_run,
            f"scorer stride {seq_len}": scorer(model, tokens, seq_len, seq_len, args.batch, device),
            f"scorer stride {args.stride}": scorer(model, tokens, seq_len, args.stride, args.batch, device)}
    res = interleaved(runs, args.repeats)
    counts = {k: (floor_targets if k.startswith("floor") else len(tokens) - 1) for k in runs}
    ref = counts["floor (forward, each token once)"] / res["floor (forward, each token once)"][1]
    for k, (warm, med) in res.items():
        tps = counts[k] / med
        print(f"{k:<34} {tps:>12,.0f} targets/s  {tps / ref:6.3f} of the floor  (median {med:.3f} s, "
              f"warm-up {warm:.3f} s)")


if __name__ == "__main__":
    main()
