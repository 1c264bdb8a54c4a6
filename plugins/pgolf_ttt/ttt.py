"""``ttt``: the seed's full-parameter test-time training (docs/seed-pr700.md).

Trainable, as the seed trains them: every parameter of the **last** ``trained_blocks`` blocks
(default 2: the seed's ``TTT_FREEZE_BLOCKS=2``, which despite its name and its log line
"freeze_first" leaves only the last 2 blocks trainable: 5,780,500 parameters of the pr700 model),
plus, anywhere in the model, the parameters whose name contains "norm", "scale" or "lm_head"
(gains, per-layer scales, an untied head). With tied embeddings the embedding table stays frozen.
``frozen_blocks=N`` instead freezes the first N blocks and trains all later ones.
"""

from __future__ import annotations

from pgolf_core.errors import UsageError

from .base import ChunkedAdapter

ALWAYS_TRAINED = ("norm", "scale", "lm_head")


def trainable_parameters(model, frozen_blocks=None, adapter: str = "ttt", trained_blocks=None) -> list:
    """Parameters to train, in ``named_parameters`` order (identical on every rank): the last
    ``trained_blocks`` blocks, or every block after the first ``frozen_blocks``, plus the
    always-trained names."""
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        raise UsageError(f"adapter {adapter!r}: the model has no .blocks, so the trained blocks cannot be chosen")
    n = len(blocks)
    count = trained_blocks if frozen_blocks is None else n - frozen_blocks
    if count is None or not 0 <= count <= n:
        raise UsageError(f"adapter {adapter!r}: trained_blocks={trained_blocks}, frozen_blocks={frozen_blocks} do not fit "
                         f"a model of {n} blocks")
    chosen = {id(p) for blk in list(blocks)[n - count:] for p in blk.parameters()}
    out = []
    for name, p in model.named_parameters():
        if id(p) in chosen or any(key in name for key in ALWAYS_TRAINED):
            out.append(p)
    return out


class TTTAdapter(ChunkedAdapter):
    def __init__(self, ctx, *, trained_blocks=2, frozen_blocks=None, **common):
        super().__init__(ctx, **common)
        self.trained_blocks, self.frozen_blocks = trained_blocks, frozen_blocks

    def _params(self, model) -> list:
        params = trainable_parameters(model, self.frozen_blocks, self.name or "ttt", trained_blocks=self.trained_blocks)
        # Freeze the rest so backward does not spend time on it; scoring never needs gradients.
        keep = {id(p) for p in params}
        for p in model.parameters():
            p.requires_grad_(id(p) in keep)
        return params

    def describe(self) -> dict:
        return {**super().describe(), "trained_blocks": self.trained_blocks, "frozen_blocks": self.frozen_blocks,
                "trainable_parameters": sum(p.numel() for p in self.trainer.params) if self.trainer else None}
