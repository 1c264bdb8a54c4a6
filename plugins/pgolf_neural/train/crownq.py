"""Late QAT (straight-through fake quantization) and the CROWN-Q penalty.

Both act on the quantized matrices of the model: the ``nn.Linear`` weights that the artifact stores
as int5 (attention and MLP). Late QAT makes the forward pass see each weight rounded to its row's
int5 grid while gradients flow to the full-precision weight as if rounding were the identity.
CROWN-Q adds (lambda / 12) * sum_W mean(w^2 * delta_row^2), delta_row = max|w_row| / clip_range
(detached): delta^2 / 12 is the variance of uniform rounding noise, so the term pushes down the
weights whose rows would be quantized coarsely.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import Tensor

QAT_QUANTILE = 0.9995  # row clip of the fake quantizer: robust to a few outliers, as in the seed


def quantized_linears(model: torch.nn.Module) -> list:
    """(name, module) of the linear layers whose weights the artifact stores as int5."""
    from ..artifact import tensor_kind

    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and tensor_kind(n + ".weight", m.weight) == "int5"]


def crownq_penalty(weights, clip_range: int = 15) -> Tensor:
    """sum over matrices of mean(w^2 * delta_row^2), delta_row = max|w_row| / clip_range (detached).

    Multiply by lambda / 12 for the loss term.
    """
    total = None
    for w in weights:
        w = w.float()
        delta = w.detach().abs().amax(dim=1) / clip_range  # (rows,)
        term = (w.pow(2) * delta.pow(2)[:, None]).mean()
        total = term if total is None else total + term
    if total is None:
        raise ValueError("CROWN-Q needs at least one weight matrix")
    return total


def fake_quantize(w: Tensor, clip_range: int = 15) -> Tensor:
    """Straight-through int-``clip_range`` rounding per row: forward rounded, backward identity."""
    with torch.no_grad():
        w32 = w.float()
        scale = (torch.quantile(w32.abs(), QAT_QUANTILE, dim=1) / clip_range).clamp_min(1.0 / clip_range)
        wq = (torch.clamp(torch.round(w32 / scale[:, None]), -clip_range, clip_range) * scale[:, None]).to(w.dtype)
    return w + (wq - w).detach()


def _qat_forward(self, x: Tensor) -> Tensor:
    w = fake_quantize(self.weight, self._pgolf_clip_range) if self.training else self.weight
    bias = self.bias.to(x.dtype) if self.bias is not None else None
    return F.linear(x, w.to(x.dtype), bias)


class LateQAT:
    """Switches fake quantization on for the int5 layers of ``model`` (once on, it stays on)."""

    def __init__(self, model: torch.nn.Module, clip_range: int = 15):
        self.layers = quantized_linears(model)
        self.clip_range = clip_range
        self.enabled = False

    def enable(self) -> None:
        if self.enabled:
            return
        for _, m in self.layers:
            m._pgolf_clip_range = self.clip_range
            m.forward = types.MethodType(_qat_forward, m)  # per instance: the class stays untouched
        self.enabled = True

    def disable(self) -> None:
        for _, m in self.layers:
            if "forward" in m.__dict__:
                del m.forward
        self.enabled = False

    def penalty(self) -> Tensor:
        return crownq_penalty([m.weight for _, m in self.layers], self.clip_range)
