"""Registration of the test-time-training adapters ``ttt`` and ``lora-ttt``.

This module must import quickly: torch is imported inside the factories. Options arrive as strings
from the command line (``--adapter-opt ttt.epochs=2``) and are checked in ``_common``.
"""

from __future__ import annotations

from pgolf_core import hookimpl

from .options import as_bool, as_choice, as_float, as_int, as_names

SCHEDULES = ("cosine", "cosine-ramp", "constant")  # pgolf_ttt.schedule.SCHEDULES, without importing it here


def _common(name, target, optimizer, epochs, lr, chunk_tokens, seq_len, batch, polyak, grad_clip,
            schedule, ramp_max, horizon) -> dict:
    return {
        "target": str(target),
        "optimizer": as_choice(name, "optimizer", optimizer, ("adamw", "sgd")),
        "epochs": as_int(name, "epochs", epochs, 0),
        "lr": as_float(name, "lr", lr, 0.0),
        "chunk_tokens": as_int(name, "chunk_tokens", chunk_tokens, 1),
        "seq_len": as_int(name, "seq_len", seq_len, 0),
        "batch": as_int(name, "batch", batch, 1),
        "polyak": as_float(name, "polyak", polyak, 0.0, 1.0 - 1e-12),
        "grad_clip": as_float(name, "grad_clip", grad_clip, 0.0),
        "schedule": as_choice(name, "schedule", schedule, SCHEDULES),
        "ramp_max": as_float(name, "ramp_max", ramp_max, 0.0),
        "horizon": as_int(name, "horizon", horizon, 0),
    }


def make_ttt(ctx, target="neural", optimizer="adamw", epochs=4, lr=1e-4, frozen_blocks=2, chunk_tokens=131072,
             seq_len=0, batch=32, polyak=0.998, grad_clip=1.0, schedule="cosine", ramp_max=3.0, horizon=0):
    """The seed's recipe. ``seq_len=0``: the expert's scoring length. ``horizon=0``: the run's stream
    length when known, else the official validation split (for the cosine across chunks)."""
    from .ttt import TTTAdapter

    common = _common("ttt", target, optimizer, epochs, lr, chunk_tokens, seq_len, batch, polyak, grad_clip,
                     schedule, ramp_max, horizon)
    return TTTAdapter(ctx, frozen_blocks=as_int("ttt", "frozen_blocks", frozen_blocks, 0), **common)


def make_lora_ttt(ctx, target="neural", optimizer="adamw", epochs=2, lr=1e-3, rank=8, alpha=16.0,
                  targets="c_q,c_v,attn.proj,fc", reset_per_doc=False, bos=1, chunk_tokens=32768, seq_len=0,
                  batch=32, polyak=0.0, grad_clip=1.0, schedule="cosine", ramp_max=3.0, horizon=0):
    """Rank-r LoRA on the named projections (suffixes of module names, comma-separated)."""
    from .lora import LoRATTTAdapter

    name = "lora-ttt"
    common = _common(name, target, optimizer, epochs, lr, chunk_tokens, seq_len, batch, polyak, grad_clip,
                     schedule, ramp_max, horizon)
    return LoRATTTAdapter(ctx, rank=as_int(name, "rank", rank, 1), alpha=as_float(name, "alpha", alpha, 0.0, open_min=True),
                          targets=as_names(name, "targets", targets), reset_per_doc=as_bool(name, "reset_per_doc", reset_per_doc),
                          bos=as_int(name, "bos", bos, 0), **common)


@hookimpl
def pgolf_register_adapters(register):
    register("ttt", make_ttt, description="full-parameter test-time training on scored chunks (the seed's recipe: "
             "AdamW 1e-4, 4 epochs, 131,072-token chunks, first 2 blocks frozen, Polyak 0.998)")
    register("lora-ttt", make_lora_ttt, description="test-time training of rank-r LoRA deltas on chosen projections, "
             "optionally reset at each document start")
