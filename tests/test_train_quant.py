"""Quantizers, Muon and CROWN-Q against plain NumPy references."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pgolf_neural import gptq  # noqa: E402
from pgolf_neural.train.crownq import LateQAT, crownq_penalty, fake_quantize  # noqa: E402
from pgolf_neural.train.muon import Muon, newton_schulz  # noqa: E402


def _np_rtn(w: np.ndarray, clip_range=15):
    """Reference: per row, try each percentile clip, keep the scale with the least squared error."""
    q_best = np.zeros_like(w)
    s_best = np.zeros(w.shape[0], dtype=np.float32)
    for r, row in enumerate(w):
        best = None
        for pct in (0.999, 0.9995, 0.9999, 0.99999, 1.0):
            clip = np.abs(row).max() if pct == 1.0 else np.quantile(np.abs(row), pct)
            s = np.float32(np.float16(max(clip / clip_range, 2.0**-14)))
            q = np.clip(np.round(row / s), -clip_range, clip_range)
            err = np.mean((row - q * s) ** 2)
            if best is None or err < best:
                best, q_best[r], s_best[r] = err, q, s
    return q_best, s_best


def test_round_to_nearest_matches_numpy_reference():
    rng = np.random.default_rng(0)
    w = (rng.standard_t(3, size=(16, 700)) * 0.02).astype(np.float32)
    q, s = gptq.quantize_rtn(torch.from_numpy(w))
    q_ref, s_ref = _np_rtn(w)
    np.testing.assert_array_equal(s.float().numpy(), s_ref)
    assert np.mean(q.numpy() == q_ref) > 0.999  # rare ties of float rounding order
    assert q.dtype == torch.int8 and int(q.abs().max()) <= 15


def test_gptq_beats_round_to_nearest_on_correlated_inputs():
    g = torch.Generator().manual_seed(0)
    cols, rows, n = 256, 64, 4096
    mix = torch.randn(cols, cols, generator=g) / cols**0.5 + torch.eye(cols)
    x = torch.randn(n, 32, generator=g) @ torch.randn(32, cols, generator=g) + 0.1 * torch.randn(n, cols, generator=g) @ mix
    w = torch.randn(rows, cols, generator=g) * 0.05
    h = x.T @ x / n
    q_g, s_g = gptq.gptq_quantize(w, h)
    q_r, s_r = gptq.quantize_rtn(w)
    assert torch.equal(s_g, s_r)  # same grid; GPTQ only chooses the integers
    out = x @ w.T
    err_gptq = (x @ (q_g.float() * s_g.float()[:, None]).T - out).pow(2).mean()
    err_rtn = (x @ (q_r.float() * s_r.float()[:, None]).T - out).pow(2).mean()
    assert err_gptq < 0.7 * err_rtn, (float(err_gptq), float(err_rtn))


def test_hessians_are_mean_input_outer_products():
    lin = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    xs = [torch.randn(3, 5, 8) for _ in range(2)]
    h = gptq.collect_hessians(lin, xs)
    flat = torch.cat([x.reshape(-1, 8) for x in xs])
    torch.testing.assert_close(h["0"], flat.T @ flat / flat.shape[0], rtol=1e-5, atol=1e-6)
    assert h["2"].shape == (4, 4)


def _np_newton_schulz(g, steps=5):
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g / (np.linalg.norm(g) + 1e-7)
    tall = g.shape[0] > g.shape[1]
    if tall:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


@pytest.mark.parametrize("shape", [(24, 40), (40, 24)])
def test_one_muon_step_matches_numpy(shape):
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal(shape).astype(np.float64)
    grad = rng.standard_normal(shape).astype(np.float64)
    p = torch.nn.Parameter(torch.tensor(w0))
    opt = Muon([p], lr=0.1, momentum=0.9, weight_decay=0.01, ns_dtype=torch.float64)
    p.grad = torch.tensor(grad)
    opt.step()
    buf = grad  # first step: momentum buffer = grad; Nesterov uses grad + momentum * buf
    update = _np_newton_schulz(grad + 0.9 * buf) * max(1.0, shape[0] / shape[1]) ** 0.5
    expected = w0 * (1 - 0.1 * 0.01) - 0.1 * update
    np.testing.assert_allclose(p.detach().numpy(), expected, rtol=1e-10, atol=1e-12)
    sv = np.linalg.svd(_np_newton_schulz(grad), compute_uv=False)
    assert sv.min() > 0.5 and sv.max() < 1.3  # orthogonalised: singular values near 1


def test_crownq_penalty_equals_formula():
    g = torch.Generator().manual_seed(2)
    ws = [torch.randn(6, 10, generator=g), torch.randn(3, 4, generator=g)]
    expected = sum(np.mean(w.numpy() ** 2 * (np.abs(w.numpy()).max(axis=1, keepdims=True) / 15) ** 2) for w in ws)
    np.testing.assert_allclose(float(crownq_penalty(ws)), expected, rtol=1e-6)


def test_crownq_gradient_treats_delta_as_constant():
    w = torch.randn(5, 7, requires_grad=True)
    crownq_penalty([w]).backward()
    delta = w.detach().abs().amax(dim=1, keepdim=True) / 15
    torch.testing.assert_close(w.grad, 2 * w.detach() * delta**2 / w.numel())


def test_fake_quantize_is_straight_through():
    w = torch.randn(8, 300, requires_grad=True)
    wq = fake_quantize(w)
    scale = (torch.quantile(w.detach().abs(), 0.9995, dim=1) / 15)[:, None]
    steps = wq.detach() / scale
    assert torch.allclose(steps, steps.round(), atol=1e-4) and float(steps.abs().max()) <= 15 + 1e-4
    wq.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))


def test_late_qat_changes_only_quantized_layers_in_training():
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp = torch.nn.Module()
            self.mlp.fc = torch.nn.Linear(300, 300, bias=False)
            self.head = torch.nn.Linear(300, 2, bias=False)

        def forward(self, x):
            return self.head(self.mlp.fc(x))

    m = Tiny()
    m.mlp.fc._get_name()
    x = torch.randn(2, 300)
    before = m(x)
    qat = LateQAT(m)
    assert [n for n, _ in qat.layers] == ["mlp.fc"]
    qat.enable()
    assert not torch.allclose(m(x), before)
    m.eval()
    assert torch.equal(m(x), before)  # evaluation sees the real weights
    qat.disable()
    m.train()
    assert torch.equal(m(x), before)
