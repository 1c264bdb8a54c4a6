"""A bank of per-document LoRA deltas: one slot per document of a batch, each with its own AdamW.

Sites (where a delta is added), named as in the field's phased TTT:

- ``q``, ``k``, ``v``: the attention's input projections ``attn.c_q`` / ``c_k`` / ``c_v`` of every block;
- ``o``: the attention module as a whole (from its normed input to its output, parallel to the
  whole attention, as the record's "O" LoRA is);
- ``mlp``: the MLP module as a whole (from its normed input to its output);
- ``head``: the final hidden state to the logits, before the softcap.

A slot's delta is ``scale * (x A_s^T) B_s^T`` for the rows ``x`` of its document. Every document
starts from the same state (``A = A0``, drawn once from the run's seed; ``B = 0``: the model's own
prediction), so a document's trajectory depends on its own tokens and the base weights only, never on
which documents share its batch or its rank. That is what makes the score independent of the batch
size and of the number of processes (and it is the "reset at each document").

The optimizer is written out (AdamW, ``torch.optim.AdamW``'s formula) because each slot has its
own step count, and a slot that does not train in a step (its document ended) must not move at all,
not even by weight decay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pgolf_core.errors import UsageError

SITES = ("q", "k", "v", "o", "mlp", "head")


@dataclass
class Site:
    kind: str
    block: int  # -1 for the head
    fan_in: int
    fan_out: int


def find_sites(model, kinds, who: str) -> list:
    """The LoRA sites of ``model`` for ``kinds`` (in block order, then the head)."""
    blocks = getattr(model, "blocks", None)
    if blocks is None or not hasattr(model, "hidden") or not hasattr(model, "tok_emb"):
        raise UsageError(f"{who}: the LoRA sites are the builtin GPT's modules (blocks[i].attn.c_q, ..., the "
                         f"tied head); {type(model).__name__} has no .blocks/.hidden/.tok_emb")
    out = []
    for i, blk in enumerate(blocks):
        attn = blk.attn
        dims = {"q": (attn.c_q.in_features, attn.c_q.out_features), "k": (attn.c_k.in_features, attn.c_k.out_features),
                "v": (attn.c_v.in_features, attn.c_v.out_features), "o": (attn.c_q.in_features, attn.proj.out_features),
                "mlp": (blk.mlp.fc.in_features, blk.mlp.proj.out_features)}
        out += [Site(k, i, *dims[k]) for k in SITES[:5] if k in kinds]
    if "head" in kinds:
        out.append(Site("head", -1, model.tok_emb.embedding_dim, model.tok_emb.num_embeddings))
    return out


def site_module(model, site: Site):
    blk = model.blocks[site.block]
    return {"q": blk.attn.c_q, "k": blk.attn.c_k, "v": blk.attn.c_v, "o": blk.attn, "mlp": blk.mlp}[site.kind]


def initial_a(sites, rank: int, seed: int, device, dtype) -> list:
    """A0 of every site, uniform in +-1/sqrt(fan_in) (the record's init), from the run's seed alone."""
    gen = torch.Generator().manual_seed(int(seed))
    out = []
    for s in sites:
        bound = 1.0 / math.sqrt(s.fan_in)
        a = (torch.rand(rank, s.fan_in, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        out.append(a.to(device, dtype))
    return out


class Bank:
    """Tensors of ``n`` slots: per site ``A`` (n, r, in), ``B`` (n, out, r) and their AdamW moments."""

    FIELDS = ("A", "B", "mA", "vA", "mB", "vB")

    def __init__(self, tensors: dict, steps: torch.Tensor):
        self.t, self.steps = tensors, steps  # steps: (n,) float64, optimizer steps taken per slot

    @classmethod
    def fresh(cls, n: int, a0: list, sites) -> "Bank":
        t = {f: [] for f in cls.FIELDS}
        for a, s in zip(a0, sites):
            t["A"].append(a.expand(n, -1, -1).clone())
            t["B"].append(a.new_zeros(n, s.fan_out, a.shape[0]))
            t["mA"].append(torch.zeros_like(t["A"][-1]))
            t["vA"].append(torch.zeros_like(t["A"][-1]))
            t["mB"].append(torch.zeros_like(t["B"][-1]))
            t["vB"].append(torch.zeros_like(t["B"][-1]))
        return cls(t, torch.zeros(n, dtype=torch.float64))

    @property
    def size(self) -> int:
        return int(self.steps.numel())

    def select(self, keep) -> "Bank":
        """The bank of the slots ``keep`` (a list of indices), in that order."""
        idx = torch.as_tensor(keep, dtype=torch.long)
        # detached: the selected slots are new leaves (a carried state must deep-copy, for the
        # audit's snapshots, and must not drag the old step's graph along)
        return Bank({f: [x.detach().index_select(0, idx.to(x.device)) for x in v] for f, v in self.t.items()},
                    self.steps.index_select(0, idx))

    def params(self) -> list:
        return [*self.t["A"], *self.t["B"]]

    def digest_into(self, h) -> None:
        for f in self.FIELDS:
            for x in self.t[f]:
                h.update(x.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        h.update(self.steps.numpy().tobytes())

    @torch.no_grad()
    def adamw(self, grads: list, mask: torch.Tensor, *, lr: float, beta1: float, beta2: float, eps: float,
              weight_decay: float) -> None:
        """One AdamW step of the slots where ``mask`` (n,) is True; the others stay exactly as they were.

        When every slot steps (the common case) the update is done in place; otherwise the same
        operations are computed and kept where ``mask`` is set. Both give the same bits for a
        slot that steps, so a document's result does not depend on its batch companions."""
        steps = self.steps + mask.double()
        bc1 = (1.0 - beta1 ** steps).clamp_min(1e-300)
        bc2 = (1.0 - beta2 ** steps).clamp_min(1e-300)
        every = bool(mask.all())
        params = self.params()
        moments = [*zip(self.t["mA"], self.t["vA"]), *zip(self.t["mB"], self.t["vB"])]
        for p, g, (m, v) in zip(params, grads, moments):
            shape = (-1, *([1] * (p.dim() - 1)))
            g = g.to(p.dtype)
            # beta1 = 0 (the record's): the first moment is the gradient itself, bit for bit
            m_new = g if beta1 == 0.0 else m.mul(beta1).add_(g.mul(1.0 - beta1))
            v_new = v.mul(beta2).add_(g.mul(g).mul_(1.0 - beta2))
            denom = v_new.sqrt().div_(bc2.sqrt().to(p.device, p.dtype).view(shape)).add_(eps)
            update = m_new.mul((lr / bc1).to(p.device, p.dtype).view(shape)).div_(denom)
            if every:
                p.mul_(1.0 - lr * weight_decay).sub_(update)
                v.copy_(v_new)
                if beta1 != 0.0:
                    m.copy_(m_new)
                continue
            keep = mask.to(p.device).view(shape)
            p.copy_(torch.where(keep, p.mul(1.0 - lr * weight_decay).sub_(update), p))
            v.copy_(torch.where(keep, v_new, v))
            if beta1 != 0.0:
                m.copy_(torch.where(keep, m_new, m))
        self.steps = steps


class Attached:
    """The bank's deltas added to the model for one forward (hooks registered on entry, removed on
    exit: the model is never left modified, and a deep copy of it never carries a hook)."""

    def __init__(self, model, sites, bank: Bank, scale: float):
        self.model, self.sites, self.bank, self.scale = model, sites, bank, scale
        self.handles: list = []

    def __enter__(self):
        for s, a, b in zip(self.sites, self.bank.t["A"], self.bank.t["B"]):
            if s.kind != "head":
                self.handles.append(site_module(self.model, s).register_forward_hook(_adder(a, b, self.scale)))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        self.handles = []

    def head_delta(self):
        for s, a, b in zip(self.sites, self.bank.t["A"], self.bank.t["B"]):
            if s.kind == "head":
                return a, b
        return None


def delta(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale * x A^T B^T`` per slot: x (n, T, in), A (n, r, in), B (n, out, r) -> (n, T, out)."""
    return torch.bmm(torch.bmm(x.to(a.dtype), a.transpose(1, 2)), b.transpose(1, 2)) * scale


def _adder(a, b, scale):
    def hook(module, inputs, output):
        return output + delta(inputs[0], a, b, scale).to(output.dtype)

    return hook


def lora_logits(model, ids: torch.Tensor, rows: slice, attached: Attached, rope_len: int) -> torch.Tensor:
    """Softcapped float32 logits (n, len(rows), V) of the window positions ``rows`` of ``ids`` (n, W),
    with the bank's deltas; only those rows go through the head (the scored chunk)."""
    h = model.hidden(ids, rope_len=rope_len)[:, rows]
    head = attached.head_delta()
    if head is None:
        return model.head(h)
    # GPT.head's formula with the head delta added before the softcap (the record adds it there)
    w = model.tok_emb.weight if model.lm_head is None else model.lm_head.weight
    logits = (F.linear(h, w.to(h.dtype)) + delta(h, *head, attached.scale).to(h.dtype)).float()
    cap = model.config.logit_softcap
    return cap * torch.tanh(logits / cap)
