"""Configuration of the neural expert's GPT: one dataclass and the named presets.

``GPTConfig.from_dict`` is how a checkpoint's config becomes a model; unknown keys are errors (with a
"did you mean"), never silently ignored, so a checkpoint written by a newer model cannot load into an
older one and quietly drop a feature.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, fields

from pgolf_core.errors import UsageError
from pgolf_core.options import Option

_TUPLE_FIELDS = ("ve_layers", "xsa_layers")
# layer lists (VE_LAYERS=9,10, ve_layers=2,3) and counts, parsed like any option: a bad value is one
# clear line, never a traceback; an empty list is allowed (no value-embedding layers)
_LAYERS = Option("list", (), item="int", low=0, min_items=0)
_LAST_N = Option("int", 11, low=0)  # XSA on the last n blocks; the seed's default is all 11


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 1024  # token alphabet; the tokenizer's vocabulary
    num_layers: int = 11  # transformer blocks; the first num_layers // 2 feed the U-Net skips
    model_dim: int = 512  # residual stream width
    num_heads: int = 8  # query heads; head_dim = model_dim // num_heads
    num_kv_heads: int = 8  # key/value heads (grouped-query attention when < num_heads)
    mlp_mult: float = 3.5  # MLP hidden width = int(mlp_mult * model_dim)
    bigram_vocab_size: int = 6144  # rows of the hashed-bigram table (0 = no bigram embedding)
    bigram_dim: int = 128  # width of a bigram row, projected to model_dim
    ve_dim: int = 128  # width of the shared value-embedding table, projected to the KV width
    ve_layers: tuple = (9, 10)  # blocks whose values get the value embedding added (() = none)
    xsa_layers: tuple = tuple(range(11))  # blocks with XSA (self-value projection removed)
    rope_dims: int = 16  # leading dims of each head that RoPE rotates (0 = the whole head)
    rope_base: float = 10000.0  # RoPE base at rope_train_seq_len
    rope_train_seq_len: int = 1024  # RoPE reference length; longer windows raise the base (NTK rule)
    train_seq_len: int = 2048  # sequence length the model is trained at; default scoring window
    qk_gain_init: float = 1.5  # initial per-head gain on the RMS-normed queries
    logit_softcap: float = 30.0  # logits = c * tanh(z / c)
    tie_embeddings: bool = True  # output head is the token embedding (no separate lm_head)
    tied_embed_init_std: float = 0.005  # init std of the token embedding
    ln_scale: bool = True  # block i scales its normed inputs by 1/sqrt(i + 1) (the seed's LN_SCALE=1)
    bigram_proj: bool = True  # a bigram_dim -> model_dim projection (the seed has none when they are equal)
    ve_proj: bool = True  # a ve_dim -> kv_dim projection (the seed has none when they are equal)

    def __post_init__(self):
        for name in _TUPLE_FIELDS:  # lists from JSON/checkpoints become tuples (hashable, frozen)
            object.__setattr__(self, name, tuple(int(i) for i in getattr(self, name)))
        self.validate()

    @property
    def head_dim(self) -> int:
        return self.model_dim // self.num_heads

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def mlp_hidden(self) -> int:
        return int(self.mlp_mult * self.model_dim)

    def validate(self) -> None:
        """Raise UsageError naming the first inconsistent field."""
        def need(cond, msg):
            if not cond:
                raise UsageError(f"GPTConfig: {msg}")

        for name in ("vocab_size", "num_layers", "model_dim", "num_heads", "num_kv_heads", "train_seq_len",
                     "rope_train_seq_len"):
            need(int(getattr(self, name)) >= 1, f"{name} must be >= 1, got {getattr(self, name)!r}")
        need(self.model_dim % self.num_heads == 0,
             f"model_dim ({self.model_dim}) must be divisible by num_heads ({self.num_heads})")
        need(self.num_heads % self.num_kv_heads == 0,
             f"num_heads ({self.num_heads}) must be divisible by num_kv_heads ({self.num_kv_heads})")
        need(self.head_dim % 2 == 0, f"head_dim ({self.head_dim}) must be even for RoPE")
        rd = self.rope_dims
        need(rd == 0 or (rd % 2 == 0 and 4 <= rd <= self.head_dim),
             f"rope_dims must be 0 or an even number in [4, head_dim={self.head_dim}], got {rd}")
        need(self.mlp_hidden >= 1, f"mlp_mult ({self.mlp_mult}) gives an empty MLP")
        need(self.bigram_vocab_size == 0 or self.bigram_vocab_size >= 2,
             f"bigram_vocab_size must be 0 (off) or >= 2, got {self.bigram_vocab_size}")
        need(self.bigram_vocab_size == 0 or self.bigram_dim >= 1, "bigram_dim must be >= 1")
        need(not self.ve_layers or self.ve_dim >= 1, "ve_dim must be >= 1 when ve_layers is set")
        for name in _TUPLE_FIELDS:
            layers = getattr(self, name)
            need(all(0 <= i < self.num_layers for i in layers) and len(set(layers)) == len(layers),
                 f"{name} must be distinct block indices in [0, {self.num_layers}), got {list(layers)}")
        need(self.logit_softcap > 0, f"logit_softcap must be > 0, got {self.logit_softcap}")
        need(self.bigram_proj or self.bigram_vocab_size == 0 or self.bigram_dim == self.model_dim,
             f"bigram_proj=False needs bigram_dim == model_dim ({self.bigram_dim} != {self.model_dim})")
        need(self.ve_proj or not self.ve_layers or self.ve_dim == self.kv_dim,
             f"ve_proj=False needs ve_dim == kv_dim ({self.ve_dim} != {self.kv_dim})")
        need(self.rope_base > 0, f"rope_base must be > 0, got {self.rope_base}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for name in _TUPLE_FIELDS:
            d[name] = list(d[name])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "GPTConfig":
        """Config from a plain dict; unknown keys raise UsageError with a "did you mean"."""
        if not isinstance(d, dict):
            raise UsageError(f"GPTConfig: expected a dict, got {type(d).__name__}")
        known = [f.name for f in fields(cls)]
        for key in d:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise UsageError(f"GPTConfig: unknown key {key!r}.{hint} Known keys: {', '.join(known)}")
        try:
            return cls(**d)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"GPTConfig: bad value ({exc})") from exc


PRESETS = {
    # The seed record's model (PR #700): 11 x 512, MLP 3.5x, XSA everywhere, VE on the last two blocks.
    "pr700": GPTConfig(),
    # Every feature of pr700 (bigram, smear, VE, XSA, partial RoPE, GQA, U-Net, softcap, tied head) at
    # a size that trains on two CPU cores in minutes. Two KV heads so that the GQA paths run too, and
    # MLP 4.5x so that the MLP matrices (128 x 576 = 73,728 values) exceed the 65,536-value fp16
    # passthrough limit and the tiny artifact exercises int5 GPTQ like the real one.
    "tiny": GPTConfig(num_layers=4, model_dim=128, num_heads=4, num_kv_heads=2, mlp_mult=4.5, bigram_vocab_size=2048,
                      bigram_dim=64, ve_dim=64, ve_layers=(2, 3), xsa_layers=(0, 1, 2, 3), rope_dims=16,
                      rope_train_seq_len=256, train_seq_len=256),
}


# The seed's environment variables (its Hyperparameters) and the fields they set. The seed builds
# no bigram projection when BIGRAM_DIM == MODEL_DIM and no value-embedding projection when
# VE_DIM == the key/value width; XSA_LAST_N=n puts XSA on the last n blocks; VE_ENABLED=0 drops VE.
SEED_ENV = {"VOCAB_SIZE": "vocab_size", "NUM_LAYERS": "num_layers", "MODEL_DIM": "model_dim",
            "NUM_HEADS": "num_heads", "NUM_KV_HEADS": "num_kv_heads", "MLP_MULT": "mlp_mult",
            "BIGRAM_VOCAB_SIZE": "bigram_vocab_size", "BIGRAM_DIM": "bigram_dim", "VE_DIM": "ve_dim",
            "ROPE_DIMS": "rope_dims", "ROPE_BASE": "rope_base", "TRAIN_SEQ_LEN": "train_seq_len",
            "QK_GAIN_INIT": "qk_gain_init", "LOGIT_SOFTCAP": "logit_softcap", "TIE_EMBEDDINGS": "tie_embeddings",
            "TIED_EMBED_INIT_STD": "tied_embed_init_std", "LN_SCALE": "ln_scale"}


def from_seed_env(env) -> GPTConfig:
    """The model config of a seed (PR #700 ``train_gpt.py``) run from its environment variables;
    unset ones take the seed's defaults. Names the seed reads but this model cannot express
    (``DTG_ENABLED=1``) are errors; other names are ignored (they are training settings)."""
    base = PRESETS["pr700"].to_dict()
    values = {}
    for key, field_name in SEED_ENV.items():
        if key in env:
            kind = type(base[field_name])
            text = str(env[key]).strip()
            try:
                values[field_name] = bool(int(text)) if kind is bool else kind(float(text) if kind is int else text)
            except ValueError:
                raise UsageError(f"seed setting {key}={text!r}: expected a {kind.__name__}") from None
            if kind is int and float(text) != int(float(text)):
                raise UsageError(f"seed setting {key}={text!r}: expected an integer")
    if str(env.get("DTG_ENABLED", "0")).strip() not in ("0", ""):
        raise UsageError("seed setting DTG_ENABLED=1 (the dynamic residual gate) is not supported by this model")
    cfg = {**base, **values}
    layers = cfg["num_layers"]
    xsa = _LAST_N.parse(str(env.get("XSA_LAST_N", _LAST_N.default)), "seed setting", "XSA_LAST_N")
    cfg["xsa_layers"] = list(range(max(0, layers - xsa), layers)) if xsa > 0 else []
    ve_on = str(env.get("VE_ENABLED", "1")).strip() not in ("0", "")
    ve_layers = _LAYERS.parse(str(env.get("VE_LAYERS", "9,10")), "seed setting", "VE_LAYERS")
    cfg["ve_layers"] = list(ve_layers) if ve_on else []
    cfg["rope_train_seq_len"] = 1024  # the seed's Rotary reference length, whatever TRAIN_SEQ_LEN is
    kv_dim = cfg["num_kv_heads"] * (cfg["model_dim"] // cfg["num_heads"])
    cfg["bigram_proj"] = cfg["bigram_dim"] != cfg["model_dim"]
    cfg["ve_proj"] = cfg["ve_dim"] != kv_dim
    return GPTConfig.from_dict(cfg)


def seed_env(cfg: GPTConfig) -> dict:
    """The seed's environment variables that build ``cfg`` in its ``train_gpt.py`` (the inverse of
    ``from_seed_env``); a config the seed cannot express is a UsageError naming the field."""
    def need(cond, msg):
        if not cond:
            raise UsageError(f"the seed's script cannot build this model: {msg}")

    L = cfg.num_layers
    xsa = sorted(cfg.xsa_layers)
    need(xsa == list(range(L - len(xsa), L)), f"XSA must be on the last blocks (XSA_LAST_N), got xsa_layers={xsa}")
    # The seed's RoPE reference length is 1024; another one is the same model as long as windows of
    # train_seq_len do not reach past either (then neither raises the base).
    need(cfg.rope_train_seq_len == 1024 or cfg.train_seq_len <= min(cfg.rope_train_seq_len, 1024),
         f"its RoPE reference length is 1024, and rope_train_seq_len={cfg.rope_train_seq_len} with windows of "
         f"{cfg.train_seq_len} would rotate differently")
    need(cfg.bigram_vocab_size == 0 or cfg.bigram_proj == (cfg.bigram_dim != cfg.model_dim),
         f"it has a bigram projection exactly when bigram_dim != model_dim (bigram_proj={cfg.bigram_proj})")
    need(not cfg.ve_layers or cfg.ve_proj == (cfg.ve_dim != cfg.kv_dim),
         f"it has a value-embedding projection exactly when ve_dim != kv_dim (ve_proj={cfg.ve_proj})")
    d = cfg.to_dict()
    env = {key: (str(int(d[f])) if isinstance(d[f], bool) else str(d[f])) for key, f in SEED_ENV.items()}
    env["XSA_LAST_N"] = str(len(xsa))
    env["VE_ENABLED"] = "1" if cfg.ve_layers else "0"
    if cfg.ve_layers:
        env["VE_LAYERS"] = ",".join(str(i) for i in cfg.ve_layers)
    return env


def resolve_config(spec: str) -> GPTConfig:
    """``neural.config=``: a JSON file of GPTConfig fields, a preset name, or ``seed`` (the seed's
    environment variables of this process), each optionally followed by ``:key=value`` overrides."""
    import json
    from pathlib import Path

    head, *items = [part.strip() for part in str(spec).split(":")]
    if head == "seed":
        import os

        base = from_seed_env(os.environ).to_dict()
    elif head in PRESETS:
        base = PRESETS[head].to_dict()
    elif Path(head).is_file():
        try:
            base = json.loads(Path(head).read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"neural config {head}: not a JSON object of model settings ({exc})") from None
        if isinstance(base, dict) and isinstance(base.get("config"), dict):  # a results file or a log entry
            base = base["config"]
        base = GPTConfig.from_dict(base).to_dict() if isinstance(base, dict) else base
    else:
        raise UsageError(f"neural config {head!r}: neither a JSON file, a preset ({', '.join(PRESETS)}) nor 'seed'")
    if not isinstance(base, dict):
        raise UsageError(f"neural config {head}: expected a JSON object")
    return GPTConfig.from_dict(apply_overrides(base, items, "neural config override"))


def apply_overrides(base: dict, items, who: str) -> dict:
    """``base`` (a config dict) with ``key=value`` items applied, each value parsed like the field
    it replaces (bools 0/1/true/false, integer lists comma-separated); ``who`` starts the errors.
    The one parser of model settings: ``train --model-set`` and ``neural.config=`` both use it."""
    out = dict(base)
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in out:
            raise UsageError(f"{who} {item!r}: expected key=value with key one of {', '.join(sorted(out))}")
        old = out[key]
        try:
            if isinstance(old, bool):
                if value.lower() not in ("0", "1", "true", "false"):
                    raise ValueError(value)
                out[key] = value.lower() in ("1", "true")
            elif isinstance(old, (list, tuple)):
                out[key] = list(_LAYERS.parse(value, who, key))
            else:
                out[key] = type(old)(value)
        except ValueError:
            raise UsageError(f"{who} {key}={value}: expected a value like {old!r}") from None
    return out


def preset(name: str) -> GPTConfig:
    """A preset by name; an unknown name raises UsageError listing the presets."""
    if name not in PRESETS:
        close = difflib.get_close_matches(str(name), list(PRESETS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"unknown model preset {name!r}.{hint} Presets: {', '.join(PRESETS)}")
    return PRESETS[name]
