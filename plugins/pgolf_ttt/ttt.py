"""``ttt``: the seed's full-parameter test-time training (DESIGN.md section 3).

Trainable: every parameter of the blocks after the first ``frozen_blocks``, plus, anywhere in the
model, the parameters whose name contains "norm", "scale" or "lm_head" (gains, per-layer scales, an
untied head), as the seed does. With tied embeddings the embedding table stays frozen.
"""

from __future__ import annotations

from pgolf_core.errors import UsageError

from .base import ChunkedAdapter

ALWAYS_TRAINED = ("norm", "scale", "lm_head")


def trainable_parameters(model, frozen_blocks: int, adapter: str = "ttt") -> list:
    """Parameters to train, in ``named_parameters`` order (identical on every rank)."""
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        raise UsageError(f"adapter {adapter!r}: the model has no .blocks, so frozen_blocks cannot be applied")
    if frozen_blocks > len(blocks):
        raise UsageError(f"adapter {adapter!r}: frozen_blocks={frozen_blocks} but the model has {len(blocks)} blocks")
    chosen = {id(p) for blk in list(blocks)[frozen_blocks:] for p in blk.parameters()}
    out = []
    for name, p in model.named_parameters():
        if id(p) in chosen or any(key in name for key in ALWAYS_TRAINED):
            out.append(p)
    return out


class TTTAdapter(ChunkedAdapter):
    def __init__(self, ctx, *, frozen_blocks: int, **common):
        super().__init__(ctx, **common)
        self.frozen_blocks = frozen_blocks

    def _params(self, model) -> list:
        params = trainable_parameters(model, self.frozen_blocks, self.name or "ttt")
        # Freeze the rest so backward does not spend time on it; scoring never needs gradients.
        keep = {id(p) for p in params}
        for p in model.parameters():
            p.requires_grad_(id(p) in keep)
        return params

    def describe(self) -> dict:
        return {**super().describe(), "frozen_blocks": self.frozen_blocks,
                "trainable_parameters": sum(p.numel() for p in self.trainer.params) if self.trainer else None}
