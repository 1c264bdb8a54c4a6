"""Per-row int5 quantization: round-to-nearest with a clip search, and GPTQ.

A row of a weight matrix is stored as integers q in [-clip_range, clip_range] (int5: 15) and one
fp16 scale; it dequantizes to q * scale. The scale comes from a search over row percentiles of |w|
(the one with the smallest squared reconstruction error wins). GPTQ then quantizes the columns in
order, spreading each column's rounding error onto the columns not yet quantized through the inverse
Hessian of the layer's inputs, so the layer's *output* error is small, not just the weight error.
"""

from __future__ import annotations

import torch
from torch import Tensor

CLIP_PERCENTILES = (0.999, 0.9995, 0.9999, 0.99999, 1.0)
INT5_CLIP_RANGE = 15
# Smallest normal fp16 number: the floor of a stored scale (the seed floors at 1/clip_range, which
# flattens rows of small weights to a handful of levels; a subnormal scale would lose precision).
MIN_SCALE = 2.0**-14
BLOCK_SIZE = 128  # columns processed together before the lazy update of the rest
DAMPING = 0.01  # fraction of the mean Hessian diagonal added to the diagonal


def _fp16_scale(row_clip: Tensor, clip_range: int) -> Tensor:
    """Scales as stored (fp16), returned in fp32 so quantization uses exactly the stored value."""
    scale = (row_clip / clip_range).clamp_min(MIN_SCALE)
    return scale.to(torch.float16).float()


def round_rows(w: Tensor, scale: Tensor, clip_range: int) -> Tensor:
    """Integers of round(w / scale) per row, clamped to the symmetric range (float tensor)."""
    return torch.clamp(torch.round(w / scale[:, None]), -clip_range, clip_range)


def search_row_scales(w: Tensor, clip_range: int = INT5_CLIP_RANGE,
                      percentiles=CLIP_PERCENTILES) -> Tensor:
    """Per-row scale (fp16 values, as fp32) minimising the squared error of round-to-nearest."""
    w = w.float()
    best_scale = None
    best_err = None
    for pct in percentiles:
        clip = w.abs().amax(dim=1) if pct >= 1.0 else torch.quantile(w.abs(), pct, dim=1)
        scale = _fp16_scale(clip, clip_range)
        err = (w - round_rows(w, scale, clip_range) * scale[:, None]).pow(2).mean(dim=1)
        if best_scale is None:
            best_scale, best_err = scale.clone(), err
        else:
            better = err < best_err
            best_scale[better] = scale[better]
            best_err = torch.where(better, err, best_err)
    return best_scale


def quantize_rtn(w: Tensor, clip_range: int = INT5_CLIP_RANGE) -> tuple[Tensor, Tensor]:
    """Round-to-nearest with the clip search: (q int8 (rows, cols), scale fp16 (rows,))."""
    w = w.float()
    scale = search_row_scales(w, clip_range)
    return round_rows(w, scale, clip_range).to(torch.int8), scale.to(torch.float16)


def _inverse_hessian(h: Tensor, damping: float) -> Tensor:
    """Upper Cholesky factor of the damped inverse Hessian (the GPTQ formulation)."""
    h = h.double().clone()
    dead = torch.diag(h) == 0  # inputs that never fire: any value of w is free
    h[dead, dead] = 1.0
    h.diagonal().add_(damping * torch.diag(h).mean())
    hinv = torch.cholesky_inverse(torch.linalg.cholesky(h))
    return torch.linalg.cholesky(hinv, upper=True).float()


def gptq_quantize(w: Tensor, h: Tensor, clip_range: int = INT5_CLIP_RANGE, block_size: int = BLOCK_SIZE,
                  damping: float = DAMPING) -> tuple[Tensor, Tensor]:
    """GPTQ of ``w`` (rows, cols) given the input Hessian ``h`` (cols, cols) = E[x x^T].

    Returns (q int8, scale fp16) with the same per-row scales as round-to-nearest would use.
    """
    w = w.float().clone()
    rows, cols = w.shape
    if h.shape != (cols, cols):
        raise ValueError(f"Hessian of shape {tuple(h.shape)} does not match a weight with {cols} columns")
    scale = search_row_scales(w, clip_range)
    u = _inverse_hessian(h, damping)  # (cols, cols), upper triangular
    q = torch.zeros(rows, cols)
    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        block = w[:, i1:i2].clone()
        err = torch.zeros_like(block)
        ub = u[i1:i2, i1:i2]
        for j in range(i2 - i1):
            col = block[:, j]
            qc = torch.clamp(torch.round(col / scale), -clip_range, clip_range)
            q[:, i1 + j] = qc
            e = (col - qc * scale) / ub[j, j]
            block[:, j:] -= e[:, None] * ub[j, j:][None, :]
            err[:, j] = e
        w[:, i2:] -= err @ u[i1:i2, i2:]
    return q.to(torch.int8), scale.to(torch.float16)


def collect_hessians(model: torch.nn.Module, batches, names=None) -> dict:
    """Mean input outer products E[x x^T] of every ``nn.Linear`` (by module name) over ``batches``.

    ``batches`` yields input-id tensors (B, T); the model is called as ``model(ids)``. ``names``
    restricts the layers (default: all linear layers).
    """
    sums, counts, hooks = {}, {}, []

    def hook_for(name):
        def hook(_module, inputs, _output):
            x = inputs[0].detach().float().reshape(-1, inputs[0].shape[-1])
            if name not in sums:
                sums[name] = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64)
                counts[name] = 0
            sums[name] += (x.t() @ x).double().cpu()
            counts[name] += x.shape[0]
        return hook

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and (names is None or name in names):
            hooks.append(module.register_forward_hook(hook_for(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for ids in batches:
                model(ids)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {n: (sums[n] / max(counts[n], 1)).float() for n in sums}
