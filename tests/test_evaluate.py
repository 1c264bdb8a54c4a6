"""The evaluator's loop: score first, exactly once, causal views, chunking invariance, verdicts."""

import numpy as np
import pytest

from pgolf_core import evaluate
from pgolf_core.api import Adapter, Expert
from pgolf_core.errors import DataError, InvalidConfigurationError, UsageError
from pgolf_core.plugins import load_plugins
from helpers.mixers import EqualMix
from sample_plugin import CountingExpert


@pytest.fixture(scope="module")
def test_plugins():
    return load_plugins(autoload=False, modules=["pgolf_core.builtin", "sample_plugin"])


class Recorder(Expert):
    """Uniform predictions; records every call the evaluator makes."""

    def __init__(self, vocab_size, log):
        super().__init__(vocab_size)
        self.log = log

    def score(self, tokens, start, end):
        self.log.append(("score", start, end, len(tokens)))
        return np.full(end - start, -np.log(self.vocab_size))

    def update(self, tokens, start, end):
        self.log.append(("update", start, end, len(tokens)))


class RecordingAdapter(Adapter):
    def __init__(self, log):
        self.log = log

    def after_chunk(self, tokens, start, end, final):
        self.log.append(("adapt", start, end, len(tokens), final))


@pytest.mark.parametrize("n,chunk", [(2, 5), (17, 4), (17, 16), (17, 1), (100, 33)])
def test_loop_order_views_and_exactly_once(test_plugins, tokenizer_path, n, chunk):
    log = []
    tokens = np.random.default_rng(n).integers(0, 1024, n)
    res = evaluate([Recorder(1024, log)], adapters=[RecordingAdapter(log)], tokens=tokens,
                   tokenizer=tokenizer_path, chunk_size=chunk, plugins=test_plugins)
    scored = [e for e in log if e[0] == "score"]
    covered = np.concatenate([np.arange(s, e) for _, s, e, _ in scored])
    assert covered.tolist() == list(range(1, n))  # every target once, in order
    for kind, s, e, seen, *rest in log:
        assert seen == e  # plugins are given tokens[:end], never beyond
    kinds = [e[0] for e in log]
    assert kinds == ["score", "update", "adapt"] * len(scored)  # score, then update, then adapt
    finals = [e[4] for e in log if e[0] == "adapt"]
    assert finals == [False] * (len(finals) - 1) + [True]
    assert res.targets == n - 1


def test_results_do_not_depend_on_chunk_size(test_plugins, val_head_tokens, tokenizer_path):
    tokens = val_head_tokens[:3000]
    runs = [evaluate(["counting", "uniform"], mixer=EqualMix(2, 1024), tokens=tokens, tokenizer=tokenizer_path,
                     chunk_size=c, plugins=test_plugins) for c in (1, 7, 4096)]
    # identical predictions; only the float64 summation order differs between chunkings
    assert runs[0].bpb == pytest.approx(runs[1].bpb, rel=1e-13) == runs[2].bpb


def test_bpb_is_the_ratio_of_sums(test_plugins, val_head_tokens, tokenizer_path, byte_table):
    tokens = val_head_tokens[:5000]
    res = evaluate(["counting"], tokens=tokens, tokenizer=tokenizer_path, plugins=test_plugins)
    ref = CountingExpert(1024).score(tokens, 1, len(tokens))
    nbytes = byte_table.target_bytes(tokens).sum()
    assert res.bpb == pytest.approx(-ref.sum() / np.log(2) / nbytes, rel=1e-12)
    assert res.bytes == nbytes and res.targets == 4999 and res.valid


def test_known_invalid_is_refused_unless_allowed(test_plugins, tokenizer_path):
    class Cheat(Expert):
        known_invalid = True
        invalid_reason = "reads the target"

        def score(self, tokens, start, end):
            return np.zeros(end - start)

    tokens = np.arange(50) % 1024
    with pytest.raises(InvalidConfigurationError, match="reads the target"):
        evaluate([Cheat(1024)], tokens=tokens, tokenizer=tokenizer_path, plugins=test_plugins)
    res = evaluate([Cheat(1024)], tokens=tokens, tokenizer=tokenizer_path, plugins=test_plugins, allow_invalid=True)
    assert not res.valid and any("reads the target" in v for v in res.validity["violations"])


def test_probability_above_one_makes_the_result_invalid(test_plugins, tokenizer_path):
    class Overconfident(Expert):
        def score(self, tokens, start, end):
            return np.full(end - start, 0.5)

    res = evaluate([Overconfident(1024)], tokens=np.arange(20), tokenizer=tokenizer_path, plugins=test_plugins)
    assert not res.valid and "C2" in res.validity["violations"][0]


def test_demo_stream_needs_no_files(test_plugins):
    res = evaluate(["uniform"], plugins=test_plugins)
    assert res.bpb > 0 and res.config["data"] == "demo" and res.targets > 10_000


def test_bad_inputs(test_plugins, tokenizer_path, tmp_path):
    with pytest.raises(DataError, match="out of range for a vocabulary of 1024"):
        evaluate(["uniform"], tokens=np.array([1, 2, 5000]), tokenizer=tokenizer_path, plugins=test_plugins)
    with pytest.raises(DataError, match="no such file"):
        evaluate(["uniform"], tokens=np.array([1, 2]), tokenizer=tmp_path / "nope.model", plugins=test_plugins)
    with pytest.raises(UsageError, match="tokenizer is needed"):
        evaluate(["uniform"], tokens=np.array([1, 2]), plugins=test_plugins)
    with pytest.raises(UsageError, match="unknown expert 'unifrm'"):
        evaluate(["unifrm"], tokens=np.array([1, 2]), tokenizer=tokenizer_path, plugins=test_plugins)


def test_the_api_function_is_not_shadowed_by_its_module():
    import pgolf_core
    import pgolf_core.evaluate  # noqa: F401

    assert callable(pgolf_core.evaluate)
