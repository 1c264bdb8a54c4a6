"""The evaluation pipelines of today's top records, around any neural expert (``pgolf-core presets``).

``pr1855`` is the pipeline of the top merged record (#1855, 1.06108 BPB): the SP8192 CaseOps stream
with its byte sidecar (data the user passes: ``--data`` with ``fineweb_val_bytes_*.bin`` beside the
shards, ``--tokenizer`` the CaseOps model), document isolation, and phased TTT with the record's
settings (its log: TTT_LORA_RANK=80, TTT_LORA_ALPHA=144, TTT_LORA_LR=1e-4, TTT_BETA1=0,
TTT_BETA2=0.99, TTT_WEIGHT_DECAY=0.5, TTT_CHUNK_SIZE=48, TTT_BATCH_SIZE=64, 3 phases over
PHASED_TTT_PREFIX_DOCS=2500, GLOBAL_TTT_LR=1e-3, momentum 0.9, 32,768-token chunks, 32 sequences
per rank on 8 ranks). ``pr2135`` adds the token-only n-gram tilt of #2135 (order 16, threshold 0.8,
boost 2.625) on top. The model is the user's (``--expert-opt neural.checkpoint=...``): pgolf's GPT
is not #1855's network, so these reproduce the evaluation around it, not the record's number.
"""

from __future__ import annotations

from pgolf_core.presets import Preset

RECORD_PHASED = {"lora": "q,k,v,o,mlp,head", "rank": "80", "alpha": "144", "lr": "1e-4", "beta1": "0",
                 "beta2": "0.99", "eps": "1e-10", "weight_decay": "0.5", "chunk": "48", "batch": "64",
                 "grad_steps": "1", "phases": "833,1666,2500", "global_lr": "1e-3", "global_momentum": "0.9",
                 "global_chunk": "32768", "global_batch": "256", "global_epochs": "1", "global_clip": "1.0"}
TILT = {"order": "16", "threshold": "0.8", "beta": "2.625"}  # #2135's TOKEN_ORDER/THRESHOLD/BOOST
NOTES = ("pass the CaseOps stream and tokenizer yourself (--data DIR with its fineweb_val_bytes_*.bin sidecar, "
         "--tokenizer the CaseOps model) and your model (--expert-opt neural.checkpoint=FILE)",
         "phased-ttt takes documents in stream order and starts every document's LoRA from the same A (the record "
         "sorts documents by length and keeps A warm): pgolf_ttt.phased says why",
         "the record's phases count 2,500 of the 50,000 validation documents; on a shorter stream pass "
         "--adapter-opt phased-ttt.phases=... (and a global_chunk that holds several chunks of the prefix)")


def pr1855() -> Preset:
    return Preset(description="the #1855 evaluation: document isolation + phased TTT (LoRA per document, 3 global "
                              "SGD phases), on the CaseOps stream with its byte sidecar",
                  experts=("neural",), mixer=None, mixer_options={},
                  expert_options={"neural": {"isolate_docs": "true"}},
                  adapters=("phased-ttt",), adapter_options={"phased-ttt": dict(RECORD_PHASED)}, notes=NOTES)


def pr2135() -> Preset:
    base = pr1855()
    return Preset(description="#1855's evaluation plus #2135's token-only n-gram tilt (order 16, threshold 0.8, "
                              "boost 2.625)",
                  experts=base.experts, mixer="tilt", mixer_options=dict(TILT), expert_options=base.expert_options,
                  adapters=base.adapters, adapter_options=base.adapter_options,
                  notes=base.notes + ("the tilt needs full distributions: each scored chunk hands it 8,192-wide rows",))
