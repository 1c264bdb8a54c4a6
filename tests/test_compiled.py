"""The compiled coding loop (pgolf_core.codec.compiled): the same stream, rows and checks as the Python
loop, without a Python call per target (built-in demo data: no ../shared needed)."""

from __future__ import annotations

import numpy as np
import pytest

from pgolf_core.codec.compress import compress, decompress
from pgolf_core.codec.container import read_container
from pgolf_core.demo import demo_tokenizer_path, demo_tokens
from pgolf_core.errors import PgolfError, UsageError
from pgolf_core.plugins import load_plugins


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(["planted_plugin"])


def _code(tmp_path, experts, plugins, tokens, loop, name="s.pgz", **kw):
    path = tmp_path / name
    enc = compress(experts, tokens=tokens, tokenizer=demo_tokenizer_path(), output=path, plugins=plugins,
                   plugin_modules=["planted_plugin"], coding_loop=loop, **kw)
    return path, enc


@pytest.mark.parametrize("experts, kw", [
    (["bigram", "trigram"], {"mixer": "hedge"}),
    (["unigram", "bigram", "trigram"], {"mixer": "logistic", "chunk_size": 700}),
    (["trigram"], {}),
])
def test_compiled_and_python_loops_code_the_same_stream(tmp_path, plugins, experts, kw):
    tokens = np.asarray(demo_tokens("val")[:2500])
    fast, enc_c = _code(tmp_path, experts, plugins, tokens, "compiled", "c.pgz", **kw)
    slow, enc_p = _code(tmp_path, experts, plugins, tokens, "python", "p.pgz", **kw)
    assert read_container(fast)[0]["coding"]["loop"] == "compiled"
    assert read_container(slow)[0]["coding"]["loop"] == "python"
    for path in (fast, slow):
        out, dec = decompress(path, plugins=plugins)  # each decodes with the loop it was coded with
        assert np.array_equal(out, tokens)
    # the kernels compute the components' own rows: the ideal code lengths agree to rounding
    assert enc_c.ideal_bpb == pytest.approx(enc_p.ideal_bpb, rel=1e-12)
    assert enc_c.coded_bpb == pytest.approx(enc_c.ideal_bpb, rel=5e-3)


def test_tables_grow_in_the_middle_of_a_compiled_chunk(tmp_path, plugins):
    """Random tokens give the trigram a new hashed context at nearly every target, past the
    tables' first capacity (4,096 nodes), so the compiled loop stops, grows them and goes on."""
    rng = np.random.default_rng(3)
    tokens = rng.integers(2, 1024, 9000).astype(np.uint16)
    path, enc = _code(tmp_path, ["bigram", "trigram"], plugins, tokens, "compiled", chunk_size=9000)
    out, _ = decompress(path, plugins=plugins)
    assert np.array_equal(out, tokens)
    _, slow = _code(tmp_path, ["bigram", "trigram"], plugins, tokens, "python", "p.pgz", chunk_size=9000)
    assert enc.ideal_bpb == pytest.approx(slow.ideal_bpb, rel=1e-12)


def test_a_component_without_a_kernel_keeps_the_python_loop(tmp_path, plugins):
    tokens = np.asarray(demo_tokens("val")[:600])
    kw = {"mixer": "hedge", "mixer_options": {"update": "batch", "batch": "100"}}
    path, _ = _code(tmp_path, ["bigram", "trigram"], plugins, tokens, "auto", **kw)
    assert read_container(path)[0]["coding"]["loop"] == "python"
    with pytest.raises(UsageError, match="step kernel"):
        _code(tmp_path, ["bigram", "trigram"], plugins, tokens, "compiled", "x.pgz", **kw)


def test_the_kernels_buffer_holds_only_coded_tokens(tmp_path, plugins):
    """A kernel that looks at and after its target finds zeros, coding and decoding alike: the
    source stream reaches the coder only."""
    import planted

    probe = (np.ones(4), np.zeros(1, dtype=np.int64), 1)
    planted._counter_predict(probe, np.array([3, 1, 2]), 1, np.empty(4))
    assert probe[1][0] == 1  # the spy sees a buffer that holds the future

    planted.KernelCounter.SPY[0] = 0
    tokens = np.asarray(demo_tokens("val")[:800])
    path, _ = _code(tmp_path, ["kernel-counter"], plugins, tokens, "compiled",
                    expert_options={"kernel-counter": {"mode": "spy"}})
    out, _ = decompress(path, plugins=plugins)
    assert np.array_equal(out, tokens)
    assert planted.KernelCounter.SPY[0] == 0


def test_a_row_of_the_wrong_mass_stops_the_compiled_loop(tmp_path, plugins):
    tokens = np.asarray(demo_tokens("val")[:300])
    with pytest.raises(PgolfError, match="kernel-counter.*sums to 1.5"):
        _code(tmp_path, ["kernel-counter"], plugins, tokens, "compiled",
              expert_options={"kernel-counter": {"mode": "heavy"}})
