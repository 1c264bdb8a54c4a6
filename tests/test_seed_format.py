"""The seed's settings and file format: its environment variables <-> our config, and artifacts
written in its own meta format (``artifact export --format pr700``) read back by the seed-format
loader. The seed's own code is not in the repository: what its loader does is restated here
(tags ``passthrough`` / ``passthrough_ctrl`` / ``{"type": "int6"|"int8"}``, q * per-row scale)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pgolf_core.errors import UsageError  # noqa: E402
from pgolf_neural import artifact as art  # noqa: E402
from pgolf_neural.config import PRESETS, from_seed_env, resolve_config, seed_env  # noqa: E402
from pgolf_neural.expert import load_model, random_model  # noqa: E402

SMALL_SEED = {"NUM_LAYERS": "4", "MODEL_DIM": "128", "NUM_HEADS": "4", "NUM_KV_HEADS": "2", "MLP_MULT": "3",
              "BIGRAM_VOCAB_SIZE": "2048", "BIGRAM_DIM": "128", "VE_DIM": "64", "VE_LAYERS": "2,3",
              "XSA_LAST_N": "2", "ROPE_DIMS": "16", "LN_SCALE": "0", "TRAIN_SEQ_LEN": "256"}


def test_the_seed_defaults_are_pr700_and_its_switches_map():
    assert from_seed_env({}) == PRESETS["pr700"]
    cfg = from_seed_env(SMALL_SEED)
    assert (cfg.num_kv_heads, cfg.xsa_layers, cfg.ve_layers, cfg.ln_scale) == (2, (2, 3), (2, 3), False)
    assert not cfg.bigram_proj and not cfg.ve_proj  # bigram_dim == model_dim, ve_dim == kv_dim: no projections
    assert from_seed_env({**SMALL_SEED, "VE_ENABLED": "0"}).ve_layers == ()
    assert from_seed_env(seed_env(cfg)) == cfg
    with pytest.raises(UsageError, match="DTG_ENABLED"):
        from_seed_env({"DTG_ENABLED": "1"})
    with pytest.raises(UsageError, match="NUM_LAYERS"):
        from_seed_env({"NUM_LAYERS": "four"})
    # the layer lists and counts are parsed like options: one line naming the setting, no traceback
    with pytest.raises(UsageError, match=r"VE_LAYERS must be a comma-separated list of integers >= 0, got '9,x'"):
        from_seed_env({"VE_LAYERS": "9,x"})
    with pytest.raises(UsageError, match="XSA_LAST_N must be an integer >= 0, got 'abc'"):
        from_seed_env({"XSA_LAST_N": "abc"})
    with pytest.raises(UsageError, match="value-embedding projection"):
        seed_env(PRESETS["tiny"])  # ve_dim == kv_dim with a projection: not a seed model


def test_config_option_specs(tmp_path, monkeypatch):
    import json

    assert resolve_config("tiny:ln_scale=false:mlp_mult=3").to_dict() == {**PRESETS["tiny"].to_dict(),
                                                                         "ln_scale": False, "mlp_mult": 3.0}
    f = tmp_path / "c.json"
    f.write_text(json.dumps(PRESETS["tiny"].to_dict()))
    assert resolve_config(str(f)) == PRESETS["tiny"]
    for k, v in SMALL_SEED.items():
        monkeypatch.setenv(k, v)
    assert resolve_config("seed") == from_seed_env(SMALL_SEED)
    assert resolve_config("tiny:ve_layers=1,3").ve_layers == (1, 3)
    for bad in ("nothing-like-this", "tiny:layers=2", "tiny:num_layers=x", "tiny:ln_scale=maybe", "tiny:ve_layers=1,,3",
                "tiny:ve_layers=1,a"):
        with pytest.raises(UsageError):
            resolve_config(bad)


def _seed_format_ok(path):
    w, m = art.read_artifact(path)
    assert not [k for k in m if k.startswith("__")]  # no config, format or tokenizer entries
    for name, info in m.items():
        assert info in ("passthrough", "passthrough_ctrl") or info in ({"type": "int6"}, {"type": "int8"}), (name, info)
        if isinstance(info, dict):  # what the seed's loader computes: q * per-row scale, no reshape
            q, s = w[name + ".q"], w[name + ".scale"]
            assert s.shape[0] == q.shape[0]
    return w, m


def test_export_in_the_seed_format_and_load_it_back(tmp_path):
    cfg = from_seed_env(SMALL_SEED)
    model = random_model(cfg, 3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ours, seed = tmp_path / "m.int5.ptz", tmp_path / "m.seed.ptz"
    art.export_artifact(ours, model.state_dict(), cfg.to_dict())
    env = art.export_seed_artifact(ours, seed)
    assert from_seed_env(env) == cfg
    _seed_format_ok(seed)
    ids = torch.from_numpy(np.random.default_rng(0).integers(0, 1024, (2, 64)))
    a, b = load_model(ours).eval(), load_model(seed, from_seed_env(env)).eval()
    assert b.config_source == "given" and a.config_source == "embedded"
    with torch.no_grad():
        assert torch.equal(a.forward_logits(ids), b.forward_logits(ids))  # the same dequantized weights
    with pytest.raises(art.ArtifactError, match="neural.config"):
        load_model(seed)  # no config in the file: pr700 assumed, which does not fit, and the error says what to do
    with pytest.raises(UsageError, match="differs from neural.config"):
        load_model(ours, PRESETS["tiny"])


def test_a_file_without_config_says_what_it_assumed(tmp_path):
    from pgolf_core.api import BuildContext
    from pgolf_core.plugins import load_plugins

    import io

    import zstandard

    # a pr700-shaped file in the seed's format, every tensor an fp16 passthrough (quantizing 33M
    # values would only slow the test down)
    sd = random_model(PRESETS["pr700"], 0).state_dict()
    buf = io.BytesIO()
    torch.save({"w": {k: v.half() for k, v in sd.items()}, "m": {k: "passthrough" for k in sd}}, buf)
    seed = tmp_path / "p.seed.ptz"
    seed.write_bytes(zstandard.ZstdCompressor(level=1).compress(buf.getvalue()))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        e = load_plugins().experts.create("neural", BuildContext(vocab_size=1024), checkpoint=str(seed))
    assert e.describe()["config_source"] == "assumed pr700"
    assert any("assumed the seed's default (pr700" in str(w.message) for w in caught)


def test_the_export_command(tmp_path):
    from click.testing import CliRunner

    from pgolf_neural.train.plugin import artifact_group

    cfg = from_seed_env(SMALL_SEED)
    src = tmp_path / "m.int5.ptz"
    art.export_artifact(src, random_model(cfg, 0).state_dict(), cfg.to_dict())
    res = CliRunner().invoke(artifact_group, ["export", str(src), str(tmp_path / "o.ptz")])
    assert res.exit_code == 0 and "XSA_LAST_N=2" in res.output and "LN_SCALE=0" in res.output
    res = CliRunner().invoke(artifact_group, ["export", str(src), str(tmp_path / "o.ptz")])
    assert res.exit_code != 0 and "exists" in res.output
    demo = CliRunner().invoke(artifact_group, ["export", str(art.demo_checkpoint_path()), str(tmp_path / "d.ptz")])
    assert demo.exit_code != 0 and "cannot build this model" in demo.output


def test_the_seeds_window_accounting():
    from pgolf_neural.accounting import compare, seed_windows
    from pgolf_neural.scoring import plan_windows

    windows = seed_windows(4097, 2048, 64)
    assert sum(w.hi - w.lo for w in windows) == 6080  # 4,096 targets, the last 64 scored 31 more times
    assert {t for w in windows for t in range(w.lo, w.hi)} == set(range(1, 4097))
    assert windows[:33] == plan_windows(1, 4097, 2048, 64)  # up to the tail, the same windows as ours
    assert all(w.hi - 1 - w.begin <= 2048 for w in windows)

    from pgolf_core.stream.bytes import byte_table_from_sentencepiece
    from pgolf_core.demo import demo_tokenizer_path, demo_tokens

    model = random_model(PRESETS["tiny"], 0).eval()
    tokens = np.asarray(demo_tokens("val")[:700])
    res = compare(model, tokens, byte_table_from_sentencepiece(demo_tokenizer_path()), seq_len=256, stride=64)
    assert res["one_pass"]["targets"] == 699 and res["seed"]["rescored_targets"] == 3 * 64
    assert res["seed"]["bytes"] > res["one_pass"]["bytes"]
