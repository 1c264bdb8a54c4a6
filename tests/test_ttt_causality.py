"""Instrumented proof that the adapters only ever learn from scored tokens (C3) and never from the last chunk.

1. A recording expert and adapter log every call the evaluator makes: the spans tile the targets,
   every call gets exactly ``tokens[:end]`` (no token past the chunk end), adapters run after the
   experts scored the span, and ``final`` marks only the last span.
2. A differential test on the real adapters: two streams that agree up to position p and differ
   from p on. Every weight state reached after a call with ``end <= p`` must be identical in the two
   runs, in particular at ``end == p`` exactly, where a chunk is trained (so the check is not vacuous):
   no update ever used a token the evaluator had not scored.
3. The last chunk is never trained on, whether the stream ends inside a chunk or exactly at one's end.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pgolf_core.api import Adapter, BuildContext, Expert  # noqa: E402
from pgolf_core.evaluate import evaluate  # noqa: E402
from helpers.neural import TinyExpert, demo_stream, one_thread  # noqa: E402,F401


class RecordingExpert(Expert):
    def __init__(self, log):
        super().__init__(1024)
        self.log = log

    def score(self, tokens, start, end):
        self.log.append(("score", start, end, len(tokens), tokens.flags.writeable))
        return np.full(end - start, -np.log(1024.0))

    def update(self, tokens, start, end):
        self.log.append(("update", start, end, len(tokens), tokens.flags.writeable))


class RecordingAdapter(Adapter):
    def __init__(self, log):
        self.log = log

    def after_chunk(self, tokens, start, end, final):
        self.log.append(("adapt", start, end, len(tokens), final))


def _tokenizer():
    from pgolf_core.demo import demo_tokenizer_path

    return demo_tokenizer_path()


@pytest.mark.parametrize("n, chunk", [(1001, 100), (1000, 100), (57, 1000), (2, 1)])
def test_every_call_sees_exactly_the_scored_prefix(n, chunk):
    log: list = []
    evaluate([RecordingExpert(log)], adapters=[RecordingAdapter(log)], tokens=demo_stream(n),
             tokenizer=_tokenizer(), chunk_size=chunk)
    adapts = [e for e in log if e[0] == "adapt"]
    assert [(s, e) for _, s, e, _, _ in adapts] == [(s, min(s + chunk, n)) for s in range(1, n, chunk)]
    for kind, start, end, length, flag in log:
        assert length == end  # tokens[:end]: no token past the chunk end
        if kind != "adapt":
            assert flag is False  # a read-only view
    assert [f for *_, f in adapts] == [False] * (len(adapts) - 1) + [True]
    for i in range(0, len(log), 3):  # per span: score, update, then the adapter
        assert [e[0] for e in log[i : i + 3]] == ["score", "update", "adapt"]
        assert len({e[1:3] for e in log[i : i + 3]}) == 1


def _trajectory(adapter_name, opts, tokens, chunk):
    """Weights digest after every after_chunk call: {end: digest}, plus the adapter's stats."""
    from pgolf_core.plugins import load_plugins
    from pgolf_core.stream.bytes import byte_table_from_sentencepiece

    plugins = load_plugins()
    expert = TinyExpert(0)
    expert.name = "neural"
    ctx = BuildContext(vocab_size=1024, byte_counts=byte_table_from_sentencepiece(_tokenizer()), seed=0)
    adapter = plugins.adapters.create(adapter_name, ctx, **opts)
    seen = {}
    inner = adapter.after_chunk

    def recording(tok, start, end, final):
        inner(tok, start, end, final)
        digest = b"".join(p.detach().numpy().tobytes() for p in expert.model.parameters())
        digest += adapter.state_fingerprint() or b""
        seen[end] = digest

    adapter.after_chunk = recording
    evaluate([expert], adapters=[adapter], tokens=tokens, tokenizer=_tokenizer(), chunk_size=chunk)
    return seen, adapter.stats()


TTT_OPTS = {"chunk_tokens": "200", "seq_len": "32", "batch": "4", "lr": "1e-2", "epochs": "1", "polyak": "0.5"}
LORA_OPTS = {"chunk_tokens": "200", "seq_len": "32", "batch": "4", "lr": "1e-2", "epochs": "1", "rank": "2",
             "reset_per_doc": "true"}


@pytest.mark.parametrize("name, opts", [("ttt", TTT_OPTS), ("lora-ttt", LORA_OPTS)])
def test_no_update_ever_uses_an_unscored_token(name, opts):
    cut = 401  # chunk [201, 401) is trained when end == 401; token 401 is the first unscored one
    base = demo_stream(700)
    other = base.copy()
    other[cut:] = (other[cut:].astype(np.int64) * 7 + 3) % 1024
    a, stats = _trajectory(name, opts, base, chunk=100)
    b, _ = _trajectory(name, opts, other, chunk=100)
    assert set(a) == set(b) == {101, 201, 301, 401, 501, 601, 700}
    for end in a:
        if end <= cut:
            assert a[end] == b[end], f"weights after end={end} depend on tokens >= {cut}"
    assert a[401] != a[301] and a[201] != a[101]  # training did happen at the boundaries (not vacuous)
    assert a[501] != b[501] or a[601] != b[601]  # and later training does see the changed (now scored) tokens
    assert all(h["targets"][1] in (201, 401, 601) for h in stats["history"])  # adapter chunk ends only


@pytest.mark.parametrize("n, trained", [(601, 2), (650, 3)])  # the stream ends at a chunk end / inside one
def test_the_last_chunk_is_never_trained_on(n, trained):
    seen, stats = _trajectory("ttt", TTT_OPTS, demo_stream(n), chunk=100)
    ends = sorted(seen)
    assert seen[ends[-1]] == seen[ends[-2]]  # the final call changed nothing
    # n=601: [401, 601) is completed by the final span, so only [1, 201) and [201, 401) train;
    # n=650: [401, 601) completes before the final span [601, 650) and trains; [601, 801) never completes
    assert stats["chunks_trained"] == trained
    assert all(h["targets"][1] <= ends[-2] for h in stats["history"])


def test_one_chunk_covering_the_stream_trains_nothing():
    seen, stats = _trajectory("ttt", {"seq_len": "32"}, demo_stream(300), chunk=100)  # default 131,072
    assert stats["chunks_trained"] == 0 and len(set(seen.values())) == 1
