"""Cheats against PROVEN: each trick works in the evaluating process (the plain run's BPB collapses),
and none of them survives the sandboxed round trip (``pgolf_core.proof``)."""

import itertools
import lzma
from pathlib import Path

import numpy as np
import pytest

from pgolf_core import evaluate
from pgolf_core.demo import demo_tokenizer_path, demo_tokens
from helpers.proof import needs_sandbox

TEMPLATE = Path(__file__).parent / "cheats" / "cheat_template.py"
N = 1500  # tokens of the demo stream: enough for the bigram, short enough for the Python loop
_ids = itertools.count()



@pytest.fixture
def cheats(tmp_path, monkeypatch):
    """(data file, plugin module name): the stream lies in data/, the plugin in plugin/."""
    data = tmp_path / "data" / "stream.npy"
    data.parent.mkdir()
    stream = np.array(demo_tokens("val")[:N])
    np.save(data, stream)
    name = f"cheats_{next(_ids)}_{tmp_path.name.replace('-', '_')}"
    plugin = tmp_path / "plugin" / f"{name}.py"
    plugin.parent.mkdir()
    plugin.write_text(TEMPLATE.read_text().format(data=str(data), n_tokens=N, tag=name))
    monkeypatch.syspath_prepend(str(plugin.parent))
    yield data, name, stream
    for p in (Path("/tmp") / f"pgolf-cheat-{name}.npy", Path.home() / f".pgolf-cheat-{name}.npy"):
        p.unlink(missing_ok=True)


def _run(kind, data, name, **kw):
    return evaluate([f"cheat-{kind}"], tokens=str(data), tokenizer=demo_tokenizer_path(), plugin_modules=[name],
                    check_tokenizer=False, **kw)


@needs_sandbox
def test_the_honest_control_is_proven(cheats):
    data, name, _ = cheats
    res = _run("honest", data, name, prove=True)
    assert res.level == "proven", res.validity["violations"]
    proof = res.validity["proof"]
    assert proof["sandbox"]["applied"]["enforced"] and proof["sandbox"]["applied"]["abi"] >= 1
    assert abs(proof["coded_bpb"] - res.bpb) < proof["score"]["overhead_bpb"]
    assert proof["description"]["plugin_code"]["modules"] == [name]


@needs_sandbox
@pytest.mark.parametrize("kind", ["disk", "frames", "gc", "sidefile"])
def test_a_cheat_that_finds_the_data_is_never_proven(cheats, kind):
    data, name, _ = cheats
    honest = _run("honest", data, name).bpb
    plain = _run(kind, data, name)
    assert plain.bpb < 0.5 * honest  # the trick works in the evaluating process ...
    proved = _run(kind, data, name, prove=True)
    assert proved.level == "invalid", proved.validity  # ... and not in the sandbox
    assert "round trip failed" in " ".join(proved.validity["violations"])


@needs_sandbox
def test_a_copy_of_the_data_as_an_artifact_costs_its_size(cheats, tmp_path):
    data, name, stream = cheats
    table = tmp_path / "table.xz"
    table.write_bytes(lzma.compress(stream.astype("<u2").tobytes(), preset=9))
    honest = _run("honest", data, name, prove=True)
    res = evaluate(["cheat-artifact"], tokens=str(data), tokenizer=demo_tokenizer_path(), plugin_modules=[name],
                   expert_options={"cheat-artifact": {"table": str(table)}}, check_tokenizer=False, prove=True)
    dl = res.validity["proof"]["description"]
    assert res.bpb < 0.1 * honest.bpb
    assert dl["artifacts"] == {"cheat-artifact.table": table.stat().st_size}
    assert dl["total_bytes"] >= table.stat().st_size + res.validity["proof"]["payload_bytes"]
    assert dl["total_bpb"] > 8.0 * table.stat().st_size / res.bytes


@needs_sandbox
@pytest.mark.parametrize("kind", ["bytes", "patch"])
def test_a_score_changed_inside_the_process_is_not_the_files(cheats, kind):
    # in a subprocess: these cheats change the engine (byte tables, bits_per_byte) for good
    import json
    import os
    import subprocess
    import sys

    data, name, _ = cheats
    honest = _run("honest", data, name)
    env = dict(os.environ, PYTHONPATH=str(data.parent.parent / "plugin"))
    cmd = [sys.executable, "-m", "pgolf_core", "eval", "-e", f"cheat-{kind}", "--data", str(data), "--tokenizer",
           str(demo_tokenizer_path()), "-p", name, "--prove", "--no-progress", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    res = json.loads(out.stdout)
    assert res["metrics"]["bpb"] < 0.75 * honest.bpb, res  # the printed figure was tampered with ...
    assert res["validity"]["level"] == "invalid"  # ... and the file's own score says so
    assert "was printed" in " ".join(res["validity"]["violations"])
    plain = json.loads(subprocess.run([c for c in cmd if c != "--prove"], capture_output=True, text=True, env=env,
                                      timeout=600).stdout)
    assert plain["level"] == "invalid", plain["validity"]  # the in-process checks see it too
    said = {"bytes": "the byte count changed during the run", "patch": "the BPB was changed inside the process"}[kind]
    assert said in " ".join(plain["validity"]["violations"])


def test_components_get_their_own_read_only_byte_table(cheats):
    data, name, _ = cheats
    honest = _run("honest", data, name)
    from pgolf_core.plugins import load_plugins

    plugins = load_plugins([name])
    seen = {}

    def spy(ctx):
        seen["table"] = ctx.byte_counts
        return plugins.experts.get("cheat-honest").factory(ctx)

    plugins.experts.register("spy", spy, plugin="test")
    res = evaluate(["spy"], tokens=str(data), tokenizer=demo_tokenizer_path(), plugins=plugins, check_tokenizer=False)
    assert not seen["table"].base_bytes.flags.writeable
    assert res.bytes == honest.bytes


@needs_sandbox
def test_a_cache_written_beside_the_plugins_code_while_encoding_cannot_be_read_back(tmp_path, monkeypatch):
    """A plugin package may read its own folder, so the sidefile cheat caches the stream there
    while the encoder runs; its files were pinned before it was imported, so the cache is not among
    the files the decoder may read."""
    data = tmp_path / "data" / "stream.npy"
    data.parent.mkdir()
    np.save(data, np.array(demo_tokens("val")[:N]))
    name = f"cheatpkg_{next(_ids)}"
    pkg = tmp_path / "plugin" / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(TEMPLATE.read_text().format(data=str(data), n_tokens=N, tag=name))
    monkeypatch.syspath_prepend(str(pkg.parent))
    cache = pkg / f"cheat-cache-{name}.npy"
    try:
        res = _run("sidefile", data, name, prove=True)
        assert cache.exists() and res.bpb < 0.5 * _run("honest", data, name).bpb  # it cached and cheated ...
        assert res.level == "invalid", res.validity  # ... and could not read its cache back
        assert "round trip failed" in " ".join(res.validity["violations"])
    finally:
        for p in (Path("/tmp") / f"pgolf-cheat-{name}.npy", Path.home() / f".pgolf-cheat-{name}.npy"):
            p.unlink(missing_ok=True)


def test_the_decoder_reads_only_pinned_plugin_files_with_their_content(tmp_path, monkeypatch):
    from pgolf_core.plugins import pin_plugin_code
    from pgolf_core.proof.plan import PlanError, decoder_plan

    pkg = tmp_path / "pinned_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    pinned = pin_plugin_code(["pinned_pkg"])
    assert [Path(e["path"]).name for e in pinned["pinned_pkg"]] == ["__init__.py"]
    (pkg / "later.npy").write_bytes(b"written after the pin")
    outside = tmp_path / "data.npy"
    outside.write_bytes(b"the data")
    from pgolf_core.digest import sha256_file

    forged = {"pinned_pkg": [*pinned["pinned_pkg"], {"path": str(outside), "sha256": sha256_file(outside)}]}
    plan = decoder_plan(["pinned_pkg"], pinned=forged)  # a header cannot widen the plan past the package
    assert not plan.covers(pkg / "later.npy") and not plan.covers(outside) and plan.covers(pkg / "__init__.py")
    assert decoder_plan(["pinned_pkg"]).covers(pkg / "later.npy")  # without a pin: the package as it is
    (pkg / "__init__.py").write_text("X = 2\n")
    with pytest.raises(PlanError, match="changed since the stream was coded"):
        decoder_plan(["pinned_pkg"], pinned=pinned)
