"""The CLI: tiny end-to-end runs with click's CliRunner, JSON output, exit codes."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from pgolf_core.cli import cli, main
from pgolf_core.stream.data import write_shard


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return invoke


def test_eval_json_on_the_demo(run):
    res = run("eval", "--experts", "uniform", "--json", "--no-progress")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["schema"] == "pgolf-core/results" and doc["version"] == 3 and "valid" not in doc
    assert doc["level"] == "unchecked" and doc["validity"]["level"] == "unchecked"  # plain eval vouches for nothing
    m = doc["metrics"]
    assert m["targets"] > 0 and m["bpb"] == pytest.approx(10 * m["targets"] / m["bytes"])


def test_eval_prints_the_level_beside_the_bpb(run):
    plain = run("eval", "--experts", "uniform", "--no-progress")
    assert plain.exit_code == 0 and "UNCHECKED" in plain.output.splitlines()[0], plain.output
    audited = run("eval", "--experts", "uniform", "--audit", "--no-progress", "--limit", "3000")
    assert audited.exit_code == 0 and "AUDITED" in audited.output.splitlines()[0], audited.output


def test_eval_table_and_plugin_flag(run, tmp_path, tokenizer_path):
    data = tmp_path / "fineweb_val_000000.bin"
    write_shard(data, np.arange(300) % 1024)
    res = run("eval", "-p", "sample_plugin", "--experts", "counting", "--data", str(data), "--tokenizer",
              str(tokenizer_path), "--expert-opt", "counting.alpha=0.5", "--limit", "100")
    assert res.exit_code == 0, res.output
    assert "targets    99" in res.output and "BPB" in res.output


@pytest.mark.parametrize("args,code,message", [
    (["eval", "--experts", "unifrm"], 2, "Did you mean 'uniform'"),
    (["eval", "--experts", "uniform", "--data", "missing.npy", "--tokenizer", "x.model"], 1, "no such file"),
    # a mistyped data path is named before the missing tokenizer is asked for
    (["eval", "--experts", "uniform", "--data", "missing.npy"], 1, "token file missing.npy: no such file"),
    (["eval", "--experts", "uniform", "--data", "missing_shards/"], 1, "data missing_shards/: no such file"),
    (["eval", "--experts", "uniform", "--expert-opt", "uniform"], 2, "expected NAME.key=value"),
    (["eval", "--experts", "uniform", "--expert-opt", "uniform.k=1"], 2, "has no option 'k'"),
    (["eval", "-p", "no_such_module_here"], 1, "failed to import"),
])
def test_errors_are_one_line_with_exit_codes(run, args, code, message):
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == code, res.output
    assert message in res.output and "Traceback" not in res.output


def test_bad_shard_via_cli(tmp_path, tokenizer_path):
    data = tmp_path / "fineweb_val_000000.bin"
    data.write_bytes(b"\x00" * 2000)
    res = CliRunner().invoke(cli, ["eval", "--experts", "uniform", "--data", str(data), "--tokenizer", str(tokenizer_path)])
    assert res.exit_code == 1 and "bad magic 0" in res.output


def test_vocab_mismatch_via_cli(tmp_path, tokenizer_path):
    data = tmp_path / "toks.npy"
    np.save(data, np.array([1, 2, 3, 4096], dtype=np.int32))
    res = CliRunner().invoke(cli, ["eval", "--experts", "uniform", "--data", str(data), "--tokenizer", str(tokenizer_path)])
    assert res.exit_code == 1 and "out of range for a vocabulary of 1024" in res.output


def test_listings(run):
    res = run("experts", "--json")
    assert {"uniform"} <= {r["name"] for r in json.loads(res.output)}
    res = run("plugins", "--json")
    assert any(r["name"] == "core" and "uniform" in r["provides"]["expert"] for r in json.loads(res.output))


def test_main_exits_with_usage_code(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--experts", "nope"])
    assert exc.value.code == 2


def test_eval_with_audit_records_the_report(run):
    res = run("eval", "--experts", "unigram,bigram", "--audit", "--json", "--no-progress", "--limit", "3000")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["level"] == "audited" and doc["validity"]["audit"]["passed"]
    assert any("audit" in c for c in doc["validity"]["checks"])


def test_preset_pr700_is_refused_without_allow_invalid(run):
    res = CliRunner().invoke(cli, ["eval", "--preset", "pr700", "--experts", "unigram,pr700-entropy",
                                   "--expert-opt", "pr700-entropy.source=bigram", "--limit", "500"])
    assert res.exit_code == 1 and "known invalid" in res.output


def test_plugin_given_twice_loads_once(run):
    res = run("experts", "-p", "pgolf_core.builtin")
    assert res.exit_code == 0 and "uniform" in res.output


def test_save_logprobs_holds_every_target(run, tmp_path):
    path = tmp_path / "run.npz"
    res = run("eval", "--experts", "unigram,bigram", "--json", "--no-progress", "--limit", "2000",
              "--save-logprobs", str(path))
    doc = json.loads(res.output)
    arrays = np.load(path)
    assert arrays["mixture"].shape == (1999,) and arrays["experts"].shape == (2, 1999)
    assert list(arrays["expert_names"]) == ["unigram", "bigram"]
    assert -arrays["mixture"].sum() / 1999 == pytest.approx(doc["metrics"]["loss"], rel=1e-12)
    assert int(arrays["bytes"].sum()) == doc["metrics"]["bytes"]
