"""Registration of the test-time-training adapters ``ttt`` and ``lora-ttt``.

This module must import quickly: torch is imported inside the factories. Options arrive as strings
from the command line (``--adapter-opt ttt.epochs=2``) and are checked in ``_common``.
"""

from __future__ import annotations

from pgolf_core import hookimpl

from pgolf_core.options import parse_bool, parse_choice, parse_float, parse_int, parse_names


def _who(name: str) -> str:
    return f"adapter {name!r}"


SCHEDULES = ("cosine", "cosine-ramp", "constant")  # pgolf_ttt.schedule.SCHEDULES, without importing it here


def _common(name, target, optimizer, epochs, lr, chunk_tokens, seq_len, batch, polyak, grad_clip,
            schedule, ramp_max, horizon) -> dict:
    return {
        "target": str(target),
        "optimizer": parse_choice(optimizer, _who(name), "optimizer", ("adamw", "sgd")),
        "epochs": parse_int(epochs, _who(name), "epochs", low=0),
        "lr": parse_float(lr, _who(name), "lr", low=0.0),
        "chunk_tokens": parse_int(chunk_tokens, _who(name), "chunk_tokens", low=1),
        "seq_len": parse_int(seq_len, _who(name), "seq_len", low=0),
        "batch": parse_int(batch, _who(name), "batch", low=1),
        "polyak": parse_float(polyak, _who(name), "polyak", low=0.0, high=1.0 - 1e-12),
        "grad_clip": parse_float(grad_clip, _who(name), "grad_clip", low=0.0),
        "schedule": parse_choice(schedule, _who(name), "schedule", SCHEDULES),
        "ramp_max": parse_float(ramp_max, _who(name), "ramp_max", low=0.0),
        "horizon": parse_int(horizon, _who(name), "horizon", low=0),
    }


def make_ttt(ctx, target="neural", optimizer="adamw", epochs=4, lr=1e-4, trained_blocks=2, frozen_blocks=None,
             chunk_tokens=131072, seq_len=0, batch=32, polyak=0.998, grad_clip=1.0, schedule="cosine", ramp_max=3.0,
             horizon=0):
    """The seed's recipe: train the last ``trained_blocks`` blocks (its TTT_FREEZE_BLOCKS=2) plus
    norms, scales and head; ``frozen_blocks=N`` trains every block after the first N instead.
    ``seq_len=0``: the expert's scoring length. ``horizon=0``: the run's stream length when known,
    else the official validation split (for the cosine across chunks)."""
    from .ttt import TTTAdapter

    common = _common("ttt", target, optimizer, epochs, lr, chunk_tokens, seq_len, batch, polyak, grad_clip,
                     schedule, ramp_max, horizon)
    if frozen_blocks is not None:  # the other way of choosing: then trained_blocks is not used
        return TTTAdapter(ctx, trained_blocks=None, frozen_blocks=parse_int(frozen_blocks, _who("ttt"), "frozen_blocks",
                                                                            low=0), **common)
    return TTTAdapter(ctx, trained_blocks=parse_int(trained_blocks, _who("ttt"), "trained_blocks", low=0), **common)


def make_lora_ttt(ctx, target="neural", optimizer="adamw", epochs=2, lr=1e-3, rank=8, alpha=16.0,
                  targets="c_q,c_v,attn.proj,fc", reset_per_doc=False, bos=1, chunk_tokens=32768, seq_len=0,
                  batch=32, polyak=0.0, grad_clip=1.0, schedule="cosine", ramp_max=3.0, horizon=0):
    """Rank-r LoRA on the named projections (suffixes of module names, comma-separated)."""
    from .lora import LoRATTTAdapter

    name = "lora-ttt"
    common = _common(name, target, optimizer, epochs, lr, chunk_tokens, seq_len, batch, polyak, grad_clip,
                     schedule, ramp_max, horizon)
    who = _who(name)
    return LoRATTTAdapter(ctx, rank=parse_int(rank, who, "rank", low=1),
                          alpha=parse_float(alpha, who, "alpha", low=0.0, low_open=True),
                          targets=parse_names(targets, who, "targets"),
                          reset_per_doc=parse_bool(reset_per_doc, who, "reset_per_doc"),
                          bos=parse_int(bos, who, "bos", low=0), **common)


@hookimpl
def pgolf_register_adapters(register):
    register("ttt", make_ttt, description="full-parameter test-time training on scored chunks (the seed's recipe: "
             "AdamW 1e-4, 4 epochs, 131,072-token chunks, first 2 blocks frozen, Polyak 0.998)")
    register("lora-ttt", make_lora_ttt, description="test-time training of rank-r LoRA deltas on chosen projections, "
             "optionally reset at each document start")
