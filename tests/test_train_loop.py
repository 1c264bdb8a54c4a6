"""End-to-end training on a tiny model: data parallelism, export -> load -> eval, CROWN-Q on the model."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pgolf_neural.model")

from pgolf_neural import artifact as art  # noqa: E402
from pgolf_neural.config import PRESETS as MODEL_PRESETS  # noqa: E402
from pgolf_neural.train.loop import build_model, logits_of, run_training  # noqa: E402
from pgolf_neural.train.options import resolve  # noqa: E402

MODEL = {**MODEL_PRESETS["tiny"].to_dict(), "num_layers": 2, "model_dim": 64, "num_heads": 2, "num_kv_heads": 1,
         "mlp_mult": 2.0, "bigram_vocab_size": 64, "bigram_dim": 16, "ve_dim": 16, "ve_layers": [1],
         "xsa_layers": [0, 1], "rope_train_seq_len": 32, "train_seq_len": 32}
TRAIN = {"iterations": "4", "train_batch_tokens": "256", "train_seq_len": "32", "micro_batch_seqs": "2",
         "warmup_steps": "1", "warmdown_iters": "3", "gptq_batches": "4", "log_every": "100"}


def _tokens(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "train_tokens.npy"
    np.save(path, rng.integers(0, 1024, size=20_000).astype(np.uint16))
    return path


def _worker(rank, world, store, data, out):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        summary = run_training(data, out, resolve("tiny", TRAIN, {}), MODEL, quiet=True)
        if rank == 0:
            (out / "losses.json").write_text(json.dumps(summary["losses"]))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    data = _tokens(tmp_path)
    one = run_training(data, tmp_path / "one", resolve("tiny", TRAIN, {}), MODEL, quiet=True)
    torch.multiprocessing.spawn(_worker, args=(2, str(tmp_path / "store"), data, tmp_path / "two"), nprocs=2)
    two = json.loads((tmp_path / "two" / "losses.json").read_text())
    assert len(one["losses"]) == len(two) == 4
    np.testing.assert_allclose(two, one["losses"], atol=1e-4)
    log = [json.loads(line) for line in (tmp_path / "one" / "train_log.jsonl").read_text().splitlines()]
    assert log[0]["event"] == "config" and log[0]["versions"]["torch"] == torch.__version__
    assert any(e["event"] == "late_qat" for e in log) and log[-1]["event"] == "done"


def _eval_nll(model, ids):
    with torch.no_grad():
        logits = logits_of(model.eval(), ids[:, :-1])
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


def test_export_load_eval_equals_dequantized_model(tmp_path):
    torch.manual_seed(0)
    model = build_model(MODEL)
    with torch.no_grad():  # spread the weights so every kind of tensor carries signal
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    art.export_artifact(tmp_path / "m.ptz", state, MODEL)
    cfg, loaded = art.load_checkpoint(tmp_path / "m.ptz")
    in_memory = art.dequantize(*art.quantize_state_dict(state))
    ids = torch.from_numpy(np.load(_tokens(tmp_path))[:330].astype(np.int64)).reshape(10, 33)
    a, b = build_model(cfg), build_model(MODEL)
    a.load_state_dict(loaded)
    b.load_state_dict(in_memory)
    assert float(_eval_nll(a, ids)) == float(_eval_nll(b, ids))
    assert abs(float(_eval_nll(a, ids)) - float(_eval_nll(model, ids))) < 0.05  # close to fp32


def test_crownq_on_the_model_equals_the_formula():
    from pgolf_neural.train.crownq import LateQAT

    cfg = {**MODEL, "model_dim": 128, "mlp_mult": 4.5, "num_heads": 4, "num_kv_heads": 2}
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    qat = LateQAT(model)
    names = sorted(n for n, _ in qat.layers)
    assert names and all(".mlp." in n for n in names)  # 128 x 576 MLP matrices are int5; attention is fp16
    expected = 0.0
    for n, m in qat.layers:
        w = m.weight.detach().double().numpy()
        expected += np.mean(w**2 * (np.abs(w).max(axis=1, keepdims=True) / 15) ** 2)
    np.testing.assert_allclose(float(qat.penalty().detach()), expected, rtol=1e-5)
