"""The GPT of the neural expert: config handling and hand checks of DESIGN.md section 4."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from pgolf_core.errors import UsageError  # noqa: E402
from pgolf_neural.config import PRESETS, GPTConfig, preset  # noqa: E402
from helpers.neural import SMALL, one_thread, small_model  # noqa: E402,F401  (one_thread: autouse)
from pgolf_neural.model import (GPT, SmearGate, apply_rope, bigram_indices, remove_self_value,  # noqa: E402
                                rope_inv_freq)

# Every feature on (bigram, VE, XSA, GQA, partial RoPE with the NTK rule, U-Net), tiny sizes.


# ----------------------------------------------------------------------------- config

def test_presets_have_the_seed_sizes():
    c = PRESETS["pr700"]
    assert (c.num_layers, c.model_dim, c.num_heads, c.num_kv_heads, c.head_dim) == (11, 512, 8, 8, 64)
    assert (c.mlp_mult, c.bigram_vocab_size, c.bigram_dim, c.ve_dim) == (3.5, 6144, 128, 128)
    assert c.ve_layers == (9, 10) and c.xsa_layers == tuple(range(11))
    assert (c.rope_dims, c.rope_base, c.rope_train_seq_len, c.logit_softcap) == (16, 10000.0, 1024, 30.0)
    assert c.tie_embeddings and c.qk_gain_init == 1.5
    t = PRESETS["tiny"]  # every feature stays switched on in the small preset
    assert t.bigram_vocab_size and t.ve_layers and len(t.xsa_layers) == t.num_layers and t.rope_dims < t.head_dim


def test_config_round_trip_and_unknown_key():
    cfg = GPTConfig.from_dict(SMALL)
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(UsageError, match=r"unknown key 'num_layer'.*Did you mean 'num_layers'"):
        GPTConfig.from_dict({**SMALL, "num_layer": 3})
    with pytest.raises(UsageError, match="num_kv_heads"):
        GPTConfig.from_dict({**SMALL, "num_kv_heads": 3})
    with pytest.raises(UsageError, match="ve_layers"):
        GPTConfig.from_dict({**SMALL, "ve_layers": [5]})
    with pytest.raises(UsageError, match="Did you mean 'tiny'"):
        preset("tiy")


def test_parameter_names_match_the_export_rules():
    names = set(GPT(GPTConfig.from_dict(SMALL)).state_dict())
    for pattern in ("attn_scale", "mlp_scale", "resid_mix", "q_gain", "skip_weight", "smear",
                    "ve_layer_scales", "ve_shared.scale"):
        assert any(pattern in n for n in names), pattern
    assert "tok_emb.weight" in names and not any("lm_head" in n for n in names)  # tied head


def test_initialisation():
    torch.manual_seed(0)  # the embedding is random: keep the near-uniform check deterministic
    m = GPT(GPTConfig.from_dict(SMALL))
    b = m.blocks[2]
    assert torch.equal(b.resid_mix[0], torch.ones(32)) and torch.equal(b.resid_mix[1], torch.zeros(32))
    assert torch.all(b.attn.q_gain == 1.5) and b.norm_scale == pytest.approx(1 / math.sqrt(3))
    assert torch.all(m.bigram.embed.weight == 0) and m.bigram.scale.item() == pytest.approx(0.05)
    assert torch.all(m.ve_shared.proj.weight == 0) and m.ve_shared.scale.item() == pytest.approx(0.1)
    assert torch.all(m.smear.gate == 0) and m.skip_weights.shape == (1, 32)
    # Blocks start as the identity, so a fresh model predicts (almost) uniformly.
    loss = m.loss(torch.randint(0, 64, (2, 10)), torch.randint(0, 64, (2, 10)))
    assert loss.item() == pytest.approx(math.log(64), abs=0.01)


# ----------------------------------------------------------------------------- section 4 details

def test_bigram_hash_indices():
    ids = torch.tensor([[5, 0, 1023, 7, 7]])
    got = bigram_indices(ids, 6144)[0].tolist()
    want = [6143] + [((36313 * ids[0, i].item()) ^ (27191 * ids[0, i - 1].item())) % 6143 for i in range(1, 5)]
    assert got == want


def test_smear_mixes_with_previous_position_and_zero_at_start():
    gate = SmearGate(3)
    with torch.no_grad():
        gate.gate.copy_(torch.tensor([0.0, 2.0, -1.0]))
    x = torch.randn(2, 4, 3)
    g = torch.sigmoid(gate.gate)
    y = gate(x)
    assert torch.allclose(y[:, 0], (1 - g) * x[:, 0])
    assert torch.allclose(y[:, 1:], (1 - g) * x[:, 1:] + g * x[:, :-1])


@torch.no_grad()
def test_logit_softcap_bounds_logits():
    m = small_model()
    with torch.no_grad():
        m.tok_emb.weight.mul_(1e4)
    logits = m.forward_logits(torch.randint(0, 64, (1, 12)))
    assert logits.dtype == torch.float32 and logits.shape == (1, 12, 64)
    assert float(logits.abs().max()) <= 30.0 and float(logits.abs().max()) > 29.0


def test_xsa_output_is_orthogonal_to_own_value_per_kv_group():
    y, v = torch.randn(2, 5, 6, 8), torch.randn(2, 5, 3, 8)  # 6 query heads over 3 KV groups
    out = remove_self_value(y, v)
    v_hat = torch.nn.functional.normalize(v, dim=-1)
    for h in range(6):
        dots = (out[:, :, h] * v_hat[:, :, h // 2]).sum(-1)
        assert float(dots.abs().max()) < 1e-5
        # only the component along v_hat was removed
        resid = y[:, :, h] - out[:, :, h]
        assert torch.allclose(resid, (y[:, :, h] * v_hat[:, :, h // 2]).sum(-1, keepdim=True) * v_hat[:, :, h // 2],
                              atol=1e-6)


def test_partial_rope_and_ntk_base():
    inv = rope_inv_freq(16, 10000.0, rope_len=2048, ref_len=1024)
    base = 10000.0 * 2.0 ** (16 / 14)
    assert torch.allclose(inv, 1.0 / base ** (torch.arange(0, 16, 2).float() / 16))
    plain = 1.0 / 10000.0 ** (torch.arange(0, 16, 2).float() / 16)
    assert torch.allclose(rope_inv_freq(16, 10000.0, 1024, 1024), plain)  # no change up to the trained length
    x = torch.randn(1, 6, 2, 64)
    freqs = torch.outer(torch.arange(6).float(), inv)
    y = apply_rope(x, freqs.cos(), freqs.sin())
    assert torch.equal(y[..., 16:], x[..., 16:])  # only the first 16 dims rotate
    assert torch.allclose(y[..., :16].norm(dim=-1), x[..., :16].norm(dim=-1), atol=1e-5)
    assert torch.allclose(y[:, 0], x[:, 0])  # position 0 is not rotated


@torch.no_grad()
def test_rope_len_makes_truncated_windows_agree():
    m = small_model()
    ids = torch.randint(0, 64, (2, 16))
    full = m.forward_logits(ids, rope_len=16)
    short = m.forward_logits(ids[:, :5], rope_len=16)
    assert torch.allclose(full[:, :5], short, atol=1e-5)
    # without the nominal length the short window would use the unscaled base and differ
    assert not torch.allclose(full[:, :5], m.forward_logits(ids[:, :5]), atol=1e-5)


@torch.no_grad()
def test_model_is_causal_and_uses_the_unet_skips():
    m = small_model()
    ids = torch.randint(0, 64, (1, 12))
    changed = ids.clone()
    changed[0, 7:] = (changed[0, 7:] + 1) % 64
    a, b = m.forward_logits(ids), m.forward_logits(changed)
    assert torch.allclose(a[:, :7], b[:, :7], atol=1e-6) and not torch.allclose(a[:, 7:], b[:, 7:])
    with torch.no_grad():
        m.skip_weights.zero_()
    assert not torch.allclose(m.forward_logits(ids), a)


def test_loss_weights():
    m = small_model()
    ids, tg = torch.randint(0, 64, (2, 6)), torch.randint(0, 64, (2, 6))
    w = torch.zeros(2, 6)
    w[1, 3] = 2.0
    nll = torch.nn.functional.cross_entropy(m.forward_logits(ids)[1, 3][None], tg[1, 3][None])
    assert torch.allclose(m.loss(ids, tg, w), nll, atol=1e-6)
    m.loss(ids, tg).backward()
    assert m.bigram.proj.weight.grad is not None and float(m.bigram.proj.weight.grad.abs().sum()) > 0
