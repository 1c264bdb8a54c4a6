"""Training options: one dataclass, two presets, parameter-golf environment names as aliases.

Resolution order: preset defaults < environment (``PGOLF_<FIELD>`` or a parameter-golf alias such
as ``ITERATIONS``) < command-line options. An unknown ``PGOLF_*`` name, or a name that looks like a
parameter-golf setting but is not one we implement, is an error rather than silently ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from dataclasses import dataclass, fields

from pgolf_core.errors import UsageError


@dataclass
class TrainConfig:
    model_preset: str = "pr700"  # pgolf_neural.config.PRESETS entry the model starts from
    iterations: int = 20000  # optimizer steps (upper bound when a wall-clock cap is set)
    train_batch_tokens: int = 786_432  # global batch in tokens, independent of the process count
    train_seq_len: int = 2048  # tokens per training sequence
    micro_batch_seqs: int = 48  # sequences per process per forward pass (sets gradient accumulation)
    max_wallclock_seconds: float = 600.0  # 0 = no cap; warmdown is then by steps
    wallclock_reserve_seconds: float = 18.0  # kept for EMA, GPTQ and export out of the cap
    warmup_steps: int = 20  # linear LR warmup steps
    warmdown_iters: int = 3500  # length of the final linear LR decay, in steps (or their time)
    matrix_lr: float = 0.025  # Muon LR of the 2-D block matrices
    scalar_lr: float = 0.025  # Adam LR of vectors and control tensors
    tied_embed_lr: float = 0.035  # Adam LR of the (tied) token embedding and other tables
    muon_momentum: float = 0.99
    muon_momentum_warmup_start: float = 0.92
    muon_momentum_warmup_steps: int = 1500
    muon_backend_steps: int = 5  # Newton-Schulz iterations
    muon_wd: float = 0.04
    adam_wd: float = 0.04
    beta1: float = 0.9
    beta2: float = 0.95
    adam_eps: float = 1e-8
    grad_clip_norm: float = 0.3  # 0 = off
    ema_decay: float = 0.997  # 0 = no EMA
    late_qat_threshold: float = 0.5  # QAT switches on once the LR scale drops below this (0 = never)
    crown_q_lambda: float = 0.01
    prune_pct: float = 0.03  # magnitude pruning of large matrices before export
    gptq_batches: int = 128  # training sequences used for the GPTQ Hessians (0 = round-to-nearest)
    seed: int = 1337
    log_every: int = 50  # steps between progress lines on stderr

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS = {
    "pr700": TrainConfig(),
    # Small batches, short sequences, quick schedule. Measured on 2 CPU cores: about 1.8 CPU seconds
    # per step, 5 minutes wall on a quiet machine (300 steps + GPTQ), 27 minutes on a busy one.
    "tiny": TrainConfig(model_preset="tiny", iterations=300, train_batch_tokens=8192, train_seq_len=256,
                        micro_batch_seqs=16, max_wallclock_seconds=0.0, wallclock_reserve_seconds=0.0,
                        warmup_steps=10, warmdown_iters=120, matrix_lr=0.02, scalar_lr=0.02,
                        tied_embed_lr=0.03, muon_momentum_warmup_steps=100, ema_decay=0.99,
                        gptq_batches=16, log_every=25),
    # The tiny model in a fraction of the time (measured: 55 s wall, 93 CPU s on 2 cores, GPTQ
    # included; val-head BPB 2.81 against tiny's 2.36): a first model to try, not one to report.
    "tiny-quick": TrainConfig(model_preset="tiny", iterations=100, train_batch_tokens=4096, train_seq_len=256,
                              micro_batch_seqs=16, max_wallclock_seconds=0.0, wallclock_reserve_seconds=0.0,
                              warmup_steps=5, warmdown_iters=40, matrix_lr=0.02, scalar_lr=0.02,
                              tied_embed_lr=0.03, muon_momentum_warmup_steps=40, ema_decay=0.98,
                              gptq_batches=8, log_every=20),
}

# parameter-golf environment names (the seed's Hyperparameters) -> field
ALIASES = {f.name.upper(): f.name for f in fields(TrainConfig) if f.name not in ("model_preset", "log_every")}
ALIASES.update({"TRAIN_LOG_EVERY": "log_every", "CROWNQ_LAMBDA": "crown_q_lambda"})
# Seed settings with no meaning here: rejected so that a run never silently differs from intent.
UNSUPPORTED = {
    "DATA_PATH": "pass the data path as an argument",
    "TOKENIZER_PATH": "training does not need the tokenizer",
    "VAL_BATCH_SIZE": "training never reads validation data",
    "VAL_LOSS_EVERY": "training never reads validation data",
    "QAT_ENABLED": "use LATE_QAT_THRESHOLD",
    "SWA_ENABLED": "SWA is not implemented (EMA is)",
    "SWA_EVERY": "SWA is not implemented (EMA is)",
    "INT6_LAST_N": "all quantized matrices are int5",
    "SOFT_ROUND_QAT": "only straight-through QAT is implemented",
    "HEAD_LR": "embeddings are tied; use TIED_EMBED_LR",
    "EMBED_LR": "embeddings are tied; use TIED_EMBED_LR",
}
KNOWN_OTHER_PGOLF = {"PGOLF_PLUGINS"}  # read by pgolf_core itself


def _convert(name: str, value, source: str):
    kind = {f.name: f.type for f in fields(TrainConfig)}[name]
    try:
        if kind in ("int", int):
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if kind in ("float", float):
            out = float(value)
            if not math.isfinite(out):
                raise UsageError(f"{source}: {name} must be a finite number, got {value!r}")
            return out
        return str(value)
    except (TypeError, ValueError):
        raise UsageError(f"{source}: expected {kind} for {name}, got {value!r}") from None


def env_overrides(environ=None) -> dict:
    """Field overrides from the environment; unknown PGOLF_* or alias-like names are errors."""
    environ = os.environ if environ is None else environ
    names = {f.name for f in fields(TrainConfig)}
    out = {}
    for key, value in environ.items():
        if key in KNOWN_OTHER_PGOLF:
            continue
        if key.startswith("PGOLF_"):
            field_name = key[len("PGOLF_"):].lower()
            if field_name not in names:
                close = difflib.get_close_matches(field_name, sorted(names), n=1)
                hint = f" Did you mean PGOLF_{close[0].upper()}?" if close else ""
                raise UsageError(f"unknown environment setting {key}.{hint}")
            out[field_name] = _convert(field_name, value, f"environment {key}")
        elif key in ALIASES:
            out[ALIASES[key]] = _convert(ALIASES[key], value, f"environment {key}")
        elif key in UNSUPPORTED:
            raise UsageError(f"environment {key} is not supported by pgolf-core train ({UNSUPPORTED[key]})")
        elif key in _model_env_names():
            raise UsageError(f"environment {key} is a model setting, which the environment does not set here: "
                             f"pass --model-set {key.lower()}={value}")
        else:
            close = difflib.get_close_matches(key, list(ALIASES), n=1, cutoff=0.85)
            if close:
                raise UsageError(f"unknown environment setting {key} (did you mean {close[0]}?)")
    return out


def _model_env_names() -> set:
    """The seed's names of model settings (VOCAB_SIZE, NUM_LAYERS, MODEL_DIM, ...): refused rather
    than ignored, so a run never trains another model than the one asked for."""
    from ..config import GPTConfig

    return {f.name.upper() for f in fields(GPTConfig)} - set(ALIASES)


def resolve(preset: str, cli_overrides: dict, environ=None) -> TrainConfig:
    """Preset < environment < command line; every key is checked."""
    if preset not in PRESETS:
        raise UsageError(f"unknown training preset {preset!r}; known: {', '.join(sorted(PRESETS))}")
    values = PRESETS[preset].to_dict()
    values.update(env_overrides(environ))
    names = set(values)
    for key, value in cli_overrides.items():
        if key not in names:
            close = difflib.get_close_matches(key, sorted(names), n=1)
            raise UsageError(f"unknown training option {key!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
        values[key] = _convert(key, value, f"option --{key.replace('_', '-')}")
    cfg = TrainConfig(**values)
    _validate(cfg)
    return cfg


def _validate(cfg: TrainConfig) -> None:
    if cfg.train_batch_tokens % cfg.train_seq_len:
        raise UsageError(f"train_batch_tokens {cfg.train_batch_tokens} is not a multiple of "
                         f"train_seq_len {cfg.train_seq_len}")
    for name in ("iterations", "train_seq_len", "micro_batch_seqs"):
        if getattr(cfg, name) <= 0:
            raise UsageError(f"{name} must be positive, got {getattr(cfg, name)}")
    if not 0.0 <= cfg.prune_pct < 1.0:
        raise UsageError(f"prune_pct must be in [0, 1), got {cfg.prune_pct}")
