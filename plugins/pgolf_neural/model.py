"""The seed record's GPT (docs/seed-pr700.md): the one model definition used for scoring, training
and test-time training.

Shapes: B batch, T positions, C model_dim, H query heads, G key/value heads, D head_dim, V vocab.
Parameter names follow the seed so that its export rules (which keep tensors whose names contain
``attn_scale``, ``mlp_scale``, ``resid_mix``, ``q_gain``, ``skip_weight``, ``smear``,
``ve_layer_scales`` or ``ve_shared.scale`` in fp32) and its artifacts apply unchanged.

Every operation is position-wise or causal, so the prediction at position i depends only on
``ids[:, : i + 1]``; padding a sequence on the right never changes the outputs before the padding.

Two optional inputs serve the other scorers (``cache.py``, document isolation): ``past``, the keys
and values of earlier positions (attended to through an explicit ``mask``), and ``reset``, the
positions where the previous-token paths (bigram hash, smear gate) start over, as at position 0.
Without them every call computes exactly what it computed before they existed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import GPTConfig

BIGRAM_MUL_CUR = 36313  # multiplier of the current token in the bigram hash
BIGRAM_MUL_PREV = 27191  # multiplier of the previous token


def rms_norm(x: Tensor) -> Tensor:
    """RMS norm over the last dim, no learned weight."""
    return F.rms_norm(x, (x.size(-1),))


# ----------------------------------------------------------------------------- embeddings

def bigram_indices(ids: Tensor, table_size: int, reset: Tensor | None = None) -> Tensor:
    """Row of the hashed-bigram table for every position: (B, T) -> (B, T) int64.

    Position 0 has no previous token and gets the reserved last row; position i >= 1 gets
    (36313 * t[i] XOR 27191 * t[i-1]) mod (table_size - 1). Positions where ``reset`` (bool, (B, T))
    is true get the reserved row too: they are treated as having no previous token.
    """
    t = ids.long()
    mod = table_size - 1
    out = torch.full_like(t, mod)
    out[..., 1:] = torch.bitwise_xor(BIGRAM_MUL_CUR * t[..., 1:], BIGRAM_MUL_PREV * t[..., :-1]) % mod
    if reset is not None:
        out = out.masked_fill(reset, mod)
    return out


class BigramHash(nn.Module):
    """Hashed embedding of (previous token, token), projected to the model width, times a scale."""

    def __init__(self, table_size: int, dim: int, model_dim: int, proj: bool = True):
        super().__init__()
        self.table_size = table_size
        self.embed = nn.Embedding(table_size, dim)
        self.proj = nn.Linear(dim, model_dim, bias=False) if proj else None  # None: dim == model_dim
        self.scale = nn.Parameter(torch.tensor(0.05))

    def forward(self, ids: Tensor, reset: Tensor | None = None) -> Tensor:  # (B, T) -> (B, T, C)
        h = self.embed(bigram_indices(ids, self.table_size, reset))
        h = self.proj(h) if self.proj is not None else h
        return h * self.scale.to(h.dtype)


class SmearGate(nn.Module):
    """x <- (1 - sigmoid(g)) * x + sigmoid(g) * x_prev, per channel; x_prev = 0 at position 0."""

    def __init__(self, dim: int):
        super().__init__()
        self.gate = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor, reset: Tensor | None = None) -> Tensor:  # (B, T, C) -> (B, T, C)
        g = torch.sigmoid(self.gate.to(x.dtype))
        x_prev = F.pad(x[:, :-1], (0, 0, 1, 0))  # shift right by one position, zeros in front
        if reset is not None:  # no previous position to smear in where a document starts
            x_prev = x_prev.masked_fill(reset[..., None], 0.0)
        return (1 - g) * x + g * x_prev


class ValueEmbedding(nn.Module):
    """One token table shared by the chosen layers, projected to the key/value width."""

    def __init__(self, vocab_size: int, dim: int, kv_dim: int, proj: bool = True):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.proj = nn.Linear(dim, kv_dim, bias=False) if proj else None  # None: dim == kv_dim
        self.scale = nn.Parameter(torch.tensor(0.1))

    def forward(self, ids: Tensor) -> Tensor:  # (B, T) -> (B, T, G * D)
        h = self.embed(ids)
        h = self.proj(h) if self.proj is not None else h
        return h * self.scale.to(h.dtype)


# ----------------------------------------------------------------------------- attention

def rope_inv_freq(rope_dims: int, base: float, rope_len: int, ref_len: int) -> Tensor:
    """Inverse frequencies of the rotated dims; windows longer than ref_len raise the base (NTK).

    base' = base * (rope_len / ref_len) ** (rope_dims / (rope_dims - 2)).
    """
    if rope_len > ref_len:
        base = base * (rope_len / ref_len) ** (rope_dims / (rope_dims - 2))
    return 1.0 / (base ** (torch.arange(0, rope_dims, 2, dtype=torch.float32) / rope_dims))


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the first 2 * cos.size(-1) dims of each head, pairing dim j with dim j + half.

    x: (B, T, H, D); cos, sin: (T, half) broadcast over batch and heads.
    """
    half = cos.size(-1)
    x1, x2, rest = x[..., :half], x[..., half: 2 * half], x[..., 2 * half:]
    c, s = cos[None, :, None, :].to(x.dtype), sin[None, :, None, :].to(x.dtype)
    return torch.cat((x1 * c + x2 * s, x2 * c - x1 * s, rest), dim=-1)


def remove_self_value(y: Tensor, v: Tensor) -> Tensor:
    """XSA: subtract from each head's output its projection on its own position's unit value vector.

    y: (B, T, H, D) attention output; v: (B, T, G, D) values; query head h uses KV group h // (H // G).
    """
    B, T, H, D = y.shape
    G = v.size(2)
    yg = y.reshape(B, T, G, H // G, D)
    v_hat = F.normalize(v, dim=-1).unsqueeze(3)  # (B, T, G, 1, D)
    yg = yg - (yg * v_hat).sum(-1, keepdim=True) * v_hat
    return yg.reshape(B, T, H, D)


class Attention(nn.Module):
    def __init__(self, cfg: GPTConfig, use_xsa: bool):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.c_q = nn.Linear(cfg.model_dim, cfg.model_dim, bias=False)
        self.c_k = nn.Linear(cfg.model_dim, cfg.kv_dim, bias=False)
        self.c_v = nn.Linear(cfg.model_dim, cfg.kv_dim, bias=False)
        self.proj = nn.Linear(cfg.model_dim, cfg.model_dim, bias=False)
        self.q_gain = nn.Parameter(torch.full((cfg.num_heads,), float(cfg.qk_gain_init)))
        self.use_xsa = use_xsa

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, ve: Tensor | None = None,
                past: tuple | None = None, mask: Tensor | None = None, kv_out: list | None = None,
                tiles: tuple | None = None) -> Tensor:
        """Causal self-attention over the T positions of ``x``, rotated by ``cos``/``sin`` (T, half).

        ``past`` = (k, v) of P earlier positions, (B, P, G, D) each, k RMS-normed and rotated: the
        T queries also attend to them, and ``mask`` (bool, broadcastable to (B, 1, T, P + T), True =
        may attend) replaces the causal rule. ``mask`` alone restricts attention within the T
        positions. ``kv_out`` (a list) gets the (k, v) attended to (past and new, same form), from
        which the caller keeps what the next call's ``past`` needs.

        ``tiles`` = (tile, span) computes banded attention in tiles: the T queries in T / tile tiles,
        tile j attending only to the ``span`` keys that end with it (the last ``span - tile`` past
        and earlier keys, then its own; missing ones are zeros), with ``mask`` of shape
        (B * T / tile, 1, tile, span). The cost is then linear in T instead of quadratic.
        """
        B, T, C = x.shape
        q = self.c_q(x).view(B, T, self.num_heads, self.head_dim)  # (B, T, H, D)
        k = self.c_k(x).view(B, T, self.num_kv_heads, self.head_dim)  # (B, T, G, D)
        v = self.c_v(x)  # (B, T, G * D)
        if ve is not None:
            v = v + ve
        v = v.view(B, T, self.num_kv_heads, self.head_dim)
        q, k = apply_rope(rms_norm(q), cos, sin), apply_rope(rms_norm(k), cos, sin)
        keys, values = (k, v) if past is None else (torch.cat((past[0], k), 1), torch.cat((past[1], v), 1))
        if kv_out is not None:
            kv_out.append((keys, values))
        q = q * self.q_gain.to(q.dtype)[None, None, :, None]
        if tiles is not None:
            y = self._tiled(q, keys, values, mask, *tiles)
        else:
            y = F.scaled_dot_product_attention(q.transpose(1, 2), keys.transpose(1, 2), values.transpose(1, 2),
                                               attn_mask=mask, is_causal=mask is None,
                                               enable_gqa=self.num_kv_heads != self.num_heads)
            y = y.transpose(1, 2)  # (B, T, H, D)
        if self.use_xsa:
            y = remove_self_value(y, v)
        return self.proj(y.reshape(B, T, C))

    def _tiled(self, q: Tensor, keys: Tensor, values: Tensor, mask: Tensor, tile: int, span: int) -> Tensor:
        """Banded attention in tiles of queries (see ``forward``): (B, T, H, D)."""
        B, T, H, D = q.shape
        extra, n = span - tile, T // tile
        P = keys.size(1) - T
        if P < extra:  # pad the front: those keys are masked out by the caller
            pad = keys.new_zeros((B, extra - P) + keys.shape[2:])
            keys, values = torch.cat((pad, keys), 1), torch.cat((pad, values), 1)
        elif P > extra:
            keys, values = keys[:, P - extra:], values[:, P - extra:]

        def per_tile(t: Tensor) -> Tensor:  # (B, extra + T, G, D) -> (B * n, G, span, D)
            return t.unfold(1, span, tile).permute(0, 1, 2, 4, 3).reshape(B * n, t.size(2), span, D)

        qt = q.reshape(B * n, tile, H, D).transpose(1, 2)
        y = F.scaled_dot_product_attention(qt, per_tile(keys), per_tile(values), attn_mask=mask,
                                           enable_gqa=self.num_kv_heads != self.num_heads)
        return y.transpose(1, 2).reshape(B, T, H, D)


# ----------------------------------------------------------------------------- blocks

class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.model_dim, cfg.mlp_hidden, bias=False)
        self.proj = nn.Linear(cfg.mlp_hidden, cfg.model_dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(F.leaky_relu(self.fc(x), negative_slope=0.5).square())


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig, index: int):
        super().__init__()
        C = cfg.model_dim
        self.attn = Attention(cfg, use_xsa=index in cfg.xsa_layers)
        self.mlp = MLP(cfg)
        self.attn_scale = nn.Parameter(torch.ones(C))
        self.mlp_scale = nn.Parameter(torch.ones(C))
        self.resid_mix = nn.Parameter(torch.stack((torch.ones(C), torch.zeros(C))))  # (2, C)
        # deeper blocks see smaller normed inputs (the seed's LN_SCALE)
        self.norm_scale = 1.0 / math.sqrt(index + 1) if cfg.ln_scale else 1.0

    def forward(self, x: Tensor, x0: Tensor, cos: Tensor, sin: Tensor, ve: Tensor | None,
                past: tuple | None = None, mask: Tensor | None = None, kv_out: list | None = None,
                tiles: tuple | None = None) -> Tensor:
        mix = self.resid_mix.to(x.dtype)
        x = mix[0] * x + mix[1] * x0
        x = x + self.attn_scale.to(x.dtype) * self.attn(rms_norm(x) * self.norm_scale, cos, sin, ve, past, mask,
                                                        kv_out, tiles)
        return x + self.mlp_scale.to(x.dtype) * self.mlp(rms_norm(x) * self.norm_scale)


# ----------------------------------------------------------------------------- the model

class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.model_dim)
        self.bigram = (BigramHash(cfg.bigram_vocab_size, cfg.bigram_dim, cfg.model_dim, cfg.bigram_proj)
                       if cfg.bigram_vocab_size else None)
        self.smear = SmearGate(cfg.model_dim)
        self.num_encoder_layers = cfg.num_layers // 2  # blocks that push U-Net skips
        self.skip_weights = nn.Parameter(torch.ones(self.num_encoder_layers, cfg.model_dim))
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_layers))
        self.ve_shared = (ValueEmbedding(cfg.vocab_size, cfg.ve_dim, cfg.kv_dim, cfg.ve_proj)
                          if cfg.ve_layers else None)
        self.ve_layer_scales = nn.ParameterList(nn.Parameter(torch.ones(1)) for _ in cfg.ve_layers)
        self.lm_head = None if cfg.tie_embeddings else nn.Linear(cfg.model_dim, cfg.vocab_size, bias=False)
        self._rope_cache: dict = {}
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The seed's initialisation.

        Orthogonal matrices, except the output projections of attention and MLP (and an untied
        head), which start at zero so that every block starts as the identity; the tables start as
        the seed's code starts them (docs/seed-pr700.md). The bigram projection stays orthogonal (scaled like the other
        residual-stream projections): with both the bigram table and its projection at zero no
        gradient could ever reach either.
        """
        depth_scale = 1.0 / math.sqrt(2 * self.config.num_layers)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                nn.init.orthogonal_(module.weight)
                if name.endswith(".proj"):
                    module.weight.mul_(depth_scale)
        for block in self.blocks:
            nn.init.zeros_(block.attn.proj.weight)
            nn.init.zeros_(block.mlp.proj.weight)
        if self.lm_head is not None:
            nn.init.zeros_(self.lm_head.weight)
        nn.init.normal_(self.tok_emb.weight, std=self.config.tied_embed_init_std)
        if self.bigram is not None:
            nn.init.zeros_(self.bigram.embed.weight)
        if self.ve_shared is not None:
            nn.init.normal_(self.ve_shared.embed.weight, std=0.01)
            if self.ve_shared.proj is not None:
                nn.init.zeros_(self.ve_shared.proj.weight)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def rope_tables(self, T: int, rope_len: int, device) -> tuple[Tensor, Tensor]:
        """cos, sin of shape (T, rope_dims / 2) for windows of nominal length rope_len."""
        cfg = self.config
        rd = cfg.rope_dims or cfg.head_dim
        key = (T, rope_len, str(device))
        cached = self._rope_cache.get(key)
        # Tables built under torch.inference_mode cannot take part in a later backward pass (TTT).
        if cached is None or (cached[0].is_inference() and not torch.is_inference_mode_enabled()):
            inv_freq = rope_inv_freq(rd, cfg.rope_base, rope_len, cfg.rope_train_seq_len).to(device)
            freqs = torch.outer(torch.arange(T, device=device, dtype=torch.float32), inv_freq)
            self._rope_cache = {key: (freqs.cos(), freqs.sin())}  # keep one entry: lengths rarely change
        return self._rope_cache[key]

    def embed(self, ids: Tensor, reset: Tensor | None = None) -> Tensor:
        """x0 = smear(rms_norm(tok_emb + bigram)): (B, T) -> (B, T, C); ``reset`` as in ``hidden``."""
        x = self.tok_emb(ids)
        if self.bigram is not None:
            x = x + self.bigram(ids, reset)
        return self.smear(rms_norm(x), reset)

    def rope_at(self, positions: Tensor, rope_len: int) -> tuple[Tensor, Tensor]:
        """cos, sin (len(positions), rope_dims / 2) at any stream positions: the angles are computed
        in float64, so they stay as accurate at position 10^8 as at position 10."""
        cfg = self.config
        inv_freq = rope_inv_freq(cfg.rope_dims or cfg.head_dim, cfg.rope_base, rope_len, cfg.rope_train_seq_len)
        freqs = torch.outer(positions.double(), inv_freq.to(positions.device).double())
        return freqs.cos().float(), freqs.sin().float()

    def hidden(self, ids: Tensor, rope_len: int | None = None, *, lead: int = 0, reset: Tensor | None = None,
               past: list | None = None, mask: Tensor | None = None, kv_out: list | None = None,
               rope: tuple | None = None, tiles: tuple | None = None) -> Tensor:
        """Final normed hidden states (B, T - lead, C) of the positions of ``ids`` after the first ``lead``.

        ``rope_len`` is the nominal window length that decides the RoPE base (default T). Scoring
        passes its window length so that a window cut short at the end of the stream computes
        exactly what the full window computes at the same positions.

        The optional inputs (module docstring): ``lead`` leading tokens only feed the previous-token
        paths of the first computed position; ``reset`` (bool (B, T)) marks positions with no
        previous token; ``past`` is one (k, v) per block from an earlier call's ``kv_out`` (which gets
        this call's), with ``mask`` and ``tiles`` as in ``Attention.forward``; ``rope`` (cos, sin) gives
        the rotary tables of the computed positions (``rope_at``; default: positions 0 .. T - lead - 1).
        """
        B, T = ids.shape
        x = x0 = self.embed(ids, reset)[:, lead:]
        ids = ids[:, lead:]
        cos, sin = rope if rope is not None else self.rope_tables(T - lead, rope_len or T - lead, ids.device)
        ve = self.ve_shared(ids) if self.ve_shared is not None else None  # (B, T, G * D)
        ve_slot = {layer: j for j, layer in enumerate(self.config.ve_layers)}
        skips = []
        for i, block in enumerate(self.blocks):
            if i >= self.num_encoder_layers and skips:  # U-Net: pair block n_enc + j with block n_enc-1-j
                x = x + self.skip_weights[i - self.num_encoder_layers].to(x.dtype) * skips.pop()
            ve_i = ve * self.ve_layer_scales[ve_slot[i]].to(ve.dtype) if i in ve_slot else None
            x = block(x, x0, cos, sin, ve_i, past[i] if past else None, mask, kv_out, tiles)
            if i < self.num_encoder_layers:
                skips.append(x)
        return rms_norm(x)

    # --- the causal-LM protocol (pgolf_core.causal_lm); the scorers use hidden() and head() directly

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def context_length(self) -> int:
        return self.config.train_seq_len

    def logits(self, ids: Tensor) -> Tensor:
        """The protocol's ``logits``: windows of the training length's RoPE base."""
        return self.forward_logits(ids, rope_len=self.config.train_seq_len)

    def forward_logits(self, ids: Tensor, rope_len: int | None = None) -> Tensor:
        """Softcapped float32 logits: (B, T) -> (B, T, V)."""
        return self.head(self.hidden(ids, rope_len))

    def head(self, x: Tensor) -> Tensor:
        """Softcapped float32 logits of final hidden states: (..., C) -> (..., V).

        Separate from ``hidden`` so that sliding-window scoring projects only the rows it scores.
        """
        w = self.tok_emb.weight if self.lm_head is None else self.lm_head.weight
        logits = F.linear(x, w.to(x.dtype)).float()
        cap = self.config.logit_softcap
        return cap * torch.tanh(logits / cap)

    def forward(self, ids: Tensor) -> Tensor:
        return self.forward_logits(ids)

    def loss(self, ids: Tensor, targets: Tensor, weights: Tensor | None = None) -> Tensor:
        """Mean cross-entropy (nats) of targets (B, T) given ids (B, T); ``weights`` (B, T) weight
        each position (e.g. by its bytes for a byte-weighted loss) and the mean is over the weights."""
        logits = self.forward_logits(ids)
        nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="none")
        if weights is None:
            return nll.mean()
        w = weights.reshape(-1).to(nll.dtype)
        return (nll * w).sum() / w.sum().clamp_min(1e-12)
