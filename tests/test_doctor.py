"""``pgolf-core doctor`` and ``--version``: what a bug report needs, on a machine without ../shared too."""

import json
from importlib.metadata import version

import numpy as np
import pytest
from click.testing import CliRunner

from pgolf_core.cli import doctor
from pgolf_core.cli import cli
from pgolf_core.stream.data import write_shard
from pgolf_core.demo import demo_tokenizer_path, demo_tokens
from pgolf_core.digest import sha256_file
from pgolf_core.proof.sandbox import sandbox_status


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def bare(tmp_path, monkeypatch):
    """A working folder with no ../shared beside it, and no repository to find one from."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(doctor, "_repository", lambda: None)
    return tmp_path


def test_version_is_the_installed_distributions():
    res = run("--version")
    assert res.exit_code == 0 and res.output.strip() == f"pgolf-core, version {version('pgolf-core')}", res.output


def test_the_report_without_shared_data(bare):
    res = run("doctor")
    assert res.exit_code == 0, res.output
    lines = {line.split()[0]: line for line in res.output.splitlines() if line.strip()}
    assert f"pgolf-core {version('pgolf-core')}" in lines["versions"] and "torch" in lines["versions"]
    status = sandbox_status()
    assert ("proofs can be PROVEN" if status["available"] else "at most DECODED") in lines["sandbox"]
    assert "cuda" in lines and "threads" in lines
    assert "no ../shared/data" in lines["shared"]
    assert "tokenizer" not in lines and "data" not in lines
    assert any(line.startswith("plugin ") and "bigram" in line for line in res.output.splitlines())


def test_json_names_everything_the_text_does(bare):
    res = run("doctor", "--json")
    assert res.exit_code == 0, res.output
    r = json.loads(res.output)
    assert r["schema"] == "pgolf-core/doctor" and r["version"] == 1
    assert r["versions"]["pgolf-core"] == version("pgolf-core")
    assert set(r["versions"]) >= {"python", "numpy", "torch", "numba", "sentencepiece"}
    assert r["sandbox"] == sandbox_status()
    assert r["threads"]["cpu_count"] >= 1 and isinstance(r["threads"]["torch"], int) and isinstance(r["threads"]["numba"], int)
    assert r["cuda"]["available"] in (True, False)
    assert r["shared"] == [] and r["data"] == [] and r["tokenizers"] == []
    ngram = next(p for p in r["plugins"] if p["name"] == "ngram")
    assert "trigram" in ngram["provides"]["expert"] and ngram["error"] is None


def test_given_data_and_tokenizer_are_described_and_matched(bare):
    tokens = np.asarray(demo_tokens("val")[:3000])
    np.save(bare / "val.npy", tokens)
    (bare / "shards").mkdir()
    write_shard(bare / "shards" / "fineweb_val_000000.bin", tokens[:1000])
    write_shard(bare / "shards" / "fineweb_val_000001.bin", tokens[1000:])
    tok = demo_tokenizer_path()
    res = run("doctor", "--json", "-d", bare / "val.npy", "-d", bare / "shards", "-d", bare / "nowhere.npy", "-t", tok)
    assert res.exit_code == 0, res.output  # a report, not a check: what is missing is reported, not fatal
    r = json.loads(res.output)
    assert r["tokenizers"] == [{"path": str(tok), "sha256": sha256_file(tok)[:12], "vocab_size": 1024,
                                "format": "SentencePieceTokenizer", "found_from": "--tokenizer"}]
    npy, shards, missing = r["data"]
    assert npy["kind"] == "npy" and npy["tokens"] == 3000
    assert shards["kind"] == "shards" and shards["shards"] == 2 and shards["tokens"] == 3000
    assert "no such file" in missing["error"]
    good, _, bad = r["match"]
    assert good["ok"] and good["fits"] and good["round_trip"]["documents"] >= 1
    assert good["round_trip"]["round_trip_failures"] == 0
    assert not bad["ok"] and "no such file" in bad["error"]
    text = run("doctor", "-d", bare / "val.npy", "-t", tok).output
    assert f"vocab 1,024, sha256 {sha256_file(tok)[:12]}" in text and "3,000 tokens (uint16)" in text
    assert "ids fit" in text


def test_shared_data_beside_the_working_folder_is_found(bare):
    corpus = bare / "shared" / "data" / "corpus"
    corpus.mkdir(parents=True)
    np.save(corpus / "head.npy", np.asarray(demo_tokens("val")[:100]))
    r = json.loads(run("doctor", "--json").output)
    assert r["shared"] == [{"path": str((bare / "shared" / "data").resolve()),
                            "found_from": "../shared/data from the working folder"}]
    assert r["data"][0]["tokens"] == 100 and r["data"][0]["path"].endswith("corpus/head.npy")


def test_doctor_reports_a_plugin_module_that_fails_to_import(bare, monkeypatch, capsys):
    # through `main`, which loads --plugin modules first to add their subcommands: that load fails,
    # and doctor must still run and show the failure as a finding rather than die before it
    import pgolf_core.cli as cli_module

    monkeypatch.setattr(cli_module, "_COMMANDS_ADDED", [])
    with pytest.raises(SystemExit) as stop:
        cli_module.main(["doctor", "-p", "no_such_plugin_module"])
    out = capsys.readouterr()
    assert stop.value.code == 0, out.err
    assert "plugins    FAILED to load" in out.out and "no_such_plugin_module" in out.out
    # a command that is not built in still stops at the import error, which says what went wrong
    monkeypatch.setattr(cli_module, "_COMMANDS_ADDED", [])
    with pytest.raises(SystemExit) as stop:
        cli_module.main(["-p", "no_such_plugin_module", "a-plugins-command"])
    assert stop.value.code != 0 and "no_such_plugin_module" in capsys.readouterr().err
