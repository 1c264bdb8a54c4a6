"""Throughput of the neural expert's scorers against the model's compute floor.

The floor is independent of the scorers: the model's own forward (``forward_logits`` plus a
log-softmax) over non-overlapping ``seq_len`` windows, every token computed once. Against it, the
expert as the evaluator calls it (spans of ``pgolf_core.evaluate.DEFAULT_CHUNK`` targets) with the
window scorer at stride = seq_len and at stride 64, and with the cached scorer (``scorer=cache``,
each position once, attention over the last seq_len positions). All use the same model and stream,
and their repeats are interleaved (floor, stride seq_len, stride 64, cache, floor, ...) so a busy
machine slows them alike; medians are printed, the first round apart as warm-up.

By default the model is a preset, randomly initialised (speed does not depend on the weights), on
random tokens. With ``--checkpoint`` and ``--data`` (a ``.npy`` token stream) it is a trained model
on real text, and each scorer's mean loss per target (nats) is printed beside its speed.

    python benchmarks/bench_neural.py [--preset tiny] [--tokens 16384] [--seq-len N] [--repeats 5]
    python benchmarks/bench_neural.py --checkpoint model.ptz --data val_tokens.npy [--block N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved  # noqa: E402

from pgolf_core.evaluate import DEFAULT_CHUNK
from pgolf_neural.config import preset
from pgolf_neural.expert import NeuralExpert, load_model, random_model


def scorer(model, tokens, seq_len, batch, device, losses: dict, name: str, last=None, **kind):
    """The expert over the stream (or its ``last`` targets) in the evaluator's spans; a fresh expert
    (empty cache) per run."""
    def run():
        expert = NeuralExpert(model, seq_len=seq_len, batch=batch, device=device, dtype=None, source="bench", **kind)
        first = len(tokens) - last if last else 1
        logp = [expert.score(tokens[:b], a, b) for a, b in spans(len(tokens), first)]
        if device.type == "cuda":
            torch.cuda.synchronize()
        losses[name] = -float(np.concatenate(logp).mean())

    return run


def spans(n: int, first: int = 1) -> list:
    return [(a, min(a + DEFAULT_CHUNK, n)) for a in range(first, n, DEFAULT_CHUNK)]


def floor(model, tokens, seq_len, batch, device, losses: dict, name: str):
    """Every token once: full windows of seq_len through the model, batched, with a log-softmax."""
    n = (len(tokens) - 1) // seq_len * seq_len
    ids = torch.as_tensor(tokens[:n].astype(np.int64), device=device).view(-1, seq_len)
    targets = torch.as_tensor(tokens[1:n + 1].astype(np.int64), device=device).view(-1, seq_len)

    def run():
        total = 0.0
        with torch.inference_mode():
            for i in range(0, ids.shape[0], batch):
                logp = torch.log_softmax(model.forward_logits(ids[i:i + batch]), dim=-1)
                total += float(logp.gather(2, targets[i:i + batch, :, None]).sum())
        if device.type == "cuda":
            torch.cuda.synchronize()
        losses[name] = -total / n

    return run, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--checkpoint", default=None, help="a trained model instead of a random preset")
    ap.add_argument("--data", default=None, help="a .npy token stream instead of random token ids")
    ap.add_argument("--tokens", type=int, default=16384, help="stream length")
    ap.add_argument("--block", type=int, default=None, help="cached scorer's block (default seq_len)")
    ap.add_argument("--stride64-targets", type=int, default=None,
                    help="score only the stream's last N targets with stride 64 (slow on long windows): "
                         "every window there is full, so its targets/s is the steady rate; its loss "
                         "covers those targets only")
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
    if args.checkpoint:
        model, what = load_model(args.checkpoint), args.checkpoint
    else:
        model, what = random_model(preset(args.preset), seed=0), f"preset {args.preset} (random)"
    cfg = model.config
    model = model.to(device).eval()
    seq_len = args.seq_len or cfg.train_seq_len
    if args.data:
        tokens = np.load(args.data)[: args.tokens].astype(np.uint16)
    else:
        tokens = np.random.default_rng(0).integers(0, cfg.vocab_size, args.tokens).astype(np.uint16)
    print(f"{what} ({model.num_params():,} parameters), {len(tokens)} tokens"
          f"{' of ' + args.data if args.data else ' (random)'}, seq_len {seq_len}, batch {args.batch}, "
          f"spans of {DEFAULT_CHUNK}, device {device}, threads {torch.get_num_threads()}, repeats {args.repeats}")
    losses: dict = {}
    names = ["floor (forward, each token once)", f"windows stride {seq_len}", f"windows stride {args.stride}",
             f"cache block {args.block or seq_len}"]
    floor_run, floor_targets = floor(model, tokens, seq_len, args.batch, device, losses, names[0])
    runs = {names[0]: floor_run,
            names[1]: scorer(model, tokens, seq_len, args.batch, device, losses, names[1], stride=seq_len),
            names[2]: scorer(model, tokens, seq_len, args.batch, device, losses, names[2], stride=args.stride,
                             last=args.stride64_targets),
            names[3]: scorer(model, tokens, seq_len, args.batch, device, losses, names[3], stride=args.stride,
                             scorer="cache", block=args.block)}
    res = interleaved(runs, args.repeats)
    counts = {k: (floor_targets if k == names[0] else len(tokens) - 1) for k in runs}
    counts[names[2]] = min(args.stride64_targets or len(tokens), len(tokens) - 1)
    ref = counts[names[0]] / res[names[0]][1]
    for k, (warm, med) in res.items():
        tps = counts[k] / med
        print(f"{k:<34} {tps:>12,.0f} targets/s  {tps / ref:6.3f} of the floor  loss {losses[k]:.5f} nats  "
              f"(median {med:.3f} s, warm-up {warm:.3f} s)")


if __name__ == "__main__":
    main()
