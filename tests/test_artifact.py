"""Artifact format: exact fp32 round trip, int5/int8 round trips within the quantization step,
the seed's storage kinds, clear errors for damaged files, and the size report."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pgolf_neural import artifact as art  # noqa: E402


def _state_dict(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "tok_emb.weight": torch.randn(1024, 96, generator=g) * 0.02,  # large, not attn/mlp: int8
        "blocks.0.attn.c_q.weight": torch.randn(384, 256, generator=g) * 0.05,  # int5
        "blocks.0.mlp.fc.weight": torch.randn(512, 256, generator=g) * 0.05,  # int5
        "blocks.0.attn_scale": torch.rand(256, generator=g),  # control: fp32
        "blocks.0.attn.q_gain": torch.full((4,), 1.5),  # control: fp32
        "blocks.0.attn.c_k.weight": torch.randn(64, 256, generator=g),  # small: fp16
        "step": torch.tensor(7),  # non-float: stored as is
    }


def test_tensor_kinds_follow_the_seed_rules():
    sd = _state_dict()
    kinds = {n: art.tensor_kind(n, t) for n, t in sd.items()}
    assert kinds == {"tok_emb.weight": "int8", "blocks.0.attn.c_q.weight": "int5",
                     "blocks.0.mlp.fc.weight": "int5", "blocks.0.attn_scale": "fp32",
                     "blocks.0.attn.q_gain": "fp32", "blocks.0.attn.c_k.weight": "fp16", "step": "raw"}


def test_fp32_checkpoint_round_trip_is_exact(tmp_path):
    sd = _state_dict()
    cfg = {"num_layers": 2, "name": "x"}
    art.save_checkpoint(tmp_path / "m.pt", sd, cfg)
    cfg2, sd2 = art.load_checkpoint(tmp_path / "m.pt")
    assert cfg2 == cfg and set(sd2) == set(sd)
    for k in sd:
        assert torch.equal(sd2[k], sd[k].float() if sd[k].is_floating_point() else sd[k])


def test_artifact_round_trip_within_quantization_error(tmp_path):
    sd = _state_dict()
    stats = art.export_artifact(tmp_path / "m.ptz", sd, {"k": 1})
    assert stats["tensors"] == {"int5": 2, "int8": 1, "fp16": 1, "fp32": 2}
    cfg, out = art.load_checkpoint(tmp_path / "m.ptz")
    assert cfg == {"k": 1} and set(out) == set(sd)
    for name, t in sd.items():
        kind = art.tensor_kind(name, t)
        t = t.float() if t.is_floating_point() else t
        if kind == "fp32" or kind == "raw":
            assert torch.equal(out[name], t)
        elif kind == "fp16":
            assert torch.equal(out[name], t.half().float())
        else:
            levels = 15 if kind == "int5" else 127
            row_max = t.abs().amax(dim=1, keepdim=True)
            # a step is at most max|row| / levels (fp16-rounded); error <= half a step unless clipped
            step = row_max / levels * 1.001
            clipped_err = (t.abs() - row_max).abs()  # not used: rows are clipped at most at max|w|
            err = (out[name] - t).abs()
            assert out[name].shape == t.shape
            assert float((err <= 0.5 * step + 1e-7).float().mean()) > 0.99, name
            assert float(err.max()) <= float(row_max.max()), name
            del clipped_err


def test_int5_values_and_fp16_scales_in_the_file(tmp_path):
    art.export_artifact(tmp_path / "m.ptz", _state_dict(), {})
    w, m = art.read_artifact(tmp_path / "m.ptz")
    q = w["blocks.0.mlp.fc.weight.q"]
    assert q.dtype == torch.int8 and int(q.abs().max()) <= 15
    assert w["blocks.0.mlp.fc.weight.scale"].dtype == torch.float16
    assert w["blocks.0.mlp.fc.weight.scale"].shape == (512,)
    assert w["tok_emb.weight.q"].dtype == torch.int8 and int(w["tok_emb.weight.q"].abs().max()) <= 127
    assert w["blocks.0.attn_scale"].dtype == torch.float32
    assert w["blocks.0.attn.c_k.weight"].dtype == torch.float16
    assert m["__format__"] == art.ARTIFACT_FORMAT


def test_int8_rows_clip_at_the_quantile():
    t = torch.randn(2, 700_000, generator=torch.Generator().manual_seed(1))
    t[0, 0] = 1000.0  # an outlier beyond the 0.9999984 quantile is clipped, not given the range
    q, s = art.quantize_int8_rows(t)
    clip = np.quantile(t.abs().numpy(), art.INT8_CLIP_QUANTILE, axis=1)
    np.testing.assert_allclose(s.float().numpy(), (clip / 127).astype(np.float16).astype(np.float32), rtol=1e-3)
    assert int(q[0, 0]) == 127


def test_magnitude_pruning_zeroes_the_smallest_fraction():
    sd = art.magnitude_prune(_state_dict(), 0.03)
    w = sd["blocks.0.mlp.fc.weight"]
    assert abs(float((w == 0).float().mean()) - 0.03) < 0.002
    assert torch.equal(sd["blocks.0.attn.c_k.weight"], _state_dict()["blocks.0.attn.c_k.weight"])


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage", "missing"])
def test_damaged_files_give_clear_errors(tmp_path, damage):
    path = tmp_path / "m.ptz"
    art.export_artifact(path, _state_dict(), {})
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        path.write_bytes(data[:40] + bytes(b ^ 0xFF for b in data[40:80]) + data[80:])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(b"hello, not a checkpoint")
    else:
        path = tmp_path / "nope.ptz"
    with pytest.raises(art.ArtifactError, match=str(path.name)):
        art.load_checkpoint(path)


def test_missing_tensor_and_pickled_objects_are_refused(tmp_path):
    import io

    import zstandard

    w, m = art.quantize_state_dict(_state_dict())
    del w["blocks.0.mlp.fc.weight.scale"]
    buf = io.BytesIO()
    torch.save({"w": w, "m": {**m, "__config__": {}}}, buf)
    (tmp_path / "a.ptz").write_bytes(zstandard.ZstdCompressor().compress(buf.getvalue()))
    with pytest.raises(art.ArtifactError, match="blocks.0.mlp.fc.weight.scale"):
        art.load_checkpoint(tmp_path / "a.ptz")
    torch.save({"format": art.FP32_FORMAT, "config": {}, "state_dict": {}, "x": art.ArtifactError("x")},
               tmp_path / "b.pt")
    with pytest.raises(art.ArtifactError, match="b.pt.*pickled Python objects") as err:
        art.load_checkpoint(tmp_path / "b.pt")
    assert "weights_only=False" not in str(err.value)  # never pass on advice to run the file's code
    torch.save({"state_dict": {}}, tmp_path / "c.pt")
    with pytest.raises(art.ArtifactError, match="format"):
        art.load_checkpoint(tmp_path / "c.pt")


def test_seed_style_meta_loads(tmp_path):
    import io

    import zstandard

    t = torch.randn(300, 256) * 0.1
    from pgolf_neural.gptq import quantize_rtn

    q, s = quantize_rtn(t)
    w = {"a.attn.w.q": q, "a.attn.w.scale": s, "small": torch.ones(3).half(), "x.attn_scale": torch.ones(3)}
    m = {"a.attn.w": {"type": "int5"}, "small": "passthrough", "x.attn_scale": "passthrough_ctrl"}
    buf = io.BytesIO()
    torch.save({"w": w, "m": m}, buf)
    (tmp_path / "seed.ptz").write_bytes(zstandard.ZstdCompressor(level=3).compress(buf.getvalue()))
    out = art.dequantize(*art.read_artifact(tmp_path / "seed.ptz"))
    assert torch.equal(out["a.attn.w"], q.float() * s.float()[:, None])
    assert out["small"].dtype == torch.float32
    info = art.artifact_info(tmp_path / "seed.ptz")
    assert info["tensors"] == {"int5": 1, "int8": 0, "fp16": 1, "fp32": 1}


def test_info_reports_sizes_and_cli(tmp_path):
    from click.testing import CliRunner

    from pgolf_core.cli import cli, main  # noqa: F401

    path = tmp_path / "m.ptz"
    stats = art.export_artifact(path, _state_dict(), {"k": 1})
    info = art.artifact_info(path)
    assert info["compressed_bytes"] == path.stat().st_size == stats["compressed_bytes"]
    assert info["code_bytes"] > 0 and info["submission_bytes"] == info["compressed_bytes"] + info["code_bytes"]
    assert info["fits"] and info["limit_bytes"] == 16_000_000
    from pgolf_neural.train.plugin import artifact_group

    res = CliRunner().invoke(artifact_group, ["info", str(path), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["tensors"]["int5"] == 2
    res = CliRunner().invoke(artifact_group, ["info", str(tmp_path / "none.ptz")])
    assert res.exit_code == 1 and "none.ptz" in res.output


def test_the_tokenizer_is_recorded_and_another_one_refused(tmp_path):
    """An artifact trained with --tokenizer keeps its sha256; scoring with another tokenizer is a
    usage error naming both, never a number."""
    import shutil

    from pgolf_core.api import BuildContext
    from pgolf_core.demo import demo_tokenizer_path
    from pgolf_core.errors import UsageError
    from pgolf_core.plugins import load_plugins

    record = art.tokenizer_record(demo_tokenizer_path())
    assert record["vocab_size"] == 1024 and len(record["sha256"]) == 64
    config, sd = art.load_checkpoint(art.demo_checkpoint_path())
    path = tmp_path / "m.ptz"
    art.export_artifact(path, sd, config, tokenizer=record)
    assert art.checkpoint_tokenizer(path) == record == art.artifact_info(path)["tokenizer"]
    art.save_checkpoint(tmp_path / "m.pt", sd, config, tokenizer=record)
    assert art.checkpoint_tokenizer(tmp_path / "m.pt") == record
    assert art.checkpoint_tokenizer(art.demo_checkpoint_path()) is None  # older files: nothing to compare

    plugins = load_plugins()
    same = BuildContext(vocab_size=1024, tokenizer_path=str(demo_tokenizer_path()))
    plugins.experts.create("neural", same, checkpoint=str(path))
    other = tmp_path / "other.model"
    shutil.copy(demo_tokenizer_path(), other)
    with open(other, "ab") as f:
        f.write(b"\0")
    with pytest.raises(UsageError, match="trained with tokenizer pydoc_bpe1024.model"):
        plugins.experts.create("neural", BuildContext(vocab_size=1024, tokenizer_path=str(other)),
                               checkpoint=str(path))


def test_train_takes_its_vocabulary_from_the_tokenizer(tmp_path):
    from click.testing import CliRunner

    from pgolf_core.demo import demo_tokenizer_path
    from pgolf_neural.train.cli import train_cmd, vocab_from_tokenizer

    record = {"vocab_size": 8192}
    assert vocab_from_tokenizer(("model_dim=64",), record, "t.model") == ("model_dim=64", "vocab_size=8192")
    res = CliRunner().invoke(train_cmd, [str(tmp_path / "none.npy"), "--tokenizer", str(demo_tokenizer_path()),
                                         "--model-set", "vocab_size=8192", "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "1024 pieces" in res.output
