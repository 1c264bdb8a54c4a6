"""Throughput of the neural expert's sliding-window scoring: stride 64 against stride = seq_len.

Both runs use the same model (the ``tiny`` preset, randomly initialised: speed does not depend on the
weights) and the same stream; the ratio is the price of giving every target a long context. The first
run of each setting is reported apart as warm-up (allocator, RoPE tables, thread pools).

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


def measure(model, tokens, seq_len, stride, batch, repeats, device) -> dict:
    def run():
        score_span(model, tokens, 1, len(tokens), seq_len=seq_len, stride=stride, batch=batch, device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()

    warm = timed(run)
    times = [timed(run) for _ in range(repeats)]
    n = len(tokens) - 1
    return {"stride": stride, "warmup_s": warm, "median_s": statistics.median(times),
            "targets_per_s": n / statistics.median(times)}


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
    ref = measure(model, tokens, seq_len, seq_len, args.batch, args.repeats, device)
    sliding = measure(model, tokens, seq_len, args.stride, args.batch, args.repeats, device)
    for r in (ref, sliding):
        print(f"stride {r['stride']:>5}: {r['targets_per_s']:>12,.0f} targets/s  (median {r['median_s']:.3f} s, "
              f"warm-up run {r['warmup_s']:.3f} s)")
    print(f"ratio stride {args.stride} / stride {seq_len}: {sliding['targets_per_s'] / ref['targets_per_s']:.3f} "
          f"(ideal compute ratio {args.stride / seq_len:.3f})")


if __name__ == "__main__":
    main()
