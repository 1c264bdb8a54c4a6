"""Muon: momentum SGD whose update for each matrix is orthogonalised by Newton-Schulz iterations.

For a gradient-momentum matrix G = U S V^T, the update is (approximately) U V^T: every singular
direction moves by the same amount, which suits the 2-D block matrices of a transformer. The quintic
iteration below (coefficients 3.4445, -4.7750, 2.0315) pushes the singular values of G / ||G|| into a
band around 1 in a few steps; it does not need to converge exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor

NS_COEFFS = (3.4445, -4.7750, 2.0315)


def newton_schulz(g: Tensor, steps: int = 5, eps: float = 1e-7, dtype: torch.dtype = torch.float32) -> Tensor:
    """Approximate U V^T of ``g`` (2-D) with ``steps`` quintic Newton-Schulz iterations."""
    a, b, c = NS_COEFFS
    x = g.to(dtype)
    x = x / (x.norm() + eps)
    tall = g.size(0) > g.size(1)
    if tall:  # iterate on the wide orientation: X X^T is the smaller Gram matrix
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


class Muon(torch.optim.Optimizer):
    """Nesterov momentum, Newton-Schulz orthogonalisation, decoupled weight decay.

    The update of a (rows, cols) matrix is scaled by sqrt(max(1, rows / cols)) so tall matrices take
    steps of the same RMS as square ones. Gradients are expected to be already averaged across
    data-parallel processes, so every process computes the same update.
    """

    def __init__(self, params, lr: float = 0.025, momentum: float = 0.99, backend_steps: int = 5,
                 nesterov: bool = True, weight_decay: float = 0.0, ns_dtype: torch.dtype = torch.float32):
        defaults = dict(lr=lr, momentum=momentum, backend_steps=backend_steps, nesterov=nesterov,
                        weight_decay=weight_decay, ns_dtype=ns_dtype)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError(f"Muon only takes 2-D matrices, got a parameter of shape {tuple(p.shape)}")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mom = group["lr"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(g))
                buf.mul_(mom).add_(g)
                g = g.add(buf, alpha=mom) if group["nesterov"] else buf
                update = newton_schulz(g, group["backend_steps"], dtype=group["ns_dtype"])
                update = update * max(1.0, p.size(0) / p.size(1)) ** 0.5
                if group["weight_decay"] > 0:
                    p.mul_(1.0 - lr * group["weight_decay"])
                p.add_(update.to(p.dtype), alpha=-lr)
        return loss
