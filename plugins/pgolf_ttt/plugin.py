"""Registration of the test-time-training adapters ``ttt`` and ``lora-ttt``.

This module must import quickly: torch is imported inside the factories. Options arrive as strings
from the command line (``--adapter-opt ttt.epochs=2``) and are declared, with their checks, once
(``pgolf_core.options.declared``).
"""

from __future__ import annotations

from pgolf_core import hookimpl

from pgolf_core.options import Option, declared, parse_names

SCHEDULES = ("cosine", "cosine-ramp", "constant")  # pgolf_ttt.schedule.SCHEDULES, without importing it here


def _common(*, epochs: int, lr: float, chunk_tokens: int, polyak: float) -> dict:
    """The options both adapters share, with each adapter's own defaults."""
    return dict(
        target=Option("text", "neural", "the expert whose model is trained (Expert.adaptable_model)"),
        optimizer=Option("choice", "adamw", "optimizer", choices=("adamw", "sgd")),
        epochs=Option("int", epochs, "passes over each scored chunk", low=0),
        lr=Option("float", lr, "peak learning rate", low=0.0),
        chunk_tokens=Option("int", chunk_tokens, "targets per training chunk", low=1),
        seq_len=Option("int", 0, "training window length (0: the expert's scoring length)", low=0),
        batch=Option("int", 32, "windows per optimizer step", low=1),
        polyak=Option("float", polyak, "weight-average decay of the scoring weights (0: off)", low=0.0,
                      high=1.0, high_open=True),
        grad_clip=Option("float", 1.0, "gradient norm clip (0: off)", low=0.0),
        schedule=Option("choice", "cosine", "learning rate across chunks (cosine-ramp: the seed's 1 -> 3 ramp)",
                        choices=SCHEDULES),
        ramp_max=Option("float", 3.0, "cosine-ramp: the ramp's top factor", low=0.0),
        horizon=Option("int", 0, "chunks of the cosine (0: the stream's, else the official split's)", low=0),
    )


def _shared(options: dict) -> dict:
    keys = ("target", "optimizer", "epochs", "lr", "chunk_tokens", "seq_len", "batch", "polyak", "grad_clip",
            "schedule", "ramp_max", "horizon")
    return {k: options[k] for k in keys}


@declared("adapter 'ttt'", **_common(epochs=4, lr=1e-4, chunk_tokens=131072, polyak=0.998),
          trained_blocks=Option("int", 2, "the last N blocks are trained (the seed's TTT_FREEZE_BLOCKS=2)", low=0),
          frozen_blocks=Option("int", None, "instead: every block after the first N is trained", low=0))
def make_ttt(ctx, target, optimizer, epochs, lr, trained_blocks, frozen_blocks, chunk_tokens, seq_len, batch,
             polyak, grad_clip, schedule, ramp_max, horizon):
    """The seed's recipe: train the last ``trained_blocks`` blocks (its TTT_FREEZE_BLOCKS=2) plus
    norms, scales and head; ``frozen_blocks=N`` trains every block after the first N instead."""
    from .ttt import TTTAdapter

    common = _shared(locals())
    if frozen_blocks is not None:  # the other way of choosing: then trained_blocks is not used
        return TTTAdapter(ctx, trained_blocks=None, frozen_blocks=frozen_blocks, **common)
    return TTTAdapter(ctx, trained_blocks=trained_blocks, **common)


@declared("adapter 'lora-ttt'", **_common(epochs=2, lr=1e-3, chunk_tokens=32768, polyak=0.0),
          rank=Option("int", 8, "rank of each LoRA delta", low=1),
          alpha=Option("float", 16.0, "LoRA scale numerator (delta scale alpha / rank)", low=0.0, low_open=True),
          targets=Option("text", "c_q,c_v,attn.proj,fc", "comma-separated suffixes of the nn.Linear names to wrap"),
          reset_per_doc=Option("bool", False, "reset the deltas at each document start"),
          bos=Option("int", 1, "the token that starts a document", low=0))
def make_lora_ttt(ctx, target, optimizer, epochs, lr, rank, alpha, targets, reset_per_doc, bos, chunk_tokens,
                  seq_len, batch, polyak, grad_clip, schedule, ramp_max, horizon):
    """Rank-r LoRA on the named projections (suffixes of module names, comma-separated)."""
    from .lora import LoRATTTAdapter

    return LoRATTTAdapter(ctx, rank=rank, alpha=alpha, targets=parse_names(targets, "adapter 'lora-ttt'", "targets"),
                          reset_per_doc=reset_per_doc, bos=bos, **_shared(locals()))


@hookimpl
def pgolf_register_adapters(register):
    register("ttt", make_ttt, description="full-parameter test-time training on scored chunks (the seed's recipe: "
             "AdamW 1e-4, 4 epochs, 131,072-token chunks, the last 2 blocks trained, Polyak 0.998)")
    register("lora-ttt", make_lora_ttt, description="test-time training of rank-r LoRA deltas on chosen projections, "
             "optionally reset at each document start")
