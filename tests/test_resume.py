"""Resumable evaluations: a run interrupted at a chunk end and resumed prints exactly the BPB of an
uninterrupted one; a resume point of another run is refused. Built-in demo data: no ../shared."""

from __future__ import annotations

import numpy as np
import pytest

from pgolf_core import evaluate
from pgolf_core.demo import demo_tokenizer_path, demo_tokens
from pgolf_core.errors import UsageError
from pgolf_core.checks.resume import Interrupted

TOKENS = np.asarray(demo_tokens("val")[:5000])


def _eval(**kw):
    return evaluate(["unigram", "bigram", "trigram"], mixer="hedge", tokens=TOKENS, tokenizer=demo_tokenizer_path(),
                    chunk_size=700, keep_logprobs=True, **kw)


class _StopAfter:
    """Simulates Ctrl-C: sets the loop's interrupt flag once ``n`` chunks have been scored."""

    def __init__(self, monkeypatch, n):
        import pgolf_core.checks.resume as R

        real = R.interrupt_flag
        calls = {"chunks": 0}

        class Flag(dict):
            def __getitem__(self, key):
                calls["chunks"] += 1
                return calls["chunks"] > n

        from contextlib import contextmanager

        @contextmanager
        def fake():
            with real():
                yield Flag(hit=False)

        monkeypatch.setattr(R, "interrupt_flag", fake)


def test_an_interrupted_and_resumed_run_gives_exactly_the_uninterrupted_bpb(tmp_path, monkeypatch):
    whole = _eval()
    point = tmp_path / "run.resume"
    with monkeypatch.context() as m:
        _StopAfter(m, 3)
        with pytest.raises(Interrupted, match="resume point saved"):
            _eval(resume=point)
    assert point.is_file()
    resumed = _eval(resume=point, checkpoint_every=1400)
    assert resumed.bpb == whole.bpb and resumed.loss == whole.loss and resumed.bytes == whole.bytes
    assert resumed.weights == whole.weights
    assert np.array_equal(resumed.logprobs["mixture"], whole.logprobs["mixture"])


def test_a_resume_point_of_another_run_is_refused(tmp_path, monkeypatch):
    point = tmp_path / "run.resume"
    with monkeypatch.context() as m:
        _StopAfter(m, 1)
        with pytest.raises(Interrupted):
            _eval(resume=point)
    with pytest.raises(UsageError, match="another configuration or stream"):
        evaluate(["unigram", "bigram"], mixer="hedge", tokens=TOKENS, tokenizer=demo_tokenizer_path(), chunk_size=700,
                 keep_logprobs=True, resume=point)


def test_resume_options_are_checked():
    with pytest.raises(UsageError, match="resume=FILE"):
        _eval(checkpoint_every=100)
    with pytest.raises(UsageError, match="cannot also be audited"):
        _eval(resume="x.resume", audit=True)


def _neural_whole_and_resumed(point, monkeypatch, adapter="", neural=None):
    """The demo GPT with bigram (and ``adapter``), run whole and run interrupted after one chunk and
    resumed from ``point``: both results."""
    from pgolf_neural.artifact import demo_checkpoint_path

    kw = dict(tokens=TOKENS[:1200], tokenizer=demo_tokenizer_path(), chunk_size=300, adapters=[adapter] if adapter else [],
              expert_options={"neural": {"checkpoint": str(demo_checkpoint_path()), **(neural or {})}},
              adapter_options={adapter: {"chunk_tokens": "300", "epochs": "1"}} if adapter else {})
    whole = evaluate(["neural", "bigram"], **kw)
    with monkeypatch.context() as m:
        _StopAfter(m, 1)
        with pytest.raises(Interrupted):
            evaluate(["neural", "bigram"], resume=point, **kw)
    return whole, evaluate(["neural", "bigram"], resume=point, **kw)


def test_neural_with_ttt_resumes_to_the_same_bpb(tmp_path, monkeypatch):
    whole, resumed = _neural_whole_and_resumed(tmp_path / "ttt.resume", monkeypatch, "ttt")
    assert resumed.bpb == whole.bpb
    assert resumed.adapters["ttt"]["chunks_trained"] == whole.adapters["ttt"]["chunks_trained"] >= 2


@pytest.mark.parametrize("adapter, neural", [
    ("lora-ttt", {}),  # its forward hooks (objects held by the model) and their handles come back
    # the cached keys and values belong to the weights whose version counters they were stamped with:
    # without adapters the weights never change (fresh counters would restart the cache: another BPB),
    ("", {"scorer": "cache"}),
    ("ttt", {"scorer": "cache"}),  # with ttt they change after the stamp (adopting the cache would be wrong)
], ids=["lora-ttt", "cache", "cache+ttt"])
def test_other_adapters_and_the_cached_scorer_resume_to_the_same_bpb(tmp_path, monkeypatch, adapter, neural):
    whole, resumed = _neural_whole_and_resumed(tmp_path / "run.resume", monkeypatch, adapter, neural)
    assert resumed.bpb == whole.bpb
