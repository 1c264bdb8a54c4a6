"""A global phase of phased TTT: SGD on every base weight over the documents already scored.

Called with the stream and ``end``: the targets ``1 .. end`` (inputs ``0 .. end - 1``) are the
whole documents scored so far, the last one closed by the BOS at ``end``. As in the field's recipe
(#1626, used by #1855), the phases are cumulative: each one trains, from the weights the earlier
phases left, on *all* the documents scored so far, with a fresh SGD (momentum) optimizer:

- the targets are cut into chunks of ``chunk_tokens``; chunk ``i`` of ``n`` trains at
  ``lr * (1 + cos(pi * i / (n - 1))) / 2``, and the last chunk is not trained on (the record's rule);
- a chunk is cut into sequences of ``seq_len`` targets (a shorter tail is left out), ``batch``
  sequences per step, the loss the mean over the step's targets, the gradient norm clipped;
- attention stays inside each document and the previous-token paths restart at each BOS (the
  record's "respect doc boundaries"), so training sees what scoring sees.

Ranks share each step's sequences. The gradient is built so that it does not depend on how many
ranks there are, bit for bit in practice: each sequence's gradient is computed on its own (a batch's
gradient would depend on the batch's shape), summed in float64 (where sums of a few float32 values
are exact, so their order does not matter), all-reduced in float64 and only then rounded to the
weights' precision. This matters more than it seems: the per-document AdamW (beta1 0, epsilon 1e-10)
turns even a 1e-13 difference in the base weights into different steps, so anything less than equal
weights after a phase would break the "N ranks = one process" figure.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from pgolf_core.run.distributed import share, world


class GlobalPhase:
    def __init__(self, *, lr: float, momentum: float, chunk_tokens: int, seq_len: int, batch: int, epochs: int,
                 grad_clip: float, bos: int):
        self.lr, self.momentum, self.chunk_tokens = lr, momentum, chunk_tokens
        self.seq_len, self.batch, self.epochs, self.grad_clip, self.bos = seq_len, batch, epochs, grad_clip, bos

    def __call__(self, model, ids: np.ndarray, end: int) -> dict:
        params = list(model.parameters())
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.SGD(params, lr=self.lr, momentum=self.momentum)  # fresh each phase: no old momentum
        n_chunks = max(1, -(-int(end) // self.chunk_tokens))
        steps = 0
        try:
            for ci in range(n_chunks - 1):
                c0, c1 = ci * self.chunk_tokens, min((ci + 1) * self.chunk_tokens, end)
                n_seq = (c1 - c0) // self.seq_len
                lr = self.lr * 0.5 * (1.0 + math.cos(math.pi * ci / max(n_chunks - 1, 1)))
                for group in opt.param_groups:
                    group["lr"] = lr
                for _ in range(self.epochs):
                    for s0 in range(0, n_seq, self.batch):
                        first = [c0 + s * self.seq_len for s in range(s0, min(s0 + self.batch, n_seq))]
                        self._step(model, params, opt, ids, first)
                        steps += 1
        finally:
            for p in params:
                p.requires_grad_(False)
        return {"targets": int(end), "chunks_trained": max(0, n_chunks - 1), "steps": steps}

    def _step(self, model, params, opt, ids, first: list) -> None:
        """One SGD step on the sequences starting at input positions ``first`` (every rank's share)."""
        import torch.distributed as dist

        rank, size = world()
        lo, hi = share(len(first), rank, size)
        total = float(len(first) * self.seq_len)
        device = params[0].device
        acc = torch.zeros(sum(p.numel() for p in params), dtype=torch.float64, device=device)
        causal = torch.ones(self.seq_len, self.seq_len, dtype=torch.bool, device=device).tril()
        for p0 in first[lo:hi]:  # one sequence at a time (module docstring)
            x = torch.from_numpy(ids[p0:p0 + self.seq_len].astype(np.int64))[None].to(device)
            y = torch.from_numpy(ids[p0 + 1:p0 + self.seq_len + 1].astype(np.int64)).to(device)
            reset = x == self.bos
            doc = reset.long().cumsum(1)  # documents inside the sequence
            mask = (causal[None] & (doc[:, :, None] == doc[:, None, :]))[:, None]  # (1, 1, T, T)
            with torch.enable_grad():
                with torch.autocast("cuda", torch.bfloat16, enabled=device.type == "cuda"):
                    h = model.hidden(x, rope_len=self.seq_len, reset=reset, mask=mask)
                logits = model.head(h)[0]
                nll = F.cross_entropy(logits.float(), y, reduction="sum")
                grads = torch.autograd.grad(nll / total, params, allow_unused=True)
            acc += torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1).double()
                              for p, g in zip(params, grads)])
        if size > 1:
            dist.all_reduce(acc, op=dist.ReduceOp.SUM)
        offset = 0
        for p in params:
            p.grad = acc[offset:offset + p.numel()].view_as(p).to(p.dtype)
            offset += p.numel()
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        opt.step()
