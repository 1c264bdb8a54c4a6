"""``pgolf-core decompress``: the sandboxed proof of a file, loading only the plugins it is told to."""

import importlib.util

import numpy as np
import pytest
from click.testing import CliRunner

from pgolf_core.cli import cli
from pgolf_core.demo import demo_tokens
from helpers.proof import PROOF_LEVEL, needs_sandbox



def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@needs_sandbox
def test_a_file_is_proven_and_a_wrong_reference_named(tmp_path):
    assert run("compress", "-e", "bigram,trigram", "--limit", 600, "-o", tmp_path / "s.pgz", "--no-progress").exit_code == 0
    good = tmp_path / "good.npy"
    np.save(good, np.asarray(demo_tokens("val")[:600]))
    ok = run("decompress", tmp_path / "s.pgz", "-o", tmp_path / "t.npy", "--reference", good)
    assert ok.exit_code == 0 and "PROVEN" in ok.output and "described" in ok.output, ok.output
    wrong = tmp_path / "wrong.npy"
    bad = np.asarray(demo_tokens("val")[:600]).copy()
    bad[321] = (int(bad[321]) + 1) % 1024
    np.save(wrong, bad)
    said = run("decompress", tmp_path / "s.pgz", "-o", tmp_path / "t2.npy", "--reference", wrong)
    assert said.exit_code == 1 and "first differs from the original at position 321" in said.output, said.output


@needs_sandbox
@pytest.mark.skipif(importlib.util.find_spec("pgolf_recency") is None, reason="the example plugin is not installed")
def test_a_third_party_plugin_is_loaded_only_when_named(tmp_path):
    from pgolf_core.codec.container import read_container

    res = run("eval", "-e", "recency,bigram", "--limit", 500, "--prove", "--proof", tmp_path / "r.pgz", "--no-progress")
    assert res.exit_code == 0 and "PROVEN" in res.output.splitlines()[0], res.output
    assert read_container(tmp_path / "r.pgz")[0]["config"]["needed_plugins"] == ["pgolf_recency.plugin"]
    refused = run("decompress", tmp_path / "r.pgz", "-o", tmp_path / "r.npy")
    assert refused.exit_code == 2 and "-p pgolf_recency.plugin" in refused.output, refused.output
    done = run("decompress", tmp_path / "r.pgz", "-o", tmp_path / "r.npy", "-p", "pgolf_recency.plugin")
    assert done.exit_code == 0 and "PROVEN" in done.output, done.output
    assert "plugin code" in done.output


def test_without_a_sandbox_a_round_trip_is_decoded_not_proven(monkeypatch):
    from pgolf_core import evaluate

    monkeypatch.setenv("PGOLF_NO_SANDBOX", "1")
    res = evaluate(["bigram"], limit=400, prove=True)
    assert res.level == "decoded", res.validity
    proof = res.validity["proof"]
    assert proof["ok"] and not proof["sandbox"]["enforced"] and "PGOLF_NO_SANDBOX" in proof["unsandboxed_reason"]
    assert any("without a sandbox" in c for c in res.validity["checks"])


def test_files_given_relative_to_the_working_folder_reach_the_decoder(tmp_path, monkeypatch):
    """The header records a tokenizer as it was given (``../shared/...``); the decoder runs in its
    own scratch folder, where that place names nothing, so the parent hands it the place it found
    the file at."""
    import shutil

    from pgolf_core.demo import demo_tokenizer_path

    shared, work = tmp_path / "shared", tmp_path / "work"
    shared.mkdir()
    work.mkdir()
    shutil.copy(demo_tokenizer_path(), shared / "tok.model")
    np.save(shared / "val.npy", np.asarray(demo_tokens("val")[:500]))
    monkeypatch.chdir(work)
    res = run("eval", "-e", "bigram", "--data", "../shared/val.npy", "--tokenizer", "../shared/tok.model", "--prove",
              "--proof", "p.pgz", "--no-progress")
    assert res.exit_code == 0 and PROOF_LEVEL.upper() in res.output.splitlines()[0], res.output
    again = run("decompress", "p.pgz", "-o", "p.npy")
    assert again.exit_code == 0 and PROOF_LEVEL.upper() in again.output, again.output
