"""Each planted bug (tests/planted.py) against each line of defence: the level plain eval prints,
the static audit, and an audited eval (static audit of the run's own components + live spot
checks). Runs on the built-in demo stream: no ../shared needed."""

from __future__ import annotations

import numpy as np
import pytest

import planted as P
from pgolf_core import evaluate
from pgolf_core.checks.audit import audit
from pgolf_core.demo import demo_tokens

V = 1024
N = 6000  # longer than LongStreamCheat's threshold and the audit's 2048-token stream


@pytest.fixture(scope="module")
def stream():
    return np.asarray(demo_tokens("val")[:N])


def _eval(experts, mixer=None, **kw):
    return evaluate(experts, mixer=mixer, tokens=kw.pop("tokens"), tokenizer=_tok(), chunk_size=1000, **kw)


def _tok():
    from pgolf_core.demo import demo_tokenizer_path

    return demo_tokenizer_path()


def _failed(report) -> set:
    return {f"{c.component} {c.rule}" for c in report.checks if c.status == "FAIL"}


def test_honest_control_is_audited(stream):
    res = _eval([P.HonestCounter(V), P.HonestCounter(V)], P.EqualMixer(2, V), tokens=stream, audit=True)  # the default spot checks: none checked w.p. e^-32
    assert res.level == "audited", res.validity["violations"]
    assert len(res.validity["spot_checks"]["reports"]) >= 1
    assert _eval([P.HonestCounter(V)], tokens=stream).level == "unchecked"


@pytest.mark.parametrize("cls, static_rule", [
    (P.ReadsTarget, "C1 causal"),
    (P.Unnormalized, "C2 normalized"),
    (P.ScoreDisagrees, "C2 normalized"),
    (P.CountsFirst, "C3 score first"),
])
def test_expert_bugs_are_unchecked_in_plain_eval_and_caught_by_audits(stream, cls, static_rule):
    plain = _eval([cls(V)], tokens=stream)
    assert plain.level in ("unchecked", "invalid")  # never "valid" without a check: plain eval vouches for nothing
    static = audit([cls(V)], tokens=stream, tokenizer=_tok())
    assert f"expert {cls.name!r} {static_rule}" in _failed(static)
    live = _eval([cls(V)], tokens=stream, audit=True)
    assert live.level == "invalid"


def test_unnormalized_rows_make_a_strict_run_invalid_without_any_audit(stream):
    res = _eval([P.Unnormalized(V)], tokens=stream, strict=True)
    assert res.level == "invalid" and any("sums to 1.5" in v for v in res.validity["violations"])


def test_a_fast_path_that_lies_is_harmless_under_strict_scoring(stream):
    honest = _eval([P.HonestCounter(V)], tokens=stream).bpb
    lying = _eval([P.ScoreDisagrees(V)], tokens=stream)
    strict = _eval([P.ScoreDisagrees(V)], tokens=stream, strict=True)
    assert lying.bpb < honest - 0.1 and lying.level == "unchecked"
    assert strict.bpb == pytest.approx(honest, abs=1e-12)


def test_live_spot_checks_catch_what_only_cheats_on_long_streams(stream):
    static = audit([P.LongStreamCheat(V)], tokens=stream, tokenizer=_tok())
    assert static.passed  # the audit's own stream is short: it cannot see this one
    live = _eval([P.LongStreamCheat(V)], tokens=stream, audit=True)  # the default spot checks: none checked w.p. e^-32
    assert live.level == "invalid"
    assert any("spot check" in v and "C1" in v for v in live.validity["violations"]), live.validity["violations"]


def test_a_mixer_whose_score_contradicts_its_rows_in_the_same_call_makes_a_strict_run_invalid(stream):
    from pgolf_core.builtin import UniformExpert

    res = _eval([P.HonestCounter(V), UniformExpert(V)], P.SelfContradictingMixer(2, V), tokens=stream, strict=True)
    assert res.level == "invalid" and any("not the mixture's entry" in v for v in res.validity["violations"])


def test_nondeterminism_is_reported_as_such_by_the_static_audit(stream):
    static = audit([P.Nondeterministic(V)], tokens=stream, tokenizer=_tok(), random_tokens=0)
    c1 = [c for c in static.checks if c.rule == "C1 causal"][0]
    assert c1.status == "FAIL" and "nondeterministic" in c1.evidence and "looks ahead" not in c1.evidence


def test_nondeterminism_is_reported_as_such(stream):
    live = _eval([P.Nondeterministic(V)], tokens=stream, audit=True)
    assert live.level == "invalid"
    spot = [v for v in live.validity["violations"] if v.startswith("spot check")]
    assert spot and all("nondeterministic" in v for v in spot), spot


def test_best_of_experts_mixer_is_caught(stream):
    plain = _eval([P.HonestCounter(V), P.HonestCounter(V)], P.BestOfMixer(2, V), tokens=stream)
    assert plain.level == "unchecked"
    static = audit([P.HonestCounter(V), P.HonestCounter(V)], mixer=P.BestOfMixer(2, V), tokens=stream, tokenizer=_tok())
    assert "mixer 'best-of' C1-C3 synthetic" in _failed(static)
    strict = _eval([P.HonestCounter(V), P.HonestCounter(V)], P.BestOfMixer(2, V), tokens=stream, strict=True)
    honest = _eval([P.HonestCounter(V), P.HonestCounter(V)], P.EqualMixer(2, V), tokens=stream)
    assert strict.bpb == pytest.approx(honest.bpb, abs=1e-12)  # strict scoring reads the rows, not mix()
    from pgolf_core.builtin import UniformExpert

    live = _eval([P.HonestCounter(V), UniformExpert(V)], P.BestOfMixer(2, V), tokens=stream, audit=True)
    assert any(v.startswith("spot check") and "fast path" in v for v in live.validity["violations"])


def test_a_mixer_that_peeks_only_on_real_inputs_is_caught_by_the_configuration_checks(stream):
    static = audit([P.HonestCounter(V), P.HonestCounter(V)], mixer=P.PeekingMixer(2, V), tokens=stream, tokenizer=_tok())
    failed = _failed(static)
    assert "mixer 'peeking' C1-C3 synthetic" not in failed  # synthetic inputs never trigger it
    assert "configuration C1+C3 causal" in failed


def test_a_mixer_unnormalized_only_on_real_inputs_is_caught_by_the_mixture_check(stream):
    static = audit([P.HonestCounter(V), P.HonestCounter(V)], mixer=P.PeakyUnnormalizedMixer(2, V), tokens=stream,
                   tokenizer=_tok(), random_tokens=0)
    failed = _failed(static)
    assert "mixer 'peaky-unnormalized' C1-C3 synthetic" not in failed  # synthetic inputs never trigger it
    assert "configuration C2 mixture" in failed


def test_score_only_experts_are_probed_inside_multi_target_calls(stream):
    static = audit([P.MidCallUnnormalized(V)], tokens=stream, tokenizer=_tok())
    assert "expert 'mid-call-unnormalized' C2 normalized" in _failed(static)
    with pytest.raises(Exception, match="full distributions"):
        _eval([P.MidCallUnnormalized(V)], tokens=stream, audit=True)  # cannot be scored strictly, so never audited


def test_the_sealed_stream_holds_nothing_past_the_span(stream):
    P.ReadsPastEnd.seen_future.clear()
    cheat = _eval([P.ReadsPastEnd(V)], tokens=stream, strict=True)
    honest = _eval([P.HonestCounter(V)], tokens=stream, strict=True)
    assert set(P.ReadsPastEnd.seen_future) == {0}  # only the buffer's zeros, never a real future token
    assert cheat.bpb >= honest.bpb - 1e-3


def test_plugins_never_share_memory_with_the_callers_stream(stream):
    from pgolf_core.api import Adapter

    seen = []
    src = np.array(stream, copy=True)

    def record(kind, arr, end):  # checked at call time: later the buffer legitimately holds more
        base = arr.base if getattr(arr, "base", None) is not None else arr
        past = None if end is None else bool(np.any(np.asarray(base)[end:]))
        seen.append((kind, np.shares_memory(arr, src), None if end is None else (arr.flags.writeable, len(arr) == end), past))

    class SpyExpert(P.HonestCounter):
        def distributions(self, tokens, start, end):
            record("expert", tokens, end)
            return super().distributions(tokens, start, end)

        def update(self, tokens, start, end):
            record("update", tokens, end)

    class SpyMixer(P.EqualMixer):
        def mix(self, logp, targets, dists=None, return_distribution=False):
            for a in (logp, targets, dists):
                record("mixer", a, None)
            return super().mix(logp, targets, dists, return_distribution)

    class SpyAdapter(Adapter):
        name = "spy"

        def after_chunk(self, tokens, start, end, final):
            record("adapter", tokens, end)

    _eval([SpyExpert(V), SpyExpert(V)], SpyMixer(2, V), adapters=[SpyAdapter()], tokens=src, strict=True)
    assert {k for k, *_ in seen} == {"expert", "update", "mixer", "adapter"}
    for kind, shares, flags, past in seen:
        assert not shares, kind
        if flags is not None:
            assert flags == (False, True), f"{kind}: a writeable view, or not exactly tokens[:end]"
            assert not past, f"{kind}: the buffer behind the view held tokens past the span's end"
