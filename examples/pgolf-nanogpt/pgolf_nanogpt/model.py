"""The model: token and learned position embeddings, pre-LayerNorm blocks of causal self-attention
and a GELU MLP, a final LayerNorm and a head tied to the token embedding.

It offers what pgolf-core's causal-LM protocol asks (``pgolf_core.causal_lm``): ``vocab_size``,
``context_length``, ``logits(ids)`` and, for the ``ttt`` adapter, ``blocks``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class NanoConfig:
    vocab_size: int = 1024
    context_length: int = 256
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128


class SelfAttention(nn.Module):
    def __init__(self, cfg: NanoConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, cfg: NanoConfig):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(cfg.n_embd), SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.fc, self.out = nn.Linear(cfg.n_embd, 4 * cfg.n_embd), nn.Linear(4 * cfg.n_embd, cfg.n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class NanoGPT(nn.Module):
    def __init__(self, cfg: NanoConfig):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos = nn.Embedding(cfg.context_length, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2's scaled init of the residual projections
            if name.endswith(("attn.proj.weight", "out.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    # --- pgolf-core's causal-LM protocol

    @property
    def vocab_size(self) -> int:
        return self.cfg.vocab_size

    @property
    def context_length(self) -> int:
        return self.cfg.context_length

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, T, V); row t sees ids[:, :t + 1] only (causal attention)."""
        T = ids.shape[1]
        if T > self.cfg.context_length:
            raise ValueError(f"input of {T} tokens exceeds the context length {self.cfg.context_length}")
        x = self.tok(ids) + self.pos(torch.arange(T, device=ids.device))
        for block in self.blocks:
            x = block(x)
        return F.linear(self.ln_f(x), self.tok.weight)

    def forward(self, ids):
        return self.logits(ids)


def save(model: NanoGPT, path) -> None:
    torch.save({"format": "pgolf-nanogpt", "config": asdict(model.cfg), "state_dict": model.state_dict()}, path)


def load(checkpoint=None, device="cpu") -> NanoGPT:
    """The factory pgolf-core calls (``neural.model=pgolf_nanogpt:load``, ``neural.checkpoint=PATH``)."""
    if checkpoint is None:
        raise ValueError("pgolf_nanogpt.load needs checkpoint=PATH (a file written by pgolf_nanogpt.train)")
    blob = torch.load(checkpoint, map_location=device, weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != "pgolf-nanogpt":
        raise ValueError(f"{checkpoint} is not a pgolf-nanogpt checkpoint")
    model = NanoGPT(NanoConfig(**blob["config"]))
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval()
