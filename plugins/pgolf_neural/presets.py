"""The seed record's presets (PR #700), contributed through the ``pgolf_register_presets`` hook.

``pr700`` is the seed record's configuration (claimed 1.0541 BPB): it contains the seed's entropy
expert, which breaks C2, so it only runs with ``allow_invalid`` and is reported as INVALID (so does
its hashed trigram, whose empty buckets are sub-normalized). ``pr700-legal`` swaps in the legal
``entropy`` expert and the trigram's legal ``empty=uniform``.
"""

from __future__ import annotations

from pgolf_core.presets import Preset

# The seed's mixer: neural alone for its whole first TTT chunk (131,072 targets), then Hedge with
# eta 0.1 and a bias of 2 on neural, moved once per 32 windows on the mean loss over every position
# of those windows (2,048 each, stride 64).
SEED_MIXER = {"eta": "0.1", "update": "batch", "batch_loss": "window", "window": "2048", "stride": "64",
              "bias": "2.0", "solo_first": "131072"}
# The seed's count tables: add-0.1 unigram and bigram, hashed add-0.01 trigram, updated once per chunk.
SEED_NGRAMS = ("pr700-unigram", "pr700-bigram", "pr700-trigram")
# Stride 64 and the seed's entropy-adaptive temperature (TTT_TEMPERATURE=0.98).
NEURAL = {"stride": "64", "temperature": "0.98"}
# The seed's TTT (4 epochs AdamW 1e-4 on 131,072-token chunks, the last 2 blocks): cosine times its
# 1 -> 3 ramp (ADAPTIVE_LR=1), and at its 8 ranks one optimizer step per epoch over the chunk's 64
# sequences, whatever the local number of processes.
SEED_TTT = {"schedule": "cosine-ramp", "batch": "64"}


def _pr700(entropy: str) -> Preset:
    legal = entropy == "entropy"
    return Preset(
        description=("PR #700 with the legal entropy expert" if legal else
                     "PR #700 as published: 5-expert Hedge, stride 64, TTT (INVALID: its entropy expert breaks C2)"),
        experts=("neural",) + SEED_NGRAMS + (entropy,),
        mixer="hedge",
        mixer_options=dict(SEED_MIXER),
        # The legal variant gives the seed trigram's empty buckets the uniform row (the seed's rows
        # there sum to 0.911 at V = 1024).
        expert_options={"neural": dict(NEURAL), entropy: {"source": "neural", "neural_stride": NEURAL["stride"]},
                        **({"pr700-trigram": {"empty": "uniform"}} if legal else {})},
        adapters=("ttt",),
        adapter_options={"ttt": dict(SEED_TTT)},
        invalid_reason="" if legal else (
            "the seed's entropy expert gives exp(-H) to every token (its mass is V*exp(-H), not 1) and its hashed "
            "trigram's empty buckets sum to 0.911: C2 fails, so the BPB is not a compression rate; run with "
            "allow_invalid / --allow-invalid to reproduce it"),
        mirror=((entropy, "neural"),),
        notes=("the entropy expert runs its own neural source (same options as 'neural', mirrored); "
               "the TTT adapter adapts only the 'neural' expert, not that copy",
               "the Hedge window loss takes each context position's loss as it was scored; the seed re-scores it "
               "inside the window (shorter neural context, current n-gram tables; docs/seed-pr700.md)",
               "the seed's mixer weights are per rank (never averaged), so its number depends on its 8 ranks; "
               "this is one mixer over the stream, the seed run on one process"),
    )


def pr700() -> Preset:
    return _pr700("pr700-entropy")


def pr700_legal() -> Preset:
    return _pr700("entropy")
