"""A configuration that needs a capability a component lacks is refused when the run is built,
before any target is scored, naming the component, the capability and the methods to write."""

from __future__ import annotations

import numpy as np
import pytest

from pgolf_core import api, evaluate, hookimpl
from pgolf_core.api import Expert
from pgolf_core.demo import demo_tokenizer_path, demo_tokens
from pgolf_core.errors import UsageError
from pgolf_core.plugins import load_plugins

V = 1024


@pytest.fixture(scope="module")
def stream():
    return np.asarray(demo_tokens("val")[:1500])


def _eval(experts, stream, **kw):
    return evaluate(experts, tokens=stream, tokenizer=demo_tokenizer_path(), chunk_size=500, **kw)


class ScoreOnly(Expert):
    """Uniform, with only ``score``: no rows, no decoding. Counts its calls."""

    calls = 0

    def score(self, tokens, start, end):
        type(self).calls += 1
        return np.full(end - start, -np.log(self.vocab_size))


class RowsNoDecoding(ScoreOnly):
    """Uniform rows too, but no ``predict``/``observe``."""

    def distributions(self, tokens, start, end):
        type(self).calls += 1
        return np.full((end - start, self.vocab_size), 1.0 / self.vocab_size)


@hookimpl
def pgolf_register_experts(register):  # the proof rebuilds its components by name
    register("rows-no-decoding", lambda ctx: RowsNoDecoding(ctx.vocab_size), description="rows, no decoding")


@pytest.fixture(autouse=True)
def _zero_counters():
    ScoreOnly.calls = RowsNoDecoding.calls = 0


@pytest.mark.parametrize("check", ["strict", "audit", "prove"])
def test_strict_scoring_refuses_an_expert_without_rows_before_scoring(stream, check):
    with pytest.raises(UsageError, match=r"expert 'ScoreOnly' lacks capability 'distributions' "
                                         r"\(implement distributions\(\)"):
        _eval([ScoreOnly(V)], stream, **{check: True})
    assert ScoreOnly.calls == 0  # refused at build time, not in the loop


def test_the_same_expert_runs_when_rows_are_not_needed(stream):
    res = _eval([ScoreOnly(V)], stream)
    assert res.bpb > 0 and ScoreOnly.calls > 0


def test_a_mixer_that_mixes_rows_refuses_an_expert_without_them(stream):
    with pytest.raises(UsageError, match=r"mixer 'logistic' needs full distributions.*'ScoreOnly' lacks "
                                         r"capability 'distributions'"):
        _eval([ScoreOnly(V), RowsNoDecoding(V)], stream, mixer="logistic")
    assert ScoreOnly.calls == 0 and RowsNoDecoding.calls == 0
    assert _eval([ScoreOnly(V), RowsNoDecoding(V)], stream, mixer="hedge").bpb > 0  # hedge mixes scores only


def test_the_proof_refuses_an_expert_that_cannot_decode_before_scoring(stream):
    with pytest.raises(UsageError, match=r"cannot decode.*'rows-no-decoding' lacks capability 'decodable' "
                                         r"\(implement predict\(\), observe\(\)"):
        _eval(["rows-no-decoding"], stream, prove=True, plugins=load_plugins(["test_capability_refusal"]))
    assert RowsNoDecoding.calls == 0
    assert _eval([RowsNoDecoding(V)], stream, audit=True).level == "audited"  # the audit does not decode


def test_missing_names_the_methods():
    assert api.missing(ScoreOnly(V), "distributions") == ("distributions",)
    assert api.missing(RowsNoDecoding(V), "distributions") == ()
    assert api.missing(RowsNoDecoding(V), "decodable") == ("predict", "observe")


def test_without_the_refusal_the_run_fails_later_inside_the_loop(stream, monkeypatch):
    monkeypatch.setattr(api, "refuse_missing_capabilities", lambda comps, strict: None)
    with pytest.raises(NotImplementedError, match="does not provide full distributions"):
        _eval([ScoreOnly(V)], stream, strict=True)
