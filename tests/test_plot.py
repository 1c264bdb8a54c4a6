"""Plots of a run and the running-BPB curves they are drawn from."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from pgolf_core import evaluate
from pgolf_core.cli import cli
from pgolf_core.cli.plot import running_bpb
from pgolf_core.plugins import load_plugins
from helpers.mixers import EqualMix


@pytest.fixture(scope="module")
def result_doc():
    plugins = load_plugins(autoload=False, modules=["pgolf_core.builtin", "sample_plugin"])
    res = evaluate(["counting", "uniform"], mixer=EqualMix(2, 1024), plugins=plugins, chunk_size=512)
    return json.loads(res.to_json())


def test_running_bpb_ends_at_the_reported_bpb(result_doc):
    pos, curves = running_bpb(result_doc)
    assert pos[-1] == result_doc["metrics"]["targets"] + 1
    assert curves["mixture"][-1] == pytest.approx(result_doc["metrics"]["bpb"], rel=1e-12)
    assert curves["uniform"][-1] == pytest.approx(result_doc["metrics"]["experts"]["uniform"]["bpb"], rel=1e-12)
    assert np.all(np.diff(pos) > 0)


def test_plot_command_writes_a_png(result_doc, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "run.json"
    path.write_text(json.dumps(result_doc))
    res = CliRunner().invoke(cli, ["plot", str(path)])
    assert res.exit_code == 0, res.output
    png = tmp_path / "run.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_rejects_other_json(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{}")
    res = CliRunner().invoke(cli, ["plot", str(path)])
    assert res.exit_code == 1 and "not a pgolf-core results document" in res.output
