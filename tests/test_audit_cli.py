"""`pgolf-core audit` exits 0 on a legal configuration and 1 on a broken one."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pgolf_core.cli.audit import audit_command


def _invoke(*args):
    return CliRunner().invoke(audit_command, ["--limit", "600", "--random-tokens", "3000", *args])


def test_audit_of_a_legal_configuration_exits_0_with_a_table():
    res = _invoke("--experts", "uniform")
    assert res.exit_code == 0, res.output
    assert "audit PASSED" in res.output and "C1 causal" in res.output and "no hypercompression" in res.output


def test_audit_of_a_broken_configuration_exits_1_and_names_the_rule(monkeypatch):
    pytest.importorskip("pgolf_entropy.plugin")
    from pgolf_core.cli import options as cli

    monkeypatch.setattr(cli, "_PLUGINS", {})
    # the entry point loads pgolf_entropy once installed; before that, ask for the module by name
    extra = [] if "pr700-entropy" in cli.get_plugins().experts.entries else ["--plugin", "pgolf_entropy.plugin"]
    res = _invoke("--experts", "uniform,pr700-entropy", "--mixer", "hedge", "--expert-opt", "pr700-entropy.source=uniform",
                  "--json", *extra)
    if "unknown mixer" in str(res.exception):
        pytest.skip("needs the hedge mixer")
    assert res.exit_code == 1, res.output
    doc = json.loads(res.output)
    assert not doc["passed"]
    failed = {(c["component"], c["rule"]) for c in doc["checks"] if c["status"] == "FAIL"}
    assert ("expert 'pr700-entropy'", "declared") in failed


def test_bad_arguments_are_usage_errors():
    assert _invoke("--experts", "").exit_code == 2
    assert _invoke("--experts", "uniform", "--limit", "1").exit_code == 2
