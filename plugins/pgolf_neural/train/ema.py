"""Exponential moving average of the weights, applied to the model at the end of training."""

from __future__ import annotations

import torch


class EMA:
    """fp32 shadow copy of every state-dict entry: shadow <- decay * shadow + (1 - decay) * w."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.997):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.shadow = {k: v.detach().float().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for k, v in model.state_dict().items():
            self.shadow[k].mul_(self.decay).add_(v.detach().float(), alpha=1.0 - self.decay)

    @torch.no_grad()
    def apply_to(self, model: torch.nn.Module) -> None:
        current = model.state_dict()
        model.load_state_dict({k: self.shadow[k].to(current[k].dtype) for k in current}, strict=True)
