"""``lora-ttt``: test-time training of rank-r LoRA deltas on chosen projections of the model.

LoRA is attached with forward hooks on the model's existing ``nn.Linear`` modules: the hook adds
``scale * B(A(x))`` to the module's output. Nothing is copied or replaced, the model's own weights
stay frozen, and its ``state_dict`` is unchanged (the LoRA tensors live in the adapter).
``B`` starts at zero, so before the first training the model scores exactly as without LoRA.

Per-document reset (``reset_per_doc``; a document starts at a BOS token, id 1): after a chunk is
scored, if a BOS appears among the chunk's tokens, the LoRA goes back to its initial state (and
the optimizer forgets its moments) and trains only on the targets after the last BOS, i.e. on the
scored prefix of the document that is still open. This uses scored tokens only. The expert scores
a whole span with one set of weights, so a document that begins inside a later chunk is scored
with the LoRA of the document open at the last training point until the next one; pick a small
``chunk_tokens`` (and evaluator chunk) for finer per-document adaptation.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pgolf_core.errors import UsageError

from .base import ChunkedAdapter


class LoRADelta(nn.Module):
    """The low-rank delta of one ``nn.Linear``: ``x -> scale * x A^T B^T``."""

    def __init__(self, linear: nn.Linear, rank: int, alpha: float, generator: torch.Generator):
        super().__init__()
        w = linear.weight
        a0 = torch.randn(rank, linear.in_features, generator=generator) / math.sqrt(linear.in_features)
        self.register_buffer("a_init", a0.to(w.device, w.dtype))
        self.A = nn.Parameter(self.a_init.clone())
        self.B = nn.Parameter(torch.zeros(linear.out_features, rank, device=w.device, dtype=w.dtype))
        self.scale = alpha / rank

    def forward(self, x):
        return (x.to(self.A.dtype) @ self.A.t()) @ self.B.t() * self.scale

    @torch.no_grad()
    def reset(self) -> None:
        self.A.copy_(self.a_init)
        self.B.zero_()


def matching_linears(model, targets) -> list:
    """``(name, module)`` of the ``nn.Linear`` modules whose name ends with one of ``targets``."""
    out = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and any(name == t or name.endswith("." + t) for t in targets):
            out.append((name, module))
    return out


class LoRATTTAdapter(ChunkedAdapter):
    def __init__(self, ctx, *, rank: int, alpha: float, targets: tuple, reset_per_doc: bool, bos: int, **common):
        super().__init__(ctx, **common)
        self.rank, self.alpha, self.targets = rank, alpha, targets
        self.reset_per_doc, self.bos = reset_per_doc, bos
        self.deltas = nn.ModuleDict()
        self.handles: list = []
        self.resets = 0

    def _params(self, model) -> list:
        found = matching_linears(model, self.targets)
        if not found:
            names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
            raise UsageError(f"adapter {self.name!r}: targets={','.join(self.targets)} match no nn.Linear of the model "
                             f"(its linear layers end in: {', '.join(names) or 'none'})")
        gen = torch.Generator().manual_seed(int(self.ctx.seed))  # same LoRA init on every rank
        for p in model.parameters():
            p.requires_grad_(False)
        for name, linear in found:
            delta = LoRADelta(linear, self.rank, self.alpha, gen)
            self.deltas[name.replace(".", "__")] = delta
            self.handles.append(linear.register_forward_hook(_AddDelta(delta)))
        return [p for d in self.deltas.values() for p in (d.A, d.B)]

    def detach(self) -> None:
        """Remove the hooks: the model scores as it did before the adapter was set up."""
        for h in self.handles:
            h.remove()
        self.handles = []

    def _before_train(self, tokens, a: int, b: int) -> tuple:
        if not self.reset_per_doc:
            return a, b
        hits = (tokens[a:b] == self.bos).nonzero()[0]
        if hits.size == 0:
            return a, b
        for d in self.deltas.values():
            d.reset()
        self.trainer.reset_optimizer()
        self.trainer.polyak.restart()
        self.resets += 1
        return a + int(hits[-1]) + 1, b  # targets after the last BOS: the open document's scored prefix

    def stats(self) -> dict:
        return {**super().stats(), "document_resets": self.resets}

    def describe(self) -> dict:
        return {**super().describe(), "rank": self.rank, "alpha": self.alpha, "targets": list(self.targets),
                "wrapped": sorted(k.replace("__", ".") for k in self.deltas), "reset_per_doc": self.reset_per_doc,
                "bos": self.bos}


class _AddDelta:
    """The forward hook that adds a LoRA delta to its linear layer's output: an object, not a closure,
    so that a resume point can hold it (a closure has no name to be found by)."""

    def __init__(self, delta: LoRADelta):
        self.delta = delta

    def __call__(self, module, inputs, output):
        return output + self.delta(inputs[0]).to(output.dtype)
