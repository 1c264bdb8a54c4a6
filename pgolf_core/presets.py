"""Named evaluation configurations (``pgolf-core eval --preset NAME``).

``preset_kwargs(name, ...)`` returns keyword arguments for ``evaluate()``; anything the user gives
explicitly wins. ``pr700`` is the seed record's configuration (PR #700, claimed 1.0541 BPB): it
contains the seed's entropy expert, which breaks C2, so it only runs with ``allow_invalid`` and is
reported as INVALID (so does its hashed trigram, whose empty buckets are sub-normalized).
``pr700-legal`` swaps in the legal ``entropy`` expert and the trigram's legal ``empty=uniform``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

from .errors import UsageError

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


@dataclass(frozen=True)
class Preset:
    description: str
    experts: tuple
    mixer: str
    mixer_options: dict
    expert_options: dict
    adapters: tuple = ()  # used when registered; a missing one is reported in ``notes``
    adapter_options: dict = field(default_factory=dict)
    invalid_reason: str = ""  # why results of this preset are INVALID (empty: a legal configuration)
    notes: tuple = field(default_factory=tuple)


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
        notes=("the entropy expert runs its own neural source (same options as 'neural', mirrored); "
               "the TTT adapter adapts only the 'neural' expert, not that copy",
               "the Hedge window loss takes each context position's loss as it was scored; the seed re-scores it "
               "inside the window (shorter neural context, current n-gram tables; docs/seed-pr700.md)",
               "the seed's mixer weights are per rank (never averaged), so its number depends on its 8 ranks; "
               "this is one mixer over the stream, the seed run on one process"),
    )


PRESETS = {"pr700": _pr700("pr700-entropy"), "pr700-legal": _pr700("entropy")}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        import difflib

        close = difflib.get_close_matches(name, list(PRESETS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"unknown preset {name!r}.{hint} Presets: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


def preset_kwargs(name: str, plugins=None, *, experts=None, mixer=None, adapters=None,
                  expert_options: Optional[Mapping] = None, mixer_options: Optional[Mapping] = None,
                  adapter_options: Optional[Mapping] = None) -> dict:
    """``evaluate()`` keyword arguments for a preset, with the user's explicit choices on top.

    ``experts``/``mixer``/``adapters`` given (not None) replace the preset's; option dicts are merged
    per component (user values win). Options given to ``neural`` are mirrored to the entropy expert's
    own neural source (``neural_<key>``) so both run the same checkpoint. Returns the kwargs plus
    ``notes`` (a list of strings to show the user) and ``invalid_reason``; pop those two before
    calling ``evaluate``.
    """
    p = get_preset(name)
    notes = list(p.notes)
    if adapters is None:
        adapters = list(p.adapters)
        if plugins is not None:
            missing = [a for a in adapters if a not in plugins.adapters.entries]
            adapters = [a for a in adapters if a not in missing]
            notes += [f"adapter {a!r} is not registered: this run lacks that part of the recipe" for a in missing]
    eopts = {k: dict(v) for k, v in p.expert_options.items()}
    for comp, opts in (expert_options or {}).items():
        eopts.setdefault(comp, {}).update(opts)
    for entropy in ("entropy", "pr700-entropy"):
        own = (expert_options or {}).get(entropy, {})
        if entropy in eopts and eopts[entropy].get("source", "neural") != "neural":  # the user chose another source
            eopts[entropy] = {k: v for k, v in eopts[entropy].items() if not k.startswith("neural_") or k in own}
        elif entropy in eopts:
            for key, value in (expert_options or {}).get("neural", {}).items():
                if f"neural_{key}" not in own:
                    eopts[entropy][f"neural_{key}"] = value
    names = list(experts) if experts is not None else list(p.experts)
    # the preset's adapter options go to its adapters that run; the user's are merged on top
    aopts = {a: dict(o) for a, o in p.adapter_options.items() if a in adapters}
    for comp, opts in (adapter_options or {}).items():
        aopts.setdefault(comp, {}).update(opts)
    return {
        "experts": names,
        "mixer": mixer if mixer is not None else p.mixer,
        "adapters": adapters,
        "expert_options": {k: v for k, v in eopts.items() if k in names},
        # the preset's mixer options belong to its mixer: a different mixer starts from its own defaults
        "mixer_options": {**(p.mixer_options if mixer is None else {}), **dict(mixer_options or {})},
        "adapter_options": aopts,
        "notes": notes,
        "invalid_reason": p.invalid_reason,
    }
