"""One chunk of test-time training: byte-weighted loss, summed gradients across ranks, clipping, Polyak.

The global batch (``batch`` windows) is the same for any number of processes: each rank runs the
forward/backward on its share of the batch, the loss is normalized by the bytes of the *whole*
batch (known to every rank from the token stream), and the gradients are summed. One process and N
processes therefore take the same steps up to floating-point summation order.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
import torch.nn.functional as F

from pgolf_core.run.distributed import share, sum_gradients, world
from .windows import training_windows, window_arrays


def model_logits(model, x, rope_len=None):
    """Logits ``(B, T, V)`` of input ids ``x`` ``(B, T)``: the builtin GPT's ``forward_logits``
    (with ``rope_len``, so training uses the positional scaling that scoring uses: the neural expert
    scores every window with the RoPE base of its ``seq_len``), else the causal-LM protocol's
    ``logits`` (``pgolf_core.causal_lm``), else the module's own forward."""
    fwd = getattr(model, "forward_logits", None)
    if fwd is not None:
        if rope_len is not None and "rope_len" in inspect.signature(fwd).parameters:
            return fwd(x, rope_len=rope_len)
        return fwd(x)
    logits = getattr(model, "logits", None)
    return logits(x) if callable(logits) else model(x)


class Polyak:
    """Exponential moving average of the trained weights; the average is what the model scores with.

    Between chunks the model holds the averaged weights (``p``); the raw trained weights wait in
    ``raw``. ``begin`` swaps the raw weights in for training, ``end`` swaps the average back.
    ``decay == 0`` disables averaging: the model keeps the trained weights.
    """

    def __init__(self, params, decay: float):
        self.params, self.decay = list(params), float(decay)
        self.raw = [p.detach().clone() for p in self.params] if self.decay > 0 else None

    @torch.no_grad()
    def begin(self) -> None:
        if self.raw is not None:
            self.avg = [p.detach().clone() for p in self.params]
            for p, r in zip(self.params, self.raw):
                p.copy_(r)

    @torch.no_grad()
    def step(self) -> None:
        if self.raw is not None:
            for a, p in zip(self.avg, self.params):
                a.lerp_(p.detach(), 1.0 - self.decay)

    @torch.no_grad()
    def end(self) -> None:
        if self.raw is not None:
            for p, r, a in zip(self.params, self.raw, self.avg):
                r.copy_(p)
                p.copy_(a)
            del self.avg

    @torch.no_grad()
    def restart(self) -> None:
        """Forget the trajectory: the current weights become both the raw and the averaged ones."""
        if self.raw is not None:
            for p, r in zip(self.params, self.raw):
                r.copy_(p)


def make_optimizer(params, kind: str, lr: float, momentum: float = 0.9):
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.0, betas=(0.9, 0.999))
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    raise ValueError(f"unknown optimizer {kind!r}")


class ChunkTrainer:
    """Trains ``params`` of ``model`` on scored chunks; see the module docstring."""

    def __init__(self, model, params, *, optimizer: str, epochs: int, seq_len: int, batch: int,
                 grad_clip: float, polyak: float, byte_table, rope_len=None):
        self.model, self.params = model, list(params)
        self.epochs, self.seq_len, self.batch = epochs, seq_len, batch
        self.grad_clip, self.table, self.rope_len = grad_clip, byte_table, rope_len
        self.kind = optimizer
        self.opt = make_optimizer(self.params, optimizer, lr=0.0)
        self.polyak = Polyak(self.params, polyak)
        self.device = next(model.parameters()).device

    def reset_optimizer(self) -> None:
        self.opt = make_optimizer(self.params, self.kind, lr=0.0)

    def train(self, tokens: np.ndarray, a: int, b: int, lr: float) -> dict:
        """Train on targets ``[a, b)`` of ``tokens`` (all scored); returns steps and mean losses."""
        x, y, w = window_arrays(tokens, training_windows(a, b, self.seq_len), self.table)
        for group in self.opt.param_groups:
            group["lr"] = lr
        losses = []
        self.polyak.begin()
        try:
            for _ in range(self.epochs):
                total = 0.0
                for i0 in range(0, len(x), self.batch):
                    i1 = min(i0 + self.batch, len(x))
                    total += self._step(x[i0:i1], y[i0:i1], w[i0:i1])
                losses.append(total / max(float(w.sum()), 1e-12))
        finally:
            self.polyak.end()
        return {"steps": self.epochs * -(-len(x) // self.batch), "loss_first_epoch": losses[0] if losses else None,
                "loss_last_epoch": losses[-1] if losses else None}

    def _step(self, x, y, w) -> float:
        """One optimizer step on a global batch; returns the batch's byte-weighted NLL sum (all ranks)."""
        total_bytes = float(w.sum())
        if total_bytes <= 0:
            return 0.0  # only boundary tokens: nothing to learn, and no division by zero
        rank, size = world()
        lo, hi = share(len(x), rank, size)
        self.opt.zero_grad(set_to_none=True)
        local = torch.zeros(1, dtype=torch.float64, device=self.device)
        if hi > lo:
            xt = torch.from_numpy(x[lo:hi]).to(self.device)
            yt = torch.from_numpy(y[lo:hi]).to(self.device)
            wt = torch.from_numpy(w[lo:hi]).to(self.device, torch.float32)
            with torch.enable_grad():
                with torch.autocast("cuda", torch.bfloat16, enabled=self.device.type == "cuda"):
                    logits = model_logits(self.model, xt, self.rope_len)
                nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), yt.reshape(-1), reduction="none")
                weighted = (nll * wt.reshape(-1)).sum()
                (weighted / total_bytes).backward()
            local += weighted.detach().double()
        summed = sum_gradients(self.params, extra=local)
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.opt.step()
        self.polyak.step()
        return float(summed.item())
