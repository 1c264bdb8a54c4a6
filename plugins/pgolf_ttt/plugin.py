"""Registration of the test-time-training adapters ``ttt``, ``lora-ttt`` and ``phased-ttt``.

This module must import quickly: torch is imported inside the factories. Options arrive as strings
from the command line (``--adapter-opt ttt.epochs=2``) and are declared, with their checks, once
(``pgolf_core.options.declared``).
"""

from __future__ import annotations

from pgolf_core import hookimpl

from pgolf_core.errors import UsageError
from pgolf_core.options import Option, declared

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
          targets=Option("list", ("c_q", "c_v", "attn.proj", "fc"), "comma-separated suffixes of the nn.Linear names to wrap",
                         item="text"),
          reset_per_doc=Option("bool", False, "reset the deltas at each document start"),
          bos=Option("int", 1, "the token that starts a document", low=0))
def make_lora_ttt(ctx, target, optimizer, epochs, lr, rank, alpha, targets, reset_per_doc, bos, chunk_tokens,
                  seq_len, batch, polyak, grad_clip, schedule, ramp_max, horizon):
    """Rank-r LoRA on the named projections (suffixes of module names, comma-separated)."""
    from .lora import LoRATTTAdapter

    return LoRATTTAdapter(ctx, rank=rank, alpha=alpha, targets=targets,
                          reset_per_doc=reset_per_doc, bos=bos, **_shared(locals()))


LORA_SITES = ("q", "k", "v", "o", "mlp", "head")  # pgolf_ttt.bank.SITES, without importing torch here


def parse_phases(value, who: str) -> tuple:
    """Counts of scored documents at which a global phase runs, as the ``phases`` option parses
    them (a tuple of positive integers, or "none"/"off"; empty for no phase): strictly increasing."""
    if value in ("none", "off"):
        return ()
    counts = tuple(value)
    if any(b <= a for a, b in zip(counts, counts[1:])):
        raise UsageError(f"{who}: option phases must be increasing positive document counts such as 833,1666,2500 "
                         f"(or none), got {','.join(map(str, counts))!r}")
    return counts


@declared(
    "adapter 'phased-ttt'",
    target=Option("text", "neural", "the expert whose model is adapted (it needs isolate_docs=true)"),
    lora=Option("list", tuple(LORA_SITES), "LoRA sites, comma-separated: q,k,v,o,mlp,head", item="text"),
    rank=Option("int", 80, "rank of each per-document LoRA (the record's TTT_LORA_RANK=80)", low=1),
    alpha=Option("float", 144.0, "LoRA scale numerator: the delta is scaled by alpha / rank", low=0.0, low_open=True),
    lr=Option("float", 1e-4, "per-document AdamW learning rate (0: score with the base weights)", low=0.0),
    beta1=Option("float", 0.0, "AdamW beta1", low=0.0, high=1.0, high_open=True),
    beta2=Option("float", 0.99, "AdamW beta2", low=0.0, high=1.0, high_open=True),
    eps=Option("float", 1e-10, "AdamW epsilon", low=0.0, low_open=True),
    weight_decay=Option("float", 0.5, "AdamW decoupled weight decay", low=0.0),
    chunk=Option("int", 48, "targets of a document scored before each LoRA step", low=1),
    seq_len=Option("int", 0, "window length (0: the expert's)", low=0),
    batch=Option("int", 64, "documents per batched forward", low=1),
    grad_steps=Option("int", 1, "LoRA steps per chunk", low=0),
    phases=Option("list", (833, 1666, 2500), "scored-document counts that trigger a global phase (none: off)",
                  item="int", low=1, min_items=0, choices=("none", "off"),
                  expect="increasing positive document counts such as 833,1666,2500"),
    global_lr=Option("float", 1e-3, "global phase: SGD learning rate (cosine over its chunks)", low=0.0),
    global_momentum=Option("float", 0.9, "global phase: SGD momentum", low=0.0, high=1.0, high_open=True),
    global_chunk=Option("int", 32768, "global phase: targets per chunk (the last chunk is not trained)", low=1),
    global_seq_len=Option("int", 0, "global phase: sequence length (0: the window length)", low=0),
    global_batch=Option("int", 256, "global phase: sequences per step, all ranks together", low=1),
    global_epochs=Option("int", 1, "global phase: passes over each chunk", low=0),
    global_clip=Option("float", 1.0, "global phase: gradient norm clip (0: off)", low=0.0),
    bos=Option("int", 1, "the token that starts a document", low=0),
)
def make_phased_ttt(ctx, target, lora, rank, alpha, lr, beta1, beta2, eps, weight_decay, chunk, seq_len, batch,
                    grad_steps, phases, global_lr, global_momentum, global_chunk, global_seq_len, global_batch,
                    global_epochs, global_clip, bos):
    """Per-document LoRA stepped every ``chunk`` targets, score first, plus global SGD phases."""
    from .phased import PhasedTTTAdapter

    who = "adapter 'phased-ttt'"
    sites = lora
    unknown = [s for s in sites if s not in LORA_SITES]
    if unknown:
        raise UsageError(f"{who}: option lora names unknown sites {', '.join(unknown)}; "
                         f"known: {', '.join(LORA_SITES)}")
    if global_seq_len and global_chunk < global_seq_len:
        raise UsageError(f"{who}: global_chunk ({global_chunk}) must hold at least one sequence of "
                         f"global_seq_len ({global_seq_len})")
    return PhasedTTTAdapter(ctx, target=target, lora=tuple(dict.fromkeys(sites)), rank=rank, alpha=alpha, lr=lr,
                            beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, chunk=chunk,
                            seq_len=seq_len, batch=batch, grad_steps=grad_steps, phases=parse_phases(phases, who),
                            global_lr=global_lr, global_momentum=global_momentum, global_chunk=global_chunk,
                            global_seq_len=global_seq_len, global_batch=global_batch, global_epochs=global_epochs,
                            global_clip=global_clip, bos=bos)


@hookimpl
def pgolf_register_adapters(register):
    register("ttt", make_ttt, description="full-parameter test-time training on scored chunks (the seed's recipe: "
             "AdamW 1e-4, 4 epochs, 131,072-token chunks, the last 2 blocks trained, Polyak 0.998)")
    register("lora-ttt", make_lora_ttt, description="test-time training of rank-r LoRA deltas on chosen projections, "
             "optionally reset at each document start")
    register("phased-ttt", make_phased_ttt, description="the field's phased TTT (#1855): a LoRA per document "
             "stepped after each scored 48-target chunk, documents batched, plus global SGD phases on the base "
             "weights over the documents already scored")


@hookimpl
def pgolf_register_presets(register):
    from .presets import pr1855, pr2135

    register("pr1855", pr1855, description="the top merged record's evaluation (#1855): document isolation + phased "
                                           "TTT with its settings, around your neural expert")
    register("pr2135", pr2135, description="pr1855 plus #2135's token-only n-gram tilt (--mixer tilt)")
