"""Train the model on token shards (``pgolf-core data prepare`` writes them):

    python -m pgolf_nanogpt.train --data DIR --out nano.pt [--steps 300] [--batch 16]

Plain next-token cross-entropy with AdamW and a cosine learning rate, random windows of
``context_length + 1`` tokens from the training shards; the validation shards are never read.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from pgolf_core.stream.data import load_tokens

from .model import NanoConfig, NanoGPT, save


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="directory of fineweb_train_*.bin shards")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    tokens = load_tokens(args.data, args.vocab, split="train").astype(np.int64)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = NanoGPT(NanoConfig(args.vocab, args.context, args.layers, max(1, args.dim // 32), args.dim))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    t0 = time.time()
    for step in range(args.steps):
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        starts = rng.integers(0, len(tokens) - args.context - 1, args.batch)
        x = torch.from_numpy(np.stack([tokens[s:s + args.context] for s in starts]))
        y = torch.from_numpy(np.stack([tokens[s + 1:s + args.context + 1] for s in starts]))
        loss = F.cross_entropy(model.logits(x).reshape(-1, args.vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step} loss {loss.item():.4f} lr {lr:.2e} {time.time() - t0:.0f} s", flush=True)
    save(model.eval(), args.out)
    print(f"wrote {args.out} ({sum(p.numel() for p in model.parameters()):,} parameters)")


if __name__ == "__main__":
    main()
