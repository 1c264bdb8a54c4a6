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

_TUPLE_FIELDS = ("ve_layers", "xsa_layers")


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


def preset(name: str) -> GPTConfig:
    """A preset by name; an unknown name raises UsageError listing the presets."""
    if name not in PRESETS:
        close = difflib.get_close_matches(str(name), list(PRESETS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"unknown model preset {name!r}.{hint} Presets: {', '.join(PRESETS)}")
    return PRESETS[name]
